import { RegionRegistry } from '@corral/core'
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client'
import { describe, expect, it } from 'vitest'
import {
  collectFamilies,
  OPENMETRICS_CONTENT_TYPE,
  prefersOpenMetrics,
  PROMETHEUS_CONTENT_TYPE,
  renderOpenMetrics,
  renderPrometheus,
} from '../exposition.js'
import { fixture } from '../test-support/helpers.js'

/** The Accept header Prometheus 2.x sends when it scrapes. */
const PROMETHEUS_ACCEPT =
  'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'

async function withTraffic() {
  const f = fixture()
  await f.users.getOrCreate('a', () => 1)
  await f.users.getOrCreate('a', () => 1)
  await f.users.getOrCreate('b', () => 2)
  return f
}

describe('GET /metrics', () => {
  it('serves the Prometheus text format 0.0.4 by default', async () => {
    const f = await withTraffic()
    const res = await f.app.request('/metrics')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe(PROMETHEUS_CONTENT_TYPE)
    expect(res.headers.get('vary')).toBe('Accept')
    const text = await res.text()
    expect(text).toContain('# TYPE corral_gets_total counter\n')
    expect(text).toContain('corral_gets_total{region="users",result="hit"} 1\n')
    expect(text).toContain('corral_gets_total{region="users",result="miss"} 2\n')
    expect(text).toContain('corral_region_info{region="users",backend="memory"} 1\n')
    expect(text).toContain('corral_regeneration_duration_seconds_count{region="users"} 2\n')
    expect(text).toContain('# TYPE corral_admin_actions_total counter\n')
    expect(text.endsWith('\n')).toBe(true)
    expect(text).not.toContain('# EOF')
  })

  it('serves OpenMetrics 1.0.0 when the Accept header prefers it, as Prometheus does', async () => {
    const f = await withTraffic()
    const res = await f.app.request('/metrics', { headers: { accept: PROMETHEUS_ACCEPT } })
    expect(res.headers.get('content-type')).toBe(OPENMETRICS_CONTENT_TYPE)
    const text = await res.text()
    expect(text).toContain('# TYPE corral_gets counter\n# HELP corral_gets ')
    expect(text).toContain('corral_gets_total{region="users",result="hit"} 1\n')
    expect(text).toContain('# TYPE corral_regeneration_duration_seconds histogram\n')
    expect(text).toContain('corral_regeneration_duration_seconds_bucket{le="+Inf",region="users"} 2\n')
    expect(text.endsWith('\n# EOF\n')).toBe(true)
    expect(text).not.toMatch(/\n\n/)
  })

  it('does not change the registries: a text scrape after an OpenMetrics one still names counters *_total', async () => {
    const f = await withTraffic()
    await f.app.request('/metrics', { headers: { accept: PROMETHEUS_ACCEPT } })
    const text = await (await f.app.request('/metrics')).text()
    expect(text).toContain('# TYPE corral_gets_total counter\n')
    const counter = (await f.registry.metrics.getMetricsAsJSON()).find((m) => m.name === 'corral_gets_total')
    expect(counter?.type).toBe('counter')
    expect(await f.registry.metrics.metrics()).toContain('corral_gets_total{region="users",result="hit"} 1')
  })

  it('negotiates with Accept quality values', () => {
    expect(prefersOpenMetrics(undefined)).toBe(false)
    expect(prefersOpenMetrics('*/*')).toBe(false)
    expect(prefersOpenMetrics('text/plain')).toBe(false)
    expect(prefersOpenMetrics(PROMETHEUS_ACCEPT)).toBe(true)
    expect(prefersOpenMetrics('application/openmetrics-text')).toBe(true)
    expect(prefersOpenMetrics('application/openmetrics-text; version=1.0.0; charset=utf-8')).toBe(true)
    expect(prefersOpenMetrics('application/openmetrics-text;q=0.2, text/plain')).toBe(false)
    expect(prefersOpenMetrics('application/openmetrics-text;q=0, */*')).toBe(false)
  })

  it('renders the text format exactly as prom-client does', async () => {
    const registry = new Registry()
    new Counter({
      name: 'c_total',
      help: 'a counter\nwith "quotes" and \\',
      labelNames: ['l'],
      registers: [registry],
    }).inc({ l: 'va"l\\ue\nx' }, 3)
    new Gauge({ name: 'g', help: 'gauge', registers: [registry] }).set(-1.5)
    new Histogram({
      name: 'h',
      help: 'histogram',
      buckets: [0.1, 1],
      labelNames: ['l'],
      registers: [registry],
    }).observe({ l: 'x' }, 0.5)
    new Summary({ name: 's', help: 'summary', percentiles: [0.5], registers: [registry] }).observe(2)
    new Gauge({ name: 'empty', help: 'no samples', labelNames: ['l'], registers: [registry] })
    expect(renderPrometheus(await collectFamilies([registry]))).toBe(await registry.metrics())
  })

  it('spells special values as Prometheus does', async () => {
    const registry = new Registry()
    const gauge = new Gauge({ name: 'special', help: 'special values', labelNames: ['v'], registers: [registry] })
    gauge.set({ v: 'nan' }, Number.NaN)
    gauge.set({ v: 'inf' }, Number.POSITIVE_INFINITY)
    gauge.set({ v: 'minf' }, Number.NEGATIVE_INFINITY)
    const text = renderPrometheus(await collectFamilies([registry]))
    expect(text).toContain('special{v="nan"} NaN\n')
    expect(text).toContain('special{v="inf"} +Inf\n')
    expect(text).toContain('special{v="minf"} -Inf\n')
  })

  it('renders OpenMetrics families, samples and escapes', async () => {
    const registry = new Registry()
    registry.setDefaultLabels({ app: 'demo' })
    new Counter({ name: 'jobs_total', help: 'jobs "done"', registers: [registry] }).inc(2)
    new Counter({ name: 'odd', help: 'a counter without the suffix', registers: [registry] }).inc()
    new Gauge({ name: 'temp', help: 'temperature', registers: [registry] }).set(21.5)
    expect(renderOpenMetrics(await collectFamilies([registry]))).toBe(
      [
        '# TYPE jobs counter',
        '# HELP jobs jobs \\"done\\"',
        'jobs_total{app="demo"} 2',
        '# TYPE odd counter',
        '# HELP odd a counter without the suffix',
        'odd_total{app="demo"} 1',
        '# TYPE temp gauge',
        '# HELP temp temperature',
        'temp{app="demo"} 21.5',
        '# EOF',
        '',
      ].join('\n'),
    )
  })

  it('adds the metricsRegistry option, one registry or several', async () => {
    const mine = new Registry()
    new Counter({ name: 'app_requests_total', help: 'requests', registers: [mine] }).inc(5)
    const other = new Registry()
    new Gauge({ name: 'app_queue_depth', help: 'queue', registers: [other] }).set(3)
    const one = fixture({ metricsRegistry: mine })
    expect(await (await one.app.request('/metrics')).text()).toContain('app_requests_total 5\n')
    const several = await (await fixture({ metricsRegistry: [mine, other] }).app.request('/metrics')).text()
    expect(several).toContain('app_requests_total 5\n')
    expect(several).toContain('app_queue_depth 3\n')
    expect(several).toContain('# TYPE corral_gets_total counter')
  })

  it('serves a registry given twice (or the region registry itself) once', async () => {
    const registry = new RegionRegistry()
    registry.createRegion({ name: 'r' }).configure('memory')
    const f = fixture({ registry, metricsRegistry: [registry.metrics, registry.metrics] })
    const text = await (await f.app.request('/metrics')).text()
    expect(text.match(/# TYPE corral_gets_total counter/g)).toHaveLength(1)
    expect(text.match(/corral_region_info\{region="r",backend="memory"\} 1/g)).toHaveLength(1)
  })

  it('merges same-named families of several Corral registries into one', async () => {
    const first = new RegionRegistry()
    await first
      .createRegion({ name: 'a' })
      .configure('memory')
      .getOrCreate('k', () => 1)
    const second = new RegionRegistry()
    await second
      .createRegion({ name: 'b' })
      .configure('memory')
      .getOrCreate('k', () => 1)
    const f = fixture({ registry: first, metricsRegistry: second.metrics })
    const text = await (await f.app.request('/metrics')).text()
    expect(text.match(/# TYPE corral_gets_total counter/g)).toHaveLength(1)
    expect(text).toContain('corral_gets_total{region="a",result="miss"} 1\n')
    expect(text).toContain('corral_gets_total{region="b",result="miss"} 1\n')
    const open = await (await f.app.request('/metrics', { headers: { accept: PROMETHEUS_ACCEPT } })).text()
    expect(open.match(/# TYPE corral_gets counter/g)).toHaveLength(1)
  })

  it('keeps the first of two samples with the same labels', async () => {
    const a = new Registry()
    new Gauge({ name: 'dup', help: 'first', registers: [a] }).set(1)
    const b = new Registry()
    new Gauge({ name: 'dup', help: 'second', registers: [b] }).set(2)
    expect(renderPrometheus(await collectFamilies([a, b]))).toBe('# HELP dup first\n# TYPE dup gauge\ndup 1\n')
  })

  it('serves only the first of two same-named metrics of different types, and warns once', async () => {
    const mine = new Registry()
    new Gauge({ name: 'corral_gets_total', help: 'a clash', registers: [mine] }).set(1)
    const f = fixture({ metricsRegistry: mine })
    await f.app.request('/metrics')
    const text = await (await f.app.request('/metrics')).text()
    expect(text).toContain('# TYPE corral_gets_total counter')
    expect(text).not.toContain('a clash')
    const warnings = f.logger.entries.filter((e) => e.level === 'warn')
    expect(warnings).toEqual([
      {
        level: 'warn',
        obj: { metric: 'corral_gets_total', type: 'gauge', previousType: 'counter' },
        msg: 'metric "corral_gets_total" is registered twice with different types (counter, gauge): only the first is served on /metrics',
      },
    ])
  })

  it('answers HEAD', async () => {
    const f = fixture()
    const res = await f.app.request('/metrics', { method: 'HEAD' })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe(PROMETHEUS_CONTENT_TYPE)
    expect(await res.text()).toBe('')
  })
})
