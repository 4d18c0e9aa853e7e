import type { Span } from '@opentelemetry/api'
import type { Registry } from 'prom-client'
import { BackendAccess } from './backend-access.js'
import type { CacheBackend } from './backends/api.js'
import { parseL1Options, withL1 } from './backends/tier/configure.js'
import { TieredBackend } from './backends/tier/tiered-backend.js'
import { NO_VALUE, jsonSerializer, type NoValue, type Serializer } from './cached-value.js'
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
import { guardBackend, parseCircuitBreaker } from './circuit-breaker.js'
import { buildBackendChain, fromFlatConfig } from './configuration.js'
import { CacheDependency, type DependencyHost } from './dependency.js'
import { coarseWallClock, wallClock } from './clock.js'
import { describeValue } from './describe-value.js'
import { parseExpiration, type Duration } from './durations.js'
import { RegionAlreadyConfiguredError, RegionNotConfiguredError, ValidationError } from './errors.js'
import { Freshness, type Lookup } from './freshness.js'
import { LocalInvalidator } from './invalidation.js'
import {
  functionKeyGenerator,
  functionMultiKeyGenerator,
  type KeyGenerator,
  type KeyMangler,
  type MultiKeyGenerator,
} from './keys.js'
import type { AsyncCreationRunner } from './lock/async-runner.js'
import { DogpileLock, callSettings, type CallInfo, type CallSettings, type LockHost } from './lock/dogpile.js'
import { getOrCreateMulti } from './lock/multi.js'
import type {
  ConfigureOptions,
  Creator,
  GetOptions,
  GetOrCreateOptions,
  GetOrCreateResult,
  RegionDescription,
  RegionOptions,
  SetOptions,
  ValueMetadata,
} from './region-options.js'
import type { RegionRegistry } from './registry.js'
import { validateTags } from './tags.js'
import {
  NO_POLICY,
  RESILIENCE_OPTION_NAMES,
  createValue,
  rejectUnknown,
  resolvePolicy,
  setsPolicy,
  type Policy,
} from './policy.js'
import { CallReporter } from './telemetry/call-reporter.js'
import { EventHub, type RegionEventListener, type RegionEventName, type Tier } from './telemetry/events.js'
import { HotKeyTracker, type HotKey } from './telemetry/hot-keys.js'
import { Instrumentation } from './telemetry/instrumentation.js'
import { CorralMetrics } from './telemetry/metrics.js'
import { tracingChannels } from './telemetry/channels.js'
import { RegionOperations } from './telemetry/operations.js'
import { fanOut, openTelemetryMetrics } from './telemetry/otel-metrics.js'
import { RegionStats, type RegionStatsSnapshot } from './telemetry/stats.js'
import { RegionTracing } from './telemetry/tracing.js'

/** The hit path reads this channel directly: a lookup by operation name would cost it measurably. */
const GET_OR_CREATE_CHANNEL = tracingChannels.getOrCreate

const CONFIGURE_OPTIONS = [
  'expirationTime',
  'arguments',
  'wrap',
  'replaceExistingBackend',
  'regionInvalidator',
  'circuitBreaker',
  'l1',
  ...RESILIENCE_OPTION_NAMES,
]
const GET_OPTIONS = ['expirationTime', 'ignoreExpiration']
const GET_OR_CREATE_OPTIONS = ['expirationTime', 'shouldCache', 'tags', 'forceRefresh', ...RESILIENCE_OPTION_NAMES]
const GET_OR_CREATE_MULTI_OPTIONS = ['expirationTime', 'shouldCache', 'tags', 'expirationJitter']
const SET_OPTIONS = ['tags']

/** Seconds → milliseconds, `Infinity` for "never expires". */
const expirationToMs = (seconds: number | undefined) =>
  seconds === undefined ? Number.POSITIVE_INFINITY : seconds * 1000

/**
 * A cache region: a named, configured cache whose `getOrCreate` runs at most one creator per key at a time —
 * across processes when the backend has a distributed lock — while other callers get the stale value at once or
 * wait for that creator (dogpile.cache's region and lock). Create it with `createRegion()`; configure it later.
 */
export class CacheRegion {
  readonly name: string
  readonly registry: RegionRegistry
  readonly keyGenerator: KeyGenerator
  readonly multiKeyGenerator: MultiKeyGenerator
  readonly asyncCreationRunner: AsyncCreationRunner | undefined
  readonly serializer: Serializer
  readonly stats = new RegionStats()

  /** what the region calls: the configured backend, behind its circuit breaker when it has one */
  #backend: CacheBackend | undefined
  /** the configured backend (the outermost proxy when `wrap` was used), as `backend` returns it */
  #configuredBackend: CacheBackend | undefined
  #ownsBackend = false
  #mangler: KeyMangler | undefined
  readonly #userMangler: KeyMangler | false | undefined
  #expirationTime: number | undefined
  #expirationMs = Number.POSITIVE_INFINITY
  #coalesce = true
  /** fail-safe, timeouts, eager refresh and jitter defaults (configure's resilience options) */
  #policy: Policy = NO_POLICY
  /** the settings of a `getOrCreate` call without options, made once per `configure` */
  #callDefaults: CallSettings = callSettings(Number.POSITIVE_INFINITY, undefined, undefined, NO_POLICY, false)
  readonly #hub: EventHub
  readonly #instrumentation: Instrumentation
  readonly #tracing: RegionTracing | undefined
  /** the operations' tracing channels and spans */
  readonly #operations: RegionOperations
  /** whether a `getOrCreate` starts its span before the lock runs (backend spans; see `RegionTracing.callScope`) */
  readonly #callScopes: boolean
  readonly #metricsRegistry: Registry | undefined
  readonly #clock: () => number
  readonly #freshness: Freshness
  readonly #access: BackendAccess
  readonly #lockHost: LockHost
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
    const telemetry = options.telemetry === false ? undefined : (options.telemetry ?? {})
    this.#hub = new EventHub((error, event) => registry.reportListenerError(error, this.name, event))
    const hotKeys =
      telemetry && telemetry.hotKeys !== false
        ? new HotKeyTracker({ clock: options.clock, ...telemetry.hotKeys })
        : undefined
    this.#instrumentation = new Instrumentation(
      name,
      this.stats,
      this.#hub,
      registry.hub,
      hotKeys,
      registry.stampedes,
      options.logger,
    )
    const backendName = () => this.#backend?.name ?? 'unconfigured'
    this.#tracing = telemetry
      ? new RegionTracing(name, backendName, telemetry.recordKeys ?? true, telemetry.backendSpans === true)
      : undefined
    this.#operations = new RegionOperations(name, backendName, this.#tracing)
    this.#callScopes = this.#tracing?.backend !== undefined
    this.#metricsRegistry = telemetry ? (telemetry.metricsRegistry ?? registry.metrics) : undefined
    const reportError = (operation: string, error: unknown) => this.#instrumentation.backendError(operation, error)
    // The hit path's expiry check reads a coarse clock unless a clock was injected (see clock.ts).
    this.#freshness = new Freshness(this.#clock, reportError, options.clock ?? coarseWallClock)
    this.#access = new BackendAccess(name, reportError, this.#tracing)
    // The lock reaches the region only through this host.
    this.#lockHost = {
      region: this,
      asyncCreationRunner: this.asyncCreationRunner,
      backend: () => this.#requireBackend(),
      coalesce: () => this.#coalesce,
      freshness: this.#freshness,
      access: this.#access,
      report: new CallReporter(this.#instrumentation, this.#tracing, this.#clock),
      stamp: () => this.#stamp(),
      now: () => this.#clock(),
    }
    this.#lock = new DogpileLock(this.#lockHost)
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
    const expirationTime = parseExpiration(options.expirationTime, `region "${this.name}": expirationTime`)
    const policy = resolvePolicy(
      NO_POLICY,
      options,
      `region "${this.name}": configure()`,
      expirationToMs(expirationTime === Number.POSITIVE_INFINITY ? undefined : expirationTime),
    )
    const breaker = parseCircuitBreaker(options.circuitBreaker, `region "${this.name}": configure()`)
    const l1 = parseL1Options(options.l1, `region "${this.name}": configure()`)
    const previous = this.#backend
    const previousOwned = this.#ownsBackend
    // Build the whole chain before changing any state, so a configure() that fails changes nothing.
    const closeQuietly = (built: CacheBackend) => this.#closeQuietly(built)
    let chain = buildBackendChain(backend, options, closeQuietly)
    const configured = chain.instance
    // The circuit breaker goes around the backend that lives outside the process (behind the L1, if any).
    const guarded = guardBackend(configured, breaker, (state) => this.#instrumentation.circuit(configured.name, state))
    chain = { instance: guarded, owned: chain.owned }
    // The L1 goes in front of everything (proxies included): its hits never reach the backend.
    if (l1 !== undefined)
      chain = withL1(chain, l1, {
        regionName: this.name,
        observer: { evicted: (cause, count) => this.#instrumentation.l1Evicted(cause, count) },
        ...(this.#clock === wallClock ? {} : { clock: this.#clock }),
        closeQuietly,
      })
    const { instance, owned } = chain
    this.#ownsBackend = owned

    this.#backend = instance
    // `backend` is what the user configured (the L1 in front of it when there is one), never the breaker.
    this.#configuredBackend = instance === guarded ? configured : instance
    this.stats.circuit = guarded === configured ? null : { backend: configured.name, state: 'closed' }
    this.#expirationTime = expirationTime === Number.POSITIVE_INFINITY ? undefined : expirationTime
    this.#expirationMs = expirationToMs(this.#expirationTime)
    this.#policy = policy
    this.#callDefaults = callSettings(this.#expirationMs, undefined, undefined, policy, false)
    this.#coalesce = instance.coalesce !== false
    this.#mangler = this.#userMangler === false ? undefined : (this.#userMangler ?? instance.keyMangler)
    instance.attach?.({
      regionName: this.name,
      expirationTime: this.#expirationTime,
      failSafeMaxStaleAge: policy.failSafe === undefined ? undefined : policy.failSafe.maxStaleAgeMs / 1000,
      serializer: this.serializer,
      reportError: (operation, error) => this.#instrumentation.backendError(operation, error),
    })
    const current = this.#freshness.invalidator
    const invalidator =
      options.regionInvalidator ??
      instance.createInvalidator?.(this.name) ??
      (current instanceof LocalInvalidator ? current : new LocalInvalidator())
    if (invalidator !== current) {
      this.#freshness.invalidator = invalidator
      this.#closeQuietly(current)
    }
    if (previous && previousOwned && previous !== this.#backend) {
      // A replaced backend that the region created itself would otherwise keep its connections open.
      this.#closeQuietly(previous)
    }
    if (!previous && this.#metricsRegistry) {
      const source = {
        name: this.name,
        stats: this.stats,
        backendName: () => this.#backend?.name,
        entryCount: () => this.#backend?.count?.(),
        l1EntryCount: () => (this.#backend instanceof TieredBackend ? this.#backend.l1Size : undefined),
      }
      this.#instrumentation.observers = fanOut(
        CorralMetrics.for(this.#metricsRegistry).add(source),
        openTelemetryMetrics.add(source),
      )
    }
    return this
  }

  /**
   * Configures from a flat string map, as dogpile.cache's `configure_from_config`: reads `${prefix}backend`,
   * `${prefix}expiration_time` and every `${prefix}arguments.<name>` (numbers and booleans given as strings are
   * converted by the backend's argument checks).
   */
  configureFromConfig(config: Record<string, unknown>, prefix: string): this {
    const { backend, options } = fromFlatConfig(config, prefix)
    return this.configure(backend, options)
  }

  // ---------------------------------------------------------------- reads

  /** The value for `key`, or `NO_VALUE` if it is absent, expired or invalidated. */
  get<T = unknown>(key: string, options?: GetOptions): Promise<T | NoValue> {
    if (!this.#operations.observed('get')) return this.#get<T>(key, options)
    return this.#operations.run('get', { key }, () => this.#get<T>(key, options), describeGet)
  }

  async #get<T>(key: string, options: GetOptions | undefined): Promise<T | NoValue> {
    if (options !== undefined) rejectUnknown(options, GET_OPTIONS, 'get()')
    const backend = this.#requireBackend()
    const storeKey = this.#storeKey(key)
    const expirationMs = this.#callExpirationMs(options?.expirationTime)
    // This process's memory first (the memory backend, an L1), as getOrCreate reads.
    let tier: Tier = 'l1'
    const copy = backend.getSync?.(storeKey)
    let lookup = copy === undefined ? undefined : await this.#freshness.lookup(copy, expirationMs)
    // A copy that is not fresh is checked against the backend: another process may have made a newer value there.
    if (lookup === undefined || (lookup.state !== 'fresh' && copy !== NO_VALUE)) {
      tier = 'l2'
      lookup = await this.#freshness.lookup(await this.#access.read(backend, storeKey), expirationMs)
    }
    return this.#answerGet(key, lookup, options?.ignoreExpiration === true, tier) as T | NoValue
  }

  /** Values in key order, `NO_VALUE` where missing: one backend round trip. */
  getMulti<T = unknown>(keys: readonly string[], options?: GetOptions): Promise<Array<T | NoValue>> {
    if (!this.#operations.observed('getMulti')) return this.#getMulti<T>(keys, options)
    return this.#operations.run('getMulti', { keys }, () => this.#getMulti<T>(keys, options), describeGetMulti)
  }

  async #getMulti<T>(keys: readonly string[], options: GetOptions | undefined): Promise<Array<T | NoValue>> {
    if (options !== undefined) rejectUnknown(options, GET_OPTIONS, 'getMulti()')
    assertKeyList(keys, 'getMulti')
    const backend = this.#requireBackend()
    const expirationMs = this.#callExpirationMs(options?.expirationTime)
    const { values: stored, tiers } = await this.#access.readMultiThrough(
      backend,
      keys.map((key) => this.#storeKey(key)),
    )
    await this.#freshness.loadTagsOf(stored)
    const lookups = stored.map((value) => this.#freshness.classify(value ?? NO_VALUE, expirationMs))
    // Copies from this process's memory that are not fresh are checked against the backend (as in get()).
    const recheck = lookups.flatMap((lookup, i) =>
      tiers[i] === 'l1' && lookup.state !== 'fresh' && stored[i] !== NO_VALUE ? [i] : [],
    )
    if (recheck.length > 0) {
      const again = await this.#access.readMulti(
        backend,
        recheck.map((i) => this.#storeKey(keys[i]!)),
      )
      await this.#freshness.loadTagsOf(again)
      recheck.forEach((i, j) => {
        lookups[i] = this.#freshness.classify(again[j] ?? NO_VALUE, expirationMs)
        tiers[i] = 'l2'
      })
    }
    const ignore = options?.ignoreExpiration === true
    return keys.map((key, i) => this.#answerGet(key, lookups[i]!, ignore, tiers[i]!) as T | NoValue)
  }

  #answerGet(key: string, lookup: Lookup, ignoreExpiration: boolean, tier: Tier): unknown {
    if (lookup.state === 'fresh') {
      this.#instrumentation.hit(key, tier)
      return lookup.value
    }
    if (lookup.state === 'stale') {
      if (ignoreExpiration) {
        this.#instrumentation.stale(key, (this.#clock() - lookup.ct) / 1000)
        return lookup.value
      }
      this.#instrumentation.miss(key, lookup.reason)
      return NO_VALUE
    }
    this.#instrumentation.miss(key, lookup.reason)
    return NO_VALUE
  }

  /** The value with its creation time and age (seconds), regardless of expiry; undefined when absent. */
  async getValueMetadata<T = unknown>(key: string): Promise<ValueMetadata<T> | undefined> {
    const backend = this.#requireBackend()
    const storeKey = this.#storeKey(key)
    let stored = backend.getSync?.(storeKey)
    // A copy that is not fresh is checked against the backend (as in get()).
    if (stored === undefined || (stored !== NO_VALUE && !this.#freshness.isFresh(stored, this.#expirationMs)))
      stored = await this.#access.read(backend, storeKey)
    if (stored === NO_VALUE || Number.isNaN(stored.ct)) return undefined
    await this.#freshness.loadTagsOf([stored])
    if (this.#freshness.isHardInvalidated(stored)) return undefined
    return {
      value: stored.payload as T,
      cachedTime: stored.ct / 1000,
      age: (this.#clock() - stored.ct) / 1000,
    }
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
    if (!GET_OR_CREATE_CHANNEL.hasSubscribers && !this.#callScopes) {
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
    return this.#observedGetOrCreate(key, creator, options, undefined, 'getOrCreate')
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
    const value = this.#operations.observed('getOrCreate')
      ? await this.#observedGetOrCreate(key, creator, options, info, 'getOrCreateResult')
      : await this.#getOrCreate(key, creator, options, info, 'getOrCreateResult')
    return { value, ...info }
  }

  /**
   * `getOrCreate` (or `getOrCreateResult`) through its tracing channel and span: the channel's message says how the
   * value was obtained (`outcome`, `tier`, `created`) by the time `asyncEnd` is published.
   */
  #observedGetOrCreate<T>(
    key: string,
    creator: Creator<T>,
    options: GetOrCreateOptions<T> | undefined,
    info: CallInfo | undefined,
    method: string,
  ): Promise<T> {
    return this.#operations.run('getOrCreate', { key }, (message) => {
      if (message === undefined) return this.#getOrCreate(key, creator, options, info, method)
      const how: CallInfo = info ?? { result: 'miss', tier: undefined, created: false }
      return this.#getOrCreate(key, creator, options, how, method).then((value) => {
        message.outcome = how.result
        message.tier = how.tier
        message.created = how.created
        return value
      })
    })
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
      if (options === undefined) return this.#lock.getOrCreate(key, storeKey, creator, this.#callDefaults, info)
      rejectUnknown(options, GET_OR_CREATE_OPTIONS, `${method}()`)
      const expirationMs =
        options.expirationTime === undefined ? this.#expirationMs : this.#callExpirationMs(options.expirationTime)
      const tags = options.tags === undefined ? undefined : validateTags(options.tags, method)
      const policy = setsPolicy(options)
        ? resolvePolicy(this.#policy, options, `${method}()`, expirationMs)
        : this.#policy
      if (options.forceRefresh !== undefined && typeof options.forceRefresh !== 'boolean')
        throw new ValidationError(
          `${method}(): forceRefresh must be a boolean; got ${describeValue(options.forceRefresh)}`,
        )
      const settings = callSettings(expirationMs, options.shouldCache, tags, policy, options.forceRefresh === true)
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
    if (options !== undefined) rejectUnknown(options, GET_OR_CREATE_MULTI_OPTIONS, 'getOrCreateMulti()')
    const expirationMs = this.#callExpirationMs(options?.expirationTime)
    const tags = options?.tags === undefined ? undefined : validateTags(options.tags, 'getOrCreateMulti')
    const policy =
      options !== undefined && setsPolicy(options)
        ? resolvePolicy(this.#policy, options, 'getOrCreateMulti()', expirationMs)
        : this.#policy
    const unique = [...new Set(keys)].sort()
    const values = await getOrCreateMulti(this.#lock, this.#lockHost, {
      keys: unique,
      storeKeys: unique.map((key) => this.#storeKey(key)),
      creator,
      expirationMs,
      shouldCache: options?.shouldCache,
      tags,
      policy,
    })
    return keys.map((key) => values.get(key) as T)
  }

  // ---------------------------------------------------------------- writes

  /** Stores `value` under `key`, created now. */
  set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    if (!this.#operations.observed('set')) return this.#set(key, value, options)
    return this.#operations.run('set', { key }, () => this.#set(key, value, options))
  }

  async #set(key: string, value: unknown, options: SetOptions | undefined): Promise<void> {
    if (options !== undefined) rejectUnknown(options, SET_OPTIONS, 'set()')
    const tags = options?.tags === undefined ? undefined : validateTags(options.tags, 'set')
    await this.#access.store(
      this.#requireBackend(),
      this.#storeKey(key),
      createValue(value, this.#stamp(), tags, this.#policy),
    )
  }

  /** Stores many values at once: a `Map` or a plain object of key → value. */
  setMulti(entries: ReadonlyMap<string, unknown> | Record<string, unknown>, options?: SetOptions): Promise<void> {
    if (!this.#operations.observed('setMulti')) return this.#setMulti(entries, options)
    const keys = entries instanceof Map ? [...entries.keys()] : Object.keys(entries ?? {})
    return this.#operations.run('setMulti', { keys }, () => this.#setMulti(entries, options))
  }

  async #setMulti(
    entries: ReadonlyMap<string, unknown> | Record<string, unknown>,
    options: SetOptions | undefined,
  ): Promise<void> {
    if (options !== undefined) rejectUnknown(options, SET_OPTIONS, 'setMulti()')
    const tags = options?.tags === undefined ? undefined : validateTags(options.tags, 'setMulti')
    if (entries === null || typeof entries !== 'object')
      throw new ValidationError(`setMulti(): entries must be a Map or an object; got ${describeValue(entries)}`)
    const ct = this.#stamp()
    const pairs = entries instanceof Map ? [...entries] : Object.entries(entries)
    await this.#access.storeMulti(
      this.#requireBackend(),
      pairs.map(([key, value]) => [this.#storeKey(key), createValue(value, ct, tags, this.#policy)] as const),
    )
  }

  /** Removes `key` (idempotent): the next read is a miss. Counted as a key invalidation. */
  delete(key: string): Promise<void> {
    if (!this.#operations.observed('delete')) return this.#delete(key)
    return this.#operations.run('delete', { key }, () => this.#delete(key))
  }

  async #delete(key: string): Promise<void> {
    const backend = this.#requireBackend()
    const storeKey = this.#storeKey(key)
    await this.#access.write('delete', () => backend.delete(storeKey), backend, storeKey)
    this.#instrumentation.invalidate(true, 'key', this.#clock(), key)
  }

  /** Removes many keys (idempotent). */
  deleteMulti(keys: readonly string[]): Promise<void> {
    if (!this.#operations.observed('deleteMulti')) return this.#deleteMulti(keys)
    return this.#operations.run('deleteMulti', { keys }, () => this.#deleteMulti(keys))
  }

  async #deleteMulti(keys: readonly string[]): Promise<void> {
    assertKeyList(keys, 'deleteMulti')
    const backend = this.#requireBackend()
    const storeKeys = keys.map((key) => this.#storeKey(key))
    await this.#access.write('deleteMulti', () => backend.deleteMulti(storeKeys), backend, storeKeys)
    const at = this.#clock()
    for (const key of keys) this.#instrumentation.invalidate(true, 'key', at, key)
  }

  /**
   * Invalidates every value created before now. Hard (the default): they become misses. Soft: they become stale,
   * served while one caller regenerates — which needs an expiration time.
   */
  invalidate(options: { hard?: boolean } = {}): Promise<void> {
    if (!this.#operations.observed('invalidate')) return this.#invalidate(options)
    return this.#operations.run('invalidate', { hard: options?.hard ?? true }, () => this.#invalidate(options))
  }

  async #invalidate(options: { hard?: boolean }): Promise<void> {
    rejectUnknown(options ?? {}, ['hard'], 'invalidate()')
    this.#requireBackend()
    const hard = this.#invalidationKind(options, 'invalidate', 'invalidate({ hard: true })')
    const at = this.#stamp()
    await this.#traced('region', hard, [], () =>
      this.#access.write('invalidate', () => this.#freshness.invalidator.invalidate(hard, at), this.backend),
    )
    this.#instrumentation.invalidate(hard, 'region', at)
  }

  /**
   * Invalidates every value carrying one of `tags` that was created before now — in every process sharing the
   * backend. Hard (the default): such values are misses. Soft: they are stale, served while one caller
   * regenerates, which needs an expiration time. Enforced lazily on read, like `invalidate()`.
   */
  invalidateTags(tags: readonly string[] | string, options: { hard?: boolean } = {}): Promise<void> {
    if (!this.#operations.observed('invalidateTags')) return this.#invalidateTags(tags, options)
    const fields = { tags: typeof tags === 'string' ? [tags] : tags, hard: options?.hard ?? true }
    return this.#operations.run('invalidateTags', fields, () => this.#invalidateTags(tags, options))
  }

  async #invalidateTags(tags: readonly string[] | string, options: { hard?: boolean }): Promise<void> {
    rejectUnknown(options ?? {}, ['hard'], 'invalidateTags()')
    this.#requireBackend()
    const list = validateTags(typeof tags === 'string' ? [tags] : tags, 'invalidateTags', { atLeastOne: true })
    const hard = this.#invalidationKind(options, 'invalidateTags', 'invalidateTags(tags, { hard: true })')
    const invalidator = this.#freshness.invalidator
    if (!invalidator.invalidateTags) {
      throw new ValidationError(`region "${this.name}": its invalidator does not support tags`)
    }
    const at = this.#stamp()
    await this.#traced('tag', hard, list, () =>
      this.#access.write('invalidateTags', () => invalidator.invalidateTags!(list, hard, at), this.backend),
    )
    for (const tag of list) this.#instrumentation.invalidateTag(hard, tag, at)
  }

  /**
   * A named group of keys that are invalidated together, from any process sharing the backend (wheezy.caching's
   * `CacheDependency`): `dep.add(key)` records a key, `dep.invalidate()` deletes every recorded key. Its
   * bookkeeping expires `expirationTime` after the last add (default: as long as the backends keep the values,
   * 2 x the region's expiration time + 60 s, or one day).
   */
  dependency(name: string, options: { expirationTime?: Duration } = {}): CacheDependency {
    rejectUnknown(options ?? {}, ['expirationTime'], 'dependency()')
    const host: DependencyHost = {
      name: this.name,
      expirationTime: this.#expirationTime,
      backend: () => this.#requireBackend(),
      storeKey: (key) => this.#storeKey(key),
      now: () => this.#stamp(),
      deleteDependents: async (dependency, storeKeys, keys) => {
        const backend = this.#requireBackend()
        await this.#traced('dependency', true, [dependency], () =>
          this.#access.write('invalidateDependency', () => backend.deleteMulti(storeKeys), backend, storeKeys),
        )
        this.#instrumentation.invalidateDependency(dependency, keys, this.#clock())
      },
    }
    return CacheDependency.create(host, name, options)
  }

  /** The time of the last region invalidation still in force, in milliseconds, for each kind. */
  invalidationState(): { hardAt: number; softAt: number } {
    return this.#freshness.invalidator.current()
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
    this.#hub.on(name, listener)
    return this
  }

  off<Name extends RegionEventName>(name: Name, listener: RegionEventListener<Name>): this {
    this.#hub.off(name, listener)
    return this
  }

  /** The most requested keys over the tracker's sliding window, heaviest first. */
  hotKeys(limit?: number): HotKey[] {
    return this.#instrumentation.hotKeys?.top(limit) ?? []
  }

  /** The sliding window of `hotKeys()`, in seconds (0 when hot-key tracking is off). */
  get hotKeysWindowSeconds(): number {
    return this.#instrumentation.hotKeys?.windowSeconds ?? 0
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
    this.#instrumentation.observers?.remove()
    await this.#freshness.invalidator.close?.()
    if (this.#ownsBackend) await backend?.close?.()
  }

  // ---------------------------------------------------------------- internals

  /** Closes something the region no longer uses, in the background; a failure is reported, never thrown. */
  #closeQuietly(resource: { close?(): Promise<void> }): void {
    void (async () => resource.close?.())().catch((error: unknown) =>
      this.#instrumentation.backendError('close', error),
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

  #callExpirationMs(expirationTime: Duration | undefined): number {
    if (expirationTime === undefined) return this.#expirationMs
    return expirationToMs(parseExpiration(expirationTime, 'expirationTime'))
  }

  /** A creation/invalidation time: wall-clock milliseconds, strictly increasing within this region. */
  #stamp(): number {
    const now = this.#clock()
    this.#lastStamp = now > this.#lastStamp ? now : this.#lastStamp + 0.001
    return this.#lastStamp
  }

  /** `hard` of an invalidation's options; soft needs an expiration time to compare with. */
  #invalidationKind(options: { hard?: boolean }, method: string, hardCall: string): boolean {
    const hard = options.hard ?? true
    if (typeof hard !== 'boolean')
      throw new ValidationError(`${method}(): hard must be a boolean; got ${describeValue(hard)}`)
    if (!hard && this.#expirationTime === undefined) {
      throw new ValidationError(
        `region "${this.name}" has no expiration time, so soft invalidation has nothing to compare with: configure an expirationTime or use ${hardCall}`,
      )
    }
    return hard
  }

  /** Runs an invalidation inside a `corral.invalidate` span when tracing is on. */
  #traced(scope: string, hard: boolean, targets: readonly string[], run: () => Promise<void>): Promise<void> {
    return this.#tracing?.enabled ? this.#tracing.invalidation(scope, hard, targets, run) : run()
  }
}

/** A `corral.get` span's result: whether the read found a value. */
function describeGet(value: unknown, span: Span): void {
  span.setAttribute('corral.result', value === NO_VALUE ? 'miss' : 'hit')
}

/** A `corral.get_multi` span's count of keys that had a value. */
function describeGetMulti(values: readonly unknown[], span: Span): void {
  span.setAttribute('corral.hit_count', values.filter((value) => value !== NO_VALUE).length)
}

function assertKeyList(keys: unknown, method: string): asserts keys is readonly string[] {
  if (!Array.isArray(keys) || keys.some((key) => typeof key !== 'string')) {
    throw new ValidationError(`${method}(): keys must be an array of strings; got ${describeValue(keys)}`)
  }
}
