/**
 * CLIENT spans around backend round trips (`telemetry: { backendSpans: true }`), against real redis-server and
 * memcached, with the OpenTelemetry SDK and an in-memory exporter.
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
import { startMemcached, startRedis, type MemcachedServer, type RedisServer } from '../../../../test-support/servers.js'
import { RegionRegistry, createRegion, type CacheRegion } from '../index.js'

const exporter = new InMemorySpanExporter()
let redis: RedisServer
let memcached: MemcachedServer
const regions: CacheRegion[] = []

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }))
  ;[redis, memcached] = await Promise.all([startRedis(), startMemcached()])
})
afterAll(async () => {
  await Promise.all(regions.map((region) => region.close()))
  await Promise.all([redis?.stop(), memcached?.stop()])
  trace.disable()
  context.disable()
})
beforeEach(() => exporter.reset())

function region(backend: 'redis' | 'memcached' | 'memory', telemetry: { backendSpans?: boolean } = {}, url?: string) {
  const args =
    backend === 'redis'
      ? { url: url ?? `${redis.url}/3`, commandTimeout: 0.5 }
      : backend === 'memcached'
        ? { servers: memcached.servers }
        : {}
  const created = createRegion({ name: `users-${backend}`, registry: new RegionRegistry(), telemetry }).configure(
    backend,
    { expirationTime: 60, arguments: args },
  )
  regions.push(created)
  return created
}

const spans = () => exporter.getFinishedSpans()
const clientSpans = () => spans().filter((span) => span.kind === SpanKind.CLIENT)
const named = (name: string) => spans().filter((span) => span.name === name)
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId

describe('CLIENT spans for backend round trips', () => {
  it('Redis: a miss then a hit, each round trip a CLIENT span under its corral.get_or_create', async () => {
    const users = region('redis', { backendSpans: true })
    const server = { 'server.address': '127.0.0.1', 'server.port': redis.port }
    expect(await users.getOrCreate('user:1', () => ({ id: 1 }))).toEqual({ id: 1 })

    const [miss] = named('corral.get_or_create')
    expect(miss!.attributes['corral.result']).toBe('miss')
    const missRoundTrips = clientSpans()
    // the read that missed, then what the lock reads and writes outside its own commands (the lock's acquire and
    // release, which also stores the new value, are the backend's commands and are not spanned here)
    const operations = missRoundTrips.map((span) => span.attributes['db.operation.name'])
    expect(operations[0]).toBe('get')
    expect(operations.every((operation) => operation === 'get' || operation === 'set')).toBe(true)
    for (const span of missRoundTrips) {
      expect(span.name).toBe(`${span.attributes['db.operation.name']} 127.0.0.1:${redis.port}`)
      expect(span.attributes).toEqual({
        'db.system.name': 'redis',
        'db.operation.name': span.attributes['db.operation.name'],
        'db.namespace': '3',
        ...server,
        'corral.region': 'users-redis',
        'corral.store_key': 'user:1',
      })
      expect(span.status.code).toBe(SpanStatusCode.UNSET)
    }
    // they nest under the call's span (or its regeneration's)
    const [regenerate] = named('corral.regenerate')
    expect(parentOf(regenerate!)).toBe(miss!.spanContext().spanId)
    for (const span of missRoundTrips)
      expect([miss!.spanContext().spanId, regenerate!.spanContext().spanId]).toContain(parentOf(span))

    exporter.reset()
    expect(await users.getOrCreate('user:1', () => ({ id: 0 }))).toEqual({ id: 1 })
    const [hit] = named('corral.get_or_create')
    expect(hit!.attributes['corral.result']).toBe('hit')
    const [read] = clientSpans()
    expect(clientSpans()).toHaveLength(1)
    expect(read!.attributes['db.operation.name']).toBe('get')
    expect(parentOf(read!)).toBe(hit!.spanContext().spanId)
  })

  it('Redis: get, getMulti, set, delete and invalidate nest their round trips under their own span', async () => {
    const users = region('redis', { backendSpans: true })
    await users.setMulti({ a: 1, b: 2 })
    await users.getMulti(['a', 'b'])
    await users.get('a')
    await users.delete('a')
    await users.invalidate()
    const pairs = clientSpans().map((span) => {
      const parent = spans().find((candidate) => candidate.spanContext().spanId === parentOf(span))
      return [parent?.name, span.attributes['db.operation.name'], span.attributes['db.operation.batch.size']]
    })
    expect(pairs).toEqual([
      ['corral.set_multi', 'setMulti', 2],
      ['corral.get_multi', 'getMulti', 2],
      ['corral.get', 'get', undefined],
      ['corral.delete', 'delete', undefined],
      ['corral.invalidate', 'invalidate', undefined],
    ])
  })

  it('memcached: the same conventions, with the one server it talks to', async () => {
    const users = region('memcached', { backendSpans: true })
    await users.getOrCreate('user:2', () => 2)
    await users.get('user:2')
    expect(clientSpans().length).toBeGreaterThanOrEqual(2)
    for (const span of clientSpans()) {
      expect(span.attributes['db.system.name']).toBe('memcached')
      expect(span.attributes['server.address']).toBe('127.0.0.1')
      expect(span.attributes['server.port']).toBe(memcached.port)
    }
  })

  it('a failing round trip is a CLIENT span with status ERROR and error.type; the call still answers', async () => {
    const own = await startRedis()
    try {
      const users = region('redis', { backendSpans: true }, own.url)
      await users.set('warm', 1) // connected once, so the client fails fast when the server is gone
      await own.kill()
      exporter.reset()
      const failures: string[] = []
      users.on('backendError', ({ operation }) => failures.push(operation))
      expect(await users.getOrCreate('user:3', () => 'from the database')).toBe('from the database')
      const failed = clientSpans().filter((span) => span.status.code === SpanStatusCode.ERROR)
      expect(failed.length).toBeGreaterThan(0)
      for (const span of failed) {
        expect(typeof span.attributes['error.type']).toBe('string')
        expect(span.events.map((event) => event.name)).toContain('exception')
      }
      expect(failures).toContain('get')
      expect(named('corral.get_or_create')[0]!.status.code).toBe(SpanStatusCode.UNSET)
    } finally {
      await own.stop()
    }
  })

  it('are off by default, and in-process backends never get them', async () => {
    await region('redis').getOrCreate('user:4', () => 4)
    await region('memory', { backendSpans: true }).getOrCreate('user:4', () => 4)
    expect(named('corral.get_or_create')).toHaveLength(2)
    expect(clientSpans()).toEqual([])
  })
})
