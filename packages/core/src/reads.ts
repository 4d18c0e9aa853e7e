/**
 * The reads that never create a value: `get`, `getMulti` and `getValueMetadata`. Each reads this process's memory
 * first (the memory backend, a region's L1), checks a copy that is not fresh against the backend (another process
 * may have made a newer value there), and reports every key it answers as a hit, a stale value served or a miss.
 * Arguments reach here unchecked; the region wraps each call in its tracing channel and span.
 */
import type { Span } from '@opentelemetry/api'
import { NO_VALUE, type NoValue } from './cached-value.js'
import type { Lookup } from './freshness.js'
import { assertKeyList } from './keys.js'
import { callExpirationMs, rejectUnknown } from './policy.js'
import { GET_OPTIONS, type GetOptions, type ValueMetadata } from './region-options.js'
import type { RegionInternals } from './region-internals.js'
import type { Tier } from './telemetry/events.js'

/** `region.get`: the value for `key`, or `NO_VALUE` if it is absent, expired or invalidated. */
export async function get<T>(
  host: RegionInternals,
  key: string,
  options: GetOptions | undefined,
): Promise<T | NoValue> {
  if (options !== undefined) rejectUnknown(options, GET_OPTIONS, 'get()')
  const backend = host.backend()
  const storeKey = host.storeKey(key)
  const expirationMs = callExpirationMs(options?.expirationTime, host.defaults().expirationMs)
  // This process's memory first (the memory backend, an L1), as getOrCreate reads.
  let tier: Tier = 'l1'
  const copy = backend.getSync?.(storeKey)
  let lookup = copy === undefined ? undefined : await host.freshness.lookup(copy, expirationMs)
  // A copy that is not fresh is checked against the backend: another process may have made a newer value there.
  if (lookup === undefined || (lookup.state !== 'fresh' && copy !== NO_VALUE)) {
    tier = 'l2'
    lookup = await host.freshness.lookup(await host.access.read(backend, storeKey), expirationMs)
  }
  return answer(host, key, lookup, options?.ignoreExpiration === true, tier) as T | NoValue
}

/** `region.getMulti`: values in key order, `NO_VALUE` where missing, with one backend round trip. */
export async function getMulti<T>(
  host: RegionInternals,
  keys: readonly string[],
  options: GetOptions | undefined,
): Promise<Array<T | NoValue>> {
  if (options !== undefined) rejectUnknown(options, GET_OPTIONS, 'getMulti()')
  assertKeyList(keys, 'getMulti')
  const backend = host.backend()
  const expirationMs = callExpirationMs(options?.expirationTime, host.defaults().expirationMs)
  const storeKeys = keys.map((key) => host.storeKey(key))
  const { values: stored, tiers } = await host.access.readMultiThrough(backend, storeKeys)
  await host.freshness.loadTagsOf(stored)
  const lookups = stored.map((value) => host.freshness.classify(value ?? NO_VALUE, expirationMs))
  // Copies from this process's memory that are not fresh are checked against the backend (as in get()).
  const recheck = lookups.flatMap((lookup, i) =>
    tiers[i] === 'l1' && lookup.state !== 'fresh' && stored[i] !== NO_VALUE ? [i] : [],
  )
  if (recheck.length > 0) {
    const again = await host.access.readMulti(
      backend,
      recheck.map((i) => storeKeys[i]!),
    )
    await host.freshness.loadTagsOf(again)
    recheck.forEach((i, j) => {
      lookups[i] = host.freshness.classify(again[j] ?? NO_VALUE, expirationMs)
      tiers[i] = 'l2'
    })
  }
  const ignore = options?.ignoreExpiration === true
  return keys.map((key, i) => answer(host, key, lookups[i]!, ignore, tiers[i]!) as T | NoValue)
}

/** `region.getValueMetadata`: the value with its creation time and age, regardless of expiry; undefined if absent. */
export async function getValueMetadata<T>(host: RegionInternals, key: string): Promise<ValueMetadata<T> | undefined> {
  const backend = host.backend()
  const storeKey = host.storeKey(key)
  let stored = backend.getSync?.(storeKey)
  // A copy that is not fresh is checked against the backend (as in get()).
  if (stored === undefined || (stored !== NO_VALUE && !host.freshness.isFresh(stored, host.defaults().expirationMs)))
    stored = await host.access.read(backend, storeKey)
  if (stored === NO_VALUE || Number.isNaN(stored.ct)) return undefined
  await host.freshness.loadTagsOf([stored])
  if (host.freshness.isHardInvalidated(stored)) return undefined
  return {
    value: stored.payload as T,
    cachedTime: stored.ct / 1000,
    age: (host.now() - stored.ct) / 1000,
  }
}

/** A `corral.get` span's result: whether the read found a value. */
export function describeGet(value: unknown, span: Span): void {
  span.setAttribute('corral.result', value === NO_VALUE ? 'miss' : 'hit')
}

/** A `corral.get_multi` span's count of keys that had a value. */
export function describeGetMulti(values: readonly unknown[], span: Span): void {
  span.setAttribute('corral.hit_count', values.filter((value) => value !== NO_VALUE).length)
}

/** What a read answers for one key, reported: the value when fresh (or stale and `ignoreExpiration`), else a miss. */
function answer(host: RegionInternals, key: string, lookup: Lookup, ignoreExpiration: boolean, tier: Tier): unknown {
  const { instrumentation } = host
  if (lookup.state === 'fresh') {
    instrumentation.hit(key, tier)
    return lookup.value
  }
  if (lookup.state === 'stale') {
    if (ignoreExpiration) {
      instrumentation.stale(key, (host.now() - lookup.ct) / 1000)
      return lookup.value
    }
    instrumentation.miss(key, lookup.reason)
    return NO_VALUE
  }
  instrumentation.miss(key, lookup.reason)
  return NO_VALUE
}
