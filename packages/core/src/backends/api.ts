import type { CachedValue, NoValue, Serializer, ValueExtensions } from '../cached-value.js'
import type { KeyMangler } from '../keys.js'

/**
 * A distributed creation lock for one key, supplied by backends that can lock across processes (Redis,
 * memcached, file). The region coalesces callers inside one process itself, so a mutex is asked for at most once
 * per key per process at a time.
 *
 * The guarantees every implementation gives (the conformance suite in `@corral/core/testing` checks them):
 * - **Exclusive:** at most one live holder per key across every process sharing the backend.
 * - **Bounded:** a holder that dies blocks the others for at most the backend's `lockTimeoutMs`; then the lock
 *   expires and a waiter takes it. A lock key written by someone else without an expiry is given one.
 * - **Fenced:** `release(store)` stores the value only while the lock is still this mutex's and no value created
 *   after `store.since` is stored: a holder that lost its lock (paused past its timeout, re-taken by another) never
 *   overwrites a newer value.
 * - **No false timeouts:** a waiter keeps waiting while a live holder regenerates (a new holder after a takeover
 *   gives it a new lock timeout); it gives up only when no holder makes progress for far longer.
 */
export interface CacheMutex {
  /**
   * Takes the lock. `wait: false`: one attempt. `wait: true`: waits until the lock is taken, or until its holder
   * releases it with a value (returned as `produced`, so the waiter needs no read), or gives up (neither).
   * `holder` describes this caller (its trace context) to the other processes, as far as the backend can carry it.
   * Waiting strategy (notification, polling, backoff) is the backend's business.
   */
  acquire(options: AcquireOptions): Promise<LockAcquisition>
  /**
   * Releases the lock if this mutex still holds it (never someone else's). With `store`, first stores the value,
   * fenced (see above), and tells the waiters of other processes about it. Resolves to whether the value was
   * stored. A lost lock is not an error.
   */
  release(store?: FencedStore): Promise<boolean>
  /** Whether anyone holds the lock for this key. */
  locked(): Promise<boolean>
}

export interface AcquireOptions {
  /** wait for the lock (the caller has no value), or make one attempt (it has a stale one to serve) */
  readonly wait: boolean
  /** who is asking, for the other processes (stored with the lock when the backend can) */
  readonly holder?: LockHolder
}

/** Who holds a lock, or who released it, as far as other processes can know. */
export interface LockHolder {
  /** the W3C `traceparent` of the holder's span, so a waiter's span can link to it across processes */
  readonly traceparent?: string
}

/** What an attempt to take a lock found. */
export interface LockAcquisition {
  /** the lock is this mutex's */
  readonly acquired: boolean
  /**
   * acquired: the value under the key when the lock was taken, read atomically with it by backends that can
   * (`undefined`: not read, the region reads it)
   */
  readonly current?: CachedValue | NoValue
  /** not acquired after waiting: the value the holder released the lock with (`undefined`: gave up) */
  readonly produced?: CachedValue
  /** not acquired: who holds (or released) the lock, when the backend knows */
  readonly holder?: LockHolder
}

/** The value a holder stores as it releases its lock. */
export interface FencedStore {
  readonly value: CachedValue
  /**
   * when the creation began (epoch ms): the value is not stored over one created after it, which would be newer
   * than what the creator read
   */
  readonly since: number
  /** the creator's trace context, passed to the waiters it wakes */
  readonly holder?: LockHolder
}

/** The region's freshness decision, as a store kept in this process calls it on a value's parts. */
export interface FreshnessTest {
  isFreshStamp(ct: number, ext: ValueExtensions | undefined, expirationMs: number): boolean
}

/** A region-wide invalidation, as a backend's invalidator remembers it. Times are milliseconds since the epoch. */
export interface InvalidationState {
  readonly hardAt: number
  readonly softAt: number
}

/**
 * Where a region keeps its "invalidated before T" marks. The default keeps them in memory (one process). A
 * backend shared by several processes supplies one that propagates them, so `invalidate()` in one process
 * reaches every process using the same region on the same server. Reads are synchronous: the hit path consults
 * them on every get, so implementations keep the marks locally and refresh them in the background.
 */
export interface RegionInvalidator {
  /** Records an invalidation at `at`, locally at once and for other processes as the backend allows. */
  invalidate(hard: boolean, at: number): Promise<void>
  /**
   * The marks currently in force. When they change, return a new object (never change the one returned before):
   * the hit path recomputes what it derives from the marks only when this object is another.
   */
  current(): InvalidationState

  /** Records tag invalidations at `at` (see `region.invalidateTags`). Invalidators without it do not support tags. */
  invalidateTags?(tags: readonly string[], hard: boolean, at: number): Promise<void>
  /**
   * The marks of one tag, synchronously (the hit path asks for every tagged value), or `undefined` when this
   * process does not know the tag's marks yet (or no longer trusts them): the region then calls `loadTags` first.
   */
  tagMarks?(tag: string): InvalidationState | undefined
  /** Fetches the marks of tags `tagMarks` did not know, in one batch. */
  loadTags?(tags: readonly string[]): Promise<void>
  /** Stops background work (subscriptions, timers). */
  close?(): Promise<void>
}

/** What a region tells its backend when it is configured. */
export interface BackendContext {
  readonly regionName: string
  /** the region's expiration time in seconds, if any: backends derive their server-side expiry from it */
  readonly expirationTime: number | undefined
  /**
   * seconds a value must stay available after its creation for fail-safe (`failSafe.maxStaleAge`), if the region
   * uses it: backends with a server-side expiry keep values at least this long
   */
  readonly failSafeMaxStaleAge?: number | undefined
  readonly serializer: Serializer
  /** reports a failure the backend recovered from by itself (a dropped connection, a failed release) */
  readonly reportError: (operation: string, error: unknown) => void
}

/**
 * The contract every backend implements. Values are `CachedValue`s; backends that store bytes encode them with
 * `encodeCachedValue` and the region's serializer (see `BackendContext`). Backends stay thin, as in dogpile.cache:
 * expiry, invalidation and locking decisions live in the region.
 */
export interface CacheBackend {
  /** Short name for telemetry labels: `memory`, `redis`, ... */
  readonly name: string
  /**
   * `false` turns off the region's in-process coalescing too, so every caller runs its creator (the `null`
   * backend). Default true.
   */
  readonly coalesce?: boolean
  /**
   * How long a holder may keep the creation lock before others take over (a distributed lock's expiry). It also
   * bounds a creator run without `hardTimeout`. Default for backends without one: 30 s.
   */
  readonly lockTimeoutMs?: number
  /** The mangler the region applies unless it has its own (or `keyMangler: false`). */
  readonly keyMangler?: KeyMangler | undefined

  get(key: string): Promise<CachedValue | NoValue>
  getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>>
  set(key: string, value: CachedValue): Promise<void>
  setMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void>
  delete(key: string): Promise<void>
  deleteMulti(keys: readonly string[]): Promise<void>

  /**
   * Atomically adds `by` to the counter at `key` (a missing counter starts at 0) and returns the new value;
   * `by = 0` reads it without creating it. `ttlSeconds` bounds the counter's life. Needed by `region.dependency()`.
   */
  increment?(key: string, by: number, ttlSeconds?: number): Promise<number>
  /** Like `setMulti`, but the entries expire after `ttlSeconds` (bookkeeping that must not outlive its use). */
  setMultiWithTtl?(entries: ReadonlyArray<readonly [string, CachedValue]>, ttlSeconds: number): Promise<void>
  /**
   * Stores `value` unless the value under `key` was created after `since` (a newer write won the race while the
   * caller was creating); resolves to whether it stored. Backends without it get a plain `set`, where the last
   * writer wins.
   */
  setIfNotNewer?(key: string, value: CachedValue, since: number): Promise<boolean>
  /**
   * A synchronous read, for values kept in this process (the `memory` backend, a region's L1): lets the hit path
   * skip a promise. `undefined` means "not known here": the region then awaits `get()`. A hit that `getSync`
   * answered is reported with `tier: 'l1'`, one that `get()` answered with `tier: 'l2'`.
   */
  getSync?(key: string): CachedValue | NoValue | undefined
  /**
   * The hit path of a store kept in this process (the `memory` backend, a region's L1), without allocating: the
   * payload of `key` when `test` finds the stored value fresh for `expirationMs`, else `NOT_FRESH` (cached-value.ts: absent, not
   * fresh, or not known here), and the region then takes its full path through `getSync` or `get`.
   */
  getFreshSync?(key: string, test: FreshnessTest, expirationMs: number): unknown
  /** A distributed lock for `key`, or `undefined` to rely on the region's in-process lock alone. */
  getMutex?(key: string): CacheMutex | undefined
  /**
   * A channel that reaches every process sharing this backend, on which regions with an L1 (`configure`'s `l1`)
   * tell each other what changed. Backends that cannot reach the other processes leave it out; their L1 then needs
   * `l1.maxAge` (or `l1.bus`).
   */
  createBus?(): L1Bus | undefined
  /** Invalidation marks shared with other processes; `undefined` keeps them in this process. */
  createInvalidator?(regionName: string): RegionInvalidator | undefined
  /** Called once when a region is configured with this backend. */
  attach?(context: BackendContext): void
  /** How many entries the backend holds, for the `corral_entries` gauge (backends that can count cheaply). */
  count?(): number
  /** Releases connections this backend opened (never a client the user passed in). */
  close?(): Promise<void>
}

/**
 * A publish/subscribe channel between the processes that share a backend, as the L1 tier needs it: messages are
 * delivered in order to every listener connected when they are published, and lost to one that is not, so the
 * bus must say when that may have happened.
 */
export interface L1Bus {
  /**
   * Starts listening on `topic` (a region's name; the bus maps it to its channel). `onMessage` gets every message
   * published on it, own ones included; `onConnection(false)` as soon as messages may be lost (the connection
   * dropped), `onConnection(true)` each time they are received again. Resolves once messages are received.
   */
  listen(topic: string, onMessage: (message: string) => void, onConnection: (connected: boolean) => void): Promise<void>
  /** Stops listening on `topic`. */
  unlisten(topic: string): Promise<void>
  /** Publishes `message` on `topic`; resolves once the server has taken it. */
  publish(topic: string, message: string): Promise<void>
  /** Called once when the region is configured: where to report failures it recovers from. */
  attach?(context: BackendContext): void
  /** Releases the connections the bus opened itself (never those of the backend it rides on). */
  close(): Promise<void>
}

/** Builds a backend from `configure()`'s `arguments`. Throws `ValidationError` for bad arguments. */
export type BackendFactory = (args: Record<string, unknown>) => CacheBackend
