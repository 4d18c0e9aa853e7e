/**
 * Corral's metrics through the OpenTelemetry metrics API, read with the real SDK's MeterProvider and a metric
 * reader, and compared with the Prometheus ones.
 */
import { metrics } from '@opentelemetry/api'
import {
  DataPointType,
  MeterProvider,
  MetricReader,
  type DataPoint,
  type Histogram,
  type MetricData,
} from '@opentelemetry/sdk-metrics'
import { afterEach, describe, expect, it } from 'vitest'
import { RegionRegistry, createRegion, type CacheRegion } from '../index.js'
import { VERSION } from '../version.js'
import { LOCK_WAIT_BUCKETS, REGENERATION_BUCKETS } from './metrics.js'

/** A pull reader: `collect()` returns what the SDK would export now. */
class TestReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

let provider: MeterProvider | undefined
const regions: CacheRegion[] = []

function register(): TestReader {
  const reader = new TestReader()
  provider = new MeterProvider({ readers: [reader] })
  metrics.setGlobalMeterProvider(provider)
  return reader
}

afterEach(async () => {
  await Promise.all(regions.splice(0).map((region) => region.close()))
  metrics.disable()
  await provider?.shutdown()
  provider = undefined
})

function region(name: string, registry = new RegionRegistry(), telemetry: object | false = {}) {
  const created = createRegion({ name, registry, telemetry: telemetry as never }).configure('memory', {
    expirationTime: 60,
  })
  regions.push(created)
  return created
}

async function collect(reader: TestReader): Promise<MetricData[]> {
  const { resourceMetrics, errors } = await reader.collect()
  expect(errors).toEqual([])
  return resourceMetrics.scopeMetrics.flatMap((scope) => scope.metrics)
}

/** The points of `name` for `region`, as `{ attributes (without the region): value }`. */
function points(all: MetricData[], name: string, region: string): Record<string, unknown> {
  const metric = all.find((candidate) => candidate.descriptor.name === name)
  if (metric === undefined) throw new Error(`no metric ${name}; got ${all.map((m) => m.descriptor.name).join(', ')}`)
  const result: Record<string, unknown> = {}
  for (const point of metric.dataPoints as Array<DataPoint<unknown>>) {
    const { 'corral.region': pointRegion, ...rest } = point.attributes
    if (pointRegion !== region) continue
    result[JSON.stringify(rest)] = point.value
  }
  return result
}

describe('OpenTelemetry metrics', () => {
  it('reports the counters, entries and histograms with OpenTelemetry names, units and attributes', async () => {
    const reader = register()
    const users = region('otel-users')
    await users.getOrCreate('a', () => 1) // miss + regeneration
    await users.getOrCreate('a', () => 1) // hit
    await users.getOrCreate('b', () => 2)
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    const stampede = [1, 2, 3].map(() => users.getOrCreate('c', () => gate.then(() => 3)))
    await new Promise((resolve) => setImmediate(resolve))
    release()
    await Promise.all(stampede) // one regeneration, two callers coalesced onto it
    await expect(
      users.getOrCreate('boom', () => {
        throw new Error('down')
      }),
    ).rejects.toThrow('down')
    await users.invalidate({ hard: false })
    await users.delete('b')

    const all = await collect(reader)
    const scope = (await reader.collect()).resourceMetrics.scopeMetrics.find(
      (candidate) => candidate.scope.name === '@corral/core',
    )
    expect(scope?.scope).toMatchObject({ name: '@corral/core', version: VERSION })

    const descriptor = (name: string) => all.find((metric) => metric.descriptor.name === name)!.descriptor
    expect(descriptor('corral.gets')).toMatchObject({ unit: '{get}', type: 'OBSERVABLE_COUNTER' })
    expect(descriptor('corral.regeneration.duration')).toMatchObject({ unit: 's', type: 'HISTOGRAM' })
    expect(descriptor('corral.lock_wait.duration')).toMatchObject({ unit: 's', type: 'HISTOGRAM' })
    expect(descriptor('corral.entries')).toMatchObject({ unit: '{entry}', type: 'OBSERVABLE_UP_DOWN_COUNTER' })
    expect(descriptor('corral.gets').description).toContain('Cache reads by result')

    expect(points(all, 'corral.gets', 'otel-users')).toEqual({
      '{"corral.result":"hit"}': 1,
      '{"corral.result":"stale"}': 0,
      '{"corral.result":"miss"}': 6,
    })
    expect(points(all, 'corral.regenerations', 'otel-users')).toEqual({
      '{"corral.outcome":"success"}': 3,
      '{"corral.outcome":"error"}': 1,
    })
    expect(points(all, 'corral.coalesced', 'otel-users')).toEqual({
      '{"corral.mode":"waited"}': 2,
      '{"corral.mode":"stale"}': 0,
    })
    expect(points(all, 'corral.invalidations', 'otel-users')).toMatchObject({
      '{"corral.invalidation.kind":"soft","corral.invalidation.scope":"region"}': 1,
      '{"corral.invalidation.kind":"hard","corral.invalidation.scope":"key"}': 1,
      '{"corral.invalidation.kind":"hard","corral.invalidation.scope":"region"}': 0,
    })
    expect(points(all, 'corral.entries', 'otel-users')).toEqual({ '{}': 2 })

    const regeneration = all.find((metric) => metric.descriptor.name === 'corral.regeneration.duration')!
    expect(regeneration.dataPointType).toBe(DataPointType.HISTOGRAM)
    const [histogram] = regeneration.dataPoints as Array<DataPoint<Histogram>>
    expect(histogram!.attributes).toEqual({ 'corral.region': 'otel-users' })
    expect(histogram!.value.count).toBe(4)
    expect(histogram!.value.buckets.boundaries).toEqual(REGENERATION_BUCKETS)
    const lockWait = all.find((metric) => metric.descriptor.name === 'corral.lock_wait.duration')!
    const [waits] = lockWait.dataPoints as Array<DataPoint<Histogram>>
    expect(waits!.value.count).toBe(2)
    expect(waits!.value.buckets.boundaries).toEqual(LOCK_WAIT_BUCKETS)
  })

  it('says what Prometheus says: the same counts, from the same numbers', async () => {
    const reader = register()
    const registry = new RegionRegistry()
    const users = region('otel-same', registry)
    for (let i = 0; i < 5; i++) await users.getOrCreate(`k${i % 3}`, () => i)
    const prometheus = await registry.metrics.getSingleMetric('corral_gets_total')!.get()
    const fromPrometheus = Object.fromEntries(
      prometheus.values
        .filter((value) => value.labels.region === 'otel-same')
        .map((value) => [JSON.stringify({ 'corral.result': value.labels.result }), value.value]),
    )
    expect(points(await collect(reader), 'corral.gets', 'otel-same')).toEqual(fromPrometheus)
    expect(fromPrometheus).toEqual({
      '{"corral.result":"hit"}': 2,
      '{"corral.result":"stale"}': 0,
      '{"corral.result":"miss"}': 3,
    })
  })

  it('is a no-op until a MeterProvider is registered, then picks it up within a second, counts included', async () => {
    const users = region('otel-late')
    await users.getOrCreate('a', () => 1)
    await users.getOrCreate('a', () => 1)
    const reader = register() // after the region was made and used: no call of Corral's follows
    await expect
      .poll(async () => points(await collect(reader).catch(() => []), 'corral.gets', 'otel-late'), {
        timeout: 5000,
        interval: 100,
      })
      .toEqual({ '{"corral.result":"hit"}': 1, '{"corral.result":"stale"}': 0, '{"corral.result":"miss"}': 1 })
  })

  it('adds up regions of one name in several registries, and leaves out regions without telemetry', async () => {
    const reader = register()
    const first = region('otel-shared')
    const second = region('otel-shared')
    const silent = region('otel-silent', new RegionRegistry(), false)
    await first.getOrCreate('a', () => 1)
    await second.getOrCreate('a', () => 1)
    await second.getOrCreate('a', () => 1)
    await silent.getOrCreate('a', () => 1)
    const all = await collect(reader)
    expect(points(all, 'corral.gets', 'otel-shared')).toMatchObject({
      '{"corral.result":"hit"}': 1,
      '{"corral.result":"miss"}': 2,
    })
    expect(points(all, 'corral.gets', 'otel-silent')).toEqual({})
  })
})
