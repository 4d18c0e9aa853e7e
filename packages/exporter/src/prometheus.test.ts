/**
 * Integration: a real Prometheus (the Debian package) scrapes a running exporter, and `promtool check metrics`
 * lints the exposition.
 */
import { RegionRegistry } from '@corral/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { promtoolCheckMetrics, startPrometheus, type PrometheusServer } from '../../../test-support/servers.js'
import { startExporter, type RunningExporter } from './server.js'

let registry: RegionRegistry
let exporter: RunningExporter
let prometheus: PrometheusServer | undefined

beforeAll(async () => {
  registry = new RegionRegistry()
  const users = registry.createRegion({ name: 'users' }).configure('memory', { expirationTime: 60 })
  const products = registry.createRegion({ name: 'products' }).configure('memory', { expirationTime: 60 })
  // users: 10 gets on 3 keys (3 misses, 7 hits); products: 5 concurrent callers of one key (1 miss, 4 coalesced)
  for (let i = 0; i < 10; i++) await users.getOrCreate(`user:${i % 3}`, () => ({ id: i % 3 }))
  await Promise.all(
    Array.from({ length: 5 }, () =>
      products.getOrCreate('sku-1', async () => {
        await new Promise((resolve) => setTimeout(resolve, 30))
        return { sku: 1 }
      }),
    ),
  )
  await users.invalidate({ hard: false })
  exporter = await startExporter({ port: 0, registry, logger: false, dashboard: false, adminToken: '' })
})

afterAll(async () => {
  await prometheus?.stop()
  await exporter?.close()
})

describe('Prometheus against a running exporter', () => {
  it('passes promtool check metrics', async () => {
    const text = await (await fetch(`${exporter.url}/metrics`)).text()
    const check = await promtoolCheckMetrics(text)
    expect(check.output).toBe('')
    expect(check.ok).toBe(true)
  })

  it('is scraped by Prometheus, which answers corral_gets_total back', { timeout: 60_000 }, async () => {
    prometheus = await startPrometheus({ scrapeTargets: [`127.0.0.1:${exporter.port}`], scrapeInterval: '1s' })
    const total = await prometheus.waitForQuery(
      'sum(corral_gets_total{region="users"})',
      (result) => result[0]?.value === 10,
      { timeoutMs: 40_000 },
    )
    expect(total[0]?.value).toBe(10)

    const byResult = await prometheus.query('corral_gets_total{region="users"}')
    const values = Object.fromEntries(byResult.map((s) => [s.metric.result, s.value]))
    expect(values).toEqual({ hit: 7, stale: 0, miss: 3 })
    expect(byResult[0]?.metric).toMatchObject({ job: 'corral', region: 'users' })

    const coalesced = await prometheus.query('corral_coalesced_total{region="products",mode="waited"}')
    expect(coalesced[0]?.value).toBe(4)
    const soft = await prometheus.query('corral_invalidations_total{region="users",kind="soft",scope="region"}')
    expect(soft[0]?.value).toBe(1)
    const p50 = await prometheus.query(
      'histogram_quantile(0.5, sum by (le) (corral_regeneration_duration_seconds_bucket{region="products"}))',
    )
    expect(p50[0]?.value).toBeGreaterThan(0.01)

    const targets = await prometheus.targets()
    expect(targets).toEqual([{ scrapeUrl: `http://127.0.0.1:${exporter.port}/metrics`, health: 'up', lastError: '' }])
  })
})
