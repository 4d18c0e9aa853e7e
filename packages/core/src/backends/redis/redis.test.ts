import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { redisSuite, startControlledRedis } from '../../../../../test-support/redis-suite.js'
import { CachedValue, NO_VALUE, jsonSerializer } from '../../cached-value.js'
import type { BackendContext } from '../api.js'
import { ValidationError } from '../../errors.js'
import { RegionRegistry } from '../../registry.js'
import { describeBackendConformance, eventually } from '../../testing/conformance.js'
import { reportFigure } from '../../testing/measure.js'
import { describeMultiProcess } from '../../testing/multiprocess.js'
import { loadOptionalPeer } from '../shared/distributed.js'
import { RedisBackend } from './index.js'

const suite = redisSuite()

describeBackendConformance('redis', {
  create: async (args) => ({ backend: new RedisBackend({ url: suite.server.url, keyPrefix: 'conf:', ...args }) }),
  capabilities: { stores: true, distributedLock: true, bytes: true, sharedInvalidation: true, counters: true },
  // With a 1 s fallback poll, only the release notification can make this fast.
  waiterLatency: {
    label: 'redis waiter latency after the creator finished (ms, two connections)',
    trials: 100,
    p99Ms: 100,
    args: { lockPollInterval: '1s' },
  },
  writeRaw: async (key, bytes) => {
    await suite.raw.set(`conf:${key}`, bytes)
  },
  writeForeignLock: async (key, ttlMs) => {
    const lockKey = `conf:corral:lock:${key}`
    await (ttlMs === undefined
      ? suite.raw.set(lockKey, 'held by hand')
      : suite.raw.set(lockKey, 'held by hand', 'PX', ttlMs))
  },
  faults: {
    startServer: () =>
      startControlledRedis('faults:', async (url, keyPrefix, args) => ({
        backend: new RedisBackend({ url, keyPrefix, ...args }),
      })),
    shortTimeouts: { commandTimeout: 0.2 },
  },
})

describeMultiProcess('redis', {
  backend: 'redis',
  arguments: () => ({ url: suite.server.url, keyPrefix: 'mp:' }),
  // pub/sub: a few ms; the budget leaves room for a loaded CI machine
  invalidationBudgetMs: 250,
})

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function newRegion(name = `redis-${randomUUID().slice(0, 8)}`) {
  const registry = new RegionRegistry()
  const region = registry.createRegion({ name })
  const backendErrors: Array<{ operation: string; error: unknown }> = []
  region.on('backendError', ({ operation, error }) => backendErrors.push({ operation, error }))
  return { region, backendErrors }
}

describe('redis backend', () => {
  it('validates its arguments at configure time', () => {
    const { region } = newRegion()
    expect(() => region.configure('redis', { arguments: { hots: 'x' } })).toThrow(/unknown argument "hots"/)
    expect(() => new RedisBackend({ port: 'abc' as unknown as number })).toThrow(ValidationError)
    expect(() => new RedisBackend({ lockTimeout: 'forever' as never })).toThrow(/lockTimeout/)
    expect(() => new RedisBackend({ lockTimeout: 0 })).toThrow(/greater than zero/)
    expect(() => new RedisBackend({ redisExpirationTime: 'soon' as never })).toThrow(/redisExpirationTime/)
    expect(() => new RedisBackend({ sentinels: [{ host: '127.0.0.1', port: 1 }] })).toThrow(/"name"/)
    expect(() => new RedisBackend({ url: suite.server.url, host: '127.0.0.1' })).toThrow(/either "url" or "host"/)
    expect(() => new RedisBackend({ cluster: 'nonsense' })).toThrow(/host, port/)
    expect(() => new RedisBackend({ cluster: [{ host: 'h', port: 1 }], db: 1 })).toThrow(/"db"/)
    expect(() => new RedisBackend({ tls: 'yes' as never })).toThrow(/tls/)
    expect(() => new RedisBackend({ client: {} as never })).toThrow(/ioredis Redis or Cluster/)
    expect(() => new RedisBackend({ client: suite.raw, url: suite.server.url })).toThrow(/do not combine/)
  })

  it('names the package to install when a client library is missing', () => {
    expect(() => loadOptionalPeer('redis', 'corral-no-such-package')).toThrow(/npm install corral-no-such-package/)
  })

  it('is configured by name, with keyPrefix, and derives the server TTL from the expiration time', async () => {
    const { region } = newRegion()
    region.configure('redis', { expirationTime: '10s', arguments: { url: suite.server.url, keyPrefix: 'app1:' } })
    await region.set('user:1', { id: 1 })
    expect(await suite.raw.exists('app1:user:1')).toBe(1)
    const ttl = await suite.raw.pttl('app1:user:1')
    expect(ttl).toBeGreaterThan(79_000) // 2 × 10 s + 60 s
    expect(ttl).toBeLessThanOrEqual(80_000)
    expect((region.backend as RedisBackend).serverTtlMs).toBe(80_000)
    await region.close()

    const explicit = newRegion().region.configure('redis', {
      expirationTime: 10,
      arguments: { url: suite.server.url, redisExpirationTime: '5m' },
    })
    await explicit.set('k-explicit', 1)
    expect(await suite.raw.pttl('k-explicit')).toBeGreaterThan(299_000)
    await explicit.close()

    const never = newRegion().region.configure('redis', { arguments: { url: suite.server.url } })
    await never.set('k-never', 1)
    expect(await suite.raw.pttl('k-never')).toBe(-1)
    await never.close()

    const off = newRegion().region.configure('redis', {
      expirationTime: 10,
      arguments: { url: suite.server.url, redisExpirationTime: -1 },
    })
    await off.set('k-off', 1)
    expect(await suite.raw.pttl('k-off')).toBe(-1)
    await off.close()
  })

  it('uses a client it is given and never closes it', async () => {
    const client = new Redis(suite.server.url)
    const { region } = newRegion()
    region.configure('redis', { expirationTime: 60, arguments: { client, keyPrefix: 'own:' } })
    expect(await region.getOrCreate('k', () => 'v')).toBe('v')
    expect(await client.exists('own:k')).toBe(1)
    const errorListeners = client.listenerCount('error')
    await region.close()
    expect(client.status).toBe('ready')
    expect(client.listenerCount('error')).toBe(errorListeners - 1)
    expect(await client.get('own:k')).toContain('"v"')
    client.disconnect()
  })

  it('a hit is one command; counts the commands of a miss', async () => {
    const { region } = newRegion()
    region.configure('redis', {
      expirationTime: 60,
      arguments: { url: suite.server.url, keyPrefix: 'cmd:', invalidationPollInterval: '1h' },
    })
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`)
    await region.getOrCreate('warm', () => 0)

    const misses = await suite.commandsDuring(async () => {
      for (const key of keys) await region.getOrCreate(key, () => key)
    })
    const hits = await suite.commandsDuring(async () => {
      for (const key of keys) expect(await region.getOrCreate(key, () => 'again')).toBe(key)
    })

    const perMiss = perOperation(misses, keys.length)
    const perHit = perOperation(hits, keys.length)
    reportFigure('redis commands per hit', perHit)
    reportFigure('redis commands per miss (commands inside the Lua scripts included)', perMiss)
    expect(perHit).toEqual({ get: 1 })
    // Sent: GET (the hit path's read), EVALSHA ACQUIRE (SET NX PX + GET of the value, for the re-check), EVALSHA
    // RELEASE (GET of the lock, GETRANGE of the stored header for the fence, SET, DEL). Nobody waited: no PUBLISH.
    expect(perMiss).toEqual({ get: 3, evalsha: 2, set: 2, getrange: 1, del: 1 })
    await region.close()
  })

  it("carries the holder's trace context to other processes: in the lock, and in the release message", async () => {
    const [one, two] = [
      new RedisBackend({ url: suite.server.url, keyPrefix: 'trace:' }),
      new RedisBackend({ url: suite.server.url, keyPrefix: 'trace:' }),
    ]
    for (const backend of [one, two]) backend.attach(attachContext())
    const holderSpan = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
    const creatorSpan = '00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01'
    try {
      const holder = one.getMutex('k')!
      expect((await holder.acquire({ wait: true, holder: { traceparent: holderSpan } })).acquired).toBe(true)
      // One attempt finds the holder's trace context in the lock.
      expect(await two.getMutex('k')!.acquire({ wait: false })).toEqual({
        acquired: false,
        holder: { traceparent: holderSpan },
      })
      // A waiter gets the value and the creator's trace context from the release message, with no read.
      const waiting = two.getMutex('k')!.acquire({ wait: true })
      await sleep(50)
      const made = CachedValue.create('made', Date.now())
      expect(await holder.release({ value: made, since: Date.now() - 100, holder: { traceparent: creatorSpan } })).toBe(
        true,
      )
      const waited = await waiting
      expect(waited.acquired).toBe(false)
      expect(waited.holder).toEqual({ traceparent: creatorSpan })
      expect(waited.produced?.payload).toBe('made')
      expect(waited.produced?.ct).toBe(made.ct)
      // Something that is not a traceparent is never stored in the lock.
      const odd = one.getMutex('odd')!
      expect((await odd.acquire({ wait: false, holder: { traceparent: 'not a traceparent\nat all' } })).acquired).toBe(
        true,
      )
      expect(await suite.raw.get('trace:corral:lock:odd')).toMatch(/^[\da-f]{32} -$/)
      await odd.release()
    } finally {
      await Promise.all([one.close(), two.close()])
    }
  })

  it('publishes a release only when someone waits, with the value up to 64 KB', async () => {
    const [one, two] = [
      new RedisBackend({ url: suite.server.url, keyPrefix: 'pub:' }),
      new RedisBackend({ url: suite.server.url, keyPrefix: 'pub:' }),
    ]
    for (const backend of [one, two]) backend.attach(attachContext())
    const listener = new Redis(suite.server.url)
    const messages: Array<{ channel: string; message: Buffer }> = []
    listener.on('pmessageBuffer', (_pattern: Buffer, channel: Buffer, message: Buffer) =>
      messages.push({ channel: channel.toString(), message }),
    )
    await listener.psubscribe('pub:corral:released:*')
    const round = async (key: string, payload: string, waiter: boolean) => {
      const holder = one.getMutex(key)!
      expect((await holder.acquire({ wait: false })).acquired).toBe(true)
      const waiting = waiter ? two.getMutex(key)!.acquire({ wait: true }) : undefined
      await sleep(50)
      await holder.release({ value: CachedValue.create(payload, Date.now()), since: Date.now() - 1 })
      return waiting
    }
    try {
      await round('alone', 'nobody waits', false)
      const small = await round('small', 'small value', true)
      expect(small?.produced?.payload).toBe('small value')
      const large = await round('large', 'x'.repeat(70 * 1024), true)
      // Too large to carry: the waiter is told, and reads it with the lock.
      expect(large?.acquired).toBe(true)
      expect((large?.current as CachedValue).payload).toBe('x'.repeat(70 * 1024))
      await two.getMutex('large')!.release()
      await eventually(() => messages.length >= 2)
      await sleep(50)
      expect(messages.map((m) => m.channel)).toEqual(['pub:corral:released:small', 'pub:corral:released:large'])
      const [smallMessage, largeMessage] = messages.map((m) => m.message)
      const newline = smallMessage!.indexOf(0x0a)
      expect(smallMessage!.subarray(0, newline).toString()).toBe('v -')
      expect(smallMessage!.subarray(newline + 1).toString()).toMatch(/^c2:[\d.]+:v\n"small value"$/)
      expect(largeMessage!.toString()).toBe('s -')
    } finally {
      listener.disconnect()
      await Promise.all([one.close(), two.close()])
    }
  })
})

describe('group invalidation on redis', () => {
  /** Two processes' view of one region: separate backends (connections, mirrors), same server and prefix. */
  const pair = (keyPrefix: string, args: Record<string, unknown> = {}, expirationTime: number | null = 60) => {
    const name = `group-${randomUUID().slice(0, 8)}`
    const make = () =>
      new RegionRegistry().createRegion({ name }).configure('redis', {
        ...(expirationTime === null ? {} : { expirationTime }),
        arguments: { url: suite.server.url, keyPrefix, invalidationPollInterval: '1h', ...args },
      })
    return { name, writer: make(), reader: make(), make }
  }

  it('a tagged hit is one GET once its tags are mirrored; unknown tags cost one batched MGET', async () => {
    const { writer, reader, make } = pair('tagcmd:')
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`)
    for (const [i, key] of keys.entries()) await writer.set(key, key, { tags: [`item:${i}`, 'catalog'] })
    await reader.get('warm-up') // connected, subscribed, region marks loaded

    const readAll = async () => {
      for (const key of keys) expect(await reader.getOrCreate(key, () => 'again')).toBe(key)
    }
    const cold = perOperation(await suite.commandsDuring(readAll), keys.length)
    const warm = perOperation(await suite.commandsDuring(readAll), keys.length)
    // A third process reads them all at once: one MGET for the values, one for their 101 tags.
    const third = make()
    await third.get('warm-up')
    const multi = await suite.commandsDuring(async () => {
      expect(await third.getMulti(keys)).toEqual(keys)
    })
    reportFigure('redis commands per tagged hit, tags not mirrored yet (2 tags, one shared)', cold)
    reportFigure('redis commands per tagged hit, tags mirrored', warm)
    reportFigure('redis commands for a getMulti of 100 tagged values, tags not mirrored', multi)
    expect(cold).toEqual({ get: 1, mget: 1 })
    expect(warm).toEqual({ get: 1 })
    expect(multi).toEqual({ mget: 2 })
    await Promise.all([writer.close(), reader.close(), third.close()])
  })

  it('concurrent reads that need the same unknown tags share one MGET', async () => {
    const { writer, reader } = pair('tagshare:')
    await writer.set('shared', 'v', { tags: ['a', 'b', 'c'] })
    await reader.get('warm-up')
    let values: unknown[] = []
    const commands = await suite.commandsDuring(async () => {
      values = await Promise.all(Array.from({ length: 20 }, () => reader.get('shared')))
    })
    expect(values).toEqual(Array(20).fill('v'))
    expect(commands).toEqual({ get: 20, mget: 1 })
    await Promise.all([writer.close(), reader.close()])
  })

  it('dependency bookkeeping and tag marks expire on the server, so they cannot grow without bound', async () => {
    const { name, writer } = pair('ttl:', {}, 10)
    // A dependency's counter and entries live its expirationTime after the last add.
    const dependency = writer.dependency('user:1', { expirationTime: 1 })
    await dependency.addMulti(['a', 'b'])
    for (const key of ['ttl:corral:dep:user:1', 'ttl:corral:dep:user:1:1', 'ttl:corral:dep:user:1:2']) {
      const ttl = await suite.raw.pttl(key)
      expect(ttl, key).toBeGreaterThan(800)
      expect(ttl, key).toBeLessThanOrEqual(1000)
    }
    // A tag mark lives as long as a value created before it can: the values' server TTL (2 × 10 s + 60 s), plus
    // a minute of grace.
    await writer.invalidateTags(['user:1'])
    const markTtl = await suite.raw.pttl(`ttl:corral:tag:{${name}}:user:1`)
    expect(markTtl).toBeGreaterThan(139_000)
    expect(markTtl).toBeLessThanOrEqual(140_001) // rounded up from a fractional time
    // The default dependency lifetime is the region's expiration time.
    await writer.dependency('user:2').add('x')
    expect(await suite.raw.pttl('ttl:corral:dep:user:2')).toBeGreaterThan(9_000)

    await sleep(1050)
    expect(await suite.raw.exists('ttl:corral:dep:user:1', 'ttl:corral:dep:user:1:1', 'ttl:corral:dep:user:1:2')).toBe(
      0,
    )
    expect(await dependency.keys()).toEqual([])
    await writer.close()

    // Values without a server TTL may live forever, and so do the marks that invalidate them.
    const forever = pair('ttl-never:', {}, null)
    await forever.writer.invalidateTags(['user:1'])
    expect(await suite.raw.pttl(`ttl-never:corral:tag:{${forever.name}}:user:1`)).toBe(-1)
    await Promise.all([forever.writer.close(), forever.reader.close()])
  })

  it('a notification missed while the subscriber was away is caught by the re-read after it reconnects', async () => {
    const { name, writer, reader } = pair('missed:')
    await writer.set('k', 'v', { tags: ['t'] })
    expect(await reader.get('k')).toBe('v')
    // A mark written while no one listened (as if published during a disconnection).
    const at = Date.now() + 1
    await sleep(2)
    await suite.raw.set(`missed:corral:tag:{${name}}:t`, `${at},0`)
    expect(await reader.get('k')).toBe('v') // the mirror still trusts what it read
    // Drop the reader's subscriber connection (and the writer's): they reconnect and re-read the marks.
    await suite.raw.client('KILL', 'TYPE', 'pubsub')
    await eventually(async () => (await reader.get('k')) === NO_VALUE, 3000, 10)
    await Promise.all([writer.close(), reader.close()])
  })

  it('the poll re-reads the tags in use, so a missed notification is caught within invalidationPollInterval', async () => {
    const { name, writer, reader } = pair('poll:', { invalidationPollInterval: 0.1 })
    await writer.set('k', 'v', { tags: ['t'] })
    expect(await reader.get('k')).toBe('v')
    await sleep(2)
    await suite.raw.set(`poll:corral:tag:{${name}}:t`, `${Date.now()},0`)
    const started = performance.now()
    await eventually(async () => (await reader.get('k')) === NO_VALUE, 2000, 5)
    expect(performance.now() - started).toBeLessThan(500)
    await Promise.all([writer.close(), reader.close()])
  })

  it('a mark Redis lost is written back by a process that still mirrors it', async () => {
    const { name, writer, reader } = pair('lost:', { invalidationPollInterval: 0.1 })
    await writer.set('k', 'v', { tags: ['t'] })
    expect(await reader.get('k')).toBe('v')
    await sleep(2)
    await writer.invalidateTags(['t'])
    await eventually(async () => (await reader.get('k')) === NO_VALUE)
    const key = `lost:corral:tag:{${name}}:t`
    const mark = await suite.raw.get(key)
    expect(mark).toMatch(/^[\d.]+,0$/)
    await suite.raw.del(key) // evicted
    // The reader keeps reading the value: it keeps treating it as invalidated, and restores the mark.
    await eventually(
      async () => {
        expect(await reader.get('k')).toBe(NO_VALUE)
        return (await suite.raw.get(key)) === mark
      },
      2000,
      10,
    )
    // A process that never saw the mark loads it again.
    const third = new RegionRegistry()
      .createRegion({ name })
      .configure('redis', { expirationTime: 60, arguments: { url: suite.server.url, keyPrefix: 'lost:' } })
    expect(await third.get('k')).toBe(NO_VALUE)
    await third.close()
    await Promise.all([writer.close(), reader.close()])
  })
})

function attachContext(): BackendContext {
  return { regionName: 'direct', expirationTime: 60, serializer: jsonSerializer, reportError: () => {} }
}

/** Commands per operation, from `suite.commandsDuring` of `operations` operations. */
function perOperation(commands: Record<string, number>, operations: number): Record<string, number> {
  return Object.fromEntries(Object.entries(commands).map(([name, calls]) => [name, calls / operations]))
}
