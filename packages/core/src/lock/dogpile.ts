import type { Span } from '@opentelemetry/api'
import type { BackendAccess } from '../backend-access.js'
import type { CacheBackend, CacheMutex, LockAcquisition, LockHolder } from '../backends/api.js'
import { NOT_FRESH, NO_VALUE, type CachedValue, type NoValue } from '../cached-value.js'
import { CreatorTimeoutError, LockTimeoutError, SerializationError } from '../errors.js'
import type { Freshness, Lookup, NotFresh, Stale } from '../freshness.js'
import { createValue, type CallSettings, type Policy } from '../policy.js'
import type { Creator, CreatorContext, GetOrCreateResult, ShouldCache } from '../region-options.js'
import type { AsyncCreationRunner } from './async-runner.js'
import type { CacheRegion } from '../region.js'
import type { CallIdentity, CallReporter } from '../telemetry/call-reporter.js'
import type { Tier } from '../telemetry/events.js'
import { deadlineIn } from './deadlines.js'
import { FlightTable, type AnswerSource, type Flight, type FlightOutcome } from './flight.js'

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
  /** the region's clock, epoch milliseconds */
  now(): number
}

/**
 * How long a creator may run when the call sets no `hardTimeout`: the backend's lock timeout (a distributed lock
 * expires then anyway, and another process takes over), or this for backends without one. No caller waits for a
 * creator without bound.
 */
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000

/** One `getOrCreate` call that could not be answered from a fresh value. */
export interface Call<T> extends CallIdentity {
  readonly storeKey: string
  readonly creator: Creator<T>
  readonly expirationMs: number
  readonly shouldCache: ShouldCache<T> | undefined
  /** tags stored with a created value */
  readonly tags: readonly string[] | undefined
  /** fail-safe, timeouts, eager refresh, jitter */
  readonly policy: Policy
  /** regenerate even if the value is fresh (the caller wants a new one): joins and waits, never served stale */
  readonly forceRefresh?: boolean
  /** filled in as the call is answered, when the caller asked how (`getOrCreateResult`) */
  readonly info?: CallInfo
}

/** How a `getOrCreate` call was answered: what `getOrCreateResult` answers besides the value. */
export type CallInfo = Omit<GetOrCreateResult<unknown>, 'value'>

/**
 * What the creator is called with. The `AbortController` behind `signal` is made only if the creator reads it (an
 * EventTarget costs more than the rest of a regeneration's bookkeeping).
 */
class Context<T> implements CreatorContext<T> {
  #controller: AbortController | undefined
  #abandoned: unknown

  constructor(
    readonly key: string,
    readonly staleValue: T | NoValue,
  ) {}

  get signal(): AbortSignal {
    this.#controller ??= new AbortController()
    if (this.#abandoned !== undefined && !this.#controller.signal.aborted) this.#controller.abort(this.#abandoned)
    return this.#controller.signal
  }

  /** The call gave up on this creator (its hard timeout): the signal aborts with `reason`. */
  abandon(reason: unknown): void {
    this.#abandoned = reason
    this.#controller?.abort(reason)
  }

  get abandoned(): boolean {
    return this.#abandoned !== undefined
  }
}

/** The `CallInfo` of an answer that came out of a flight. */
const RESULT_OF: Record<AnswerSource, CallInfo['result']> = { created: 'miss', stale: 'stale', failSafe: 'failSafe' }

function note(info: CallInfo | undefined, result: CallInfo['result'], created = false, tier?: Tier): void {
  if (info === undefined) return
  info.result = result
  info.created = created
  info.tier = tier
}

export class DogpileLock {
  /** the regenerations in progress in this process, by backend key */
  readonly flights = new FlightTable()

  constructor(private readonly host: LockHost) {}

  /**
   * The value for `storeKey`: fresh from the backend, or made by `creator` once per key at a time. Arguments
   * are checked by the region.
   *
   * The hit path is synchronous up to the returned promise: a fresh value this process keeps (the memory backend,
   * an L1) is judged in place by `getFreshSync` and counted, with no allocation but the promise, and one check of
   * whether anyone observes hits (a listener, or an SDK for spans). Everything else reads on in `#read`.
   */
  getOrCreate<T>(
    key: string,
    storeKey: string,
    creator: Creator<T>,
    settings: CallSettings<T>,
    info: CallInfo | undefined,
  ): Promise<T> {
    const { host } = this
    const backend = host.backend()
    const startedAt = host.report.traced ? performance.now() : undefined
    if (settings.quickHit && backend.getFreshSync !== undefined) {
      const payload = backend.getFreshSync(storeKey, host.freshness, settings.expirationMs)
      if (payload !== NOT_FRESH) {
        host.report.hit(key, startedAt, 'l1')
        if (info !== undefined) note(info, 'hit', false, 'l1')
        return Promise.resolve(payload as T)
      }
    }
    return this.#read(key, storeKey, creator, settings, info, startedAt, backend)
  }

  /** Step 1 off the quick path: reads (this process's memory first, then the backend) and judges the value. */
  async #read<T>(
    key: string,
    storeKey: string,
    creator: Creator<T>,
    settings: CallSettings<T>,
    info: CallInfo | undefined,
    startedAt: number | undefined,
    backend: CacheBackend,
  ): Promise<T> {
    const { host } = this
    const { expirationMs, shouldCache, tags, policy, forceRefresh } = settings
    // This process's memory first (the memory backend, a region's L1); `undefined`: not there, ask the backend.
    let tier: Tier = 'l1'
    let stored = backend.getSync?.(storeKey)
    if (stored === undefined) {
      tier = 'l2'
      stored = await host.access.read(backend, storeKey)
    }
    // 1. A fresh value is returned without touching any lock.
    if (!forceRefresh && host.freshness.isFresh(stored, expirationMs)) {
      host.report.hit(key, startedAt, tier)
      note(info, 'hit', false, tier)
      if (policy.eagerRefresh !== undefined && host.now() - stored.ct > policy.eagerRefresh * expirationMs) {
        this.#refreshEarly(
          { key, storeKey, creator, expirationMs, shouldCache, tags, policy, startedAt: undefined },
          stored,
        )
      }
      return stored.payload as T
    }
    const call: Call<T> = {
      key,
      storeKey,
      creator,
      expirationMs,
      shouldCache,
      tags,
      policy,
      startedAt,
      forceRefresh,
      info,
    }
    let lookup = host.freshness.lookup(stored, expirationMs)
    if (lookup instanceof Promise) lookup = await lookup
    // Forced: a fresh value is treated as stale, so it is still the creator's context and fail-safe's fallback.
    if (forceRefresh && lookup.state === 'fresh')
      lookup = { state: 'stale', value: lookup.value, ct: lookup.stored.ct, reason: 'expired', stored: lookup.stored }
    // The common miss: nothing in flight for the key, so this caller leads (createOrJoin's first step, inline).
    if (lookup.state !== 'fresh' && (!host.coalesce() || this.flights.get(storeKey) === undefined))
      return await this.#lead(call, lookup)
    return await this.createOrJoin(call, lookup, tier)
  }

  /**
   * Steps 2 and 3: join the flight in progress for the key, or lead a new one. `tier`: where `lookup`'s value was
   * read (a value read again here comes from the backend).
   */
  async createOrJoin<T>(call: Call<T>, lookup: Lookup, tier: Tier): Promise<T> {
    const { report } = this.host
    for (;;) {
      if (lookup.state === 'fresh') {
        report.hit(call.key, call.startedAt, tier)
        note(call.info, 'hit', false, tier)
        return lookup.value as T
      }
      const flight = this.host.coalesce() ? this.flights.get(call.storeKey) : undefined
      if (flight === undefined) return await this.#lead(call, lookup)

      flight.coalesced++
      if (lookup.state === 'stale' && call.forceRefresh !== true) {
        // Someone in this process is regenerating: serve the stale value at once.
        report.servedStaleWhileJoined(call, lookup, flight)
        note(call.info, 'stale')
        return lookup.value as T
      }
      // No value: wait for the creator in progress.
      report.joined(call)
      const waitStart = performance.now()
      const outcome = await flight.done
      const waited = (performance.now() - waitStart) / 1000
      if (outcome.kind === 'value') {
        report.joinedAnswered(call, lookup.reason, waited, flight)
        note(call.info, RESULT_OF[outcome.source ?? 'created'])
        return outcome.value as T
      }
      if (outcome.kind === 'error') {
        report.joinedAnswered(call, lookup.reason, waited, flight)
        throw outcome.error
      }
      // Produced elsewhere (another process, an async runner): re-read, as dogpile's waiters do.
      flight.coalesced--
      const backend = this.host.backend()
      tier = 'l2'
      const current = await this.host.access.read(backend, call.storeKey)
      const judged = this.host.freshness.lookup(current, call.expirationMs)
      lookup = judged instanceof Promise ? await judged : judged
    }
  }

  /** Steps 3 to 5: this caller leads. It takes the backend's lock if there is one, then regenerates or hands off. */
  async #lead<T>(call: Call<T>, lookup: NotFresh): Promise<T> {
    const { host } = this
    const { report } = host
    const { key, storeKey } = call
    const flight = host.coalesce() ? this.flights.begin(storeKey) : undefined
    const span = report.startSpan(call)
    const lead = new Leadership(host, this.flights, storeKey, flight)
    let detached = false
    try {
      const mutex = host.backend().getMutex?.(storeKey)
      if (mutex) {
        const wait = lookup.state === 'absent' || call.forceRefresh === true
        const acquisition = await this.acquire(mutex, key, wait, span)
        if (acquisition !== undefined && !acquisition.acquired) {
          if (acquisition.produced !== undefined) {
            // Another process made the value while we waited, and released its lock with it.
            const value = acquisition.produced.payload
            report.createdElsewhere(key, lookup, span, acquisition.holder, flight)
            flight?.settle({ kind: 'value', value })
            note(call.info, 'miss')
            return value as T
          }
          // Another process regenerates and we have a stale value: serve it (dogpile's non-blocking acquire).
          flight?.settle(REREAD)
          report.servedStaleWhileLockedElsewhere(key, lookup as Stale, span, acquisition.holder)
          note(call.info, 'stale')
          return (lookup as Stale).value as T
        }
        if (acquisition !== undefined) {
          lead.hold(mutex)
          // We hold the lock: another process may have created the value while we waited for it.
          const current =
            acquisition.current !== undefined ? acquisition.current : await host.access.read(host.backend(), storeKey)
          let again = host.freshness.lookup(current, call.expirationMs)
          if (again instanceof Promise) again = await again
          // Made by another process while we waited for the lock (a forced refresh only takes a newer one).
          if (again.state === 'fresh' && (call.forceRefresh !== true || again.stored.ct > stampOf(lookup))) {
            flight?.settle({ kind: 'value', value: again.value })
            report.createdElsewhere(key, lookup, span)
            note(call.info, 'miss')
            return again.value as T
          }
          if (again.state !== 'fresh') lookup = again
        }
      }

      if (lookup.state === 'stale' && host.asyncCreationRunner && call.forceRefresh !== true) {
        detached = this.#handOff(call, lookup, lead)
        if (detached) {
          report.handedOff(key, lookup, span)
          note(call.info, 'stale')
          return lookup.value as T
        }
      }

      report.regenerating(key, lookup, span)
      const produced = await this.#produce(call, lead, span, lookup)
      // #produce settled the flight (the waiters' answer) as it answered.
      detached = produced.detached
      report.leaderAnswered(span)
      note(call.info, RESULT_OF[produced.source], produced.source === 'created')
      return produced.value
    } catch (error) {
      flight?.settle({ kind: 'error', error })
      report.leaderAnswered(span, error)
      throw error
    } finally {
      // A detached regeneration (handed to the async runner, or going on after a soft timeout) lets go itself.
      if (!detached) {
        const finished = lead.finish()
        // Without a lock to release it is done already: no turn of the microtask queue for it.
        if (finished !== RESOLVED) await finished
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
   * Takes the backend's lock: waits when there is no value, one attempt when there is a stale one. `undefined`:
   * the lock server is unreachable, so the caller regenerates as if there were no lock (availability first). A
   * wait that ends with neither the lock nor a value is a `LockTimeoutError`.
   */
  async acquire(
    mutex: CacheMutex,
    key: string,
    wait: boolean,
    span: Span | undefined,
  ): Promise<LockAcquisition | undefined> {
    const { report } = this.host
    const started = performance.now()
    let acquisition: LockAcquisition
    try {
      acquisition = await mutex.acquire({ wait, holder: report.holderOf(span) })
    } catch (error) {
      report.backendError('lock', error)
      return undefined
    }
    if (!wait) return acquisition
    const waited = (performance.now() - started) / 1000
    report.waitedForLock(key, waited, span)
    if (!acquisition.acquired && acquisition.produced === undefined) {
      throw new LockTimeoutError(
        `region "${this.host.region.name}": waited ${waited.toFixed(3)}s for another process to regenerate "${key}" and no holder made progress; raise the backend's lockTimeout if creators legitimately take that long`,
      )
    }
    return acquisition
  }

  /** Releases the backend's lock without storing; a failure is reported (the lock expires by itself). */
  release(mutex: CacheMutex): Promise<void> {
    return releaseQuietly(this.host, mutex)
  }

  /** Step 4: passes the regeneration of a stale value to the async creation runner; true when the runner took it. */
  #handOff<T>(call: Call<T>, lookup: Stale, lead: Leadership): boolean {
    const { host } = this
    const release = () => lead.finish()
    const creator = async () => {
      host.report.miss(call.key, lookup.reason)
      return (await this.#produce(call, lead, undefined, lookup)).value
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
      return false
    }
  }

  /**
   * Step 5: runs the creator under the call's policy and answers with its value, or:
   * - at `softTimeout`, when a stale value exists: the stale value; the creator goes on in the background
   *   (`detached`), stores its value when it finishes, and then calls `finish` (releasing the lock and the flight);
   * - at `hardTimeout` (or the lock timeout when there is none): a `CreatorTimeoutError`, the creator's signal
   *   aborted and its late value discarded;
   * - on an error or a hard timeout, a fail-safe value when the policy has one (see `#failSafe`).
   * The flight is settled as soon as the caller has its answer, so waiters get the same answer at the same time.
   */
  #produce<T>(
    call: Call<T>,
    lead: Leadership,
    span: Span | undefined,
    lookup: Lookup,
  ): Promise<{ value: T; detached: boolean; source: AnswerSource }> {
    const { host } = this
    const { flight } = lead
    const { policy } = call
    const context = new Context<T>(call.key, lookup.state === 'absent' ? NO_VALUE : (lookup.value as T))
    const creation = this.#regenerate(call, lead, span, context)
    const hardMs = policy.hardTimeoutMs ?? host.backend().lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS
    const softMs = lookup.state === 'stale' && call.forceRefresh !== true ? policy.softTimeoutMs : undefined

    return new Promise((resolve, reject) => {
      let answered = false
      let detached = false
      const answer = (value: T, source: AnswerSource) => {
        answered = true
        flight?.settle({ kind: 'value', value, source })
        resolve({ value, detached, source })
      }
      const fail = (error: unknown) => {
        answered = true
        const saved = lookup.state === 'stale' ? this.#failSafe(call, lead, lookup, error) : undefined
        if (saved) answer(saved.value as T, 'failSafe')
        else reject(error)
      }
      const softTimer =
        softMs === undefined
          ? undefined
          : setTimeout(() => {
              if (answered) return
              host.report.timedOut(call.key, 'soft')
              detached = true
              answer((lookup as Stale).value as T, 'stale')
            }, softMs)
      const hardDeadline = deadlineIn(hardMs, () => {
        if (softTimer !== undefined) clearTimeout(softTimer)
        const timeout = new CreatorTimeoutError(
          `region "${host.region.name}": the creator of "${call.key}" did not finish within ${hardMs / 1000}s${policy.hardTimeoutMs === undefined ? ' (the lock timeout; set hardTimeout to choose)' : ''}`,
        )
        context.abandon(timeout)
        host.report.timedOut(call.key, 'hard')
        if (detached) void lead.finish()
        else if (!answered) fail(timeout)
      })
      creation.then(
        (value) => {
          if (softTimer !== undefined) clearTimeout(softTimer)
          hardDeadline.cancel()
          if (detached) void lead.finish()
          else if (!answered) answer(value, 'created')
        },
        (error: unknown) => {
          if (softTimer !== undefined) clearTimeout(softTimer)
          hardDeadline.cancel()
          if (detached) void lead.finish()
          else if (!answered) fail(error)
        },
      )
    })
  }

  /**
   * Fail-safe: when the creator failed or timed out and the stale value is no older than `maxStaleAge`, that
   * value answers instead of the error, and it is trusted as fresh again for `throttle` (written back with its
   * creation time kept, so `maxStaleAge` still counts from it), so a failing source is not hammered.
   */
  #failSafe<T>(call: Call<T>, lead: Leadership, stale: Stale, error: unknown): { value: unknown } | undefined {
    const { host } = this
    const failSafe = call.policy.failSafe
    if (failSafe === undefined) return undefined
    const now = host.now()
    const age = now - stale.ct
    if (!(age <= failSafe.maxStaleAgeMs)) return undefined
    host.report.failSafe(call.key, age / 1000, error)
    // Written back only over the value it replaces (created at stale.ct), never over a newer one.
    const trusted = stale.stored.withExtensions({ trustedUntil: now + failSafe.throttleMs })
    void lead.store(trusted, stale.ct, undefined).catch((failure: unknown) => host.report.backendError('set', failure))
    return { value: stale.value }
  }

  /**
   * Runs the creator (inside its span when traced) and stores the value unless `shouldCache` declines or the call
   * was abandoned. Untraced, the run and its report are one frame: this is on every miss.
   */
  #regenerate<T>(call: Call<T>, lead: Leadership, parent: Span | undefined, context: Context<T>): Promise<T> {
    const { report } = this.host
    const since = this.host.now()
    if (report.tracesRegeneration(call.startedAt !== undefined, parent))
      return report.regeneration([call.key], parent, lead.flight, () => this.#create(call, lead, context, since))
    return this.#regenerateUntraced(call, lead, context, since)
  }

  async #regenerateUntraced<T>(call: Call<T>, lead: Leadership, context: Context<T>, since: number): Promise<T> {
    const started = performance.now()
    let failed = true
    let failure: unknown
    try {
      const created = await this.#create(call, lead, context, since)
      failed = false
      return created
    } catch (error) {
      failure = error
      throw error
    } finally {
      const seconds = (performance.now() - started) / 1000
      this.host.report.regenerated([call.key], seconds, failed, failure, lead.flight?.coalesced ?? 0)
    }
  }

  /** The creator's run and the store of its value (`since`: when the regeneration started, for the fence). */
  async #create<T>(call: Call<T>, lead: Leadership, context: Context<T>, since: number): Promise<T> {
    const { host } = this
    const created = await call.creator(context)
    // A creator abandoned at its hard timeout must not store what it made late.
    if (context.abandoned) return created
    if (call.shouldCache === undefined || call.shouldCache(created)) {
      const value = createValue(created, host.stamp(), call.tags, call.policy)
      await lead.store(value, since, host.report.holderOfFlight(lead.flight))
    }
    return created
  }

  /**
   * Eager refresh: a hit on a value older than `eagerRefresh` × its expiration time starts one background
   * regeneration (one across processes: it only proceeds if it gets the backend's lock at the first attempt). The
   * caller already has its value; a failure is reported as a `regenerate` event and otherwise ignored.
   */
  #refreshEarly<T>(call: Call<T>, current: CachedValue): void {
    const { host } = this
    if (!host.coalesce() || this.flights.get(call.storeKey)) return
    const flight = this.flights.begin(call.storeKey)
    const lookup: Lookup = { state: 'fresh', value: current.payload, stored: current }
    void (async () => {
      const lead = new Leadership(host, this.flights, call.storeKey, flight)
      let detached = false
      try {
        const mutex = host.backend().getMutex?.(call.storeKey)
        if (mutex) {
          const acquisition = await this.acquire(mutex, call.key, false, undefined)
          if (acquisition !== undefined && !acquisition.acquired) return
          if (acquisition !== undefined) lead.hold(mutex)
        }
        detached = (await this.#produce(call, lead, undefined, lookup)).detached
      } catch (error) {
        flight.settle({ kind: 'error', error })
      } finally {
        if (!detached) await lead.finish()
      }
    })()
  }
}

/**
 * What a leader holds while it regenerates: its flight and, with a distributed lock, the backend's mutex. Values
 * are stored fenced: through the mutex's release while it holds the lock (the store, the release and the waiters'
 * wake-up in one step where the backend can), else with `setIfNotNewer`. `finish` lets go of both, once.
 */
class Leadership {
  /** the backend's lock, once held (`hold`) */
  mutex: CacheMutex | undefined
  #released = false
  #finished: Promise<void> | undefined

  constructor(
    private readonly host: LockHost,
    private readonly flights: FlightTable,
    readonly storeKey: string,
    readonly flight: Flight | undefined,
  ) {}

  /** The backend's lock was taken: stores go through its release, and `finish` releases it. */
  hold(mutex: CacheMutex): void {
    this.mutex = mutex
  }

  /**
   * Stores `value` unless a value created after `since` is there; a failure is reported, never thrown (but a
   * SerializationError). Without a held lock it returns the backend access's promise itself: no frame of its own.
   */
  store(value: CachedValue, since: number, holder: LockHolder | undefined): Promise<void> {
    if (this.mutex !== undefined && !this.#released) return this.#storeReleasing(value, since, holder)
    let backend: CacheBackend
    try {
      backend = this.host.backend()
    } catch {
      return RESOLVED // the region was closed while the creator ran: its caller still gets the value, nothing is stored
    }
    return this.host.access.storeIfNotNewer(backend, this.storeKey, value, since)
  }

  /** Stores through the mutex's release: the store, the release and the waiters' wake-up in one step. */
  async #storeReleasing(value: CachedValue, since: number, holder: LockHolder | undefined): Promise<void> {
    try {
      await this.mutex!.release({ value, since, ...(holder ? { holder } : {}) })
      this.#released = true
    } catch (error) {
      if (error instanceof SerializationError) throw error
      this.host.report.backendError('set', error)
    }
  }

  /**
   * Releases the lock (unless storing released it) and ends the flight, so later callers start a new one. Without
   * a lock to release, at once (a regeneration in one process needs no promise for it).
   */
  finish(): Promise<void> {
    if (this.#finished !== undefined) return this.#finished
    if (this.mutex === undefined || this.#released) {
      this.#endFlight()
      this.#finished = RESOLVED
    } else {
      this.#released = true
      this.#finished = this.#release()
    }
    return this.#finished
  }

  async #release(): Promise<void> {
    await releaseQuietly(this.host, this.mutex!)
    this.#endFlight()
  }

  #endFlight(): void {
    if (this.flight) {
      this.flight.settle(REREAD)
      this.flights.end(this.storeKey, this.flight)
    }
  }
}

const RESOLVED: Promise<void> = Promise.resolve()

/** Releases a backend's lock without storing; a failure is reported (the lock expires by itself). */
async function releaseQuietly(host: LockHost, mutex: CacheMutex): Promise<void> {
  try {
    await mutex.release()
  } catch (error) {
    host.report.backendError('unlock', error)
  }
}
const REREAD: FlightOutcome = Object.freeze({ kind: 'reread' })

/** The creation time of what a lookup found (0 when nothing). */
function stampOf(lookup: Lookup): number {
  return lookup.state === 'absent' ? 0 : lookup.stored.ct
}
