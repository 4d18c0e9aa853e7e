/**
 * The operator's files in docs/: the alerting rules pass `promtool check rules` and their unit tests (`promtool test
 * rules`), the Prometheus configuration loads them, and every query of the Grafana dashboard is valid PromQL that a
 * real Prometheus, scraping a real exporter, answers with data from the first scrape on.
 */
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { RegionRegistry } from '@corral/core'
import { afterAll, describe, expect, it } from 'vitest'
import { requireBinary, startPrometheus, type PrometheusServer } from '../../../test-support/servers.js'
import { startExporter, type RunningExporter } from './server.js'

const DOCS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../docs')

async function promtool(...args: string[]): Promise<{ code: number | null; output: string }> {
  const bin = await requireBinary('promtool')
  const child = spawn(bin, args, { cwd: DOCS, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  clearTimeout(timer)
  return { code, output }
}

describe('docs/prometheus', () => {
  it('alerts.yml passes promtool check rules', async () => {
    const result = await promtool('check', 'rules', 'prometheus/alerts.yml')
    expect(result.output).toContain('SUCCESS: 6 rules found')
    expect(result.code).toBe(0)
  })

  it('alerts.yml passes its unit tests (promtool test rules)', async () => {
    const result = await promtool('test', 'rules', 'prometheus/alerts.test.yml')
    expect(result.output).toContain('SUCCESS')
    expect(result.code).toBe(0)
  })

  it('prometheus.yml is valid and loads the alerts', async () => {
    const result = await promtool('check', 'config', 'prometheus.yml')
    expect(result.output).toContain('SUCCESS: 6 rules found')
    expect(result.code).toBe(0)
  })
})

describe('docs/grafana/corral-dashboard.json', () => {
  let exporter: RunningExporter | undefined
  let prometheus: PrometheusServer | undefined
  afterAll(async () => {
    await prometheus?.stop()
    await exporter?.close()
  })

  interface Dashboard {
    templating: { list: Array<{ name: string; query: { query: string } }> }
    panels: Array<{ title: string; targets?: Array<{ expr: string; exemplar?: boolean }> }>
  }
  const dashboard = async () =>
    JSON.parse(await readFile(path.join(DOCS, 'grafana/corral-dashboard.json'), 'utf8')) as Dashboard

  it('has an instance variable that every query honours', async () => {
    const { templating, panels } = await dashboard()
    expect(templating.list.map((v) => v.name)).toEqual(['instance', 'region'])
    expect(templating.list[0]!.query.query).toBe('label_values(corral_region_info, instance)')
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr))
    expect(exprs.length).toBeGreaterThan(10)
    for (const expr of exprs) expect(expr).toContain('instance=~"$instance"')
    const histogramTargets = panels.flatMap((p) => p.targets ?? []).filter((t) => t.expr.includes('_bucket'))
    expect(histogramTargets.every((t) => t.exemplar === true)).toBe(true)
  })

  it(
    'asks only valid queries, answered with data (0 before the first event) by a real Prometheus',
    { timeout: 60_000 },
    async () => {
      const registry = new RegionRegistry()
      const users = registry.createRegion({ name: 'users' }).configure('memory', { expirationTime: 60 })
      await users.getOrCreate('a', () => 1)
      exporter = await startExporter({
        port: 0,
        registry,
        logger: false,
        dashboard: false,
        adminToken: '',
        history: false,
      })
      prometheus = await startPrometheus({ scrapeTargets: [`127.0.0.1:${exporter.port}`] })
      // rate() needs two scrapes in its window
      await prometheus.waitForQuery('count_over_time(corral_region_info[1m])', (r) => (r[0]?.value ?? 0) >= 3, {
        timeoutMs: 40_000,
      })
      const substitute = (expr: string) =>
        expr.replaceAll('$instance', '.*').replaceAll('$region', '.*').replaceAll('$__rate_interval', '1m')
      const { panels, templating } = await dashboard()
      for (const variable of templating.list) {
        const metric = /label_values\((\w+)/.exec(variable.query.query)![1]!
        expect((await prometheus.query(metric)).length, variable.name).toBeGreaterThan(0)
      }
      for (const panel of panels) {
        for (const target of panel.targets ?? []) {
          const result = await prometheus.query(substitute(target.expr)) // throws on invalid PromQL
          // quantiles and ratios of a region without regenerations are NaN, not absent; counters are 0 at least
          if (!target.expr.includes('histogram_quantile') && !panel.title.startsWith('Entries'))
            expect(result.length, `${panel.title}: ${target.expr}`).toBeGreaterThan(0)
        }
      }
      const backendErrors = panels.find((p) => p.title === 'Backend errors')!.targets![0]!.expr
      const series = await prometheus.query(substitute(backendErrors))
      expect(series.map((s) => s.metric.operation).sort()).toEqual(
        ['delete', 'get', 'getMulti', 'lock', 'set', 'setMulti', 'unlock'].sort(),
      )
      expect(series.every((s) => s.value === 0)).toBe(true)
    },
  )
})
