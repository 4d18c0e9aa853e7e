/**
 * How a call behaves. The resilience policy: fail-safe, creator timeouts, eager refresh and expiry jitter (the
 * options of `ResilienceOptions`), parsed once into milliseconds; a region holds its defaults, a call that sets any
 * of them gets a merged copy, a call that sets none uses the region's object as is. And the settings of a
 * `getOrCreate` call, made from its options the same way.
 */
import { CachedValue } from './cached-value.js'
import { describeValue } from './describe-value.js'
import { parseDuration, parseExpiration, type Duration } from './durations.js'
import { ValidationError } from './errors.js'
import type { GetOrCreateOptions, ResilienceOptions, ShouldCache } from './region-options.js'
import { validateTags } from './tags.js'

export interface Policy {
  readonly failSafe: { readonly maxStaleAgeMs: number; readonly throttleMs: number } | undefined
  readonly softTimeoutMs: number | undefined
  readonly hardTimeoutMs: number | undefined
  readonly eagerRefresh: number | undefined
  readonly jitterMs: number
}

export const NO_POLICY: Policy = Object.freeze({
  failSafe: undefined,
  softTimeoutMs: undefined,
  hardTimeoutMs: undefined,
  eagerRefresh: undefined,
  jitterMs: 0,
})

export const RESILIENCE_OPTION_NAMES = [
  'failSafe',
  'softTimeout',
  'hardTimeout',
  'eagerRefresh',
  'expirationJitter',
] as const satisfies ReadonlyArray<keyof ResilienceOptions>

const DEFAULT_THROTTLE_SECONDS = 10

/** Whether `options` sets any resilience option (a call that sets none shares the region's policy). */
export function setsPolicy(options: ResilienceOptions): boolean {
  return (
    options.failSafe !== undefined ||
    options.softTimeout !== undefined ||
    options.hardTimeout !== undefined ||
    options.eagerRefresh !== undefined ||
    options.expirationJitter !== undefined
  )
}

/**
 * `base` with the resilience options `options` sets, checked. `where` names the call in errors;
 * `expirationMs` is the expiration the policy will be used with (eager refresh needs a finite one).
 */
export function resolvePolicy(base: Policy, options: ResilienceOptions, where: string, expirationMs: number): Policy {
  const positiveMs = (name: string, value: unknown): number => {
    const seconds = parseDuration(value, `${where}: ${name}`)
    if (seconds <= 0)
      throw new ValidationError(`${where}: ${name} must be greater than zero; got ${describeValue(value)}`)
    return seconds * 1000
  }
  let failSafe = base.failSafe
  if (options.failSafe !== undefined) {
    const given: unknown = options.failSafe
    if (given === false) failSafe = undefined
    else if (given === null || typeof given !== 'object' || Array.isArray(given)) {
      throw new ValidationError(
        `${where}: failSafe must be { maxStaleAge, throttle? } or false; got ${describeValue(given)}`,
      )
    } else {
      const { maxStaleAge, throttle, ...unknown } = given as { maxStaleAge?: unknown; throttle?: unknown }
      rejectUnknown(unknown, ['maxStaleAge', 'throttle'], `${where}: failSafe`)
      if (maxStaleAge === undefined) throw new ValidationError(`${where}: failSafe needs maxStaleAge (a duration)`)
      failSafe = {
        maxStaleAgeMs: positiveMs('failSafe.maxStaleAge', maxStaleAge),
        throttleMs:
          throttle === undefined ? DEFAULT_THROTTLE_SECONDS * 1000 : positiveMs('failSafe.throttle', throttle),
      }
    }
  }
  const softTimeoutMs =
    options.softTimeout === undefined ? base.softTimeoutMs : positiveMs('softTimeout', options.softTimeout)
  const hardTimeoutMs =
    options.hardTimeout === undefined ? base.hardTimeoutMs : positiveMs('hardTimeout', options.hardTimeout)
  if (softTimeoutMs !== undefined && hardTimeoutMs !== undefined && softTimeoutMs >= hardTimeoutMs) {
    throw new ValidationError(
      `${where}: softTimeout (${softTimeoutMs / 1000}s) must be shorter than hardTimeout (${hardTimeoutMs / 1000}s)`,
    )
  }
  let eagerRefresh = base.eagerRefresh
  if (options.eagerRefresh !== undefined) {
    const fraction: unknown = options.eagerRefresh
    if (typeof fraction !== 'number' || !(fraction > 0 && fraction < 1)) {
      throw new ValidationError(
        `${where}: eagerRefresh must be a fraction between 0 and 1 (exclusive), e.g. 0.8; got ${describeValue(fraction)}`,
      )
    }
    eagerRefresh = fraction
  }
  if (eagerRefresh !== undefined && !Number.isFinite(expirationMs)) {
    throw new ValidationError(
      `${where}: eagerRefresh refreshes a value after a fraction of its expiration time, so it needs an expirationTime`,
    )
  }
  let jitterMs = base.jitterMs
  if (options.expirationJitter !== undefined) {
    jitterMs = parseDuration(options.expirationJitter, `${where}: expirationJitter`) * 1000
  }
  return { failSafe, softTimeoutMs, hardTimeoutMs, eagerRefresh, jitterMs }
}

/** The settings of a `getOrCreate` call: the region's defaults (one object, made at `configure`) or the call's. */
export interface CallSettings<T = unknown> {
  readonly expirationMs: number
  readonly shouldCache: ShouldCache<T> | undefined
  /** tags stored with a created value */
  readonly tags: readonly string[] | undefined
  readonly policy: Policy
  readonly forceRefresh: boolean
  /** whether a fresh value kept in this process may be served by the quick hit path (not forced, no eager refresh) */
  readonly quickHit: boolean
}

/** Settings for a call, with `quickHit` derived. */
export function callSettings<T>(
  expirationMs: number,
  shouldCache: ShouldCache<T> | undefined,
  tags: readonly string[] | undefined,
  policy: Policy,
  forceRefresh: boolean,
): CallSettings<T> {
  return {
    expirationMs,
    shouldCache,
    tags,
    policy,
    forceRefresh,
    quickHit: !forceRefresh && policy.eagerRefresh === undefined,
  }
}

/**
 * The settings of a call with `options`: the region's `defaults` (as they are when the call sets nothing) with
 * what the call sets, checked. `valid` names the options the method accepts, `method` names it in errors.
 */
export function resolveCallSettings<T>(
  defaults: CallSettings,
  options: GetOrCreateOptions<T> | undefined,
  valid: readonly string[],
  method: string,
): CallSettings<T> {
  if (options === undefined) return defaults as CallSettings<T>
  rejectUnknown(options, valid, `${method}()`)
  const expirationMs = callExpirationMs(options.expirationTime, defaults.expirationMs)
  const tags = options.tags === undefined ? undefined : validateTags(options.tags, method)
  const policy = setsPolicy(options)
    ? resolvePolicy(defaults.policy, options, `${method}()`, expirationMs)
    : defaults.policy
  if (options.forceRefresh !== undefined && typeof options.forceRefresh !== 'boolean')
    throw new ValidationError(`${method}(): forceRefresh must be a boolean; got ${describeValue(options.forceRefresh)}`)
  return callSettings(expirationMs, options.shouldCache, tags, policy, options.forceRefresh === true)
}

/** A call's expiration in milliseconds: its own `expirationTime` when it gives one, else the region's. */
export function callExpirationMs(expirationTime: Duration | undefined, regionMs: number): number {
  if (expirationTime === undefined) return regionMs
  return expirationToMs(parseExpiration(expirationTime, 'expirationTime'))
}

/** Seconds → milliseconds, `Infinity` for "never expires". */
export function expirationToMs(seconds: number | undefined): number {
  return seconds === undefined ? Number.POSITIVE_INFINITY : seconds * 1000
}

/**
 * Throws a `ValidationError` naming the valid options when `options` holds any other: a misspelt option
 * (`expiration_time`, `ttl`) must fail where it is written, not be ignored.
 */
export function rejectUnknown(options: object, valid: readonly string[], where: string): void {
  for (const name in options) {
    if (!valid.includes(name)) {
      throw new ValidationError(`${where}: unknown option "${name}"; valid options are ${valid.join(', ')}`)
    }
  }
}

/**
 * A value to store, created at `ct`, with its tags and, when the policy has `expirationJitter`, a random share of
 * it (uniform over [0, jitter]) added to its expiration time.
 */
export function createValue<T>(
  payload: T,
  ct: number,
  tags: readonly string[] | undefined,
  policy: Policy,
): CachedValue<T> {
  const jitterMs = policy.jitterMs > 0 ? Math.random() * policy.jitterMs : 0
  const tagged = tags !== undefined && tags.length > 0
  if (jitterMs === 0 && !tagged) return new CachedValue(payload, ct)
  return new CachedValue(payload, ct, { ...(tagged ? { tags } : {}), ...(jitterMs > 0 ? { jitterMs } : {}) })
}
