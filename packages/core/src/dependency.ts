import { CachedValue, NO_VALUE } from './cached-value.js'
import type { CacheBackend } from './backends/api.js'
import { parseExpiration, type Duration } from './durations.js'
import { ValidationError } from './errors.js'
import { MAX_TAG_LENGTH } from './tags.js'

/**
 * Where a dependency keeps its bookkeeping in the backend: `corral:dep:<name>` holds a counter, and
 * `corral:dep:<name>:<n>` the n-th key added. The prefix keeps dependency names out of the cache-key namespace:
 * they collide only with cache keys that themselves start with `corral:dep:`.
 */
export const DEPENDENCY_PREFIX = 'corral:dep:'

/** What a dependency needs from its region. */
export interface DependencyHost {
  readonly name: string
  /** the region's expiration time in seconds, if any */
  readonly expirationTime: number | undefined
  backend(): CacheBackend
  storeKey(key: string): string
  now(): number
  /** Deletes cache keys (store keys) and reports the dependency invalidation. */
  deleteDependents(dependency: string, storeKeys: readonly string[], keys: number): Promise<void>
}

/**
 * A group of cache keys that are invalidated together — wheezy.caching's `CacheDependency`, kept in the region's
 * backend so that any process can add keys and any other can invalidate them all, without sharing memory.
 *
 * `add` takes the next number from an atomic counter in the backend and stores the key under it; `invalidate`
 * reads the counter, fetches every recorded key in one batch and deletes them with the bookkeeping. Keys added
 * while an invalidation runs may survive it (as in wheezy.caching). The bookkeeping expires with the
 * dependency's `expirationTime` (see `region.dependency`), so a dependency nobody invalidates does not grow
 * without bound.
 */
export class CacheDependency {
  /**
   * A dependency of the region `host`. Its bookkeeping lives `expirationTime` after the last add; by default as
   * long as the backends keep the values it tracks (2 x the region's expiration time + 60 s, so they can still be
   * served stale after expiring), or a day for a region without an expiration time.
   */
  static create(host: DependencyHost, name: string, options: { expirationTime?: Duration }): CacheDependency {
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_TAG_LENGTH) {
      throw new ValidationError(
        `dependency(): the name must be a non-empty string of at most ${MAX_TAG_LENGTH} characters`,
      )
    }
    const expiration = parseExpiration(options.expirationTime, `dependency "${name}": expirationTime`)
    const ttl =
      expiration !== undefined && expiration !== Number.POSITIVE_INFINITY
        ? expiration
        : host.expirationTime === undefined
          ? 86_400
          : 2 * host.expirationTime + 60
    return new CacheDependency(host, name, Math.max(1, Math.ceil(ttl)))
  }

  constructor(
    private readonly host: DependencyHost,
    readonly name: string,
    private readonly ttlSeconds: number,
  ) {}

  private get counterKey(): string {
    return this.host.storeKey(`${DEPENDENCY_PREFIX}${this.name}`)
  }

  private entryKey(n: number): string {
    return this.host.storeKey(`${DEPENDENCY_PREFIX}${this.name}:${n}`)
  }

  private increment(by: number): Promise<number> {
    const backend = this.host.backend()
    if (!backend.increment) {
      throw new ValidationError(
        `region "${this.host.name}": the ${backend.name} backend has no atomic counter, which dependencies need`,
      )
    }
    return backend.increment(this.counterKey, by, this.ttlSeconds)
  }

  /** Records that `key` depends on this dependency. */
  async add(key: string): Promise<void> {
    await this.addMulti([key])
  }

  /** Records many keys, with one counter update and one batched write. */
  async addMulti(keys: readonly string[]): Promise<void> {
    if (!Array.isArray(keys) || keys.some((key) => typeof key !== 'string')) {
      throw new ValidationError(`dependency "${this.name}": keys must be an array of strings`)
    }
    if (keys.length === 0) return
    const last = await this.increment(keys.length)
    const first = last - keys.length + 1
    const now = this.host.now()
    const entries = keys.map((key, i) => [this.entryKey(first + i), CachedValue.create(key, now)] as const)
    const backend = this.host.backend()
    if (backend.setMultiWithTtl) await backend.setMultiWithTtl(entries, this.ttlSeconds)
    else await backend.setMulti(entries)
  }

  /** The keys recorded so far (in the order they were added). */
  async keys(): Promise<string[]> {
    const count = await this.increment(0)
    if (count <= 0) return []
    const stored = await this.host.backend().getMulti(Array.from({ length: count }, (_, i) => this.entryKey(i + 1)))
    return stored.flatMap((value) => (value !== NO_VALUE && typeof value.payload === 'string' ? [value.payload] : []))
  }

  /** Deletes every recorded key and the bookkeeping; returns how many keys were deleted. */
  async invalidate(): Promise<number> {
    const count = await this.increment(0)
    const entryKeys = Array.from({ length: Math.max(0, count) }, (_, i) => this.entryKey(i + 1))
    const stored = entryKeys.length > 0 ? await this.host.backend().getMulti(entryKeys) : []
    const dependents = [
      ...new Set(
        stored.flatMap((value) => (value !== NO_VALUE && typeof value.payload === 'string' ? [value.payload] : [])),
      ),
    ]
    await this.host.deleteDependents(
      this.name,
      [...dependents.map((key) => this.host.storeKey(key)), ...entryKeys, this.counterKey],
      dependents.length,
    )
    return dependents.length
  }
}
