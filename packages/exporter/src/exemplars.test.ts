/**
 * Exemplars end to end: regenerations traced by the real OpenTelemetry SDK put their trace ids on the histogram
 * buckets; the exporter's OpenMetrics exposition carries them, a real Prometheus (exemplar storage on) parses the
 * scrape and answers them back, and the classic text format stays valid for promtool.
 */
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import { RegionRegistry } from '@corral/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { promtoolCheckMetrics, startPrometheus, type PrometheusServer } from '../../../test-support/servers.js'
import { OPENMETRICS_CONTENT_TYPE } from './exposition.js'
import { startExporter, type RunningExporter } from './server.js'

const spans = new InMemorySpanExporter()
let exporter: RunningExporter
let prometheus: PrometheusServer | undefined
let traceId = ''

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }))
  const registry = new RegionRegistry()
  const reports = registry.createRegion({ name: 'reports' }).configure('memory', { expirationTime: 60 })
  // one slow regeneration (the 0.25 s bucket) with 4 callers waiting for it
  await Promise.all(
    Array.from({ length: 5 }, () =>
      reports.getOrCreate('monthly', () => new Promise((resolve) => setTimeout(() => resolve('pdf'), 150))),
    ),
  )
  traceId = spans
    .getFinishedSpans()
    .find((s) => s.name === 'corral.regenerate')!
    .spanContext().traceId
  exporter = await startExporter({ port: 0, registry, logger: false, dashboard: false, adminToken: '', history: false })
})

afterAll(async () => {
  await prometheus?.stop()
  await exporter?.close()
  trace.disable()
  context.disable()
})

describe('exemplars', () => {
  it('are on the slow bucket of the OpenMetrics exposition, with the real trace id', async () => {
    const response = await fetch(`${exporter.url}/metrics`, { headers: { accept: 'application/openmetrics-text' } })
    expect(response.headers.get('content-type')).toBe(OPENMETRICS_CONTENT_TYPE)
    const text = await response.text()
    const line = text.split('\n').find((l) => l.startsWith('corral_regeneration_duration_seconds_bucket{le="0.25"'))
    expect(line).toMatch(
      new RegExp(`^\\S+ 1 # \\{trace_id="${traceId}",span_id="[0-9a-f]{16}"\\} 0\\.1\\d+ \\d+(\\.\\d+)?$`),
    )
    const waits = text
      .split('\n')
      .filter((l) => l.startsWith('corral_lock_wait_duration_seconds_bucket') && l.includes(' # '))
    expect(waits.length).toBeGreaterThan(0)
    expect(waits.every((l) => l.includes(`trace_id="${traceId}"`))).toBe(true)
  })

  it('leave the text format valid for promtool', async () => {
    const text = await (await fetch(`${exporter.url}/metrics`)).text()
    expect(text).not.toContain(' # {')
    expect((await promtoolCheckMetrics(text)).output).toBe('')
  })

  it('are parsed by Prometheus from its scrape and answered back', { timeout: 60_000 }, async () => {
    prometheus = await startPrometheus({
      scrapeTargets: [`127.0.0.1:${exporter.port}`],
      extraArgs: ['--enable-feature=exemplar-storage'],
    })
    await prometheus.waitForQuery(
      'corral_regeneration_duration_seconds_count{region="reports"}',
      (r) => r[0]?.value === 1,
      {
        timeoutMs: 40_000,
      },
    )
    const end = Date.now() / 1000
    const url = `${prometheus.url}/api/v1/query_exemplars?query=${encodeURIComponent('corral_regeneration_duration_seconds_bucket')}&start=${end - 600}&end=${end + 60}`
    const body = (await (await fetch(url)).json()) as {
      status: string
      data: Array<{
        seriesLabels: Record<string, string>
        exemplars: Array<{ labels: Record<string, string>; value: string }>
      }>
    }
    expect(body.status).toBe('success')
    const series = body.data.find((d) => d.seriesLabels.le === '0.25')
    expect(series?.exemplars[0]?.labels.trace_id).toBe(traceId)
    expect(Number(series?.exemplars[0]?.value)).toBeGreaterThan(0.1)
    expect((await prometheus.targets())[0]).toMatchObject({ health: 'up', lastError: '' })
  })
})
