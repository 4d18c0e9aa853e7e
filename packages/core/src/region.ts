import type { CacheBackend } from './backends/api.js'
import { BackendAccess } from './backend-access.js'
import { jsonSerializer, type NoValue, type Serializer } from './cached-value.js'
import {
  cacheMultiOnArguments,
  cacheOnArguments,
  methodDecorator,
  type CachedFunction,
  type CachedMethodDecorator,
  type CachedMultiFunction,
  type CacheMultiOnArgumentsOptions,
  type CacheOnArgumentsOptions,
} from './decorators.js'
import { assembleBackend, fromFlatConfig } from './configuration.js'
import { CacheDependency } from './dependency.js'
import { coarseWallClock, wallClock } from './clock.js'
import { describeValue } from './describe-value.js'
import { parseExpiration, type Duration } from './durations.js'
import { RegionAlreadyConfiguredError, RegionNotConfiguredError, ValidationError } from './errors.js'
import { Freshness } from './freshness.js'
import { LocalInvalidator } from './invalidation.js'
import {
  assertKeyList,
  functionKeyGenerator,
  functionMultiKeyGenerator,
  type KeyGenerator,
  type KeyMangler,
  type MultiKeyGenerator,
} from './keys.js'
import type { AsyncCreationRunner } from './lock/async-runner.js'
import { DogpileLock, type CallInfo } from './lock/dogpile.js'
import { getOrCreateMulti } from './lock/multi.js'
import {
  NO_POLICY,
  callSettings,
  expirationToMs,
  rejectUnknown,
  resolveCallSettings,
  resolvePolicy,
  type CallSettings,
} from './policy.js'
import * as reads from './reads.js'
import {
  CONFIGURE_OPTIONS,
  GET_OR_CREATE_MULTI_OPTIONS,
  GET_OR_CREATE_OPTIONS,
  type ConfigureOptions,
  type Creator,
  type GetOptions,
  type GetOrCreateOptions,
  type GetOrCreateResult,
  type RegionDescription,
  type RegionOptions,
  type SetOptions,
  type ValueMetadata,
} from './region-options.js'
import type { RegionInternals } from './region-internals.js'
import type { RegionRegistry } from './registry.js'
import { tracingChannels } from './telemetry/channels.js'
import type { RegionEventListener, RegionEventName } from './telemetry/events.js'
import type { HotKey } from './telemetry/hot-keys.js'
import type { RegionOperations } from './telemetry/operations.js'
import { RegionTelemetry } from './telemetry/region-telemetry.js'
import { RegionStats, type RegionStatsSnapshot } from './telemetry/stats.js'
import * as writes from './writes.js'

/** The hit path reads this channel directly: a lookup by operation name would cost it measurably. */
const GET_OR_CREATE_CHANNEL = tracingChannels.getOrCreate

/**
 * A cache region: a named, configured cache whose `getOrCreate` runs at most one creator per key at a time —
 * across processes when the backend has a distributed lock — while other callers get the stale value at once or
 * wait for that creator (dogpile.cache's region and lock). Create it with `createRegion()`; configure it later.
 *
 * This class is the front end: configuration, the public methods (each checks its arguments, hands the call to the
 * module that does it, inside its tracing channel and span) and events. The dogpile lock lives in lock/, the reads
 * in reads.ts, the writes in writes.ts; they reach the region through one `RegionInternals`.
 */
export class CacheRegion {
  readonly name: string
  readonly registry: RegionRegistry
  readonly keyGenerator: KeyGenerator
  readonly multiKeyGenerator: MultiKeyGenerator
  readonly asyncCreationRunner: AsyncCreationRunner | undefined
  readonly serializer: Serializer
  readonly stats = new RegionStats()

  /** what the region calls: the configured backend, behind its circuit breaker and L1 when it has them */
  #backend: CacheBackend | undefined
  /** the configured backend (the outermost proxy when `wrap` was used), as `backend` returns it */
  #configuredBackend: CacheBackend | undefined
  #ownsBackend = false
  #mangler: KeyMangler | undefined
  readonly #userMangler: KeyMangler | false | undefined
  #expirationTime: number | undefined
  #coalesce = true
  /**
   * The settings of a `getOrCreate` call without options, made once per `configure`: the region's expiration in
   * milliseconds and its resilience policy (fail-safe, timeouts, eager refresh, jitter), which calls start from.
   */
  #callDefaults: CallSettings = callSettings(Number.POSITIVE_INFINITY, undefined, undefined, NO_POLICY, false)
  readonly #telemetry: RegionTelemetry
  /** the operations' tracing channels and spans, asked by every call */
  readonly #operations: RegionOperations
  /** whether a `getOrCreate` starts its span before the lock runs (backend spans; see `RegionTracing.callScope`) */
  readonly #callScopes: boolean
  readonly #clock: () => number
  /** what the lock, the reads and the writes reach of the region */
  readonly #internals: RegionInternals
  readonly #lock: DogpileLock
  #lastStamp = 0
  #closed = false

  constructor(options: RegionOptions, registry: RegionRegistry, name: string) {
    this.name = name
    this.registry = registry
    this.keyGenerator = options.keyGenerator ?? functionKeyGenerator
    this.multiKeyGenerator = options.multiKeyGenerator ?? functionMultiKeyGenerator
    this.asyncCreationRunner = options.asyncCreationRunner
    this.serializer = options.serializer ?? jsonSerializer
    this.#userMangler = options.keyMangler
    this.#clock = options.clock ?? wallClock
    const telemetry = new RegionTelemetry(name, this.stats, () => this.#backend, options, registry, this.#clock)
    this.#telemetry = telemetry
    this.#operations = telemetry.operations
    this.#callScopes = telemetry.callScopes
    const reportError = (operation: string, error: unknown) => telemetry.instrumentation.backendError(operation, error)
    // The lock, the reads and the writes reach the region only through this object.
    this.#internals = {
      region: this,
      asyncCreationRunner: this.asyncCreationRunner,
      // The hit path's expiry check reads a coarse clock unless a clock was injected (see clock.ts).
      freshness: new Freshness(this.#clock, reportError, options.clock ?? coarseWallClock),
      access: new BackendAccess(name, reportError, telemetry.tracing),
      report: telemetry.reporter,
      instrumentation: telemetry.instrumentation,
      tracing: telemetry.tracing,
      backend: () => this.#requireBackend(),
      coalesce: () => this.#coalesce,
      defaults: () => this.#callDefaults,
      storeKey: (key) => this.#storeKey(key),
      stamp: () => this.#stamp(),
      now: () => this.#clock(),
    }
    this.#lock = new DogpileLock(this.#internals)
  }

  // ---------------------------------------------------------------- configuration

  /** Whether `configure()` has given the region a backend. */
  get isConfigured(): boolean {
    return this.#backend !== undefined
  }

  /** The configured backend (the outermost proxy when `wrap` was used). */
  get backend(): CacheBackend {
    return this.#configuredBackend ?? this.#notConfigured()
  }

  /** The region's expiration time in seconds, or undefined when values never expire. */
  get expirationTime(): number | undefined {
    return this.#expirationTime
  }

  /**
   * Gives the region its backend: a registered name (`'memory'`, `'redis'`, ...) with `arguments`, or a
   * `CacheBackend` instance. Returns the region, so `createRegion().configure(...)` reads as one statement.
   */
  configure(backend: string | CacheBackend, options: ConfigureOptions = {}): this {
    if (this.#closed) throw new ValidationError(`region "${this.name}" is closed`)
    if (options === null || typeof options !== 'object')
      throw new ValidationError(`configure(): options must be an object; got ${describeValue(options)}`)
    rejectUnknown(options, CONFIGURE_OPTIONS, `region "${this.name}": configure()`)
    if (this.#backend && !options.replaceExistingBackend) {
      throw new RegionAlreadyConfiguredError(
        `region "${this.name}" already has a backend (${this.#backend.name}); pass { replaceExistingBackend: true } to replace it`,
      )
    }
    const parsed = parseExpiration(options.expirationTime, `region "${this.name}": expirationTime`)
    const expirationTime = parsed === Number.POSITIVE_INFINITY ? undefined : parsed
    const policy = resolvePolicy(
      NO_POLICY,
      options,
      `region "${this.name}": configure()`,
      expirationToMs(expirationTime),
    )
    // Build the whole backend before changing any state, so a configure() that fails changes nothing.
    const { instrumentation } = this.#telemetry
    const assembly = assembleBackend(backend, options, {
      regionName: this.name,
      clock: this.#clock === wallClock ? undefined : this.#clock,
      closeQuietly: (built) => this.#closeQuietly(built),
      circuit: (name, state) => instrumentation.circuit(name, state),
      l1: { evicted: (cause, count) => instrumentation.l1Evicted(cause, count) },
    })
    const previous = this.#backend
    const previousOwned = this.#ownsBackend
    const instance = (this.#backend = assembly.instance)
    this.#configuredBackend = assembly.configured
    this.#ownsBackend = assembly.owned
    this.stats.circuit = assembly.guarded === undefined ? null : { backend: assembly.guarded, state: 'closed' }
    this.#expirationTime = expirationTime
    this.#callDefaults = callSettings(expirationToMs(expirationTime), undefined, undefined, policy, false)
    this.#coalesce = instance.coalesce !== false
    this.#mangler = this.#userMangler === false ? undefined : (this.#userMangler ?? instance.keyMangler)
    instance.attach?.({
      regionName: this.name,
      expirationTime,
      failSafeMaxStaleAge: policy.failSafe === undefined ? undefined : policy.failSafe.maxStaleAgeMs / 1000,
      serializer: this.serializer,
      reportError: (operation, error) => instrumentation.backendError(operation, error),
    })
    const { freshness } = this.#internals
    const current = freshness.invalidator
    const invalidator =
      options.regionInvalidator ??
      instance.createInvalidator?.(this.name) ??
      (current instanceof LocalInvalidator ? current : new LocalInvalidator())
    if (invalidator !== current) {
      freshness.invalidator = invalidator
      this.#closeQuietly(current)
    }
    // A replaced backend that the region created itself would otherwise keep its connections open.
    if (previous && previousOwned && previous !== instance) this.#closeQuietly(previous)
    if (!previous) this.#telemetry.registerMetrics()
    return this
  }

  /**
   * Configures from a flat string map, as dogpile.cache's `configure_from_config`: reads `${prefix}backend`,
   * `${prefix}expiration_time`, every `${prefix}arguments.<name>` and the other `configure()` options under the
   * prefix in snake case (`${prefix}l1.max_entries`, `${prefix}fail_safe.max_stale_age`, ...: configuration.ts).
   * Numbers and booleans given as strings are converted; an unknown setting under the prefix is a `ValidationError`.
   * The options a string cannot hold (`wrap`, `regionInvalidator`) and `replaceExistingBackend` come as `options`.
   */
  configureFromConfig(
    config: Record<string, unknown>,
    prefix: string,
    options: Pick<ConfigureOptions, 'wrap' | 'regionInvalidator' | 'replaceExistingBackend'> = {},
  ): this {
    rejectUnknown(options ?? {}, ['wrap', 'regionInvalidator', 'replaceExistingBackend'], 'configureFromConfig()')
    const flat = fromFlatConfig(config, prefix)
    return this.configure(flat.backend, { ...flat.options, ...options })
  }

  // ---------------------------------------------------------------- reads

  /** The value for `key`, or `NO_VALUE` if it is absent, expired or invalidated. */
  get<T = unknown>(key: string, options?: GetOptions): Promise<T | NoValue> {
    if (!this.#operations.observed('get')) return reads.get<T>(this.#internals, key, options)
    return this.#operations.run('get', { key }, () => reads.get<T>(this.#internals, key, options), reads.describeGet)
  }

  /** Values in key order, `NO_VALUE` where missing: one backend round trip. */
  getMulti<T = unknown>(keys: readonly string[], options?: GetOptions): Promise<Array<T | NoValue>> {
    if (!this.#operations.observed('getMulti')) return reads.getMulti<T>(this.#internals, keys, options)
    const run = () => reads.getMulti<T>(this.#internals, keys, options)
    return this.#operations.run('getMulti', { keys }, run, reads.describeGetMulti)
  }

  /** The value with its creation time and age (seconds), regardless of expiry; undefined when absent. */
  getValueMetadata<T = unknown>(key: string): Promise<ValueMetadata<T> | undefined> {
    return reads.getValueMetadata<T>(this.#internals, key)
  }

  // ---------------------------------------------------------------- get or create: the dogpile lock

  /**
   * The value for `key`; when it is absent, expired or invalidated, `creator` makes a new one — once per key at a
   * time across all callers. A caller that finds a stale value while another regenerates gets the stale value at
   * once; a caller with no value waits for the one creator and gets its value. If the creator throws, its caller
   * and every waiter get the error, the lock is released, and the next call tries again. The procedure lives in
   * `lock/dogpile.ts`.
   */
  getOrCreate<T>(key: string, creator: Creator<T>, options?: GetOrCreateOptions<T>): Promise<T> {
    // Observed only with a channel subscriber, or with backend spans on and an OpenTelemetry SDK registered (the
    // same test as `RegionOperations.observed`, the field read first so that the common region pays nothing more).
    if (!GET_OR_CREATE_CHANNEL.hasSubscribers && (!this.#callScopes || !this.#operations.observed('getOrCreate'))) {
      // The common call, checked inline: no options, no key mangler, a configured region.
      if (
        options === undefined &&
        this.#mangler === undefined &&
        this.#backend !== undefined &&
        typeof key === 'string' &&
        typeof creator === 'function'
      ) {
        try {
          return this.#lock.getOrCreate(key, key, creator, this.#callDefaults, undefined)
        } catch (error) {
          return Promise.reject(error)
        }
      }
      return this.#getOrCreate(key, creator, options, undefined, 'getOrCreate')
    }
    return this.#operations.getOrCreate(key, undefined, (info) =>
      this.#getOrCreate(key, creator, options, info, 'getOrCreate'),
    )
  }

  /**
   * `getOrCreate`, answering also how the value was obtained, without a second call: `result` (`hit`, `stale`,
   * `miss` or `failSafe`), `tier` (`l1` this process, `l2` the shared backend, for hits) and `created` (this caller
   * ran the creator).
   */
  async getOrCreateResult<T>(
    key: string,
    creator: Creator<T>,
    options?: GetOrCreateOptions<T>,
  ): Promise<GetOrCreateResult<T>> {
    const info: CallInfo = { result: 'miss', tier: undefined, created: false }
    const method = 'getOrCreateResult'
    const value = await (this.#operations.observed('getOrCreate')
      ? this.#operations.getOrCreate(key, info, (how) => this.#getOrCreate(key, creator, options, how, method))
      : this.#getOrCreate(key, creator, options, info, method))
    return { value, ...info }
  }

  #getOrCreate<T>(
    key: string,
    creator: Creator<T>,
    options: GetOrCreateOptions<T> | undefined,
    info: CallInfo | undefined,
    method: string,
  ): Promise<T> {
    if (this.#backend === undefined) return Promise.reject(this.#notConfiguredError())
    if (typeof key !== 'string')
      return Promise.reject(new ValidationError(`${method}(): the key must be a string; got ${describeValue(key)}`))
    if (typeof creator !== 'function')
      return Promise.reject(
        new ValidationError(`${method}(): the creator must be a function; got ${describeValue(creator)}`),
      )
    try {
      const storeKey = this.#mangler === undefined ? key : this.#mangler(key)
      const settings = resolveCallSettings(this.#callDefaults, options, GET_OR_CREATE_OPTIONS, method)
      return this.#lock.getOrCreate(key, storeKey, creator, settings, info)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * Values for `keys` in request order. Keys that need a value are regenerated together: `creator` receives only
   * those keys, sorted and unique, and returns their values in that order. The per-key lock semantics are those
   * of `getOrCreate`.
   */
  getOrCreateMulti<T>(
    keys: readonly string[],
    creator: (...keys: string[]) => readonly T[] | Promise<readonly T[]>,
    options?: GetOrCreateOptions<T>,
  ): Promise<T[]> {
    if (!this.#operations.observed('getOrCreateMulti')) return this.#getOrCreateMulti(keys, creator, options)
    return this.#operations.run('getOrCreateMulti', { keys }, () => this.#getOrCreateMulti(keys, creator, options))
  }

  async #getOrCreateMulti<T>(
    keys: readonly string[],
    creator: (...keys: string[]) => readonly T[] | Promise<readonly T[]>,
    options: GetOrCreateOptions<T> | undefined,
  ): Promise<T[]> {
    assertKeyList(keys, 'getOrCreateMulti')
    if (typeof creator !== 'function')
      throw new ValidationError(`getOrCreateMulti(): the creator must be a function; got ${describeValue(creator)}`)
    this.#requireBackend()
    const settings = resolveCallSettings(this.#callDefaults, options, GET_OR_CREATE_MULTI_OPTIONS, 'getOrCreateMulti')
    const { expirationMs, shouldCache, tags, policy } = settings
    const unique = [...new Set(keys)].sort()
    const storeKeys = unique.map((key) => this.#storeKey(key))
    const request = { keys: unique, storeKeys, creator, expirationMs, shouldCache, tags, policy }
    const values = await getOrCreateMulti(this.#lock, this.#internals, request)
    return keys.map((key) => values.get(key) as T)
  }

  // ---------------------------------------------------------------- writes

  /** Stores `value` under `key`, created now. */
  set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    if (!this.#operations.observed('set')) return writes.set(this.#internals, key, value, options)
    return this.#operations.run('set', { key }, () => writes.set(this.#internals, key, value, options))
  }

  /** Stores many values at once: a `Map` or a plain object of key → value. */
  setMulti(entries: ReadonlyMap<string, unknown> | Record<string, unknown>, options?: SetOptions): Promise<void> {
    if (!this.#operations.observed('setMulti')) return writes.setMulti(this.#internals, entries, options)
    const keys = entries instanceof Map ? [...entries.keys()] : Object.keys(entries ?? {})
    return this.#operations.run('setMulti', { keys }, () => writes.setMulti(this.#internals, entries, options))
  }

  /** Removes `key` (idempotent): the next read is a miss. Counted as a key invalidation. */
  delete(key: string): Promise<void> {
    if (!this.#operations.observed('delete')) return writes.deleteKey(this.#internals, key)
    return this.#operations.run('delete', { key }, () => writes.deleteKey(this.#internals, key))
  }

  /** Removes many keys (idempotent). */
  deleteMulti(keys: readonly string[]): Promise<void> {
    if (!this.#operations.observed('deleteMulti')) return writes.deleteMulti(this.#internals, keys)
    return this.#operations.run('deleteMulti', { keys }, () => writes.deleteMulti(this.#internals, keys))
  }

  /**
   * Invalidates every value created before now. Hard (the default): they become misses. Soft: they become stale,
   * served while one caller regenerates — which needs an expiration time.
   */
  invalidate(options: { hard?: boolean } = {}): Promise<void> {
    if (!this.#operations.observed('invalidate')) return writes.invalidate(this.#internals, options)
    const fields = { hard: options?.hard ?? true }
    return this.#operations.run('invalidate', fields, () => writes.invalidate(this.#internals, options))
  }

  /**
   * Invalidates every value carrying one of `tags` that was created before now — in every process sharing the
   * backend. Hard (the default): such values are misses. Soft: they are stale, served while one caller
   * regenerates, which needs an expiration time. Enforced lazily on read, like `invalidate()`.
   */
  invalidateTags(tags: readonly string[] | string, options: { hard?: boolean } = {}): Promise<void> {
    if (!this.#operations.observed('invalidateTags')) return writes.invalidateTags(this.#internals, tags, options)
    const fields = { tags: typeof tags === 'string' ? [tags] : tags, hard: options?.hard ?? true }
    return this.#operations.run('invalidateTags', fields, () => writes.invalidateTags(this.#internals, tags, options))
  }

  /**
   * A named group of keys that are invalidated together, from any process sharing the backend (wheezy.caching's
   * `CacheDependency`): `dep.add(key)` records a key, `dep.invalidate()` deletes every recorded key. Its
   * bookkeeping expires `expirationTime` after the last add (default: as long as the backends keep the values,
   * 2 x the region's expiration time + 60 s, or one day).
   */
  dependency(name: string, options: { expirationTime?: Duration } = {}): CacheDependency {
    rejectUnknown(options ?? {}, ['expirationTime'], 'dependency()')
    return CacheDependency.create(writes.dependencyHost(this.#internals), name, options)
  }

  /** The time of the last region invalidation still in force, in milliseconds, for each kind. */
  invalidationState(): { hardAt: number; softAt: number } {
    return this.#internals.freshness.invalidator.current()
  }

  /** Whether a creator holds the lock for `key`, in this process or (with a distributed lock) in any. */
  async keyIsLocked(key: string): Promise<boolean> {
    this.#requireBackend()
    return this.#lock.isLocked(this.#storeKey(key))
  }

  // ---------------------------------------------------------------- decorators

  /** Wraps `fn` so that calls are cached by their arguments (dogpile.cache's `cache_on_arguments`). */
  cacheOnArguments<Args extends unknown[], R, This = unknown>(
    fn: (this: This, ...args: Args) => R,
    options?: CacheOnArgumentsOptions<Awaited<R>, Args>,
  ): CachedFunction<Args, R, This> {
    return cacheOnArguments(this, fn, options)
  }

  /** Caches a function that takes many keys and returns one value per key (`cache_multi_on_arguments`). */
  cacheMultiOnArguments<A, R>(
    fn: (
      ...args: A[]
    ) => readonly R[] | Promise<readonly R[]> | Map<A, R> | Record<string, R> | Promise<Map<A, R> | Record<string, R>>,
    options?: CacheMultiOnArgumentsOptions<R>,
  ): CachedMultiFunction<A, R> {
    return cacheMultiOnArguments(this, fn, options)
  }

  /**
   * `cacheOnArguments` as a method decorator: `@region.cached({ expirationTime: '1m' })`, TC39 or legacy
   * (`experimentalDecorators`). `cachedMethod(instance, 'method')` reaches its helpers, typed.
   */
  cached<R>(options?: CacheOnArgumentsOptions<Awaited<R>, never[]>): CachedMethodDecorator<R> {
    return methodDecorator<R>(this, options)
  }

  // ---------------------------------------------------------------- telemetry

  /** Subscribes to a region event (see `RegionEventMap`). */
  on<Name extends RegionEventName>(name: Name, listener: RegionEventListener<Name>): this {
    this.#telemetry.hub.on(name, listener)
    return this
  }

  off<Name extends RegionEventName>(name: Name, listener: RegionEventListener<Name>): this {
    this.#telemetry.hub.off(name, listener)
    return this
  }

  /** The most requested keys over the tracker's sliding window, heaviest first. */
  hotKeys(limit?: number): HotKey[] {
    return this.#telemetry.instrumentation.hotKeys?.top(limit) ?? []
  }

  /** The sliding window of `hotKeys()`, in seconds (0 when hot-key tracking is off). */
  get hotKeysWindowSeconds(): number {
    return this.#telemetry.instrumentation.hotKeys?.windowSeconds ?? 0
  }

  statsSnapshot(): RegionStatsSnapshot {
    return this.stats.snapshot()
  }

  describe(): RegionDescription {
    return { name: this.name, backend: this.#backend?.name ?? null, expirationTime: this.#expirationTime ?? null }
  }

  // ---------------------------------------------------------------- life cycle

  /** Releases the connections this region opened (never a client or backend instance the user passed in). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const backend = this.#backend
    this.#backend = undefined
    this.#configuredBackend = undefined
    this.registry.remove(this)
    this.#telemetry.unregisterMetrics()
    await this.#internals.freshness.invalidator.close?.()
    if (this.#ownsBackend) await backend?.close?.()
  }

  // ---------------------------------------------------------------- internals

  /** Closes something the region no longer uses, in the background; a failure is reported, never thrown. */
  #closeQuietly(resource: { close?(): Promise<void> }): void {
    void (async () => resource.close?.())().catch((error: unknown) =>
      this.#telemetry.instrumentation.backendError('close', error),
    )
  }

  #requireBackend(): CacheBackend {
    return this.#backend ?? this.#notConfigured()
  }

  #notConfigured(): never {
    throw this.#notConfiguredError()
  }

  #notConfiguredError(): RegionNotConfiguredError {
    return new RegionNotConfiguredError(
      this.#closed
        ? `region "${this.name}" is closed`
        : `region "${this.name}" is not configured yet: call region.configure('memory', { expirationTime: '5m' }) (or another backend) before using it`,
    )
  }

  #storeKey(key: string): string {
    this.#requireBackend()
    if (typeof key !== 'string') throw new ValidationError(`cache keys must be strings; got ${describeValue(key)}`)
    return this.#mangler === undefined ? key : this.#mangler(key)
  }

  /** A creation/invalidation time: wall-clock milliseconds, strictly increasing within this region. */
  #stamp(): number {
    const now = this.#clock()
    this.#lastStamp = now > this.#lastStamp ? now : this.#lastStamp + 0.001
    return this.#lastStamp
  }
}
