import {
  NO_VALUE,
  NOT_FRESH,
  CachedValue,
  decodeCachedValue,
  encodeCachedValue,
  jsonSerializer,
  type NoValue,
  type Serializer,
} from '../cached-value.js'
import type { BackendContext, CacheBackend, FreshnessTest } from './api.js'
import { readArguments } from './arguments.js'
import { EntryStore } from './entry-store.js'
import { durationMs } from './shared/distributed.js'
import type { Duration } from '../durations.js'

const STORED: Promise<void> = Promise.resolve()
const STORED_TRUE: Promise<boolean> = Promise.resolve(true)
const NOT_STORED: Promise<boolean> = Promise.resolve(false)

export interface MemoryBackendOptions {
  /** LRU bound: the least recently used entries are evicted beyond it. Default 100000. */
  maxEntries?: number
  /**
   * Store values serialized (like dogpile's `memory_pickle`): callers get copies, and values that cannot be
   * serialized fail at `set` with `SerializationError`, as they would on Redis. Default false: values are stored
   * by reference, which is the fastest hit path.
   */
  serialize?: boolean
  /**
   * How long a creator may run before the callers waiting for it are answered (with `CreatorTimeoutError`, or a
   * fail-safe value) when the call sets no `hardTimeout`. Default 30s.
   */
  lockTimeout?: Duration
}

/**
 * An in-process LRU store (an `EntryStore`: each value kept as its parts, no object per entry). Coalescing uses the
 * region's in-process lock; there is nothing to lock across. Serialized, each entry holds the value's bytes instead
 * (its creation time is in them), decoded on every read.
 */
export class MemoryBackend implements CacheBackend {
  readonly name = 'memory'
  readonly maxEntries: number
  readonly lockTimeoutMs: number
  private readonly store: EntryStore
  private readonly serialized: boolean
  private serializer: Serializer = jsonSerializer

  constructor(options: MemoryBackendOptions = {}) {
    const args = readArguments('memory', options as Record<string, unknown>, {
      maxEntries: 'positiveInteger',
      serialize: 'boolean',
      lockTimeout: 'duration',
    })
    this.maxEntries = (args.maxEntries as number | undefined) ?? 100_000
    this.serialized = (args.serialize as boolean | undefined) ?? false
    this.lockTimeoutMs = durationMs('memory', 'lockTimeout', args.lockTimeout, 30)
    this.store = new EntryStore(this.maxEntries)
  }

  attach(context: BackendContext): void {
    this.serializer = context.serializer
  }

  getSync(key: string): CachedValue | NoValue {
    const stored = this.store.get(key)
    if (stored === undefined) return NO_VALUE
    return this.serialized ? decodeCachedValue(stored.payload as Buffer, this.serializer) : stored
  }

  getFreshSync(key: string, test: FreshnessTest, expirationMs: number): unknown {
    // Serialized values are judged after decoding, on the region's full path.
    return this.serialized ? NOT_FRESH : this.store.getFresh(key, test, expirationMs)
  }

  async get(key: string): Promise<CachedValue | NoValue> {
    return this.getSync(key)
  }

  async getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    return keys.map((key) => this.getSync(key))
  }

  // set and setIfNotNewer are on every regeneration: plain functions returning settled promises, not async ones.

  set(key: string, value: CachedValue): Promise<void> {
    try {
      this.store.set(key, this.#stored(value))
      return STORED
    } catch (error) {
      return Promise.reject(error)
    }
  }

  setIfNotNewer(key: string, value: CachedValue, since: number): Promise<boolean> {
    try {
      // Serialized, the entry's creation time is the value's (see #stored).
      if (this.store.peekCreated(key) > since) return NOT_STORED
      // Through `set`, which a subclass may override to see (or fail) every write.
      const stored = this.set(key, value)
      return stored === STORED ? STORED_TRUE : stored.then(() => true)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  async setMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    // Encode everything first, so that one bad value stores nothing.
    const encoded = entries.map(([key, value]) => [key, this.#stored(value)] as const)
    for (const [key, value] of encoded) this.store.set(key, value)
  }

  async increment(key: string, by: number): Promise<number> {
    const current = this.getSync(key)
    const next = (current !== NO_VALUE && typeof current.payload === 'number' ? current.payload : 0) + by
    if (by === 0) return next
    this.store.set(key, this.#stored(CachedValue.create(next, Date.now())))
    return next
  }

  /** The memory backend bounds bookkeeping by its LRU, not by time. */
  async setMultiWithTtl(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    await this.setMulti(entries)
  }

  async delete(key: string): Promise<void> {
    this.store.delete(key)
  }

  async deleteMulti(keys: readonly string[]): Promise<void> {
    for (const key of keys) this.store.delete(key)
  }

  count(): number {
    return this.store.size
  }

  async close(): Promise<void> {
    this.store.clear()
  }

  /** What the store keeps for `value`: the value itself, or serialized, its bytes (with its creation time beside). */
  #stored(value: CachedValue): CachedValue {
    return this.serialized ? new CachedValue(encodeCachedValue(value, this.serializer), value.ct) : value
  }
}
