/**
 * The libraries under test, behind one interface, so that every case runs exactly the same code for every
 * library and differs only in the one call the library offers for "get this key or compute it".
 *
 * Each adapter is written the way that library's README tells users to write it (defaults unless a case needs
 * an option: capacity, TTL, stale-while-revalidate). Creators are closures per call where the library takes the
 * creator per call (Corral, bentocache, cache-manager, cachified), because that is how applications use them;
 * async-cache-dedupe and lru-cache bind the creator once, at definition.
 */
import { cachified } from '@epic-web/cachified'
import KeyvRedis, { Keyv } from '@keyv/redis'
import { backgroundRunner, createRegion, RegionRegistry, type CacheRegion } from '@corral/core'
import { createCache as createAsyncDedupeCache } from 'async-cache-dedupe'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisBusDriver, redisDriver } from 'bentocache/drivers/redis'
import { createCache as createCacheManager } from 'cache-manager'
import { LRUCache } from 'lru-cache'

/** A cache as a case sees it: one get-or-compute call, and a way to release what it opened. */
export interface CacheUnderTest {
  getOrCreate(key: string): Promise<unknown>
  close(): Promise<void>
  /**
   * Calls `listener` each time the library has written a created value to its store (only where the library
   * says so: Corral's `regenerate` event fires after the store). Used to time waiters against the store.
   */
  onStored?(listener: () => void): void
}

/** Produces the value for `key` on a miss. */
export type Creator = (key: string) => Promise<unknown>

export interface MemoryCacheOptions {
  creator: Creator
  /** How long a value is fresh. */
  ttlMs: number
  /**
   * Stale-while-revalidate window: how long past its TTL a value may still be served while one caller
   * refreshes it. Omitted: no stale serving (libraries that would otherwise enable it by default keep it off).
   */
  staleMs?: number
  /** Capacity, for the libraries that are bounded. */
  maxEntries: number
}

export interface MemoryAdapter {
  id: string
  label: string
  /** npm package, for the version table */
  packageName: string
  /** the call being measured */
  call: string
  /** Whether and how the library serves an expired value while one caller refreshes it. */
  staleWhileRevalidate: { supported: boolean; how: string }
  create(options: MemoryCacheOptions): CacheUnderTest | Promise<CacheUnderTest>
}

/** A fresh registry per region: regions of different adapters must not share metrics or hot-key state. */
function corralMemoryRegion(options: MemoryCacheOptions, extra: { telemetry?: false; background?: boolean }) {
  const region = createRegion({
    name: 'bench',
    registry: new RegionRegistry(),
    ...(extra.telemetry === false ? { telemetry: false as const } : {}),
    ...(extra.background ? { asyncCreationRunner: backgroundRunner } : {}),
  })
  return region.configure('memory', {
    expirationTime: options.ttlMs / 1000,
    arguments: { maxEntries: options.maxEntries },
  })
}

function corralCache(region: CacheRegion, creator: Creator): CacheUnderTest {
  return {
    getOrCreate: (key) => region.getOrCreate(key, () => creator(key)),
    close: () => region.close(),
    onStored: (listener) => void region.on('regenerate', listener),
  }
}

const CORRAL_SWR = 'the dogpile lock: stale value served to every caller but the one that regenerates'

export const corral: MemoryAdapter = {
  id: 'corral',
  label: 'corral (telemetry on)',
  packageName: '@corral/core',
  call: 'region.getOrCreate(key, creator)',
  staleWhileRevalidate: { supported: true, how: CORRAL_SWR },
  create: (options) => corralCache(corralMemoryRegion(options, {}), options.creator),
}

export const corralTelemetryOff: MemoryAdapter = {
  ...corral,
  id: 'corral-telemetry-off',
  label: 'corral (telemetry off)',
  create: (options) => corralCache(corralMemoryRegion(options, { telemetry: false }), options.creator),
}

/** With an async creation runner the caller that takes the lock also returns the stale value at once. */
export const corralBackgroundRunner: MemoryAdapter = {
  ...corral,
  id: 'corral-background-runner',
  label: 'corral + backgroundRunner',
  staleWhileRevalidate: {
    supported: true,
    how: 'asyncCreationRunner: the regenerating caller also gets the stale value; the creator runs in the background',
  },
  create: (options) => corralCache(corralMemoryRegion(options, { background: true }), options.creator),
}

/** The physical floor: a Map read inside an async function, with no expiry and no stampede protection. */
export const plainMap: MemoryAdapter = {
  id: 'map',
  label: 'Map (floor, no protection)',
  packageName: 'node',
  call: 'map.get(key) ?? create-and-set',
  staleWhileRevalidate: { supported: false, how: 'none (no expiry)' },
  create: ({ creator }) => {
    const map = new Map<string, unknown>()
    return {
      async getOrCreate(key) {
        const found = map.get(key)
        if (found !== undefined) return found
        const created = await creator(key)
        map.set(key, created)
        return created
      },
      close: async () => map.clear(),
    }
  },
}

export const lruCacheFetch: MemoryAdapter = {
  id: 'lru-cache',
  label: 'lru-cache fetch',
  packageName: 'lru-cache',
  call: 'lru.fetch(key) with fetchMethod',
  staleWhileRevalidate: {
    supported: true,
    how: 'allowStale: true + fetch: the stale value is returned while fetchMethod runs in the background',
  },
  create: ({ creator, ttlMs, staleMs, maxEntries }) => {
    const lru = new LRUCache<string, object>({
      max: maxEntries,
      ttl: ttlMs,
      allowStale: staleMs !== undefined,
      fetchMethod: (key) => creator(key) as Promise<object>,
    })
    return { getOrCreate: (key) => lru.fetch(key), close: async () => lru.clear() }
  },
}

export const bentocache: MemoryAdapter = {
  id: 'bentocache',
  label: 'bentocache getOrSet',
  packageName: 'bentocache',
  call: 'bento.getOrSet({ key, factory })',
  staleWhileRevalidate: {
    supported: true,
    how: 'grace period (timeout 0 by default): the graced value is returned, the factory refreshes in the background',
  },
  create: ({ creator, ttlMs, staleMs, maxEntries }) => {
    const bento = new BentoCache({
      default: 'memory',
      ttl: ttlMs,
      grace: staleMs ?? false,
      stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: maxEntries })) },
    })
    return {
      getOrCreate: (key) => bento.getOrSet({ key, factory: () => creator(key) }),
      close: () => bento.disconnectAll(),
    }
  },
}

export const cacheManager: MemoryAdapter = {
  id: 'cache-manager',
  label: 'cache-manager wrap',
  packageName: 'cache-manager',
  call: 'cache.wrap(key, fn)',
  staleWhileRevalidate: {
    supported: false,
    how: 'none: refreshThreshold refreshes in the background before expiry; nothing serves a value after it',
  },
  create: ({ creator, ttlMs }) => {
    const cache = createCacheManager({ ttl: ttlMs })
    return {
      getOrCreate: (key) => cache.wrap(key, () => creator(key)),
      close: async () => void (await cache.disconnect()),
    }
  },
}

export const asyncCacheDedupe: MemoryAdapter = {
  id: 'async-cache-dedupe',
  label: 'async-cache-dedupe',
  packageName: 'async-cache-dedupe',
  call: 'cache.define(name, fn); cache.name(key)',
  staleWhileRevalidate: {
    supported: true,
    how: 'stale option: the value is served for `stale` seconds past its ttl while it is refreshed',
  },
  create: ({ creator, ttlMs, staleMs, maxEntries }) => {
    const cache = createAsyncDedupeCache({
      // async-cache-dedupe counts in whole seconds
      ttl: Math.max(1, Math.round(ttlMs / 1000)),
      ...(staleMs !== undefined ? { stale: Math.max(1, Math.round(staleMs / 1000)) } : {}),
      storage: { type: 'memory', options: { size: maxEntries } },
    }).define('load', (key: string) => creator(key))
    return { getOrCreate: (key) => cache.load(key), close: async () => undefined }
  },
}

export const cachifiedAdapter: MemoryAdapter = {
  id: 'cachified',
  label: 'cachified (Map cache)',
  packageName: '@epic-web/cachified',
  call: 'cachified({ key, cache, getFreshValue })',
  staleWhileRevalidate: {
    supported: true,
    how: 'staleWhileRevalidate option: the stale value is returned, getFreshValue runs in the background',
  },
  create: ({ creator, ttlMs, staleMs }) => {
    const cache = new Map()
    return {
      getOrCreate: (key) =>
        cachified({ key, cache, ttl: ttlMs, staleWhileRevalidate: staleMs ?? 0, getFreshValue: () => creator(key) }),
      close: async () => cache.clear(),
    }
  },
}

/** Everything measured on the in-process hit path, floor first. */
export const MEMORY_ADAPTERS: readonly MemoryAdapter[] = [
  plainMap,
  lruCacheFetch,
  corral,
  corralTelemetryOff,
  asyncCacheDedupe,
  cacheManager,
  cachifiedAdapter,
  bentocache,
]

// ------------------------------------------------------------------------------------------ Redis (shared)

export interface RedisCacheOptions {
  creator: Creator
  ttlMs: number
  /** redis://host:port */
  url: string
  /** Prefix for every key the library writes, so runs and libraries never see each other's entries. */
  keyPrefix: string
}

export interface RedisAdapter {
  id: string
  label: string
  packageName: string
  /** How it is deployed in this benchmark. */
  deployment: string
  create(options: RedisCacheOptions): Promise<CacheUnderTest>
}

function hostPort(url: string) {
  const parsed = new URL(url)
  return { host: parsed.hostname, port: Number(parsed.port) }
}

/**
 * A Corral region on the redis backend, as an application configures it (telemetry and distributed lock on), with
 * an in-process L1 in front when `l1` is true.
 */
export function corralRedisRegion(
  { ttlMs, url, keyPrefix }: Omit<RedisCacheOptions, 'creator'>,
  l1 = false,
): CacheRegion {
  return createRegion({ name: 'bench', registry: new RegionRegistry() }).configure('redis', {
    expirationTime: ttlMs / 1000,
    arguments: { url, keyPrefix },
    ...(l1 ? { l1: { maxEntries: 10_000 } } : {}),
  })
}

export const corralRedis: RedisAdapter = {
  id: 'corral',
  label: 'corral (redis backend)',
  packageName: '@corral/core',
  deployment: "configure('redis'): distributed lock on (default)",
  create: async (options) => corralCache(corralRedisRegion(options), options.creator),
}

/** The same, with an L1: hits from this process's memory, changes announced on the backend's pub/sub. */
export const corralRedisL1: RedisAdapter = {
  id: 'corral-l1',
  label: 'corral (redis + l1)',
  packageName: '@corral/core',
  deployment: "configure('redis', { l1: { maxEntries: 10_000 } }): L1 memory + redis + its pub/sub",
  create: async (options) => corralCache(corralRedisRegion(options, true), options.creator),
}

function bentoRedis(id: string, label: string, withL1: boolean): RedisAdapter {
  return {
    id,
    label,
    packageName: 'bentocache',
    deployment: withL1 ? 'L1 memory + L2 redis + redis bus (the documented multi-instance setup)' : 'L2 redis only',
    create: async ({ creator, ttlMs, url, keyPrefix }) => {
      const connection = hostPort(url)
      const store = withL1
        ? bentostore()
            .useL1Layer(memoryDriver({ maxItems: 10_000 }))
            .useL2Layer(redisDriver({ connection, prefix: keyPrefix }))
            .useBus(redisBusDriver({ connection }))
        : bentostore().useL2Layer(redisDriver({ connection, prefix: keyPrefix }))
      const bento = new BentoCache({ default: 'redis', ttl: ttlMs, stores: { redis: store } })
      return {
        getOrCreate: (key) => bento.getOrSet({ key, factory: () => creator(key) }),
        close: () => bento.disconnectAll(),
      }
    },
  }
}

export const cacheManagerRedis: RedisAdapter = {
  id: 'cache-manager',
  label: 'cache-manager + @keyv/redis',
  packageName: 'cache-manager',
  deployment: 'createCache({ stores: [new Keyv({ store: new KeyvRedis(url) })] })',
  create: async ({ creator, ttlMs, url, keyPrefix }) => {
    const cache = createCacheManager({
      ttl: ttlMs,
      stores: [new Keyv({ store: new KeyvRedis(url), namespace: keyPrefix })],
    })
    return {
      getOrCreate: (key) => cache.wrap(key, () => creator(key)),
      close: async () => void (await cache.disconnect()),
    }
  },
}

export const bentocacheL1L2Bus = bentoRedis('bentocache-l1-l2', 'bentocache (L1 + L2 + bus)', true)

export const REDIS_ADAPTERS: readonly RedisAdapter[] = [
  corralRedis,
  corralRedisL1,
  bentoRedis('bentocache-l2', 'bentocache (L2 redis)', false),
  bentocacheL1L2Bus,
  cacheManagerRedis,
]

export function redisAdapter(id: string): RedisAdapter {
  const adapter = REDIS_ADAPTERS.find((candidate) => candidate.id === id)
  if (!adapter) throw new Error(`unknown redis adapter "${id}"`)
  return adapter
}
