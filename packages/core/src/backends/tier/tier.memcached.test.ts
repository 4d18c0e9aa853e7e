/**
 * A memcached region with an L1, on real memcached (and Redis, as its bus). memcached cannot tell other processes
 * about a change: the L1 needs `maxAge` (the bound on staleness) or a Redis bus.
 */
import { randomUUID } from 'node:crypto'
import net from 'node:net'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  startMemcached,
  startRedis,
  type MemcachedServer,
  type RedisServer,
} from '../../../../../test-support/servers.js'
import { NO_VALUE } from '../../cached-value.js'
import { ValidationError } from '../../errors.js'
import type { CacheRegion } from '../../region.js'
import { RegionRegistry } from '../../registry.js'
import { describeBackendConformance, eventually } from '../../testing/conformance.js'
import { describeMultiProcess } from '../../testing/multiprocess.js'
import { MemcachedBackend } from '../memcached/index.js'
import { RedisBus } from '../redis/bus.js'
import { RedisBackend } from '../redis/index.js'
import type { L1Options } from './configure.js'
import { TieredBackend } from './tiered-backend.js'

let memcached: MemcachedServer
let redis: RedisServer
let raw: Redis

beforeAll(async () => {
  ;[memcached, redis] = await Promise.all([startMemcached(), startRedis()])
  raw = new Redis(redis.url)
})

afterAll(async () => {
  raw?.disconnect()
  await Promise.all([memcached?.stop(), redis?.stop()])
})

/** memcached's count of get commands (`stats`: cmd_get), over its text protocol. */
function memcachedGets(): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(memcached.port, memcached.host)
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      text += chunk
      if (!text.includes('END\r\n')) return
      socket.end()
      resolve(Number(/STAT cmd_get (\d+)/.exec(text)?.[1]))
    })
    socket.on('error', reject)
    socket.write('stats\r\n')
  })
}

const open: CacheRegion[] = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((region) => region.close()))
})

function tiered(name: string, l1: L1Options, clock?: () => number) {
  const region = new RegionRegistry().createRegion({ name, ...(clock ? { clock } : {}) })
  region.configure('memcached', {
    expirationTime: 60,
    arguments: { servers: memcached.servers, keyPrefix: 'tier:', invalidationPollInterval: '1h' },
    l1,
  })
  open.push(region)
  const tiers: Array<'l1' | 'l2'> = []
  region.on('hit', ({ tier }) => tiers.push(tier))
  return { region, tier: region.backend as TieredBackend, tiers }
}

const name = () => `tier-mc-${randomUUID().slice(0, 8)}`

describe('a memcached region with an L1', () => {
  it('needs l1.maxAge or l1.bus, and says why', () => {
    const region = new RegionRegistry().createRegion({ name: name() })
    const attempt = (l1: boolean | L1Options) => () =>
      region.configure('memcached', { arguments: { servers: memcached.servers }, l1 })
    expect(attempt(true)).toThrow(ValidationError)
    expect(attempt(true)).toThrow(
      /the memcached backend cannot tell the other processes that a value changed.*Give l1.maxAge \(how long a copy is served without asking memcached: the bound on its staleness.*or l1.bus \(a Redis URL/s,
    )
    expect(attempt({ maxEntries: 10 })).toThrow(/l1.maxAge/)
    expect(attempt({ bus: 'memcached://x' })).toThrow(/l1.bus must be a Redis URL/)
    expect(region.isConfigured).toBe(false)
  })

  it('with maxAge: repeated reads send nothing to memcached; a change elsewhere is seen after maxAge at most', async () => {
    let now = Date.now()
    const clock = () => now
    const regionName = name()
    const reader = tiered(regionName, { maxAge: '5s' }, clock)
    const writer = tiered(regionName, { maxAge: '5s' })
    await writer.region.set('k', 'v1')
    expect(await reader.region.get('k')).toBe('v1')
    await writer.region.get('k') // both have loaded their invalidation marks: no get of theirs is pending
    const before = await memcachedGets()
    for (let i = 0; i < 500; i++) expect(await reader.region.get('k')).toBe('v1')
    expect(await memcachedGets()).toBe(before)
    expect(reader.tiers.slice(1).every((t) => t === 'l1')).toBe(true)

    // Another process changes it: the reader's copy may be served until it is maxAge old, never longer.
    await writer.region.set('k', 'v2')
    now += 4_000
    expect(await reader.region.get('k')).toBe('v1')
    now += 1_001
    expect(await reader.region.get('k')).toBe('v2')
    expect(reader.region.stats.counts.l1EvictionsAge).toBe(1)
    // Its own writes are seen at once.
    await reader.region.set('k', 'v3')
    expect(await reader.region.get('k')).toBe('v3')
    await reader.region.delete('k')
    expect(await reader.region.get('k')).toBe(NO_VALUE)
  })

  it('with a Redis bus: a change in one process removes the others’ copies; a killed bus connection bypasses them', async () => {
    const regionName = name()
    const [one, two] = [tiered(regionName, { bus: redis.url }), tiered(regionName, { bus: redis.url })]
    await eventually(() => one.tier.trusted && two.tier.trusted)
    const announced = two.tier.changesReceived
    await one.region.set('k', 'v1')
    // The set's message reaches `two` first: a late one would drop the copy the reads below are counted on.
    await eventually(() => two.tier.changesReceived > announced)
    const held = async (value: string) =>
      eventually(async () => (await two.region.get('k')) === value && two.tier.getSync('k')?.payload === value, 2000, 1)
    await held('v1')
    await one.region.get('k') // both have loaded their invalidation marks: no get of theirs is pending
    const before = await memcachedGets()
    for (let i = 0; i < 100; i++) await two.region.get('k')
    expect(await memcachedGets()).toBe(before)

    await one.region.set('k', 'v2')
    await held('v2')
    await one.region.delete('k')
    await eventually(async () => (await two.region.get('k')) === NO_VALUE, 2000, 1)

    await one.region.set('k', 'v3')
    await held('v3')
    await raw.client('KILL', 'TYPE', 'pubsub')
    await one.region.set('k', 'v4') // announced to nobody
    expect(await two.region.get('k')).toBe('v4')
    await eventually(() => two.tier.trusted, 3000)
    await held('v4')
  })
})

describeBackendConformance('memcached + l1 (redis bus)', {
  create: async (args) => {
    const memcachedBackend = new MemcachedBackend({
      servers: memcached.servers,
      keyPrefix: 'conf-l1:',
      invalidationPollInterval: 0.2,
      ...args,
    })
    const bus = new RedisBus(new RedisBackend({ url: redis.url }), true)
    return {
      backend: new TieredBackend(memcachedBackend, {
        maxEntries: 1000,
        maxAgeMs: undefined,
        bus,
        ownsBus: true,
        ownsL2: true,
      }),
    }
  },
  capabilities: { stores: true, distributedLock: true, bytes: true, sharedInvalidation: true, counters: true },
})

describeMultiProcess('memcached + l1 (redis bus)', {
  backend: 'memcached',
  arguments: () => ({ servers: memcached.servers, keyPrefix: 'mp-l1:' }),
  l1: () => ({ bus: redis.url }),
  invalidationBudgetMs: 1500,
})
