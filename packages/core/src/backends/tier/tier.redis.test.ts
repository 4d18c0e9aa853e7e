/**
 * A redis region with an L1, on a real redis-server. Two regions of the same name in separate registries, each with
 * its own RedisBackend (its own connections), stand for two processes; the multi-process tests do it with real
 * processes (tier.multiprocess.test.ts).
 */
import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { startRedis } from '../../../../../test-support/servers.js'
import { redisSuite } from '../../../../../test-support/redis-suite.js'
import { NO_VALUE, type CachedValue } from '../../cached-value.js'
import { ValidationError } from '../../errors.js'
import type { CacheRegion } from '../../region.js'
import type { L1Options } from './configure.js'
import { RegionRegistry } from '../../registry.js'
import { describeBackendConformance, eventually } from '../../testing/conformance.js'
import { reportFigure } from '../../testing/measure.js'
import { percentile } from '../../testing/workers.js'
import { ProxyBackend } from '../proxy.js'
import { RedisBus } from '../redis/bus.js'
import { RedisBackend } from '../redis/index.js'
import { TieredBackend } from './tiered-backend.js'

const suite = redisSuite()

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

const open: CacheRegion[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((region) => region.close()))
})

interface TierOptions {
  l1?: boolean | L1Options
  clock?: () => number
  arguments?: Record<string, unknown>
  wrap?: ProxyBackend[]
  expirationTime?: number
}

/** A redis region with an L1 in a registry of its own: one "process". Marks are not polled during the test. */
function tiered(name: string, options: TierOptions = {}) {
  const registry = new RegionRegistry()
  const region = registry.createRegion({ name, ...(options.clock ? { clock: options.clock } : {}) })
  region.configure('redis', {
    expirationTime: options.expirationTime ?? 60,
    arguments: { url: suite.server.url, keyPrefix: 'tier:', invalidationPollInterval: '1h', ...options.arguments },
    l1: options.l1 ?? true,
    ...(options.wrap ? { wrap: options.wrap } : {}),
  })
  open.push(region)
  const tiers: Array<'l1' | 'l2'> = []
  region.on('hit', ({ tier }) => tiers.push(tier))
  return { region, registry, tier: region.backend as TieredBackend, tiers }
}

/** Resolves once the region's bus is subscribed (before that its L1 is bypassed). */
async function ready(...tiers: TieredBackend[]): Promise<void> {
  await eventually(() => tiers.every((tier) => tier.trusted), 3000)
}

/**
 * Resolves once `region` reads `value` for `k` and its L1 holds that copy (a read that raced with the message
 * announcing the change it saw is not copied: the next one is).
 */
async function held(region: CacheRegion, tier: TieredBackend, k: string, value: unknown): Promise<void> {
  await eventually(async () => (await region.get(k)) === value && tier.getSync(k)?.payload === value, 2000, 1)
}

const name = () => `tier-${randomUUID().slice(0, 8)}`
const key = (label: string) => `${label}:${randomUUID()}`

describe('configure(..., { l1 })', () => {
  it('validates l1 at configure time, naming what is valid, and leaves a region that failed unconfigured', () => {
    const registry = new RegionRegistry()
    const region = registry.createRegion({ name: name() })
    const redis = (l1: unknown) => () =>
      region.configure('redis', { arguments: { url: suite.server.url }, l1: l1 as L1Options })
    expect(redis('yes')).toThrow(/l1 must be true, false or \{ maxEntries\?, maxAge\?, bus\? \}; got "yes"/)
    expect(redis({ maxEntries: 0 })).toThrow(/l1.maxEntries must be a positive integer/)
    expect(redis({ maxEntries: 1.5 })).toThrow(ValidationError)
    expect(redis({ ttl: 5 })).toThrow(/unknown option "ttl"; valid options are maxEntries, maxAge, bus/)
    expect(redis({ maxAge: 0 })).toThrow(/l1.maxAge must be a positive duration/)
    expect(redis({ maxAge: 'soon' })).toThrow(/l1.maxAge must be a non-negative number of seconds/)
    expect(redis({ bus: 'redis://elsewhere:6379' })).toThrow(/a redis region announces changes on its own connection/)
    expect(() => region.configure('memory', { l1: true })).toThrow(/the memory backend is in this process already/)
    expect(() => region.configure('null', { l1: true })).toThrow(/the null backend stores nothing/)
    expect(region.isConfigured).toBe(false)
    // false and undefined: no tier
    region.configure('redis', { arguments: { url: suite.server.url }, l1: false })
    open.push(region)
    expect(region.backend).toBeInstanceOf(RedisBackend)
  })

  it('puts the tier in front of the proxies of wrap, keeps the backend name, and closes what it opened', async () => {
    class Counting extends ProxyBackend {
      reads = 0
      override get(storeKey: string) {
        this.reads++
        return super.get(storeKey)
      }
    }
    const counting = new Counting()
    const { region, tier } = tiered(name(), { wrap: [counting], l1: { maxEntries: 5 } })
    expect(tier).toBeInstanceOf(TieredBackend)
    // the L2 is the chain of wrap behind the region's circuit breaker (a proxy of its own)
    expect((tier.l2 as ProxyBackend).proxied).toBe(counting)
    expect(tier.maxEntries).toBe(5)
    expect(region.describe().backend).toBe('redis')
    await ready(tier)
    await region.set('k', 'v')
    expect(await region.get('k')).toBe('v')
    expect(counting.reads).toBe(0) // an L1 hit never reaches the proxies
    await region.close()
    const redis = counting.proxied as RedisBackend
    await eventually(() => redis.client.status === 'end')
  })
})

describe('a redis region with an L1', () => {
  it('answers repeated reads from the L1: zero Redis commands, hits reported as tier l1', async () => {
    const { region, tier, tiers } = tiered(name())
    const plain = tiered(name(), { l1: false })
    await ready(tier)
    const [a, b] = [key('a'), key('b')]
    expect(await region.getOrCreate(a, () => ({ made: 'a' }))).toEqual({ made: 'a' })
    await region.set(b, 'B')
    const commands = await suite.commandsDuring(async () => {
      for (let i = 0; i < 1000; i++) await region.getOrCreate(a, () => ({ made: 'again' }))
      for (let i = 0; i < 1000; i++) await region.get(b)
      for (let i = 0; i < 100; i++) await region.getMulti([a, b])
      await region.getOrCreateMulti([a, b], () => ['never', 'never'])
    })
    expect(commands).toEqual({})
    expect(tiers.length).toBe(2202)
    expect(tiers.every((t) => t === 'l1')).toBe(true)
    const stats = region.statsSnapshot()
    expect(stats.l1Hits).toBe(2202)
    expect(stats.l1HitRatio).toBe(2202 / 2203) // the first getOrCreate was a miss
    expect(await region.getOrCreateResult(a, () => ({ made: 'again' }))).toMatchObject({ result: 'hit', tier: 'l1' })

    // The same reads on a region without an L1: one GET each, tier l2.
    await plain.region.set(a, 'x')
    await plain.region.get(a) // its invalidation marks are loaded
    const without = await suite.commandsDuring(async () => {
      for (let i = 0; i < 100; i++) await plain.region.get(a)
    })
    expect(without).toEqual({ get: 100 })
    expect(await plain.region.getOrCreateResult(a, () => 'never')).toMatchObject({ result: 'hit', tier: 'l2' })
    plain.tiers.pop()
    expect(plain.tiers.length).toBe(101)
    expect(plain.tiers.every((t) => t === 'l2')).toBe(true)
    expect(plain.region.statsSnapshot().l1HitRatio).toBe(0)
  })

  it('judges an L1 copy as a backend value: expiry, per-call expiration, stale served while one regenerates', async () => {
    let now = Date.now()
    const { region, tier, tiers } = tiered(name(), { clock: () => now, expirationTime: 10 })
    await ready(tier)
    const k = key('expiry')
    await region.set(k, 'v1')
    expect(await region.get(k)).toBe('v1')
    now += 11_000
    expect(await region.get(k)).toBe(NO_VALUE) // expired, although the L1 still holds the copy
    expect(await region.get(k, { ignoreExpiration: true })).toBe('v1')
    expect(await region.get(k, { expirationTime: 60 })).toBe('v1') // per-call expiration
    expect(tiers).toEqual(['l1', 'l1'])
    // An expired L1 copy is a stale value: served at once while one caller regenerates.
    let release!: () => void
    const gate = new Promise<void>((resolve) => (release = resolve))
    let runs = 0
    const regenerating = region.getOrCreate(k, async () => {
      runs++
      await gate
      return 'v2'
    })
    await sleep(20)
    expect(await region.getOrCreate(k, () => 'never')).toBe('v1')
    release()
    expect(await regenerating).toBe('v2')
    expect(runs).toBe(1)
    expect(await region.get(k)).toBe('v2')
  })

  it('keeps the whole envelope in the L1: creation time, tags, expiry jitter, fail-safe trust', async () => {
    const regionName = name()
    const writer = new RegionRegistry().createRegion({ name: regionName })
    writer.configure('redis', {
      expirationTime: 10,
      expirationJitter: '5s',
      arguments: { url: suite.server.url, keyPrefix: 'tier:' },
    })
    open.push(writer)
    const reader = tiered(regionName, { expirationTime: 10 })
    await ready(reader.tier)
    const k = key('envelope')
    await writer.set(k, { deep: [1, 2] }, { tags: ['a', 'b'] })
    expect(await reader.region.get(k)).toEqual({ deep: [1, 2] })
    const copy = reader.tier.getSync(k)!
    const stored = (await (writer.backend as RedisBackend).get(k)) as CachedValue
    expect(copy.ct).toBe(stored.ct)
    expect(copy.ext).toEqual(stored.ext)
    expect(copy.tags).toEqual(['a', 'b'])
    expect(copy.ext?.jitterMs).toBeGreaterThanOrEqual(0)
    expect(copy.ext?.jitterMs).toBeLessThanOrEqual(5000)
  })

  it('applies the marks of another process to L1 hits: tags (hard), the region (soft, then hard)', async () => {
    const regionName = name()
    const [region, other] = [tiered(regionName), tiered(regionName)]
    await ready(region.tier, other.tier)
    const k = key('marks')
    await region.region.set(k, 'v1', { tags: ['t'] })
    expect(await region.region.get(k)).toBe('v1')
    await sleep(2)
    await other.region.invalidateTags(['t'])
    await eventually(async () => (await region.region.get(k)) === NO_VALUE, 2000, 1)
    await region.region.set(k, 'v2')
    expect(await region.region.get(k)).toBe('v2')
    await sleep(2)
    await other.region.invalidate({ hard: false })
    await eventually(async () => (await region.region.get(k)) === NO_VALUE, 2000, 1)
    expect(await region.region.get(k, { ignoreExpiration: true })).toBe('v2')
    await sleep(2)
    await other.region.invalidate({ hard: true })
    await eventually(async () => (await region.region.get(k, { ignoreExpiration: true })) === NO_VALUE, 2000, 1)
    // every read above was answered by the L1 copy, judged by the marks that arrived
    expect(region.tiers.every((t) => t === 'l1')).toBe(true)
  })

  it('checks a copy that is not fresh against Redis, which may hold a newer value', async () => {
    const regionName = name()
    const reader = tiered(regionName)
    const quiet = tiered(regionName, { l1: false }) // a process that announces nothing
    await ready(reader.tier)
    const [k1, k2, k3] = [key('recheck-1'), key('recheck-2'), key('recheck-3')]
    await reader.region.setMulti({ [k1]: 'v1', [k2]: 'v1', [k3]: 'v1' })
    await sleep(2)
    await quiet.region.invalidate({ hard: true })
    await eventually(() => reader.region.invalidationState().hardAt > 0, 2000, 1)
    await quiet.region.setMulti({ [k1]: 'v2', [k2]: 'v2', [k3]: 'v2' })
    // The reader's copies are invalidated: get, getMulti and getValueMetadata ask Redis instead of answering "absent".
    expect([k1, k2, k3].map((k) => reader.tier.getSync(k)?.payload)).toEqual(['v1', 'v1', 'v1'])
    expect(await reader.region.getMulti([k1])).toEqual(['v2'])
    expect((await reader.region.getValueMetadata(k2))?.value).toBe('v2')
    expect(await reader.region.get(k3)).toBe('v2')
    expect([k1, k2, k3].map((k) => reader.tier.getSync(k)?.payload)).toEqual(['v2', 'v2', 'v2'])
  })

  it('a change in one process removes the other processes’ copies: set, setMulti, delete, deleteMulti, regeneration, dependency', async () => {
    const regionName = name()
    const [one, two] = [tiered(regionName), tiered(regionName)]
    await ready(one.tier, two.tier)
    const keys = Array.from({ length: 6 }, (_, i) => key(`k${i}`))
    await one.region.setMulti(Object.fromEntries(keys.map((k) => [k, 'v1'])))
    // Both processes hold copies.
    for (const region of [one.region, two.region]) {
      expect(await region.getMulti(keys)).toEqual(keys.map(() => 'v1'))
      expect(await region.getMulti(keys)).toEqual(keys.map(() => 'v1'))
    }
    expect(two.tier.l1Size).toBeGreaterThanOrEqual(6)
    const seenBy = async (region: CacheRegion, k: string, expected: unknown) =>
      eventually(async () => (await region.get(k)) === expected, 2000, 1)

    await one.region.set(keys[0]!, 'v2')
    await seenBy(two.region, keys[0]!, 'v2')
    await one.region.setMulti({ [keys[1]!]: 'v2', [keys[2]!]: 'v2' })
    await seenBy(two.region, keys[1]!, 'v2')
    await seenBy(two.region, keys[2]!, 'v2')
    await two.region.delete(keys[3]!)
    await seenBy(one.region, keys[3]!, NO_VALUE)
    await two.region.deleteMulti([keys[4]!])
    await seenBy(one.region, keys[4]!, NO_VALUE)
    // A regeneration (stored through the lock's release) replaces the copies too.
    await one.region.invalidate({ hard: true })
    expect(await one.region.getOrCreate(keys[5]!, () => 'regenerated')).toBe('regenerated')
    await seenBy(two.region, keys[5]!, 'regenerated')
    // A dependency invalidated by one process removes what the other holds.
    const dependent = key('dependent')
    await one.region.set(dependent, 'dep')
    await one.region.dependency('group').add(dependent)
    expect(await two.region.get(dependent)).toBe('dep')
    expect(await two.region.get(dependent)).toBe('dep')
    expect(await one.region.dependency('group').invalidate()).toBe(1)
    await seenBy(two.region, dependent, NO_VALUE)

    // Each process's own copy is replaced by its own write at once, and its own messages are not applied: the
    // copies it just wrote are still hits from the L1.
    one.tiers.length = 0
    await one.region.set(keys[0]!, 'v3')
    expect(await one.region.get(keys[0]!)).toBe('v3')
    expect(one.tiers).toEqual(['l1'])
    const evictions = (region: CacheRegion) => region.stats.counts.l1EvictionsBus
    expect(evictions(two.region)).toBeGreaterThan(0)
    const before = evictions(one.region)
    await one.region.setMulti({ [keys[1]!]: 'v3', [keys[2]!]: 'v3' })
    await seenBy(two.region, keys[2]!, 'v3')
    expect(evictions(one.region)).toBe(before)
  })

  it('propagates a change to another process within milliseconds', async () => {
    const regionName = name()
    const [writer, reader] = [tiered(regionName), tiered(regionName)]
    await ready(writer.tier, reader.tier)
    const k = key('propagation')
    const delays: number[] = []
    for (let i = 0; i < 100; i++) {
      await writer.region.set(k, i)
      await held(reader.region, reader.tier, k, i)
      const started = performance.now()
      const done = writer.region.set(k, i + 0.5)
      while ((await reader.region.get(k)) !== i + 0.5) await turn()
      delays.push(performance.now() - started)
      await done
    }
    reportFigure('redis + l1: a set in one region seen by another (same process, separate connections) (ms)', {
      p50: percentile(delays, 50),
      p99: percentile(delays, 99),
    })
    expect(percentile(delays, 50)).toBeLessThan(50)
  })

  it('announces a burst of writes in a few messages', async () => {
    const regionName = name()
    const [writer, reader] = [tiered(regionName), tiered(regionName)]
    await ready(writer.tier, reader.tier)
    const keys = Array.from({ length: 400 }, (_, i) => key(`burst-${i}`))
    await writer.region.setMulti(Object.fromEntries(keys.map((k) => [k, 'old'])))
    for (const k of keys) await reader.region.get(k)
    const commands = await suite.commandsDuring(async () => {
      await Promise.all(keys.map((k) => writer.region.set(k, 'new')))
    })
    expect(commands.set).toBe(400)
    expect(commands.publish).toBeGreaterThanOrEqual(1)
    expect(commands.publish).toBeLessThanOrEqual(10)
    await eventually(async () => (await reader.region.getMulti(keys)).every((v) => v === 'new'), 2000, 1)
  })

  it('does not copy a read that answers after another process changed its key (the fence)', async () => {
    class GatedReads extends ProxyBackend {
      gate: Promise<void> | undefined
      override async get(storeKey: string) {
        const value = await super.get(storeKey)
        await this.gate
        return value
      }
    }
    const gated = new GatedReads()
    const regionName = name()
    const writer = tiered(regionName)
    const reader = tiered(regionName, { wrap: [gated] })
    await ready(writer.tier, reader.tier)
    const [k, witness] = [key('fenced'), key('witness')]
    await writer.region.setMulti({ [k]: 'old', [witness]: 'w' })
    await held(reader.region, reader.tier, witness, 'w')
    let open!: () => void
    gated.gate = new Promise((resolve) => (open = resolve))
    // The reader's GET answers 'old', but the answer is held back...
    const slowRead = reader.region.get(k)
    await sleep(10)
    // ...while the writer changes the key (and the witness, in the same message) and the reader hears of it.
    await writer.region.setMulti({ [k]: 'new', [witness]: 'w2' })
    await eventually(() => reader.tier.getSync(witness) === undefined, 2000, 1)
    open()
    expect(await slowRead).toBe('old') // the caller that asked before the change gets what it read...
    expect(reader.tier.getSync(k)).toBeUndefined() // ...but it is not kept
    gated.gate = undefined
    expect(await reader.region.get(k)).toBe('new')
  })

  it('after the subscriber connection is killed, no process serves an old copy as fresh; the L1 comes back empty', async () => {
    const regionName = name()
    const [writer, reader] = [tiered(regionName), tiered(regionName)]
    await ready(writer.tier, reader.tier)
    const k = key('killed')
    for (let trial = 0; trial < 10; trial++) {
      await writer.region.set(k, `v${trial}`)
      await held(reader.region, reader.tier, k, `v${trial}`)
      reader.tiers.length = 0
      expect(await reader.region.get(k)).toBe(`v${trial}`)
      expect(reader.tiers).toEqual(['l1'])

      await suite.raw.client('KILL', 'TYPE', 'pubsub')
      // The writer's message is published while nobody listens: lost.
      await writer.region.set(k, `v${trial + 1}`)
      expect(await reader.region.get(k)).toBe(`v${trial + 1}`)
      expect(await writer.region.get(k)).toBe(`v${trial + 1}`)
      await ready(writer.tier, reader.tier)
    }
    expect(reader.region.stats.counts.l1EvictionsDisconnect).toBeGreaterThan(0)
    // Once resubscribed, the L1 fills and answers again.
    await reader.region.get(k)
    reader.tiers.length = 0
    await reader.region.get(k)
    expect(reader.tiers).toEqual(['l1'])
  })

  it('bypasses the L1 while the server is away, and clears it: reads after it comes back see its data', async () => {
    const own = await startRedis()
    try {
      const regionName = name()
      const region = tiered(regionName, { arguments: { url: own.url, commandTimeout: 0.3 } })
      await ready(region.tier)
      await region.region.set('k', 'before')
      expect(await region.region.get('k')).toBe('before')
      expect(region.tier.l1Size).toBe(1)
      await own.restart() // the data is lost with the server
      await eventually(() => region.region.stats.counts.l1EvictionsDisconnect === 1, 3000, 1)
      expect(region.tier.l1Size).toBe(0)
      await ready(region.tier)
      expect(await region.region.get('k')).toBe(NO_VALUE)
    } finally {
      await own.stop()
    }
  })

  it('reports L1 hits, L1 size and evictions by cause in /metrics, without keys', async () => {
    const regionName = name()
    const [one, two] = [tiered(regionName, { l1: { maxEntries: 3 } }), tiered(regionName)]
    await ready(one.tier, two.tier)
    for (let i = 0; i < 5; i++) await one.region.set(`m${i}`, i) // two copies pushed out by the LRU bound
    expect(await one.region.get('m4')).toBe(4)
    await two.region.set('m4', 'changed')
    await eventually(() => one.tier.getSync('m4') === undefined, 2000, 1)
    const text = await one.registry.metrics.metrics()
    const line = (metric: string) => text.split('\n').find((l) => l.startsWith(metric))
    expect(line(`corral_l1_hits_total{region="${regionName}"}`)).toMatch(/ 1$/)
    expect(line(`corral_l1_entries{region="${regionName}"}`)).toMatch(/ 2$/)
    expect(line(`corral_l1_evictions_total{region="${regionName}",cause="size"}`)).toMatch(/ 2$/)
    expect(line(`corral_l1_evictions_total{region="${regionName}",cause="bus"}`)).toMatch(/ 1$/)
    expect(text).not.toContain('m4')
  })
})

// The backend conformance suite, with the tier on: two tiers on one server are two processes.
describeBackendConformance('redis + l1', {
  create: async (args) => {
    const redis = new RedisBackend({ url: suite.server.url, keyPrefix: 'conf-l1:', ...args })
    const backend = new TieredBackend(redis, {
      maxEntries: 1000,
      maxAgeMs: undefined,
      bus: new RedisBus(redis),
      ownsBus: true,
      ownsL2: true,
    })
    return { backend }
  },
  capabilities: { stores: true, distributedLock: true, bytes: true, sharedInvalidation: true, counters: true },
  writeRaw: async (storeKey, bytes) => {
    await suite.raw.set(`conf-l1:${storeKey}`, bytes)
  },
})
