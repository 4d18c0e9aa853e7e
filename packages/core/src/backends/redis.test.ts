import { execFile } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../../../../test-support/servers.js'
import { NO_VALUE } from '../cached-value.js'
import { LockTimeoutError, ValidationError } from '../errors.js'
import { RegionRegistry } from '../registry.js'
import { loadOptionalPeer } from './distributed.js'
import { RedisBackend } from './redis.js'
import { describeBackendConformance, eventually } from './test-support/conformance.js'
import { measureWaiterLatency } from './test-support/measure.js'
import { describeMultiProcess, reportFigure } from './test-support/multiprocess.js'

let server: RedisServer
let raw: Redis

beforeAll(async () => {
  server = await startRedis()
  raw = new Redis(server.url)
})

afterAll(async () => {
  raw?.disconnect()
  await server?.stop()
})

describeBackendConformance('redis', {
  create: async (args) => ({ backend: new RedisBackend({ url: server.url, keyPrefix: 'conf:', ...args }) }),
  capabilities: { stores: true, distributedLock: true, bytes: true, sharedInvalidation: true },
  writeRaw: async (key, bytes) => {
    await raw.set(`conf:${key}`, bytes)
  },
})

describeMultiProcess('redis', {
  backend: 'redis',
  arguments: () => ({ url: server.url, keyPrefix: 'mp:' }),
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
    expect(() => new RedisBackend({ url: server.url, host: '127.0.0.1' })).toThrow(/either "url" or "host"/)
    expect(() => new RedisBackend({ cluster: 'nonsense' })).toThrow(/host, port/)
    expect(() => new RedisBackend({ cluster: [{ host: 'h', port: 1 }], db: 1 })).toThrow(/"db"/)
    expect(() => new RedisBackend({ tls: 'yes' as never })).toThrow(/tls/)
    expect(() => new RedisBackend({ client: {} as never })).toThrow(/ioredis Redis or Cluster/)
    expect(() => new RedisBackend({ client: raw, url: server.url })).toThrow(/do not combine/)
  })

  it('names the package to install when a client library is missing', () => {
    expect(() => loadOptionalPeer('redis', 'corral-no-such-package')).toThrow(/npm install corral-no-such-package/)
  })

  it('importing @corral/core does not load ioredis or memjs', async () => {
    const run = promisify(execFile)
    const script = `
      import { createRequire } from 'node:module'
      const core = await import('@corral/core')
      const loaded = Object.keys(createRequire(import.meta.url).cache)
      console.log(JSON.stringify({ backends: core.registeredBackends(), ioredis: loaded.some((f) => f.includes('/ioredis/')), memjs: loaded.some((f) => f.includes('/memjs/')) }))
    `
    const { stdout } = await run(
      process.execPath,
      ['--conditions=@corral/source', '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: new URL('../../../..', import.meta.url).pathname },
    )
    expect(JSON.parse(stdout.trim())).toEqual({
      backends: expect.arrayContaining(['memory', 'null', 'redis', 'memcached']),
      ioredis: false,
      memjs: false,
    })
  })

  it('is configured by name, with keyPrefix, and derives the server TTL from the expiration time', async () => {
    const { region } = newRegion()
    region.configure('redis', { expirationTime: '10s', arguments: { url: server.url, keyPrefix: 'app1:' } })
    await region.set('user:1', { id: 1 })
    expect(await raw.exists('app1:user:1')).toBe(1)
    const ttl = await raw.pttl('app1:user:1')
    expect(ttl).toBeGreaterThan(79_000) // 2 × 10 s + 60 s
    expect(ttl).toBeLessThanOrEqual(80_000)
    expect((region.backend as RedisBackend).serverTtlMs).toBe(80_000)
    await region.close()

    const explicit = newRegion().region.configure('redis', {
      expirationTime: 10,
      arguments: { url: server.url, redisExpirationTime: '5m' },
    })
    await explicit.set('k-explicit', 1)
    expect(await raw.pttl('k-explicit')).toBeGreaterThan(299_000)
    await explicit.close()

    const never = newRegion().region.configure('redis', { arguments: { url: server.url } })
    await never.set('k-never', 1)
    expect(await raw.pttl('k-never')).toBe(-1)
    await never.close()

    const off = newRegion().region.configure('redis', {
      expirationTime: 10,
      arguments: { url: server.url, redisExpirationTime: -1 },
    })
    await off.set('k-off', 1)
    expect(await raw.pttl('k-off')).toBe(-1)
    await off.close()
  })

  it('uses a client it is given and never closes it', async () => {
    const client = new Redis(server.url)
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
      arguments: { url: server.url, keyPrefix: 'cmd:', invalidationPollInterval: '1h' },
    })
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`)
    await region.getOrCreate('warm', () => 0)

    const before = await commandStats()
    for (const key of keys) await region.getOrCreate(key, () => key)
    const afterMisses = await commandStats()
    for (const key of keys) expect(await region.getOrCreate(key, () => 'again')).toBe(key)
    const afterHits = await commandStats()

    const perMiss = diff(afterMisses, before, keys.length)
    const perHit = diff(afterHits, afterMisses, keys.length)
    reportFigure('redis commands per hit', perHit)
    reportFigure('redis commands per miss (commands inside the Lua scripts included)', perMiss)
    expect(perHit).toEqual({ get: 1 })
    expect(perMiss.get).toBeGreaterThanOrEqual(2)
    expect(perMiss.set).toBeGreaterThanOrEqual(1)
    await region.close()
  })

  it('a waiter sees the value soon after the creator finishes (release notification, no fixed sleep)', async () => {
    const name = `latency-${randomUUID().slice(0, 8)}`
    const a = new RegionRegistry().createRegion({ name }).configure('redis', {
      expirationTime: 60,
      arguments: { url: server.url, keyPrefix: 'lat:', lockPollInterval: '1s' },
    })
    const b = new RegionRegistry().createRegion({ name }).configure('redis', {
      expirationTime: 60,
      arguments: { url: server.url, keyPrefix: 'lat:', lockPollInterval: '1s' },
    })
    // With a 1 s fallback poll, only the release notification can make this fast.
    const result = await measureWaiterLatency(a, b, 100)
    reportFigure('redis waiter latency after the creator finished (ms, two connections)', {
      p50: result.p50,
      p99: result.p99,
      max: Math.max(...result.latencies),
    })
    expect(result.waiterRuns).toBe(0)
    expect(result.p99).toBeLessThan(100)
    await Promise.all([a.close(), b.close()])
  })

  describe('a waiter whose wait reaches lockTimeout', () => {
    const lockTimeout = 0.6
    const configure = () =>
      newRegion().region.configure('redis', {
        expirationTime: 60,
        arguments: { url: server.url, keyPrefix: 'lt:', lockTimeout },
      })

    it('gets LockTimeoutError when the lock is still held because someone re-took it', async () => {
      const region = configure()
      const key = `retaken-${randomUUID()}`
      const lockKey = `lt:corral:lock:${key}`
      // Someone keeps taking the lock again as soon as it runs out (it is never free for long).
      await raw.set(lockKey, 'other', 'PX', 300)
      const hog = setInterval(() => void raw.set(lockKey, 'other', 'PX', 300), 100)
      try {
        const started = performance.now()
        let runs = 0
        const error = await region.getOrCreate(key, () => ++runs).catch((e: unknown) => e)
        const waited = performance.now() - started
        expect(error).toBeInstanceOf(LockTimeoutError)
        expect((error as LockTimeoutError).code).toBe('E_LOCK_TIMEOUT')
        expect(runs).toBe(0)
        expect(waited).toBeGreaterThanOrEqual(lockTimeout * 1000 - 5)
        expect(waited).toBeLessThan(lockTimeout * 1000 + 400)
      } finally {
        clearInterval(hog)
        await region.close()
      }
    })

    it('takes over the expired lock of a holder that died and regenerates, even at the edge of lockTimeout', async () => {
      const region = configure()
      for (const ttl of [300, lockTimeout * 1000]) {
        const key = `dead-${ttl}-${randomUUID()}`
        // A holder that took the lock (for the full lockTimeout) just before we came, then died.
        await raw.set(`lt:corral:lock:${key}`, 'dead holder', 'PX', ttl)
        const started = performance.now()
        expect(await region.getOrCreate(key, () => 'regenerated')).toBe('regenerated')
        const waited = performance.now() - started
        expect(waited).toBeGreaterThanOrEqual(ttl - 20)
        expect(waited).toBeLessThan(ttl + 300)
      }
      await region.close()
    })
  })

  describe('outages', () => {
    let own: RedisServer

    beforeAll(async () => {
      own = await startRedis()
    })

    afterAll(async () => {
      await own?.stop()
    })

    it('answers from the creator while Redis is down, reports backendError, and recovers by itself', async () => {
      const unhandled: unknown[] = []
      const onUnhandled = (reason: unknown) => unhandled.push(reason)
      process.on('unhandledRejection', onUnhandled)
      const { region, backendErrors } = newRegion()
      region.configure('redis', { expirationTime: 60, arguments: { url: own.url, keyPrefix: 'out:' } })
      try {
        expect(await region.getOrCreate('a', () => 'A1')).toBe('A1')
        expect(await region.getOrCreate('a', () => 'A2')).toBe('A1')
        // A waiter blocked on someone else's lock when the server dies must not hang either.
        const lockHolder = new Redis(own.url)
        await lockHolder.set('out:corral:lock:w', 'someone', 'PX', 30_000)
        lockHolder.disconnect()
        const waiting = region.getOrCreate('w', () => 'W')
        await sleep(50)

        await own.kill()
        const started = performance.now()
        expect(await waiting).toBe('W')
        for (let i = 0; i < 20; i++) expect(await region.getOrCreate(`b${i}`, () => `B${i}`)).toBe(`B${i}`)
        const elapsed = performance.now() - started
        expect(elapsed).toBeLessThan(1500) // at most one command timeout, then every call fails at once
        const single = performance.now()
        expect(await region.getOrCreate('c', () => 'C')).toBe('C')
        expect(performance.now() - single).toBeLessThan(50)
        expect(await region.get('a')).toBe(NO_VALUE)
        expect(backendErrors.length).toBeGreaterThan(0)
        expect(new Set(backendErrors.map((e) => e.operation))).toContain('get')
        await expect(region.invalidate()).rejects.toMatchObject({ code: 'E_BACKEND' })

        await own.restart()
        await eventually(
          async () => {
            await region.getOrCreate('after', () => 'stored')
            return (await region.get('after')) === 'stored'
          },
          5000,
          50,
        )
        expect(await region.getOrCreate('after', () => 'again')).toBe('stored')
        // The invalidation made during the outage was kept locally and written back once Redis returned.
        const check = new Redis(own.url)
        try {
          const field = () => check.hget(`out:corral:invalidation:${region.name}`, 'hard').catch(() => null)
          await eventually(async () => Number(await field()) > 0, 3000, 50)
          expect(Number(await field())).toBe(region.invalidationState().hardAt)
        } finally {
          check.disconnect()
        }
        expect(unhandled).toEqual([])
      } finally {
        process.off('unhandledRejection', onUnhandled)
        await region.close()
      }
    })

    it('answers while Redis is down at startup, then connects when it comes up', async () => {
      await own.kill()
      const { region, backendErrors } = newRegion()
      region.configure('redis', { expirationTime: 60, arguments: { url: own.url, keyPrefix: 'start:' } })
      try {
        const started = performance.now()
        expect(await region.getOrCreate('x', () => 'X1')).toBe('X1')
        expect(await region.getOrCreate('x', () => 'X2')).toBe('X2')
        expect(performance.now() - started).toBeLessThan(1500)
        expect(backendErrors.length).toBeGreaterThan(0)
        await own.restart()
        await eventually(
          async () => {
            await region.getOrCreate('x', () => 'X3')
            return (await region.get('x')) === 'X3'
          },
          5000,
          50,
        )
      } finally {
        await region.close()
      }
    })
  })
})

async function commandStats(): Promise<Record<string, number>> {
  const text = await raw.info('commandstats')
  const out: Record<string, number> = {}
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[match[1]!] = Number(match[2])
  return out
}

/** Commands per operation between two INFO commandstats snapshots (the INFO calls themselves left out). */
function diff(after: Record<string, number>, before: Record<string, number>, operations: number) {
  const out: Record<string, number> = {}
  for (const [name, calls] of Object.entries(after)) {
    if (name === 'info') continue
    const delta = calls - (before[name] ?? 0)
    if (delta > 0) out[name] = delta / operations
  }
  return out
}
