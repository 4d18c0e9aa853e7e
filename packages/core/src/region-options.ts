/**
 * The options of `createRegion()`, `configure()` and the region's methods, and the names each method accepts (the
 * region rejects any other, so that a misspelt option fails where it is written).
 */
import type { Registry } from 'prom-client'
import type { RegionInvalidator } from './backends/api.js'
import type { L1Options } from './backends/tier/configure.js'
import type { ProxyBackend } from './backends/proxy.js'
import type { CircuitBreakerOptions } from './circuit-breaker.js'
import type { NoValue, Serializer } from './cached-value.js'
import type { Duration } from './durations.js'
import type { KeyGenerator, KeyMangler, MultiKeyGenerator } from './keys.js'
import type { AsyncCreationRunner } from './lock/async-runner.js'
import type { RegionRegistry } from './registry.js'
import type { HotKeyTrackerOptions } from './telemetry/hot-keys.js'
import type { Tier } from './telemetry/events.js'
import type { Logger } from './telemetry/instrumentation.js'
import { RESILIENCE_OPTION_NAMES } from './policy.js'

/**
 * What a creator is called with: the key as the caller gave it, an `AbortSignal` aborted (with a
 * `CreatorTimeoutError`) when the call's hard timeout passes, and the stale value being replaced (`NO_VALUE` when
 * there is none). Creators that take no argument are unaffected.
 */
export interface CreatorContext<T = unknown> {
  readonly key: string
  readonly signal: AbortSignal
  readonly staleValue: T | NoValue
}

export type Creator<T> = (context: CreatorContext<T>) => T | Promise<T>
export type ShouldCache<T> = (value: T) => boolean

export interface TelemetryOptions {
  /** Register Corral's metrics on this prom-client Registry instead of the region registry's `metrics`. */
  metricsRegistry?: Registry
  /** Put cache keys in span attributes (`corral.key`). Default true. Keys never appear in metric labels. */
  recordKeys?: boolean
  /** Hot-key tracking options, or `false` to turn it off. */
  hotKeys?: false | HotKeyTrackerOptions
  /**
   * A CLIENT span around each backend round trip (Redis, memcached; not the in-process backends), with the
   * database semantic conventions, nested under the operation's span. Default false: with an SDK registered it
   * costs a Redis hit 10-16 µs (measured), one more span and an active context for the call.
   */
  backendSpans?: boolean
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

/** Fail-safe: serve a recent value instead of the creator's error. */
export interface FailSafeOptions {
  /** How old (since its creation) a value may be and still be served when the creator fails or times out. */
  maxStaleAge: Duration
  /** For how long a value served by fail-safe is trusted again, so a failing source is not hammered. Default 10 s. */
  throttle?: Duration
}

/**
 * How a region stays right on bad days (a failing or hanging source, expiry storms). Region defaults on
 * `configure()`, overridable per `getOrCreate()` call and on the decorators.
 */
export interface ResilienceOptions {
  /** Serve a value no older than `maxStaleAge` when the creator throws or times out. `false` turns it off. */
  failSafe?: FailSafeOptions | false
  /**
   * When a stale value exists and the creator takes longer than this, the caller and every waiter get the stale
   * value; the creator goes on in the background and stores its value when it finishes.
   */
  softTimeout?: Duration
  /**
   * After this the caller and every waiter get `CreatorTimeoutError` (unless fail-safe has a value), the lock is
   * released and the creator's `signal` is aborted. Without it, the lock timeout bounds a creator.
   */
  hardTimeout?: Duration
  /**
   * A fraction in (0, 1): a hit on a value older than this fraction of its expiration time returns the value and
   * starts one background regeneration. Needs an expiration time.
   */
  eagerRefresh?: number
  /** Each stored value expires up to this much later, at random, so keys written together do not expire together. */
  expirationJitter?: Duration
}

export interface ConfigureOptions extends ResilienceOptions {
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
  /**
   * The circuit breaker around a backend outside the process (Redis, memcached, ...): after `failures` failures in a
   * row within `window`, calls skip the backend for `coolDown`, then a read of its own probes it. On by default
   * (`{ failures: 5, window: '10s', coolDown: '1s' }`); `false` turns it off.
   */
  circuitBreaker?: CircuitBreakerOptions | false
  /**
   * An in-process tier (L1) in front of a backend that processes share (redis, memcached): `true` for the defaults,
   * or `{ maxEntries, maxAge, bus }`. Hits on its copies send nothing to the backend; changes made by any process
   * remove the other processes' copies (see the README's "Multi-tier regions").
   */
  l1?: boolean | L1Options
}

export interface GetOptions {
  /** Overrides the region's expiration time for this read (`-1`: never expires). */
  expirationTime?: Duration
  /** Return a value even if it expired or was soft-invalidated (not if hard-invalidated). */
  ignoreExpiration?: boolean
}

export interface GetOrCreateOptions<T> extends ResilienceOptions {
  /** Overrides the region's expiration time for this call (`-1`: never expires). */
  expirationTime?: Duration
  /** Decides whether the creator's value is stored; it is returned either way. */
  shouldCache?: ShouldCache<T>
  /** Tags stored with a created value, for `invalidateTags()`. */
  tags?: readonly string[]
  /**
   * Regenerate even if a fresh value is cached (the caller knows the source changed). Still one creator per key:
   * callers forcing together share one regeneration; the old value remains the creator's `staleValue` and
   * fail-safe's fallback.
   */
  forceRefresh?: boolean
}

/** What `getOrCreateResult` answers: the value and how it was obtained. */
export interface GetOrCreateResult<T> {
  value: T
  /**
   * `hit`: a fresh value; `stale`: a stale value, served while another caller regenerates (or after a soft
   * timeout); `miss`: a new value, made by this caller's creator or the one it waited for; `failSafe`: the creator
   * failed or timed out and a recent stale value was served instead
   */
  result: 'hit' | 'stale' | 'miss' | 'failSafe'
  /** where a hit came from: `l1` this process's memory, `l2` the shared backend; undefined for other results */
  tier: Tier | undefined
  /** whether this caller ran the creator */
  created: boolean
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

// The options each method accepts (`rejectUnknown` in policy.ts): any other fails with a ValidationError naming these.

export const CONFIGURE_OPTIONS = [
  'expirationTime',
  'arguments',
  'wrap',
  'replaceExistingBackend',
  'regionInvalidator',
  'circuitBreaker',
  'l1',
  ...RESILIENCE_OPTION_NAMES,
] as const satisfies ReadonlyArray<keyof ConfigureOptions>
export const GET_OPTIONS = ['expirationTime', 'ignoreExpiration'] as const satisfies ReadonlyArray<keyof GetOptions>
export const GET_OR_CREATE_OPTIONS = [
  'expirationTime',
  'shouldCache',
  'tags',
  'forceRefresh',
  ...RESILIENCE_OPTION_NAMES,
] as const satisfies ReadonlyArray<keyof GetOrCreateOptions<unknown>>
/** `getOrCreateMulti` takes `GetOrCreateOptions` and honours these of them. */
export const GET_OR_CREATE_MULTI_OPTIONS = [
  'expirationTime',
  'shouldCache',
  'tags',
  'expirationJitter',
] as const satisfies ReadonlyArray<keyof GetOrCreateOptions<unknown>>
export const SET_OPTIONS = ['tags'] as const satisfies ReadonlyArray<keyof SetOptions>
