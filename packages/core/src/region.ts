import type { Link, Span } from '@opentelemetry/api'
import type { Registry } from 'prom-client'
import type { CacheBackend, CacheMutex, RegionInvalidator } from './backends/api.js'
import { createBackend } from './backends/plugins.js'
import { ProxyBackend } from './backends/proxy.js'
import { CachedValue, FORMAT_VERSION, NO_VALUE, jsonSerializer, type NoValue, type Serializer } from './cached-value.js'
import {
  cacheMultiOnArguments,
  cacheOnArguments,
  cachedMethod,
  type CachedFunction,
  type CachedMultiFunction,
  type CacheMultiOnArgumentsOptions,
  type CacheOnArgumentsOptions,
} from './decorators.js'
import { parseExpiration, type Duration } from './durations.js'
import { describeValue } from './describe-value.js'
import {
  BackendError,
  CorralError,
  LockTimeoutError,
  RegionAlreadyConfiguredError,
  RegionNotConfiguredError,
  SerializationError,
  ValidationError,
} from './errors.js'
import { CacheDependency, type DependencyHost } from './dependency.js'
import { LocalInvalidator } from './invalidation.js'
import {
  functionKeyGenerator,
  functionMultiKeyGenerator,
  type KeyGenerator,
  type KeyMangler,
  type MultiKeyGenerator,
} from './keys.js'
import { FlightTable, type Flight } from './lock.js'
import type { RegionRegistry } from './registry.js'
import { EventHub, type MissReason, type RegionEventListener, type RegionEventName } from './telemetry/events.js'
import { HotKeyTracker, type HotKey, type HotKeyTrackerOptions } from './telemetry/hot-keys.js'
import { Instrumentation, type Logger } from './telemetry/instrumentation.js'
import { CorralMetrics } from './telemetry/metrics.js'
import { RegionStats, type RegionStatsSnapshot } from './telemetry/stats.js'
import { RegionTracing, endSpan, type GetResult } from './telemetry/tracing.js'
import { MAX_TAG_LENGTH, validateTags } from './tags.js'

export type Creator<T> = () => T | Promise<T>
export type ShouldCache<T> = (value: T) => boolean

/**
 * Receives the regeneration of a stale value, so the caller that took the lock can return the stale value at
 * once (dogpile.cache's `async_creation_runner`). `creator` runs the creator and stores its value (with the
 * region's `shouldCache`, serializer and telemetry); the runner decides when and where it runs, and must call
 * `mutex.release()` when it is done. If the runner returns a promise, the lock is also released when it settles.
 */
export type AsyncCreationRunner = (
  region: CacheRegion,
  key: string,
  creator: () => Promise<unknown>,
  mutex: { release(): Promise<void> },
) => void | Promise<void>

/** An async creation runner that regenerates on the next turn of the event loop. */
export const backgroundRunner: AsyncCreationRunner = (_region, _key, creator, mutex) => {
  setImmediate(() => {
    creator()
      .catch(() => {
        // the failure was already reported as a `regenerate` event with outcome `error`
      })
      .finally(() => mutex.release())
  })
}

export interface TelemetryOptions {
  /** Register Corral's metrics on this prom-client Registry instead of the region registry's `metrics`. */
  metricsRegistry?: Registry
  /** Put cache keys in span attributes (`corral.key`). Default true. Keys never appear in metric labels. */
  recordKeys?: boolean
  /** Hot-key tracking options, or `false` to turn it off. */
  hotKeys?: false | HotKeyTrackerOptions
}

export interface RegionOptions {
  /** Unique within its registry; omitted → a unique generated name. */
  name?: string
  keyGenerator?: KeyGenerator
  multiKeyGenerator?: MultiKeyGenerator
  /** Applied to every key before it reaches the backend; `false` disables the backend's default mangler. */
  keyMangler?: KeyMangler | false
  asyncCreationRunner?: AsyncCreationRunner
  /** How backends that store bytes encode values. JSON by default. */
  serializer?: Serializer
  /** Default: the process-wide `regions`. */
  registry?: RegionRegistry
  /** Metrics, hot keys and span options; `false` turns metrics, hot keys and spans off (events still work). */
  telemetry?: TelemetryOptions | false
  /** pino-style logger for dogpile.cache's debug lines. */
  logger?: Logger
  /** Milliseconds since the epoch; injectable so tests control expiry without sleeping. */
  clock?: () => number
}

export type WrapEntry = ProxyBackend | (new () => ProxyBackend)

export interface ConfigureOptions {
  /** Seconds, or '30s' / '5m' ...; omitted: values never expire (hard invalidation still applies). */
  expirationTime?: Duration
  /** The backend's arguments (ignored when `backend` is an instance). */
  arguments?: Record<string, unknown>
  /** Proxy backends to chain in front of the backend: `[A, B]` makes `A -> B -> backend`. */
  wrap?: WrapEntry[]
  /** Allow configuring a region that already has a backend. */
  replaceExistingBackend?: boolean
  /** Where invalidation marks live; default: the backend's (shared across processes) or this process's. */
  regionInvalidator?: RegionInvalidator
}

export interface GetOptions {
  /** Overrides the region's expiration time for this read (`-1`: never expires). */
  expirationTime?: Duration
  /** Return a value even if it expired or was soft-invalidated (not if hard-invalidated). */
  ignoreExpiration?: boolean
}

export interface GetOrCreateOptions<T> {
  /** Overrides the region's expiration time for this call (`-1`: never expires). */
  expirationTime?: Duration
  /** Decides whether the creator's value is stored; it is returned either way. */
  shouldCache?: ShouldCache<T>
  /** Tags stored with a created value, for `invalidateTags()`. */
  tags?: readonly string[]
}

export interface SetOptions {
  /** Tags stored with the value, for `invalidateTags()`. */
  tags?: readonly string[]
}

export interface ValueMetadata<T = unknown> {
  value: T
  /** seconds since the epoch when the value was created */
  cachedTime: number
  /** seconds since then */
  age: number
}

export interface RegionDescription {
  name: string
  backend: string | null
  /** seconds, or null for "never expires" */
  expirationTime: number | null
}

/** What a read found, classified against expiry and invalidation. */
type Lookup =
  | { readonly state: 'fresh'; readonly value: unknown }
  | {
      readonly state: 'stale'
      readonly value: unknown
      readonly ct: number
      readonly reason: 'expired' | 'invalidated'
    }
  | { readonly state: 'absent'; readonly reason: MissReason }

const ABSENT: Lookup = { state: 'absent', reason: 'absent' }
const HARD_INVALIDATED: Lookup = { state: 'absent', reason: 'invalidated' }

/** Seconds → milliseconds, `Infinity` for "never". */
const toMs = (seconds: number | undefined) => (seconds === undefined ? Number.POSITIVE_INFINITY : seconds * 1000)

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

  #backend: CacheBackend | undefined
  #ownsBackend = false
  #mangler: KeyMangler | undefined
  readonly #userMangler: KeyMangler | false | undefined
  #expirationTime: number | undefined
  #expirationMs = Number.POSITIVE_INFINITY
  #invalidator: RegionInvalidator = new LocalInvalidator()
  #coalesce = true
  readonly #flights = new FlightTable()
  readonly #hub: EventHub
  readonly #instrumentation: Instrumentation
  readonly #tracing: RegionTracing | undefined
  readonly #metricsRegistry: Registry | undefined
  readonly #clock: () => number
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
    this.#clock = options.clock ?? Date.now
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
    this.#tracing = telemetry
      ? new RegionTracing(name, () => this.#backend?.name ?? 'unconfigured', telemetry.recordKeys ?? true)
      : undefined
    this.#metricsRegistry = telemetry ? (telemetry.metricsRegistry ?? registry.metrics) : undefined
  }

  // ---------------------------------------------------------------- configuration

  /** Whether `configure()` has given the region a backend. */
  get isConfigured(): boolean {
    return this.#backend !== undefined
  }

  /** The configured backend (the outermost proxy when `wrap` was used). */
  get backend(): CacheBackend {
    return this.#backend ?? this.#notConfigured()
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
    if (this.#backend && !options.replaceExistingBackend) {
      throw new RegionAlreadyConfiguredError(
        `region "${this.name}" already has a backend (${this.#backend.name}); pass { replaceExistingBackend: true } to replace it`,
      )
    }
    const expirationTime = parseExpiration(options.expirationTime, `region "${this.name}": expirationTime`)
    const previous = this.#backend
    const previousOwned = this.#ownsBackend
    // Build the whole chain before changing any state, so a configure() that fails changes nothing.
    const owned = typeof backend === 'string'
    let instance: CacheBackend
    if (owned) {
      instance = createBackend(backend, options.arguments ?? {})
    } else if (isBackend(backend)) {
      instance = backend
    } else {
      throw new ValidationError(
        `configure(): the backend must be a registered name or a CacheBackend instance; got ${describeValue(backend)}`,
      )
    }
    try {
      for (const entry of [...(options.wrap ?? [])].reverse()) instance = toProxy(entry).wrap(instance)
    } catch (error) {
      if (owned) this.#closeQuietly(instance)
      throw error
    }
    this.#ownsBackend = owned

    this.#backend = instance
    this.#expirationTime = expirationTime === Number.POSITIVE_INFINITY ? undefined : expirationTime
    this.#expirationMs = toMs(this.#expirationTime)
    this.#coalesce = instance.coalesce !== false
    this.#mangler = this.#userMangler === false ? undefined : (this.#userMangler ?? instance.keyMangler)
    instance.attach?.({
      regionName: this.name,
      expirationTime: this.#expirationTime,
      serializer: this.serializer,
      reportError: (operation, error) => this.#instrumentation.backendError(operation, error),
    })
    const invalidator =
      options.regionInvalidator ??
      instance.createInvalidator?.(this.name) ??
      (this.#invalidator instanceof LocalInvalidator ? this.#invalidator : new LocalInvalidator())
    if (invalidator !== this.#invalidator) {
      const replaced = this.#invalidator
      this.#invalidator = invalidator
      this.#closeQuietly(replaced)
    }
    if (previous && previousOwned && previous !== instance) {
      // A replaced backend that the region created itself would otherwise keep its connections open.
      this.#closeQuietly(previous)
    }
    if (!previous && this.#metricsRegistry) {
      this.#instrumentation.observers = CorralMetrics.for(this.#metricsRegistry).add({
        name: this.name,
        stats: this.stats,
        backendName: () => this.#backend?.name,
        entryCount: () => this.#backend?.count?.(),
      })
    }
    return this
  }

  /**
   * Configures from a flat string map, as dogpile.cache's `configure_from_config`: reads `${prefix}backend`,
   * `${prefix}expiration_time` and every `${prefix}arguments.<name>` (numbers and booleans given as strings are
   * converted by the backend's argument checks).
   */
  configureFromConfig(config: Record<string, unknown>, prefix: string): this {
    if (config === null || typeof config !== 'object')
      throw new ValidationError(`configureFromConfig(): config must be an object; got ${describeValue(config)}`)
    const backend = config[`${prefix}backend`]
    if (typeof backend !== 'string' || backend === '') {
      throw new ValidationError(`configureFromConfig(): "${prefix}backend" is missing or not a string`)
    }
    const args: Record<string, unknown> = {}
    const argumentPrefix = `${prefix}arguments.`
    for (const [key, value] of Object.entries(config)) {
      if (key.startsWith(argumentPrefix)) args[key.slice(argumentPrefix.length)] = value
    }
    const expiration = config[`${prefix}expiration_time`]
    return this.configure(backend, {
      ...(expiration !== undefined && expiration !== '' ? { expirationTime: expiration as Duration } : {}),
      arguments: args,
    })
  }

  // ---------------------------------------------------------------- reads

  /** The value for `key`, or `NO_VALUE` if it is absent, expired or invalidated. */
  async get<T = unknown>(key: string, options?: GetOptions): Promise<T | NoValue> {
    const backend = this.backend
    const lookup = await this.#lookup(
      await this.#read(backend, this.#storeKey(key)),
      this.#callExpirationMs(options?.expirationTime),
    )
    return this.#answerGet(key, lookup, options?.ignoreExpiration === true) as T | NoValue
  }

  /** Values in key order, `NO_VALUE` where missing: one backend round trip. */
  async getMulti<T = unknown>(keys: readonly string[], options?: GetOptions): Promise<Array<T | NoValue>> {
    assertKeyList(keys, 'getMulti')
    const backend = this.backend
    const expirationMs = this.#callExpirationMs(options?.expirationTime)
    const stored = await this.#readMulti(
      backend,
      keys.map((key) => this.#storeKey(key)),
    )
    await this.#loadTagsOf(stored)
    const ignore = options?.ignoreExpiration === true
    return keys.map(
      (key, i) => this.#answerGet(key, this.#classify(stored[i] ?? NO_VALUE, expirationMs), ignore) as T | NoValue,
    )
  }

  #answerGet(key: string, lookup: Lookup, ignoreExpiration: boolean): unknown {
    if (lookup.state === 'fresh') {
      this.#instrumentation.hit(key)
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
    const stored = await this.#read(this.backend, this.#storeKey(key))
    if (stored === NO_VALUE || stored.metadata.v !== FORMAT_VERSION) return undefined
    await this.#loadTagsOf([stored])
    if (this.#classify(stored, Number.POSITIVE_INFINITY) === HARD_INVALIDATED) return undefined
    return {
      value: stored.payload as T,
      cachedTime: stored.metadata.ct / 1000,
      age: (this.#clock() - stored.metadata.ct) / 1000,
    }
  }

  // ---------------------------------------------------------------- get or create: the dogpile lock

  /**
   * The value for `key`; when it is absent, expired or invalidated, `creator` makes a new one — once per key at a
   * time across all callers. A caller that finds a stale value while another regenerates gets the stale value at
   * once; a caller with no value waits for the one creator and gets its value. If the creator throws, its caller
   * and every waiter get the error, the lock is released, and the next call tries again.
   */
  async getOrCreate<T>(key: string, creator: Creator<T>, options?: GetOrCreateOptions<T>): Promise<T> {
    const backend = this.#backend ?? this.#notConfigured()
    if (typeof key !== 'string')
      throw new ValidationError(`getOrCreate(): the key must be a string; got ${describeValue(key)}`)
    if (typeof creator !== 'function')
      throw new ValidationError(`getOrCreate(): the creator must be a function; got ${describeValue(creator)}`)
    const storeKey = this.#mangler === undefined ? key : this.#mangler(key)
    const expirationMs =
      options?.expirationTime === undefined ? this.#expirationMs : this.#callExpirationMs(options.expirationTime)
    const tags = options?.tags === undefined ? undefined : validateTags(options.tags, 'getOrCreate')
    const traced = this.#tracing !== undefined && this.#tracing.enabled
    const startedAt = traced ? performance.now() : 0

    const stored = backend.getSync !== undefined ? backend.getSync(storeKey) : await this.#read(backend, storeKey)
    // The hit path: a fresh value is returned without touching any lock.
    if (stored !== NO_VALUE && stored.metadata.v === FORMAT_VERSION) {
      const ct = stored.metadata.ct
      const marks = this.#invalidator.current()
      if (
        ct > marks.hardAt &&
        ct > marks.softAt &&
        this.#clock() - ct <= expirationMs &&
        (stored.metadata.tags === undefined || this.#tagsAllow(stored.metadata.tags, ct))
      ) {
        this.#instrumentation.hit(key)
        if (traced) this.#tracing!.recordFinished(key, 'hit', startedAt)
        return stored.payload as T
      }
    }
    const call: Call<T> = {
      key,
      storeKey,
      creator,
      expirationMs,
      shouldCache: options?.shouldCache,
      tags,
      startedAt: traced ? startedAt : undefined,
    }
    return this.#createOrJoin(call, await this.#lookup(stored, expirationMs))
  }

  async #createOrJoin<T>(call: Call<T>, lookup: Lookup): Promise<T> {
    const { key, storeKey } = call
    for (;;) {
      if (lookup.state === 'fresh') {
        this.#instrumentation.hit(key)
        this.#finishSpan(call, 'hit')
        return lookup.value as T
      }
      const flight = this.#coalesce ? this.#flights.get(storeKey) : undefined
      if (flight === undefined) return this.#lead(call, lookup)

      flight.coalesced++
      if (lookup.state === 'stale') {
        // Someone in this process is regenerating: serve the stale value at once.
        this.#serveStale(call, lookup, flight)
        return lookup.value as T
      }
      // No value: wait for the creator in progress.
      this.#instrumentation.coalesced(key, 'waited')
      const waitStart = performance.now()
      const outcome = await flight.done
      const waited = (performance.now() - waitStart) / 1000
      this.#instrumentation.lockWait(key, waited, false)
      if (outcome.kind === 'value') {
        this.#instrumentation.miss(key, lookup.reason)
        this.#finishSpan(call, 'miss', flight, waited)
        return outcome.value as T
      }
      if (outcome.kind === 'error') {
        this.#instrumentation.miss(key, lookup.reason)
        this.#finishSpan(call, 'miss', flight, waited)
        throw outcome.error
      }
      // Produced elsewhere (another process, an async runner): re-read, as dogpile's waiters do.
      flight.coalesced--
      lookup = await this.#lookup(await this.#read(this.backend, storeKey), call.expirationMs)
    }
  }

  /** This caller leads: it takes the backend's lock if there is one, then regenerates (or hands off). */
  async #lead<T>(call: Call<T>, lookup: Exclude<Lookup, { state: 'fresh' }>): Promise<T> {
    const { key, storeKey } = call
    const flight = this.#coalesce ? this.#flights.begin(storeKey) : undefined
    const span = call.startedAt !== undefined ? this.#tracing!.start(key, call.startedAt) : undefined
    let mutex: CacheMutex | undefined
    let handedOff = false
    try {
      mutex = this.#backend!.getMutex?.(storeKey)
      if (mutex) {
        const acquired = await this.#acquire(mutex, key, lookup.state === 'absent', span)
        if (acquired === 'failed') mutex = undefined
        else if (acquired === 'busy') {
          // Another process regenerates and we have a stale value: serve it (dogpile's non-blocking acquire).
          mutex = undefined
          flight?.settle({ kind: 'reread' })
          this.#instrumentation.coalesced(key, 'stale')
          this.#instrumentation.stale(key, (this.#clock() - (lookup as { ct: number }).ct) / 1000)
          if (span) endSpan(span, 'stale')
          return (lookup as { value: unknown }).value as T
        } else {
          // We hold the lock: another process may have created the value while we waited for it.
          const again = await this.#lookup(await this.#read(this.backend, storeKey), call.expirationMs)
          if (again.state === 'fresh') {
            flight?.settle({ kind: 'value', value: again.value })
            if (lookup.state === 'absent') this.#instrumentation.coalesced(key, 'waited')
            this.#instrumentation.miss(key, lookup.reason)
            if (span) endSpan(span, 'miss')
            return again.value as T
          }
          lookup = again
        }
      }

      if (lookup.state === 'stale' && this.asyncCreationRunner) {
        handedOff = this.#handOff(call, lookup, flight, mutex)
        if (handedOff) {
          this.#instrumentation.stale(key, (this.#clock() - lookup.ct) / 1000)
          if (span) endSpan(span, 'stale')
          return lookup.value as T
        }
      }

      this.#instrumentation.miss(key, lookup.reason)
      span?.addEvent('cache.miss', { reason: lookup.reason })
      if (lookup.reason === 'invalidated')
        span?.addEvent(lookup.state === 'absent' ? 'cache.hard_invalidation' : 'cache.soft_invalidation')
      const value = await this.#regenerate(call, flight, span)
      flight?.settle({ kind: 'value', value })
      if (span) endSpan(span, 'miss')
      return value
    } catch (error) {
      flight?.settle({ kind: 'error', error })
      if (span) endSpan(span, 'miss', error)
      throw error
    } finally {
      if (!handedOff) {
        if (mutex) await this.#release(mutex)
        if (flight) this.#flights.end(storeKey, flight)
      }
    }
  }

  /** Takes the backend's lock: waits when there is no value, one attempt when there is a stale one. */
  async #acquire(
    mutex: CacheMutex,
    key: string,
    wait: boolean,
    span: Span | undefined,
  ): Promise<'acquired' | 'busy' | 'failed'> {
    const started = performance.now()
    let acquired: boolean
    try {
      acquired = await mutex.acquire(wait)
    } catch (error) {
      // The lock server is unreachable: answer anyway by regenerating here, as if there were no lock.
      this.#instrumentation.backendError('lock', error)
      return 'failed'
    }
    if (!wait) return acquired ? 'acquired' : 'busy'
    const waited = (performance.now() - started) / 1000
    if (waited >= 0.001) {
      this.#instrumentation.lockWait(key, waited, true)
      span?.addEvent('cache.lock_wait', { duration_s: waited })
    }
    if (!acquired) {
      throw new LockTimeoutError(
        `region "${this.name}": waited ${waited.toFixed(3)}s for another process to regenerate "${key}" and the lock was still held; raise the backend's lockTimeout if creators legitimately take that long`,
      )
    }
    return 'acquired'
  }

  async #release(mutex: CacheMutex): Promise<void> {
    try {
      await mutex.release()
    } catch (error) {
      this.#instrumentation.backendError('unlock', error)
    }
  }

  /** Passes the regeneration of a stale value to the async creation runner; true when the runner took it. */
  #handOff<T>(
    call: Call<T>,
    lookup: Extract<Lookup, { state: 'stale' }>,
    flight: Flight | undefined,
    mutex: CacheMutex | undefined,
  ): boolean {
    let released = false
    const release = async () => {
      if (released) return
      released = true
      if (mutex) await this.#release(mutex)
      if (flight) {
        flight.settle({ kind: 'reread' })
        this.#flights.end(call.storeKey, flight)
      }
    }
    const creator = async () => {
      this.#instrumentation.miss(call.key, lookup.reason)
      return this.#regenerate(call, flight, undefined)
    }
    try {
      const running = this.asyncCreationRunner!(this, call.key, creator, { release })
      if (running && typeof (running as Promise<void>).then === 'function') {
        ;(running as Promise<void>).then(release, (error: unknown) => {
          this.#instrumentation.backendError('asyncCreationRunner', error)
          return release()
        })
      }
      return true
    } catch (error) {
      // The runner refused synchronously: regenerate inline instead, still holding the lock.
      this.#instrumentation.backendError('asyncCreationRunner', error)
      released = true
      return false
    }
  }

  /** Runs the creator inside its span, stores the value unless `shouldCache` declines, reports the outcome. */
  async #regenerate<T>(call: Call<T>, flight: Flight | undefined, parent: Span | undefined): Promise<T> {
    const started = performance.now()
    let value: T
    let failure: unknown
    const run = async () => {
      const created = await call.creator()
      if (call.shouldCache === undefined || call.shouldCache(created)) {
        await this.#store(call.storeKey, CachedValue.create(created, this.#stamp(), call.tags))
      }
      return created
    }
    try {
      value =
        parent !== undefined || (this.#tracing !== undefined && call.startedAt !== undefined)
          ? await this.#tracing!.regenerate(parent, [call.key], (span) => flight && (flight.regenerateSpan = span), run)
          : await run()
    } catch (error) {
      failure = error
      throw error
    } finally {
      this.#instrumentation.regenerate(
        [call.key],
        (performance.now() - started) / 1000,
        failure,
        flight?.coalesced ?? 0,
        this.#clock(),
      )
    }
    return value
  }

  #serveStale(call: CallIdentity, lookup: Extract<Lookup, { state: 'stale' }>, flight: Flight): void {
    this.#instrumentation.coalesced(call.key, 'stale')
    this.#instrumentation.stale(call.key, (this.#clock() - lookup.ct) / 1000)
    this.#finishSpan(call, 'stale', flight)
  }

  /** The span of a caller that did not lead, linked to the regeneration it was coalesced onto. */
  #finishSpan(call: CallIdentity, result: GetResult, flight?: Flight, waitedSeconds?: number): void {
    if (call.startedAt === undefined) return
    const links: Link[] | undefined = flight?.regenerateSpan ? [{ context: flight.regenerateSpan }] : undefined
    this.#tracing!.recordFinished(call.key, result, call.startedAt, links, waitedSeconds)
  }

  // ---------------------------------------------------------------- get or create, many keys at once

  /**
   * Values for `keys` in request order. Keys that need a value are regenerated together: `creator` receives only
   * those keys, sorted and unique, and returns their values in that order. The per-key lock semantics are those
   * of `getOrCreate`.
   */
  async getOrCreateMulti<T>(
    keys: readonly string[],
    creator: (...keys: string[]) => readonly T[] | Promise<readonly T[]>,
    options?: GetOrCreateOptions<T>,
  ): Promise<T[]> {
    assertKeyList(keys, 'getOrCreateMulti')
    if (typeof creator !== 'function')
      throw new ValidationError(`getOrCreateMulti(): the creator must be a function; got ${describeValue(creator)}`)
    const backend = this.backend
    const expirationMs = this.#callExpirationMs(options?.expirationTime)
    const tags = options?.tags === undefined ? undefined : validateTags(options.tags, 'getOrCreateMulti')
    const unique = [...new Set(keys)].sort()
    const storeKeys = unique.map((key) => this.#storeKey(key))
    const stored = await this.#readMulti(backend, storeKeys)
    await this.#loadTagsOf(stored)
    const values = new Map<string, unknown>()
    const waits: Array<Promise<void>> = []
    const toCreate: Array<{ key: string; storeKey: string; lookup: Exclude<Lookup, { state: 'fresh' }> }> = []

    unique.forEach((key, i) => {
      const storeKey = storeKeys[i]!
      const lookup = this.#classify(stored[i] ?? NO_VALUE, expirationMs)
      if (lookup.state === 'fresh') {
        this.#instrumentation.hit(key)
        values.set(key, lookup.value)
        return
      }
      const flight = this.#coalesce ? this.#flights.get(storeKey) : undefined
      if (flight === undefined) {
        toCreate.push({ key, storeKey, lookup })
        return
      }
      // Another caller is creating this key: join it, exactly as getOrCreate would.
      const single: Call<T> = {
        key,
        storeKey,
        creator: async () => (await creator(key))[0] as T,
        expirationMs,
        shouldCache: options?.shouldCache,
        tags,
        startedAt: undefined,
      }
      waits.push(this.#createOrJoin(single, lookup).then((value) => void values.set(key, value)))
    })

    if (toCreate.length > 0) {
      const created = await this.#leadMulti(toCreate, creator, expirationMs, options?.shouldCache, tags)
      for (const [key, value] of created) values.set(key, value)
    }
    await Promise.all(waits)
    return keys.map((key) => values.get(key) as T)
  }

  async #leadMulti<T>(
    entries: Array<{ key: string; storeKey: string; lookup: Exclude<Lookup, { state: 'fresh' }> }>,
    creator: (...keys: string[]) => readonly T[] | Promise<readonly T[]>,
    expirationMs: number,
    shouldCache: ShouldCache<T> | undefined,
    tags: readonly string[] | undefined,
  ): Promise<Map<string, unknown>> {
    const results = new Map<string, unknown>()
    const flights = new Map<string, Flight>()
    const mutexes: CacheMutex[] = []
    if (this.#coalesce) for (const { storeKey } of entries) flights.set(storeKey, this.#flights.begin(storeKey))
    try {
      // Backend locks in sorted key order (entries are sorted), so two multi-callers cannot deadlock.
      let pending = entries
      if (this.#backend!.getMutex) {
        pending = []
        for (const entry of entries) {
          const mutex = this.#backend!.getMutex(entry.storeKey)
          const acquired = mutex
            ? await this.#acquire(mutex, entry.key, entry.lookup.state === 'absent', undefined)
            : 'failed'
          if (acquired === 'busy') {
            const stale = entry.lookup as Extract<Lookup, { state: 'stale' }>
            this.#instrumentation.coalesced(entry.key, 'stale')
            this.#instrumentation.stale(entry.key, (this.#clock() - stale.ct) / 1000)
            results.set(entry.key, stale.value)
            flights.get(entry.storeKey)?.settle({ kind: 'reread' })
            continue
          }
          if (acquired === 'acquired') mutexes.push(mutex!)
          pending.push(entry)
        }
        if (mutexes.length > 0 && pending.length > 0) {
          // Some may have been created by another process while we waited for their locks.
          const again = await this.#readMulti(
            this.backend,
            pending.map((entry) => entry.storeKey),
          )
          await this.#loadTagsOf(again)
          pending = pending.filter((entry, i) => {
            const lookup = this.#classify(again[i] ?? NO_VALUE, expirationMs)
            if (lookup.state !== 'fresh') return true
            this.#instrumentation.coalesced(entry.key, 'waited')
            this.#instrumentation.miss(entry.key, entry.lookup.reason)
            results.set(entry.key, lookup.value)
            flights.get(entry.storeKey)?.settle({ kind: 'value', value: lookup.value })
            return false
          })
        }
      }
      if (pending.length === 0) return results

      for (const entry of pending) this.#instrumentation.miss(entry.key, entry.lookup.reason)
      const keys = pending.map((entry) => entry.key)
      const started = performance.now()
      let failure: unknown
      try {
        const created = await creator(...keys)
        if (!Array.isArray(created) || created.length !== keys.length) {
          throw new ValidationError(
            `getOrCreateMulti(): the creator must return an array with one value per key it received (${keys.length}); got ${Array.isArray(created) ? `${created.length} values` : describeValue(created)}`,
          )
        }
        const ct = this.#stamp()
        const toStore: Array<readonly [string, CachedValue]> = []
        pending.forEach((entry, i) => {
          const value = created[i] as T
          results.set(entry.key, value)
          if (shouldCache === undefined || shouldCache(value))
            toStore.push([entry.storeKey, CachedValue.create(value, ct, tags)])
        })
        if (toStore.length > 0) await this.#storeMulti(toStore)
        for (const entry of pending)
          flights.get(entry.storeKey)?.settle({ kind: 'value', value: results.get(entry.key) })
      } catch (error) {
        failure = error
        for (const entry of pending) flights.get(entry.storeKey)?.settle({ kind: 'error', error })
        throw error
      } finally {
        const coalesced = pending.reduce((sum, entry) => sum + (flights.get(entry.storeKey)?.coalesced ?? 0), 0)
        this.#instrumentation.regenerate(keys, (performance.now() - started) / 1000, failure, coalesced, this.#clock())
      }
      return results
    } finally {
      await Promise.all(mutexes.map((mutex) => this.#release(mutex)))
      for (const [storeKey, flight] of flights) {
        flight.settle({ kind: 'reread' })
        this.#flights.end(storeKey, flight)
      }
    }
  }

  // ---------------------------------------------------------------- writes

  /** Stores `value` under `key`, created now. */
  async set(key: string, value: unknown, options?: SetOptions): Promise<void> {
    const tags = options?.tags === undefined ? undefined : validateTags(options.tags, 'set')
    await this.#store(this.#storeKey(key), CachedValue.create(value, this.#stamp(), tags))
  }

  /** Stores many values at once: a `Map` or a plain object of key → value. */
  async setMulti(entries: ReadonlyMap<string, unknown> | Record<string, unknown>, options?: SetOptions): Promise<void> {
    const tags = options?.tags === undefined ? undefined : validateTags(options.tags, 'setMulti')
    if (entries === null || typeof entries !== 'object')
      throw new ValidationError(`setMulti(): entries must be a Map or an object; got ${describeValue(entries)}`)
    const ct = this.#stamp()
    const pairs = entries instanceof Map ? [...entries] : Object.entries(entries)
    await this.#storeMulti(
      pairs.map(([key, value]) => [this.#storeKey(key), CachedValue.create(value, ct, tags)] as const),
    )
  }

  /** Removes `key` (idempotent): the next read is a miss. Counted as a key invalidation. */
  async delete(key: string): Promise<void> {
    const backend = this.backend
    const storeKey = this.#storeKey(key)
    await this.#write('delete', () => backend.delete(storeKey))
    this.#instrumentation.invalidate(true, 'key', this.#clock(), key)
  }

  /** Removes many keys (idempotent). */
  async deleteMulti(keys: readonly string[]): Promise<void> {
    assertKeyList(keys, 'deleteMulti')
    const backend = this.backend
    const storeKeys = keys.map((key) => this.#storeKey(key))
    await this.#write('deleteMulti', () => backend.deleteMulti(storeKeys))
    const at = this.#clock()
    for (const key of keys) this.#instrumentation.invalidate(true, 'key', at, key)
  }

  /**
   * Invalidates every value created before now. Hard (the default): they become misses. Soft: they become stale,
   * served while one caller regenerates — which needs an expiration time.
   */
  async invalidate(options: { hard?: boolean } = {}): Promise<void> {
    this.#requireBackend()
    const hard = options.hard ?? true
    if (typeof hard !== 'boolean')
      throw new ValidationError(`invalidate(): hard must be a boolean; got ${describeValue(hard)}`)
    if (!hard && this.#expirationTime === undefined) {
      throw new ValidationError(
        `region "${this.name}" has no expiration time, so soft invalidation has nothing to compare with: configure an expirationTime or use invalidate({ hard: true })`,
      )
    }
    const at = this.#stamp()
    await this.#traced('region', hard, [], () =>
      this.#write('invalidate', () => this.#invalidator.invalidate(hard, at)),
    )
    this.#instrumentation.invalidate(hard, 'region', at)
  }

  /**
   * Invalidates every value carrying one of `tags` that was created before now — in every process sharing the
   * backend. Hard (the default): such values are misses. Soft: they are stale, served while one caller
   * regenerates, which needs an expiration time. Enforced lazily on read, like `invalidate()`.
   */
  async invalidateTags(tags: readonly string[] | string, options: { hard?: boolean } = {}): Promise<void> {
    this.#requireBackend()
    const list = validateTags(typeof tags === 'string' ? [tags] : tags, 'invalidateTags', { atLeastOne: true })
    const hard = options.hard ?? true
    if (typeof hard !== 'boolean')
      throw new ValidationError(`invalidateTags(): hard must be a boolean; got ${describeValue(hard)}`)
    if (!hard && this.#expirationTime === undefined) {
      throw new ValidationError(
        `region "${this.name}" has no expiration time, so soft invalidation has nothing to compare with: configure an expirationTime or use invalidateTags(tags, { hard: true })`,
      )
    }
    const invalidator = this.#invalidator
    if (!invalidator.invalidateTags) {
      throw new ValidationError(`region "${this.name}": its invalidator does not support tags`)
    }
    const at = this.#stamp()
    await this.#traced('tag', hard, list, () =>
      this.#write('invalidateTags', () => invalidator.invalidateTags!(list, hard, at)),
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
    if (typeof name !== 'string' || name.length === 0 || name.length > MAX_TAG_LENGTH) {
      throw new ValidationError(
        `dependency(): the name must be a non-empty string of at most ${MAX_TAG_LENGTH} characters`,
      )
    }
    const expiration = parseExpiration(options.expirationTime, `dependency "${name}": expirationTime`)
    // By default the bookkeeping lives as long as the values it tracks can (the backends keep values for
    // 2 x expiration + 60 s, serving them stale after expiration), or a day without an expiration time.
    const ttl =
      expiration !== undefined && expiration !== Number.POSITIVE_INFINITY
        ? expiration
        : this.#expirationTime === undefined
          ? 86_400
          : 2 * this.#expirationTime + 60
    const host: DependencyHost = {
      name: this.name,
      backend: () => this.#requireBackend(),
      storeKey: (key) => this.#storeKey(key),
      now: () => this.#stamp(),
      deleteDependents: async (dependency, storeKeys, keys) => {
        const backend = this.#requireBackend()
        await this.#traced('dependency', true, [dependency], () =>
          this.#write('invalidateDependency', () => backend.deleteMulti(storeKeys)),
        )
        this.#instrumentation.invalidateDependency(dependency, keys, this.#clock())
      },
    }
    return new CacheDependency(host, name, Math.max(1, Math.ceil(ttl)))
  }

  /** The time of the last region invalidation still in force, in milliseconds, for each kind. */
  invalidationState(): { hardAt: number; softAt: number } {
    return this.#invalidator.current()
  }

  /** Whether a creator holds the lock for `key`, in this process or (with a distributed lock) in any. */
  async keyIsLocked(key: string): Promise<boolean> {
    const backend = this.backend
    const storeKey = this.#storeKey(key)
    if (this.#flights.get(storeKey)) return true
    const mutex = backend.getMutex?.(storeKey)
    if (!mutex) return false
    try {
      return await mutex.locked()
    } catch (error) {
      this.#instrumentation.backendError('lock', error)
      return false
    }
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

  /** `cacheOnArguments` as a TC39 method decorator: `@region.cached({ expirationTime: '1m' })`. */
  cached<R>(options?: CacheOnArgumentsOptions<Awaited<R>, never[]>) {
    return cachedMethod<R>(this, options)
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
    this.registry.remove(this)
    this.#instrumentation.observers?.remove()
    await this.#invalidator.close?.()
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
    throw new RegionNotConfiguredError(
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
    return toMs(parseExpiration(expirationTime, 'expirationTime'))
  }

  /** A creation/invalidation time: wall-clock milliseconds, strictly increasing within this region. */
  #stamp(): number {
    const now = this.#clock()
    this.#lastStamp = now > this.#lastStamp ? now : this.#lastStamp + 0.001
    return this.#lastStamp
  }

  #classify(stored: CachedValue | NoValue, expirationMs: number): Lookup {
    if (stored === NO_VALUE || stored.metadata.v !== FORMAT_VERSION) return ABSENT
    const ct = stored.metadata.ct
    const marks = this.#invalidator.current()
    // A value created in the same millisecond as an invalidation counts as invalidated: across processes both
    // times have millisecond resolution, and one extra regeneration is the safe side of the tie.
    if (ct <= marks.hardAt) return HARD_INVALIDATED
    let softAt = marks.softAt
    const tags = stored.metadata.tags
    if (tags !== undefined) {
      for (const tag of tags) {
        const tagMarks = this.#invalidator.tagMarks?.(tag)
        if (tagMarks === undefined) continue
        if (ct <= tagMarks.hardAt) return HARD_INVALIDATED
        if (tagMarks.softAt > softAt) softAt = tagMarks.softAt
      }
    }
    if (ct <= softAt) return { state: 'stale', value: stored.payload, ct, reason: 'invalidated' }
    if (this.#clock() - ct > expirationMs) return { state: 'stale', value: stored.payload, ct, reason: 'expired' }
    return { state: 'fresh', value: stored.payload }
  }

  /** Runs an invalidation inside a `corral.invalidate` span when tracing is on. */
  #traced(scope: string, hard: boolean, targets: readonly string[], run: () => Promise<void>): Promise<void> {
    return this.#tracing?.enabled ? this.#tracing.invalidation(scope, hard, targets, run) : run()
  }

  /** Classifies a value read from the backend, after fetching the marks of any of its tags not known yet. */
  async #lookup(stored: CachedValue | NoValue, expirationMs: number): Promise<Lookup> {
    if (stored !== NO_VALUE && stored.metadata.tags !== undefined) await this.#loadTagsOf([stored])
    return this.#classify(stored, expirationMs)
  }

  /**
   * Makes sure the invalidator knows the marks of every tag these values carry: one batched fetch for the tags it
   * does not know. If the fetch fails, the values are judged without those marks (and the failure is reported).
   */
  async #loadTagsOf(values: ReadonlyArray<CachedValue | NoValue>): Promise<void> {
    const invalidator = this.#invalidator
    if (!invalidator.loadTags || !invalidator.tagMarks) return
    let unknown: Set<string> | undefined
    for (const value of values) {
      if (value === NO_VALUE || value.metadata.tags === undefined) continue
      for (const tag of value.metadata.tags) {
        if (invalidator.tagMarks(tag) === undefined) (unknown ??= new Set()).add(tag)
      }
    }
    if (!unknown) return
    try {
      await invalidator.loadTags([...unknown])
    } catch (error) {
      this.#instrumentation.backendError('loadTags', error)
    }
  }

  /** The hit path's tag check: true only when every tag's marks are known and older than the value. */
  #tagsAllow(tags: readonly string[], ct: number): boolean {
    const invalidator = this.#invalidator
    if (!invalidator.tagMarks) return true
    for (const tag of tags) {
      const marks = invalidator.tagMarks(tag)
      if (marks === undefined || ct <= marks.hardAt || ct <= marks.softAt) return false
    }
    return true
  }

  /** A read that never throws: a failing backend is reported and reads as a miss, so the creator still runs. */
  async #read(backend: CacheBackend, storeKey: string): Promise<CachedValue | NoValue> {
    try {
      return await backend.get(storeKey)
    } catch (error) {
      this.#instrumentation.backendError('get', error)
      return NO_VALUE
    }
  }

  async #readMulti(backend: CacheBackend, storeKeys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    if (storeKeys.length === 0) return []
    try {
      return await backend.getMulti(storeKeys)
    } catch (error) {
      this.#instrumentation.backendError('getMulti', error)
      return storeKeys.map(() => NO_VALUE)
    }
  }

  /**
   * Writes a value. A value that cannot be serialized is the caller's error (`SerializationError`); a backend
   * failure is reported and swallowed, so `getOrCreate` still returns the value it created.
   */
  async #store(storeKey: string, value: CachedValue): Promise<void> {
    try {
      await this.backend.set(storeKey, value)
    } catch (error) {
      if (error instanceof SerializationError) throw error
      this.#instrumentation.backendError('set', error)
    }
  }

  async #storeMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    try {
      await this.backend.setMulti(entries)
    } catch (error) {
      if (error instanceof SerializationError) throw error
      this.#instrumentation.backendError('setMulti', error)
    }
  }

  /** Deletes and invalidations must not fail silently: report, then throw a `BackendError`. */
  async #write(operation: string, run: () => Promise<void>): Promise<void> {
    try {
      await run()
    } catch (error) {
      if (error instanceof CorralError) throw error
      this.#instrumentation.backendError(operation, error)
      throw new BackendError(`region "${this.name}": ${operation} failed: ${(error as Error)?.message ?? error}`, {
        cause: error,
      })
    }
  }
}

/** What telemetry needs of a call. */
interface CallIdentity {
  readonly key: string
  /** `performance.now()` at the call's start when tracing is on */
  readonly startedAt: number | undefined
}

interface Call<T> extends CallIdentity {
  readonly storeKey: string
  readonly creator: Creator<T>
  readonly expirationMs: number
  readonly shouldCache: ShouldCache<T> | undefined
  /** tags stored with a created value */
  readonly tags: readonly string[] | undefined
}

function isBackend(value: unknown): value is CacheBackend {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as CacheBackend).get === 'function' &&
    typeof (value as CacheBackend).set === 'function'
  )
}

function toProxy(entry: WrapEntry): ProxyBackend {
  if (entry instanceof ProxyBackend) return entry
  if (typeof entry === 'function' && (entry === ProxyBackend || entry.prototype instanceof ProxyBackend))
    return new entry()
  throw new ValidationError(
    `configure(): every wrap entry must be a ProxyBackend subclass or instance; got ${describeValue(entry)}`,
  )
}

function assertKeyList(keys: unknown, method: string): asserts keys is readonly string[] {
  if (!Array.isArray(keys) || keys.some((key) => typeof key !== 'string')) {
    throw new ValidationError(`${method}(): keys must be an array of strings; got ${describeValue(keys)}`)
  }
}
