import type { Span } from '@opentelemetry/api'
import type { BackendAccess } from '../backend-access.js'
import type { CacheBackend, CacheMutex } from '../backends/api.js'
import { CachedValue } from '../cached-value.js'
import { LockTimeoutError } from '../errors.js'
import type { Freshness, Lookup, NotFresh, Stale } from '../freshness.js'
import type { Creator, ShouldCache } from '../region-options.js'
import type { AsyncCreationRunner } from './async-runner.js'
import type { CacheRegion } from '../region.js'
import type { CallIdentity, CallReporter } from '../telemetry/call-reporter.js'
import { FlightTable, type Flight } from './flight.js'

/**
 * The dogpile lock: one creator per key at a time, across every caller of the region (and across processes when
 * the backend has a distributed lock), while other callers get the stale value at once or wait for that creator.
 *
 * The procedure, as a caller lives it:
 *
 * 1. **Read.** A fresh value is returned without touching any lock (the hit path).
 * 2. **Join.** Someone in this process is regenerating the key (a `Flight`): a caller with a stale value gets it
 *    at once; a caller without one waits for the flight and gets the creator's value (or its error) straight from
 *    it, with no backend round trip.
 * 3. **Lead.** Otherwise this caller leads a new flight. With a distributed lock it takes the backend's mutex:
 *    without a value it waits for it; with a stale value it makes one attempt and, if another process holds the
 *    lock, serves the stale value (dogpile's non-blocking acquire). Once it holds the lock it re-reads: another
 *    process may have made the value meanwhile.
 * 4. **Hand off.** A stale value with an async creation runner: the runner regenerates; the leader serves stale.
 * 5. **Regenerate.** Run the creator, store its value unless `shouldCache` declines, settle the flight with the
 *    value (or the error), release the lock.
 *
 * The region supplies what the lock needs through `LockHost`; every step is reported through the host's
 * `CallReporter`, so the lock holds no telemetry of its own.
 */

/** What the lock needs from its region. */
export interface LockHost {
  /** passed to the async creation runner */
  readonly region: CacheRegion
  readonly asyncCreationRunner: AsyncCreationRunner | undefined
  /** the configured backend (throws when the region is not configured) */
  backend(): CacheBackend
  /** false for backends that turn coalescing off (the `null` backend): every caller runs its creator */
  coalesce(): boolean
  readonly freshness: Freshness
  readonly access: BackendAccess
  readonly report: CallReporter
  /** a creation time: wall-clock milliseconds, strictly increasing within the region */
  stamp(): number
}

/** One `getOrCreate` call that could not be answered from a fresh value. */
export interface Call<T> extends CallIdentity {
  readonly storeKey: string
  readonly creator: Creator<T>
  readonly expirationMs: number
  readonly shouldCache: ShouldCache<T> | undefined
  /** tags stored with a created value */
  readonly tags: readonly string[] | undefined
}

export class DogpileLock {
  /** the regenerations in progress in this process, by backend key */
  readonly flights = new FlightTable()

  constructor(private readonly host: LockHost) {}

  /**
   * The value for `storeKey`: fresh from the backend, or made by `creator` once per key at a time. Arguments
   * are checked by the region.
   */
  async getOrCreate<T>(
    key: string,
    storeKey: string,
    creator: Creator<T>,
    expirationMs: number,
    shouldCache: ShouldCache<T> | undefined,
    tags: readonly string[] | undefined,
  ): Promise<T> {
    const { host } = this
    const backend = host.backend()
    const startedAt = host.report.traced ? performance.now() : undefined
    const stored = backend.getSync !== undefined ? backend.getSync(storeKey) : await host.access.read(backend, storeKey)
    // 1. The hit path: a fresh value is returned without touching any lock.
    if (host.freshness.isFresh(stored, expirationMs)) {
      host.report.hit({ key, startedAt })
      return stored.payload as T
    }
    const call: Call<T> = { key, storeKey, creator, expirationMs, shouldCache, tags, startedAt }
    return this.createOrJoin(call, await host.freshness.lookup(stored, expirationMs))
  }

  /** Steps 2 and 3: join the flight in progress for the key, or lead a new one. */
  async createOrJoin<T>(call: Call<T>, lookup: Lookup): Promise<T> {
    const { report } = this.host
    for (;;) {
      if (lookup.state === 'fresh') {
        report.hit(call)
        return lookup.value as T
      }
      const flight = this.host.coalesce() ? this.flights.get(call.storeKey) : undefined
      if (flight === undefined) return this.#lead(call, lookup)

      flight.coalesced++
      if (lookup.state === 'stale') {
        // Someone in this process is regenerating: serve the stale value at once.
        report.servedStaleWhileJoined(call, lookup, flight)
        return lookup.value as T
      }
      // No value: wait for the creator in progress.
      report.joined(call)
      const waitStart = performance.now()
      const outcome = await flight.done
      const waited = (performance.now() - waitStart) / 1000
      if (outcome.kind === 'value') {
        report.joinedAnswered(call, lookup.reason, waited, flight)
        return outcome.value as T
      }
      if (outcome.kind === 'error') {
        report.joinedAnswered(call, lookup.reason, waited, flight)
        throw outcome.error
      }
      // Produced elsewhere (another process, an async runner): re-read, as dogpile's waiters do.
      flight.coalesced--
      const backend = this.host.backend()
      lookup = await this.host.freshness.lookup(await this.host.access.read(backend, call.storeKey), call.expirationMs)
    }
  }

  /** Steps 3 to 5: this caller leads. It takes the backend's lock if there is one, then regenerates or hands off. */
  async #lead<T>(call: Call<T>, lookup: NotFresh): Promise<T> {
    const { host } = this
    const { report } = host
    const { key, storeKey } = call
    const flight = host.coalesce() ? this.flights.begin(storeKey) : undefined
    const span = report.startSpan(call)
    let mutex: CacheMutex | undefined
    let handedOff = false
    try {
      mutex = host.backend().getMutex?.(storeKey)
      if (mutex) {
        const acquired = await this.acquire(mutex, key, lookup.state === 'absent', span)
        if (acquired === 'failed') mutex = undefined
        else if (acquired === 'busy') {
          // Another process regenerates and we have a stale value: serve it (dogpile's non-blocking acquire).
          mutex = undefined
          flight?.settle({ kind: 'reread' })
          report.servedStaleWhileLockedElsewhere(key, lookup as Stale, span)
          return (lookup as Stale).value as T
        } else {
          // We hold the lock: another process may have created the value while we waited for it.
          const backend = host.backend()
          const again = await host.freshness.lookup(await host.access.read(backend, storeKey), call.expirationMs)
          if (again.state === 'fresh') {
            flight?.settle({ kind: 'value', value: again.value })
            report.createdElsewhere(key, lookup, span)
            return again.value as T
          }
          lookup = again
        }
      }

      if (lookup.state === 'stale' && host.asyncCreationRunner) {
        handedOff = this.#handOff(call, lookup, flight, mutex)
        if (handedOff) {
          report.handedOff(key, lookup, span)
          return lookup.value as T
        }
      }

      report.regenerating(key, lookup, span)
      const value = await this.#regenerate(call, flight, span)
      flight?.settle({ kind: 'value', value })
      report.leaderAnswered(span)
      return value
    } catch (error) {
      flight?.settle({ kind: 'error', error })
      report.leaderAnswered(span, error)
      throw error
    } finally {
      if (!handedOff) {
        if (mutex) await this.release(mutex)
        if (flight) this.flights.end(storeKey, flight)
      }
    }
  }

  /** Whether a creator holds the lock for `storeKey`, in this process or (with a distributed lock) in any. */
  async isLocked(storeKey: string): Promise<boolean> {
    if (this.flights.get(storeKey)) return true
    const mutex = this.host.backend().getMutex?.(storeKey)
    if (!mutex) return false
    try {
      return await mutex.locked()
    } catch (error) {
      this.host.report.backendError('lock', error)
      return false
    }
  }

  /**
   * Takes the backend's lock: waits when there is no value, one attempt when there is a stale one. `failed`: the
   * lock server is unreachable, so the caller regenerates as if there were no lock (availability first).
   */
  async acquire(
    mutex: CacheMutex,
    key: string,
    wait: boolean,
    span: Span | undefined,
  ): Promise<'acquired' | 'busy' | 'failed'> {
    const { report } = this.host
    const started = performance.now()
    let acquired: boolean
    try {
      acquired = await mutex.acquire(wait)
    } catch (error) {
      report.backendError('lock', error)
      return 'failed'
    }
    if (!wait) return acquired ? 'acquired' : 'busy'
    const waited = (performance.now() - started) / 1000
    report.waitedForLock(key, waited, span)
    if (!acquired) {
      throw new LockTimeoutError(
        `region "${this.host.region.name}": waited ${waited.toFixed(3)}s for another process to regenerate "${key}" and the lock was still held; raise the backend's lockTimeout if creators legitimately take that long`,
      )
    }
    return 'acquired'
  }

  /** Releases the backend's lock; a failure is reported (the lock expires by itself). */
  async release(mutex: CacheMutex): Promise<void> {
    try {
      await mutex.release()
    } catch (error) {
      this.host.report.backendError('unlock', error)
    }
  }

  /** Step 4: passes the regeneration of a stale value to the async creation runner; true when the runner took it. */
  #handOff<T>(call: Call<T>, lookup: Stale, flight: Flight | undefined, mutex: CacheMutex | undefined): boolean {
    const { host } = this
    let released = false
    const release = async () => {
      if (released) return
      released = true
      if (mutex) await this.release(mutex)
      if (flight) {
        flight.settle({ kind: 'reread' })
        this.flights.end(call.storeKey, flight)
      }
    }
    const creator = async () => {
      host.report.miss(call.key, lookup.reason)
      return this.#regenerate(call, flight, undefined)
    }
    try {
      const running = host.asyncCreationRunner!(host.region, call.key, creator, { release })
      if (running && typeof (running as Promise<void>).then === 'function') {
        ;(running as Promise<void>).then(release, (error: unknown) => {
          host.report.backendError('asyncCreationRunner', error)
          return release()
        })
      }
      return true
    } catch (error) {
      // The runner refused synchronously: regenerate inline instead, still holding the lock.
      host.report.backendError('asyncCreationRunner', error)
      released = true
      return false
    }
  }

  /** Step 5: runs the creator inside its span, stores the value unless `shouldCache` declines. */
  #regenerate<T>(call: Call<T>, flight: Flight | undefined, parent: Span | undefined): Promise<T> {
    const { host } = this
    return host.report.regeneration([call.key], call.startedAt !== undefined, parent, flight, async () => {
      const created = await call.creator()
      if (call.shouldCache === undefined || call.shouldCache(created)) {
        await host.access.store(host.backend(), call.storeKey, CachedValue.create(created, host.stamp(), call.tags))
      }
      return created
    })
  }
}
