/**
 * Spans, checked with the real OpenTelemetry SDK and an in-memory exporter.
 */
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
  type ReadableSpan,
} from '@opentelemetry/sdk-trace-base'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { promtoolCheckMetrics } from '../../../../test-support/servers.js'
import { NO_VALUE, RegionRegistry, createRegion } from '../index.js'
import { VERSION } from '../version.js'
import { deferred } from '../test-support/deferred.js'

const exporter = new InMemorySpanExporter()
const contextManager = new AsyncLocalStorageContextManager()

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable())
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
})
afterAll(() => {
  trace.disable()
  context.disable()
})
beforeEach(() => exporter.reset())

function setup(options: { recordKeys?: boolean } = {}) {
  let now = 5_000_000
  const registry = new RegionRegistry()
  const region = createRegion({
    name: 'users',
    registry,
    clock: () => now,
    telemetry: options.recordKeys === undefined ? {} : { recordKeys: options.recordKeys },
  }).configure('memory', { expirationTime: 10 })
  return { region, advance: (ms: number) => (now += ms) }
}

const spans = () => exporter.getFinishedSpans()
const named = (name: string) => spans().filter((s) => s.name === name)
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId

describe('corral.get_or_create', () => {
  it('records a hit with the region, backend, result, key and the tier that answered', async () => {
    const { region } = setup()
    await region.set('user:1', { id: 1 })
    exporter.reset()
    await region.getOrCreate('user:1', () => ({ id: 0 }))
    expect(spans()).toHaveLength(1)
    const [span] = spans()
    expect(span!.name).toBe('corral.get_or_create')
    expect(span!.kind).toBe(SpanKind.INTERNAL)
    expect(span!.instrumentationScope).toEqual({ name: '@corral/core', version: VERSION })
    expect(span!.attributes).toEqual({
      'corral.region': 'users',
      'corral.backend': 'memory',
      'corral.key': 'user:1',
      'corral.result': 'hit',
      // the memory backend answers from this process's memory
      'corral.tier': 'l1',
    })
    expect(span!.status.code).toBe(SpanStatusCode.UNSET)
  })

  it('wraps the creator in corral.regenerate, under which the creator own spans nest', async () => {
    const { region } = setup()
    const tracer = trace.getTracer('app')
    await region.getOrCreate('user:2', async () => {
      await tracer.startActiveSpan('SELECT users', async (span) => {
        await new Promise((r) => setTimeout(r, 1))
        span.end()
      })
      return { id: 2 }
    })
    const [outer] = named('corral.get_or_create')
    const [regenerate] = named('corral.regenerate')
    const [query] = named('SELECT users')
    expect(outer!.attributes['corral.result']).toBe('miss')
    expect(outer!.events.map((e) => [e.name, e.attributes])).toEqual([['cache.miss', { reason: 'absent' }]])
    expect(parentOf(regenerate!)).toBe(outer!.spanContext().spanId)
    expect(parentOf(query!)).toBe(regenerate!.spanContext().spanId)
    expect(regenerate!.attributes).toEqual({
      'corral.region': 'users',
      'corral.backend': 'memory',
      'corral.keys': ['user:2'],
    })
  })

  it('nests under the caller active span', async () => {
    const { region } = setup()
    const tracer = trace.getTracer('app')
    await tracer.startActiveSpan('GET /users/3', async (request) => {
      await region.getOrCreate('user:3', () => 3)
      request.end()
    })
    const [request] = named('GET /users/3')
    expect(parentOf(named('corral.get_or_create')[0]!)).toBe(request!.spanContext().spanId)
  })

  it('records a creator error with status ERROR and the exception, on both spans', async () => {
    const { region } = setup()
    await expect(
      region.getOrCreate('user:4', () => {
        throw new Error('connection refused')
      }),
    ).rejects.toThrow('connection refused')
    for (const span of [...named('corral.regenerate'), ...named('corral.get_or_create')]) {
      expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'connection refused' })
      expect(span.events.find((e) => e.name === 'exception')?.attributes?.['exception.message']).toBe(
        'connection refused',
      )
    }
    expect(named('corral.regenerate')).toHaveLength(1)
  })

  it('links coalesced callers to the regeneration they waited for, with their lock wait', async () => {
    const { region } = setup()
    const gate = deferred()
    const calls = [0, 1, 2].map(() =>
      region.getOrCreate('user:5', async () => {
        await gate.promise
        return 5
      }),
    )
    await new Promise((r) => setImmediate(r))
    gate.resolve()
    await Promise.all(calls)
    const [regenerate] = named('corral.regenerate')
    const outers = named('corral.get_or_create')
    expect(outers).toHaveLength(3)
    const waiters = outers.filter((s) => s.links.length > 0)
    expect(waiters).toHaveLength(2)
    for (const waiter of waiters) {
      expect(waiter.links[0]!.context.spanId).toBe(regenerate!.spanContext().spanId)
      expect(waiter.attributes['corral.result']).toBe('miss')
      expect(waiter.events.map((e) => e.name)).toEqual(['cache.lock_wait'])
      expect(waiter.events[0]!.attributes!['duration_s']).toBeGreaterThanOrEqual(0)
    }
  })

  it('marks stale results and soft / hard invalidations', async () => {
    const { region, advance } = setup()
    await region.getOrCreate('k', () => 1)
    advance(1)
    await region.invalidate({ hard: false })
    advance(1)
    exporter.reset()
    await region.getOrCreate('k', () => 2)
    expect(named('corral.get_or_create')[0]!.events.map((e) => e.name)).toEqual([
      'cache.miss',
      'cache.soft_invalidation',
    ])
    await region.invalidate({ hard: true })
    advance(1)
    exporter.reset()
    await region.getOrCreate('k', () => 3)
    const [span] = named('corral.get_or_create')
    expect(span!.events.map((e) => [e.name, e.attributes])).toEqual([
      ['cache.miss', { reason: 'invalidated' }],
      ['cache.hard_invalidation', {}],
    ])
  })

  it('leaves keys out of spans when recordKeys is false', async () => {
    const { region } = setup({ recordKeys: false })
    await region.getOrCreate('secret:token', () => 1)
    await region.getOrCreate('secret:token', () => 1)
    await region.get('secret:token')
    await region.getMulti(['secret:token', 'secret:other'])
    await region.set('secret:token', 2)
    await region.delete('secret:token')
    expect(spans().length).toBeGreaterThan(0)
    for (const span of spans()) {
      expect(JSON.stringify(span.attributes)).not.toContain('secret:token')
      expect(span.attributes['corral.region']).toBe('users')
    }
  })
})

describe('corral.get, corral.set, corral.delete and their multi-key forms', () => {
  it('records each call with the region, backend and key; a get says whether it found a value', async () => {
    const { region } = setup()
    const tracer = trace.getTracer('app')
    await tracer.startActiveSpan('request', async (request) => {
      await region.set('user:1', { id: 1 })
      expect(await region.get('user:1')).toEqual({ id: 1 })
      expect(await region.get('user:2')).toBe(NO_VALUE)
      await region.delete('user:1')
      request.end()
    })
    const [request] = named('request')
    const base = { 'corral.region': 'users', 'corral.backend': 'memory' }
    expect(
      spans()
        .filter((span) => span.name !== 'request')
        .map((span) => [span.name, span.kind, span.attributes, parentOf(span)]),
    ).toEqual([
      ['corral.set', SpanKind.INTERNAL, { ...base, 'corral.key': 'user:1' }, request!.spanContext().spanId],
      [
        'corral.get',
        SpanKind.INTERNAL,
        { ...base, 'corral.key': 'user:1', 'corral.result': 'hit' },
        request!.spanContext().spanId,
      ],
      [
        'corral.get',
        SpanKind.INTERNAL,
        { ...base, 'corral.key': 'user:2', 'corral.result': 'miss' },
        request!.spanContext().spanId,
      ],
      ['corral.delete', SpanKind.INTERNAL, { ...base, 'corral.key': 'user:1' }, request!.spanContext().spanId],
    ])
  })

  it('records the multi-key forms with their keys and counts', async () => {
    const { region } = setup()
    await region.setMulti({ a: 1, b: 2 })
    expect(await region.getMulti(['a', 'b', 'c'])).toEqual([1, 2, NO_VALUE])
    await region.deleteMulti(['a', 'b'])
    const base = { 'corral.region': 'users', 'corral.backend': 'memory' }
    expect(spans().map((span) => [span.name, span.attributes])).toEqual([
      ['corral.set_multi', { ...base, 'corral.keys': ['a', 'b'], 'corral.key_count': 2 }],
      ['corral.get_multi', { ...base, 'corral.keys': ['a', 'b', 'c'], 'corral.key_count': 3, 'corral.hit_count': 2 }],
      ['corral.delete_multi', { ...base, 'corral.keys': ['a', 'b'], 'corral.key_count': 2 }],
    ])
  })

  it('records a failed operation with status ERROR, and the caller still gets the error', async () => {
    const { region } = setup()
    await expect(region.set('k', 1, { tags: [''] })).rejects.toThrow()
    const [span] = named('corral.set')
    expect(span!.status.code).toBe(SpanStatusCode.ERROR)
    expect(span!.events.map((event) => event.name)).toEqual(['exception'])
  })

  it('records invalidations as corral.invalidate with their scope and kind', async () => {
    const { region } = setup()
    await region.invalidate({ hard: false })
    await region.invalidateTags(['user:1'])
    expect(named('corral.invalidate').map((span) => span.attributes)).toEqual([
      {
        'corral.region': 'users',
        'corral.backend': 'memory',
        'corral.invalidation.scope': 'region',
        'corral.invalidation.hard': false,
      },
      {
        'corral.region': 'users',
        'corral.backend': 'memory',
        'corral.invalidation.scope': 'tag',
        'corral.invalidation.hard': true,
        'corral.invalidation.targets': ['user:1'],
      },
    ])
  })
})

describe('exemplars', () => {
  interface Exemplar {
    labelSet: Record<string, string>
    value: number
  }
  async function exemplars(registry: RegionRegistry, metric: string): Promise<Exemplar[]> {
    const json = await registry.metrics.getMetricsAsJSON()
    const values = (json.find((m) => m.name === metric)?.values ?? []) as Array<{ exemplar?: Exemplar | null }>
    return values.flatMap((v) => (v.exemplar ? [v.exemplar] : []))
  }

  it('marks the regeneration and lock-wait buckets with the trace of a sampled span', async () => {
    const registry = new RegionRegistry()
    const region = createRegion({ name: 'users', registry }).configure('memory', { expirationTime: 10 })
    const slow = () => new Promise((resolve) => setTimeout(() => resolve('v'), 30))
    await Promise.all([region.getOrCreate('k', slow), region.getOrCreate('k', slow)])
    const regenerate = spans().find((s) => s.name === 'corral.regenerate')!
    const [regeneration] = await exemplars(registry, 'corral_regeneration_duration_seconds')
    expect(regeneration!.labelSet).toEqual({
      trace_id: regenerate.spanContext().traceId,
      span_id: regenerate.spanContext().spanId,
    })
    expect(regeneration!.value).toBeGreaterThanOrEqual(0.025)
    // the caller that waited points at the regeneration it waited for
    const [wait] = await exemplars(registry, 'corral_lock_wait_duration_seconds')
    expect(wait!.labelSet.trace_id).toBe(regenerate.spanContext().traceId)

    // the text format cannot carry exemplars: it leaves them out and stays valid
    const text = await registry.metrics.metrics()
    expect(text).not.toContain(' # {')
    expect((await promtoolCheckMetrics(text)).output).toBe('')
  })

  it('leaves spans that are not sampled out', async () => {
    const registry = new RegionRegistry()
    const region = createRegion({ name: 'users', registry }).configure('memory', { expirationTime: 10 })
    const unsampled = trace.wrapSpanContext({ traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 0 })
    await context.with(trace.setSpan(context.active(), unsampled), () => region.getOrCreate('k', () => 'v'))
    expect(await exemplars(registry, 'corral_regeneration_duration_seconds')).toEqual([])
  })
})
