import { NO_VALUE, NOT_FRESH, type CachedValue, type NoValue } from '../../cached-value.js'
import { SerializationError } from '../../errors.js'
import type { KeyMangler } from '../../keys.js'
import type {
  AcquireOptions,
  BackendContext,
  CacheBackend,
  CacheMutex,
  FencedStore,
  FreshnessTest,
  L1Bus,
  LockAcquisition,
  RegionInvalidator,
} from '../api.js'
import { EntryStore } from '../entry-store.js'
import { ErrorThrottle } from '../shared/distributed.js'
import { CoherenceChannel } from './channel.js'
import { ChangeFence } from './fence.js'

/** Why copies left the L1, for `corral_l1_evictions_total{cause}`. */
export type L1EvictionCause = 'bus' | 'size' | 'age' | 'disconnect'

/** What the tier reports to its region. */
export interface TierObserver {
  /** `count` copies left the L1 for `cause`. */
  evicted(cause: L1EvictionCause, count: number): void
}

export interface TieredBackendOptions {
  /** LRU bound of the L1. */
  maxEntries: number
  /** How long a copy is served from the L1 after it was read or written here; `undefined`: until changed. */
  maxAgeMs: number | undefined
  /** Where changes are announced to (and heard from) the other processes; `undefined`: nowhere (`maxAgeMs` bounds). */
  bus: L1Bus | undefined
  /** the tier closes the bus (one it made from a URL) */
  ownsBus?: boolean
  /** the tier closes the L2 (one the region made from a name) */
  ownsL2?: boolean
  observer?: TierObserver
  /**
   * Milliseconds, for `maxAgeMs` (the region's clock, so tests can move time). Default: the coarse wall clock
   * (clock.ts), which fake timers move too.
   */
  clock?: () => number
}

/**
 * A two-tier backend: an in-process LRU of `CachedValue`s (the L1) in front of a backend shared by processes (the
 * L2: Redis, memcached). The L1 holds the very objects the L2 returned or was given, envelope included, so the
 * region judges an L1 copy exactly as an L2 value: expiry, jitter, fail-safe trust, region and tag marks.
 *
 * - Reads: `getSync` answers from the L1 (`undefined`: not there, or not trusted now), which makes an L1 hit the
 *   same synchronous path as a `memory` region's hit, with no backend command. `get`/`getMulti` always ask the L2
 *   (the region calls them when `getSync` did not know, and after it took a lock, when it must see the newest
 *   value) and copy what they got into the L1.
 * - Writes (`set`, `setMulti`, `setIfNotNewer`, deletes, the lock's `release(store)`) go to the L2 first; then
 *   this process's copy is replaced (or removed), and the other processes are told which keys changed, so they
 *   remove theirs (`CoherenceChannel`).
 * - A read or write whose key another process changed while it was in flight does not copy its answer (see
 *   `ChangeFence`): it may be older than the change.
 * - While the bus is not connected (before its subscription, after its connection dropped), the L1 is neither
 *   read nor filled, and it is emptied: messages sent meanwhile are lost, so no copy can be trusted. Once the bus
 *   is back the L1 starts empty.
 * - Without a bus, copies are served for at most `maxAgeMs` after they were made: the bound on their staleness.
 *
 * Region and tag invalidations need no message: they travel as marks (the region's invalidator), which the region
 * checks on every hit, L1 hits included.
 */
export class TieredBackend implements CacheBackend {
  readonly name: string
  readonly coalesce: boolean | undefined
  readonly lockTimeoutMs: number | undefined
  readonly keyMangler: KeyMangler | undefined
  readonly maxEntries: number
  readonly maxAgeMs: number | undefined
  /** the counter of `region.dependency()`, passed through (never cached) */
  readonly increment?: (key: string, by: number, ttlSeconds?: number) => Promise<number>
  /** dependency bookkeeping: stored in the L2 only, and announced like any write */
  readonly setMultiWithTtl?: (
    entries: ReadonlyArray<readonly [string, CachedValue]>,
    ttlSeconds: number,
  ) => Promise<void>

  readonly #l1: EntryStore
  readonly #fence = new ChangeFence()
  #changesReceived = 0
  readonly #bus: L1Bus | undefined
  readonly #ownsBus: boolean
  readonly #ownsL2: boolean
  readonly #observer: TierObserver | undefined
  readonly #errors = new ErrorThrottle()
  #channel: CoherenceChannel | undefined
  /** copies are served and made only while every change of the other processes reaches this one */
  #trusted: boolean
  #closed = false

  constructor(
    readonly l2: CacheBackend,
    options: TieredBackendOptions,
  ) {
    this.name = l2.name
    this.coalesce = l2.coalesce
    this.lockTimeoutMs = l2.lockTimeoutMs
    this.keyMangler = l2.keyMangler
    this.maxEntries = options.maxEntries
    this.maxAgeMs = options.maxAgeMs
    this.#bus = options.bus
    this.#ownsBus = options.ownsBus ?? false
    this.#ownsL2 = options.ownsL2 ?? false
    this.#observer = options.observer
    this.#trusted = options.bus === undefined
    const observer = options.observer
    this.#l1 = new EntryStore(options.maxEntries, {
      ...(options.maxAgeMs === undefined ? {} : { maxAgeMs: options.maxAgeMs }),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(observer === undefined ? {} : { evicted: (reason) => observer.evicted(reason, 1) }),
    })
    if (l2.increment) {
      const increment = l2.increment.bind(l2)
      this.increment = (key, by, ttlSeconds) => increment(key, by, ttlSeconds)
    }
    if (l2.setMultiWithTtl) {
      const setMultiWithTtl = l2.setMultiWithTtl.bind(l2)
      this.setMultiWithTtl = async (entries, ttlSeconds) => {
        try {
          await setMultiWithTtl(entries, ttlSeconds)
        } finally {
          for (const [key] of entries) this.#drop(key)
        }
        await this.#announce(entries.map(([key]) => key))
      }
    }
  }

  /** How many changed keys other processes have announced on the bus so far (each applied at once). */
  get changesReceived(): number {
    return this.#changesReceived
  }

  /** How many copies the L1 holds. */
  get l1Size(): number {
    return this.#l1.size
  }

  /** Whether the L1 is in use: no bus, or a bus that is connected. */
  get trusted(): boolean {
    return this.#trusted
  }

  attach(context: BackendContext): void {
    this.l2.attach?.(context)
    this.#bus?.attach?.(context)
    this.#errors.context = context
    if (this.#bus === undefined || this.#channel !== undefined || this.#closed) return
    this.#channel = new CoherenceChannel(
      this.#bus,
      context.regionName,
      {
        changed: (keys) => this.#changedElsewhere(keys),
        changedAll: () => this.#evictAll('bus'),
        connection: (connected) => this.#connection(connected),
      },
      (operation, error) => this.#errors.report(operation, error),
    )
    void this.#channel.start()
  }

  // ---------------------------------------------------------------- reads

  /** The L1's copy, or `undefined` when it has none or is not trusted now (the region then calls `get`). */
  getSync(key: string): CachedValue | undefined {
    return this.#trusted ? this.#l1.get(key) : undefined
  }

  /** The hit path: the L1's copy when it is fresh, allocating nothing (see `CacheBackend.getFreshSync`). */
  getFreshSync(key: string, test: FreshnessTest, expirationMs: number): unknown {
    return this.#trusted ? this.#l1.getFresh(key, test, expirationMs) : NOT_FRESH
  }

  async get(key: string): Promise<CachedValue | NoValue> {
    const since = this.#fence.open()
    try {
      const value = await this.l2.get(key)
      this.#copy(key, value, since)
      return value
    } finally {
      this.#fence.close()
    }
  }

  async getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    const since = this.#fence.open()
    try {
      const values = await this.l2.getMulti(keys)
      keys.forEach((key, i) => this.#copy(key, values[i] ?? NO_VALUE, since))
      return values
    } finally {
      this.#fence.close()
    }
  }

  // ---------------------------------------------------------------- writes

  async set(key: string, value: CachedValue): Promise<void> {
    await this.#write([key], () => this.l2.set(key, value), [[key, value]])
  }

  async setMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    await this.#write(
      entries.map(([key]) => key),
      () => this.l2.setMulti(entries),
      entries,
    )
  }

  async setIfNotNewer(key: string, value: CachedValue, since: number): Promise<boolean> {
    const l2 = this.l2
    if (!l2.setIfNotNewer) {
      await this.set(key, value)
      return true
    }
    const started = this.#fence.open()
    let stored: boolean
    try {
      stored = await l2.setIfNotNewer(key, value, since)
      // Not stored: a newer value is there (its writer announced it); ours may be older than it.
      if (stored) this.#wrote(key, value, started)
      else this.#drop(key)
    } catch (error) {
      this.#failedWrite([key], error)
      throw error
    } finally {
      this.#fence.close()
    }
    if (stored) await this.#announce([key])
    return stored
  }

  async delete(key: string): Promise<void> {
    await this.#write([key], () => this.l2.delete(key), [])
  }

  async deleteMulti(keys: readonly string[]): Promise<void> {
    await this.#write(keys, () => this.l2.deleteMulti(keys), [])
  }

  // ---------------------------------------------------------------- lock

  getMutex(key: string): CacheMutex | undefined {
    const mutex = this.l2.getMutex?.(key)
    return mutex === undefined ? undefined : new TieredMutex(this, key, mutex)
  }

  /** @internal for `TieredMutex`: brackets an L2 operation on a key (see `ChangeFence`) */
  get fence(): ChangeFence {
    return this.#fence
  }

  /** @internal the lock's release stored `value` for `key`: this process's copy, announced to the others */
  releasedWith(key: string, value: CachedValue, since: number): Promise<void> {
    this.#wrote(key, value, since)
    return this.#announce([key])
  }

  /** @internal a release that did not store: a newer value is there (announced by its writer), ours may be older */
  forget(key: string): void {
    this.#drop(key)
  }

  /** @internal an L2 write of `keys` failed and may have happened all the same */
  failedWrite(keys: readonly string[], error: unknown): void {
    this.#failedWrite(keys, error)
  }

  // ---------------------------------------------------------------- the rest of the contract

  createInvalidator(regionName: string): RegionInvalidator | undefined {
    return this.l2.createInvalidator?.(regionName)
  }

  count(): number {
    return this.l2.count?.() ?? Number.NaN
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#trusted = false
    try {
      await this.#channel?.close()
      if (this.#ownsBus) await this.#bus?.close()
    } finally {
      this.#l1.clear()
      if (this.#ownsL2) await this.l2.close?.()
    }
  }

  // ---------------------------------------------------------------- internals

  /**
   * Runs a write of `keys` on the L2, then puts the `written` entries in the L1 (the other keys are removed from
   * it) and tells the other processes which keys changed.
   */
  async #write(
    keys: readonly string[],
    run: () => Promise<void>,
    written: ReadonlyArray<readonly [string, CachedValue]>,
  ): Promise<void> {
    const since = this.#fence.open()
    try {
      await run()
      const values = written.length === 0 ? undefined : new Map(written)
      for (const key of keys) {
        const value = values?.get(key)
        if (value === undefined) this.#drop(key)
        else this.#wrote(key, value, since)
      }
    } catch (error) {
      this.#failedWrite(keys, error)
      throw error
    } finally {
      this.#fence.close()
    }
    await this.#announce(keys)
  }

  /**
   * A write that failed may have happened all the same (a timeout): its keys are removed here and announced (in the
   * background: the caller gets the error). One that could not encode its value changed nothing.
   */
  #failedWrite(keys: readonly string[], error: unknown): void {
    if (error instanceof SerializationError) return
    for (const key of keys) this.#drop(key)
    void this.#announce(keys)
  }

  /** Copies a value read from the L2, unless its key changed since the read started (or copies are not trusted). */
  #copy(key: string, value: CachedValue | NoValue, since: number): void {
    if (value === NO_VALUE || !this.#trusted || Number.isNaN(value.ct) || this.#fence.changedSince(key, since)) return
    this.#l1.set(key, value)
  }

  /** This process stored `value`: it is the L1's copy, unless another change of the key overtook the write. */
  #wrote(key: string, value: CachedValue, since: number): void {
    const overtaken = this.#fence.changedSince(key, since)
    this.#fence.touch(key)
    if (overtaken || !this.#trusted) this.#l1.delete(key)
    else this.#l1.set(key, value)
  }

  /** The key changed (or may have): no copy, and no answer in flight may become one. */
  #drop(key: string): void {
    this.#fence.touch(key)
    this.#l1.delete(key)
  }

  #announce(keys: readonly string[]): Promise<void> {
    return this.#channel?.announce(keys) ?? Promise.resolve()
  }

  #changedElsewhere(keys: readonly string[]): void {
    this.#changesReceived += keys.length
    let evicted = 0
    for (const key of keys) {
      this.#fence.touch(key)
      if (this.#l1.delete(key)) evicted++
    }
    if (evicted > 0) this.#observer?.evicted('bus', evicted)
  }

  #evictAll(cause: L1EvictionCause): void {
    this.#fence.touchAll()
    const count = this.#l1.size
    this.#l1.clear()
    if (count > 0) this.#observer?.evicted(cause, count)
  }

  /**
   * The bus dropped (messages from now on are lost) or is back. Either way no copy made before can be trusted:
   * the L1 is emptied, and answers in flight are not copied. While it is down the L1 is bypassed.
   */
  #connection(connected: boolean): void {
    if (this.#closed) return
    this.#trusted = false
    this.#evictAll('disconnect')
    if (connected) this.#trusted = true
  }
}

/**
 * The L2's lock, seen through the tier: a value stored by the release replaces this process's copy and is announced
 * to the other processes (a regeneration is a change like any other).
 */
class TieredMutex implements CacheMutex {
  constructor(
    private readonly tier: TieredBackend,
    private readonly key: string,
    private readonly mutex: CacheMutex,
  ) {}

  /**
   * Passed through. A value the acquisition brings (`current`, `produced`) is the caller's answer but is not copied
   * into the L1: a wait can last seconds, and the next read copies the value anyway.
   */
  acquire(options: AcquireOptions): Promise<LockAcquisition> {
    return this.mutex.acquire(options)
  }

  async release(store?: FencedStore): Promise<boolean> {
    if (store === undefined) return this.mutex.release()
    const { tier, key } = this
    const since = tier.fence.open()
    try {
      const stored = await this.mutex.release(store)
      // Announced, not awaited: the creator's callers need not wait for it. The other processes' waiters are woken
      // by the lock's own release, and their copies of a value that needed regenerating are not fresh anyway (a
      // copy that is not fresh is checked against the backend).
      if (stored) void tier.releasedWith(key, store.value, since)
      else tier.forget(key)
      return stored
    } catch (error) {
      tier.failedWrite([key], error)
      throw error
    } finally {
      tier.fence.close()
    }
  }

  locked(): Promise<boolean> {
    return this.mutex.locked()
  }
}
