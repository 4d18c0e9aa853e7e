import type { CacheMutex } from '../backends/api.js'
import { NO_VALUE, type CachedValue, type NoValue } from '../cached-value.js'
import { describeValue } from '../describe-value.js'
import { ValidationError } from '../errors.js'
import type { NotFresh, Stale } from '../freshness.js'
import { createValue, type Policy } from '../policy.js'
import type { ShouldCache } from '../region-options.js'
import type { Call, DogpileLock, LockHost } from './dogpile.js'
import type { Flight } from './flight.js'

/** A `getOrCreateMulti` request, its keys already unique, sorted and mapped to backend keys. */
export interface MultiRequest<T> {
  readonly keys: readonly string[]
  readonly storeKeys: readonly string[]
  readonly creator: (...keys: string[]) => readonly T[] | Promise<readonly T[]>
  readonly expirationMs: number
  readonly shouldCache: ShouldCache<T> | undefined
  readonly tags: readonly string[] | undefined
  /** the region's policy, for the keys joined as `getOrCreate` would */
  readonly policy: Policy
}

interface Pending {
  readonly key: string
  readonly storeKey: string
  readonly lookup: NotFresh
}

/**
 * The dogpile lock for many keys at once (`getOrCreateMulti`): the per-key semantics of `DogpileLock`, with one
 * creator call for every key this caller leads. Keys another caller is regenerating are joined exactly as
 * `getOrCreate` would; the rest are locked (backend locks in sorted key order, so two multi-callers cannot
 * deadlock), re-read once they are held, and created together. Returns the values by key.
 */
export async function getOrCreateMulti<T>(
  lock: DogpileLock,
  host: LockHost,
  request: MultiRequest<T>,
): Promise<Map<string, unknown>> {
  const { keys, storeKeys, creator, expirationMs, shouldCache, tags, policy } = request
  const { values: stored, tiers } = await host.access.readMultiThrough(host.backend(), storeKeys)
  await host.freshness.loadTagsOf(stored)
  const values = new Map<string, unknown>()
  const waits: Array<Promise<void>> = []
  const toCreate: Pending[] = []

  keys.forEach((key, i) => {
    const storeKey = storeKeys[i]!
    const lookup = host.freshness.classify(stored[i] ?? NO_VALUE, expirationMs)
    if (lookup.state === 'fresh') {
      host.report.hit(key, undefined, tiers[i]!)
      values.set(key, lookup.value)
      return
    }
    const flight = host.coalesce() ? lock.flights.get(storeKey) : undefined
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
      shouldCache,
      tags,
      policy,
      startedAt: undefined,
    }
    waits.push(lock.createOrJoin(single, lookup, tiers[i] ?? 'l2').then((value) => void values.set(key, value)))
  })

  if (toCreate.length > 0) {
    const created = await leadMulti(lock, host, toCreate, request)
    for (const [key, value] of created) values.set(key, value)
  }
  await Promise.all(waits)
  return values
}

async function leadMulti<T>(
  lock: DogpileLock,
  host: LockHost,
  entries: Pending[],
  { creator, expirationMs, shouldCache, tags, policy }: MultiRequest<T>,
): Promise<Map<string, unknown>> {
  const { report } = host
  const results = new Map<string, unknown>()
  const flights = new Map<string, Flight>()
  const mutexes: CacheMutex[] = []
  /** what each lock's acquisition read with it (undefined: the backend did not read it) */
  const current = new Map<Pending, CachedValue | NoValue | undefined>()
  if (host.coalesce()) for (const { storeKey } of entries) flights.set(storeKey, lock.flights.begin(storeKey))
  try {
    // Backend locks in sorted key order (entries are sorted), so two multi-callers cannot deadlock.
    let pending = entries
    const backend = host.backend()
    if (backend.getMutex) {
      pending = []
      for (const entry of entries) {
        const mutex = backend.getMutex(entry.storeKey)
        const acquisition = mutex
          ? await lock.acquire(mutex, entry.key, entry.lookup.state === 'absent', undefined)
          : undefined
        if (acquisition !== undefined && !acquisition.acquired) {
          if (acquisition.produced !== undefined) {
            // Made by another process while we waited: its value, no creator call for this key.
            report.coalesced(entry.key, 'waited')
            report.miss(entry.key, entry.lookup.reason)
            results.set(entry.key, acquisition.produced.payload)
            flights.get(entry.storeKey)?.settle({ kind: 'value', value: acquisition.produced.payload })
            continue
          }
          const stale = entry.lookup as Stale
          report.servedStale(entry.key, stale, true)
          results.set(entry.key, stale.value)
          flights.get(entry.storeKey)?.settle({ kind: 'reread' })
          continue
        }
        if (acquisition !== undefined) {
          mutexes.push(mutex!)
          current.set(entry, acquisition.current)
        }
        pending.push(entry)
      }
      if (mutexes.length > 0 && pending.length > 0) {
        // Some may have been created by another process while we waited for their locks. The backends read the
        // value with the lock; only what they did not read is read now.
        const unread = pending.filter((entry) => current.get(entry) === undefined)
        if (unread.length > 0) {
          const read = await host.access.readMulti(
            host.backend(),
            unread.map((entry) => entry.storeKey),
          )
          unread.forEach((entry, i) => current.set(entry, read[i] ?? NO_VALUE))
        }
        const again = pending.map((entry) => current.get(entry)!)
        await host.freshness.loadTagsOf(again)
        pending = pending.filter((entry, i) => {
          const lookup = host.freshness.classify(again[i] ?? NO_VALUE, expirationMs)
          if (lookup.state !== 'fresh') return true
          report.coalesced(entry.key, 'waited')
          report.miss(entry.key, entry.lookup.reason)
          results.set(entry.key, lookup.value)
          flights.get(entry.storeKey)?.settle({ kind: 'value', value: lookup.value })
          return false
        })
      }
    }
    if (pending.length === 0) return results

    for (const entry of pending) report.miss(entry.key, entry.lookup.reason)
    const keys = pending.map((entry) => entry.key)
    const started = performance.now()
    let failed = true
    let failure: unknown
    try {
      const created = await creator(...keys)
      if (!Array.isArray(created) || created.length !== keys.length) {
        throw new ValidationError(
          `getOrCreateMulti(): the creator must return an array with one value per key it received (${keys.length}); got ${Array.isArray(created) ? `${created.length} values` : describeValue(created)}`,
        )
      }
      const ct = host.stamp()
      const toStore: Array<readonly [string, CachedValue]> = []
      pending.forEach((entry, i) => {
        const value = created[i] as T
        results.set(entry.key, value)
        if (shouldCache === undefined || shouldCache(value))
          toStore.push([entry.storeKey, createValue(value, ct, tags, policy)])
      })
      if (toStore.length > 0) await host.access.storeMulti(host.backend(), toStore)
      for (const entry of pending) flights.get(entry.storeKey)?.settle({ kind: 'value', value: results.get(entry.key) })
      failed = false
    } catch (error) {
      failure = error
      for (const entry of pending) flights.get(entry.storeKey)?.settle({ kind: 'error', error })
      throw error
    } finally {
      const coalesced = pending.reduce((sum, entry) => sum + (flights.get(entry.storeKey)?.coalesced ?? 0), 0)
      report.regenerated(keys, (performance.now() - started) / 1000, failed, failure, coalesced)
    }
    return results
  } finally {
    await Promise.all(mutexes.map((mutex) => lock.release(mutex)))
    for (const [storeKey, flight] of flights) {
      flight.settle({ kind: 'reread' })
      lock.flights.end(storeKey, flight)
    }
  }
}
