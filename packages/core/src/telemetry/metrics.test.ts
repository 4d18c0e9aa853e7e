/**
 * Prometheus metrics, read back from the exposition text as a scraper would, and linted by promtool.
 */
import { Registry, register as globalRegister } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { promtoolCheckMetrics } from '../../../../test-support/servers.js'
import { MemoryBackend, RegionRegistry, createRegion } from '../index.js'

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Parses the classic text format (enough of it for these tests: no escapes in label values). */
function parseExposition(text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!match) throw new Error(`unparsable exposition line: ${line}`)
    const labels: Record<string, string> = {}
    for (const pair of (match[2] ?? '').match(/\w+="[^"]*"/g) ?? []) {
      const [key, value] = pair.split('=') as [string, string]
      labels[key] = value.slice(1, -1)
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3]) })
  }
  return samples
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  return samples.find(
    (s) =>
      s.name === name &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v) &&
      Object.keys(s.labels).length === Object.keys(labels).length,
  )?.value
}

async function traffic() {
  let now = 2_000_000
  const registry = new RegionRegistry()
  const region = createRegion({ name: 'catalog', registry, clock: () => now }).configure('memory', {
    expirationTime: 10,
  })
  // 3 misses that coalesce onto one regeneration, then 2 hits
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const cold = [1, 2, 3].map(() => region.getOrCreate('product:1', async () => (await gate, 'p1')))
  release()
  await Promise.all(cold)
  await region.getOrCreate('product:1', () => 'unused')
  await region.getOrCreate('product:1', () => 'unused')
  // a failing regeneration
  await region.getOrCreate('product:2', () => Promise.reject(new Error('boom'))).catch(() => {})
  // a stale serve while regenerating
  now += 11_000
  let releaseStale!: () => void
  const staleGate = new Promise<void>((r) => (releaseStale = r))
  const leader = region.getOrCreate('product:1', async () => (await staleGate, 'p1b'))
  await region.getOrCreate('product:1', () => 'unused')
  releaseStale()
  await leader
  await region.invalidate({ hard: false })
  await region.invalidate({ hard: true })
  await region.delete('product:1')
  return { registry, region }
}

describe('corral_* metrics', () => {
  it('counts gets by result, regenerations, coalesced callers and invalidations, per region', async () => {
    const { registry } = await traffic()
    const samples = parseExposition(await registry.metrics.metrics())
    const region = 'catalog'
    expect(value(samples, 'corral_gets_total', { region, result: 'hit' })).toBe(2)
    expect(value(samples, 'corral_gets_total', { region, result: 'miss' })).toBe(5)
    expect(value(samples, 'corral_gets_total', { region, result: 'stale' })).toBe(1)
    expect(value(samples, 'corral_regenerations_total', { region, outcome: 'success' })).toBe(2)
    expect(value(samples, 'corral_regenerations_total', { region, outcome: 'error' })).toBe(1)
    expect(value(samples, 'corral_coalesced_total', { region, mode: 'waited' })).toBe(2)
    expect(value(samples, 'corral_coalesced_total', { region, mode: 'stale' })).toBe(1)
    expect(value(samples, 'corral_invalidations_total', { region, kind: 'hard', scope: 'region' })).toBe(1)
    expect(value(samples, 'corral_invalidations_total', { region, kind: 'soft', scope: 'region' })).toBe(1)
    expect(value(samples, 'corral_invalidations_total', { region, kind: 'hard', scope: 'key' })).toBe(1)
    expect(value(samples, 'corral_region_info', { region, backend: 'memory' })).toBe(1)
    expect(value(samples, 'corral_entries', { region })).toBe(0)
    expect(value(samples, 'corral_regeneration_duration_seconds_count', { region })).toBe(3)
    expect(value(samples, 'corral_lock_wait_duration_seconds_count', { region })).toBe(2)
    expect(value(samples, 'corral_regeneration_duration_seconds_bucket', { region, le: '0.0005' })).toBeDefined()
    expect(value(samples, 'corral_regeneration_duration_seconds_bucket', { region, le: '60' })).toBe(3)
  })

  it('never puts a cache key in a label', async () => {
    const { registry } = await traffic()
    const samples = parseExposition(await registry.metrics.metrics())
    const labelNames = new Set(samples.flatMap((s) => Object.keys(s.labels)))
    expect([...labelNames].sort()).toEqual([
      'backend',
      'cause',
      'kind',
      'le',
      'mode',
      'operation',
      'outcome',
      'region',
      'result',
      'scope',
    ])
    expect(samples.some((s) => Object.values(s.labels).some((v) => v.startsWith('product:')))).toBe(false)
  })

  it('passes promtool check metrics', async () => {
    const { registry } = await traffic()
    const result = await promtoolCheckMetrics(await registry.metrics.metrics())
    expect(result.output).toBe('')
    expect(result.ok).toBe(true)
  })

  it('has every series at 0 before its first event, so rates read 0 rather than no data', async () => {
    const registry = new RegionRegistry()
    createRegion({ name: 'quiet', registry }).configure('memory', { expirationTime: 5 })
    const samples = parseExposition(await registry.metrics.metrics())
    for (const operation of ['get', 'set', 'lock', 'unlock', 'delete'])
      expect(value(samples, 'corral_backend_errors_total', { region: 'quiet', operation })).toBe(0)
    expect(value(samples, 'corral_gets_total', { region: 'quiet', result: 'miss' })).toBe(0)
    expect(value(samples, 'corral_regeneration_duration_seconds_count', { region: 'quiet' })).toBe(0)
    expect(value(samples, 'corral_lock_wait_duration_seconds_bucket', { region: 'quiet', le: '+Inf' })).toBe(0)
  })

  it('counts backend errors by operation, and entries of counting backends', async () => {
    class FailingWrites extends MemoryBackend {
      override async set(): Promise<void> {
        throw new Error('disk full')
      }
    }
    const registry = new RegionRegistry()
    const region = createRegion({ name: 'flaky', registry }).configure(new FailingWrites(), { expirationTime: 5 })
    expect(await region.getOrCreate('a', () => 'served anyway')).toBe('served anyway')
    const samples = parseExposition(await registry.metrics.metrics())
    expect(value(samples, 'corral_backend_errors_total', { region: 'flaky', operation: 'set' })).toBe(1)

    const counted = createRegion({ name: 'counted', registry }).configure('memory')
    await counted.setMulti({ a: 1, b: 2, c: 3 })
    expect(value(parseExposition(await registry.metrics.metrics()), 'corral_entries', { region: 'counted' })).toBe(3)
  })

  it('uses the registry own prom-client Registry, or telemetry.metricsRegistry, never the global one', async () => {
    const custom = new Registry()
    const registry = new RegionRegistry()
    const a = createRegion({ name: 'a', registry, telemetry: { metricsRegistry: custom } }).configure('memory')
    const b = createRegion({ name: 'b', registry, telemetry: { metricsRegistry: custom } }).configure('memory')
    await a.getOrCreate('x', () => 1)
    await b.getOrCreate('x', () => 1)
    const samples = parseExposition(await custom.metrics())
    expect(value(samples, 'corral_gets_total', { region: 'a', result: 'miss' })).toBe(1)
    expect(value(samples, 'corral_gets_total', { region: 'b', result: 'miss' })).toBe(1)
    expect((await registry.metrics.metrics()).trim()).toBe('')
    expect(await globalRegister.metrics()).not.toContain('corral_')
  })

  it('drops a closed region series, and registers nothing with telemetry off', async () => {
    const registry = new RegionRegistry()
    const region = createRegion({ name: 'short-lived', registry }).configure('memory')
    await region.getOrCreate('x', () => 1)
    expect(await registry.metrics.metrics()).toContain('region="short-lived"')
    await region.close()
    expect(await registry.metrics.metrics()).not.toContain('region="short-lived"')

    const quiet = createRegion({ name: 'quiet', registry, telemetry: false }).configure('memory')
    await quiet.getOrCreate('x', () => 1)
    expect(await registry.metrics.metrics()).not.toContain('region="quiet"')
    expect(quiet.hotKeys()).toEqual([])
    expect(quiet.statsSnapshot().misses).toBe(1)
  })
})
