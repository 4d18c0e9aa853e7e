import type { Link, Span, SpanContext } from '@opentelemetry/api'
import type { LockHolder } from '../backends/api.js'
import type { Stale, NotFresh } from '../freshness.js'
import type { Flight } from '../lock/flight.js'
import type { MissReason, Tier, TimeoutKind } from './events.js'
import type { Instrumentation } from './instrumentation.js'
import { endSpan, formatTraceparent, linkTo, parseTraceparent, type GetResult, type RegionTracing } from './tracing.js'

/** What telemetry needs to know of one `getOrCreate` call. */
export interface CallIdentity {
  readonly key: string
  /** `performance.now()` at the call's start when tracing is on, else undefined */
  readonly startedAt: number | undefined
}

/**
 * The dogpile lock's one port to telemetry. Each method is a step of the lock as a caller lives it (served fresh,
 * joined a regeneration, served stale, waited, led a regeneration); it fans out to the instrumentation (counters,
 * events, hot keys, histograms, debug lines) and to the call's OpenTelemetry span, so the lock never touches
 * either directly. Span handles are opaque to the lock: `undefined` when tracing is off.
 */
export class CallReporter {
  constructor(
    private readonly instrumentation: Instrumentation,
    private readonly tracing: RegionTracing | undefined,
    private readonly clock: () => number,
  ) {}

  /** Whether this call is traced: the caller records `performance.now()` as its start only then. */
  get traced(): boolean {
    return this.tracing !== undefined && this.tracing.enabled
  }

  // ------------------------------------------------------------ callers that did not regenerate

  /**
   * A fresh value was served, by `tier`: this process's memory (`getSync`) or the backend (`get`). `startedAt`: the
   * call's start when it is traced. Takes the key and the start apart, so the hit path allocates no call object.
   */
  hit(key: string, startedAt: number | undefined, tier: Tier): void {
    this.instrumentation.hit(key, tier)
    if (startedAt !== undefined) this.tracing!.recordFinished(key, 'hit', startedAt, undefined, undefined, tier)
  }

  /** Another caller of this process regenerates and this one had a stale value: it was served at once. */
  servedStaleWhileJoined(call: CallIdentity, lookup: Stale, flight: Flight): void {
    this.instrumentation.coalesced(call.key, 'stale')
    this.instrumentation.stale(call.key, this.#age(lookup))
    this.#finish(call, 'stale', flight)
  }

  /** This caller had no value and joined another caller's regeneration (counted when it joins). */
  joined(call: CallIdentity): void {
    this.instrumentation.coalesced(call.key, 'waited')
  }

  /** A joined caller got the regeneration's outcome after `seconds`. */
  joinedAnswered(call: CallIdentity, reason: MissReason, seconds: number, flight: Flight): void {
    // the wait's exemplar is the regeneration it waited for
    this.instrumentation.lockWait(call.key, seconds, false, flight.regenerateSpan)
    this.instrumentation.miss(call.key, reason)
    this.#finish(call, 'miss', flight, seconds)
  }

  // ------------------------------------------------------------ the leader of a flight

  /** The span of a caller that leads (it takes the lock and may regenerate); undefined when not traced. */
  startSpan(call: CallIdentity): Span | undefined {
    return call.startedAt !== undefined ? this.tracing!.start(call.key, call.startedAt) : undefined
  }

  /** The leader waited `seconds` for the backend's lock (reported from a millisecond on). */
  waitedForLock(key: string, seconds: number, span: Span | undefined): void {
    if (seconds < 0.001) return
    this.instrumentation.lockWait(key, seconds, true, span?.spanContext())
    span?.addEvent('cache.lock_wait', { duration_s: seconds })
  }

  /** Another process regenerates and the leader has a stale value: served at once (dogpile's non-blocking lock). */
  servedStaleWhileLockedElsewhere(key: string, lookup: Stale, span: Span | undefined, holder?: LockHolder): void {
    this.instrumentation.coalesced(key, 'stale')
    this.instrumentation.stale(key, this.#age(lookup))
    if (span) {
      linkTo(span, holder, 'served_stale_while_other_process_regenerated')
      endSpan(span, 'stale')
    }
  }

  /**
   * The leader did not regenerate: another process made the value, and released its lock with it (`holder`: that
   * creator), or the leader found it once it held the lock.
   */
  createdElsewhere(key: string, lookup: NotFresh, span: Span | undefined, holder?: LockHolder, flight?: Flight): void {
    // The callers of this process that joined the leader's flight link to the same creator.
    if (flight !== undefined && holder !== undefined) flight.remoteCreator = parseTraceparent(holder.traceparent)
    if (lookup.state === 'absent') this.instrumentation.coalesced(key, 'waited')
    this.instrumentation.miss(key, lookup.reason)
    if (span) {
      linkTo(span, holder, 'waited_for_creator_in_other_process')
      endSpan(span, 'miss')
    }
  }

  /** This caller, as the holder of a lock, for the other processes: its span's trace context. */
  holderOf(span: Span | undefined): LockHolder | undefined {
    return span === undefined ? undefined : { traceparent: formatTraceparent(span.spanContext()) }
  }

  /** The creator of `flight`, for the waiters of other processes: its `corral.regenerate` span's trace context. */
  holderOfFlight(flight: Flight | undefined): LockHolder | undefined {
    const context = flight?.regenerateSpan
    return context === undefined ? undefined : { traceparent: formatTraceparent(context) }
  }

  /** The regeneration of a stale value went to the async creation runner; the leader served the stale value. */
  handedOff(key: string, lookup: Stale, span: Span | undefined): void {
    this.instrumentation.stale(key, this.#age(lookup))
    if (span) endSpan(span, 'stale')
  }

  /** The leader regenerates: a miss, with the reason on its span. */
  regenerating(key: string, lookup: NotFresh, span: Span | undefined): void {
    this.miss(key, lookup.reason)
    span?.addEvent('cache.miss', { reason: lookup.reason })
    if (lookup.reason === 'invalidated')
      span?.addEvent(lookup.state === 'absent' ? 'cache.hard_invalidation' : 'cache.soft_invalidation')
  }

  /** The leader's call ended (with its value or `error`). */
  leaderAnswered(span: Span | undefined, error?: unknown): void {
    if (span) endSpan(span, 'miss', error)
  }

  // ------------------------------------------------------------ shared steps

  miss(key: string, reason: MissReason): void {
    this.instrumentation.miss(key, reason)
  }

  /** A stale value served by the multi-key lock, whose calls are not traced. */
  servedStale(key: string, lookup: Stale, coalesced: boolean): void {
    if (coalesced) this.instrumentation.coalesced(key, 'stale')
    this.instrumentation.stale(key, this.#age(lookup))
  }

  coalesced(key: string, mode: 'waited' | 'stale'): void {
    this.instrumentation.coalesced(key, mode)
  }

  backendError(operation: string, error: unknown): void {
    this.instrumentation.backendError(operation, error)
  }

  /** Whether a regeneration gets a `corral.regenerate` span: a traced call's, or one under a leader's span. */
  tracesRegeneration(traced: boolean, parent: Span | undefined): boolean {
    return parent !== undefined || (this.tracing !== undefined && traced)
  }

  /**
   * Runs a traced regeneration inside a `corral.regenerate` span (a child of the leader's span), so the creator's
   * own spans nest under it, and reports it as a `regenerate` with its duration, outcome and the number of callers
   * that were coalesced onto `flight`. An untraced regeneration reports itself (`regenerated`), without this frame.
   */
  async regeneration<T>(
    keys: string[],
    parent: Span | undefined,
    flight: Flight | undefined,
    run: () => Promise<T>,
  ): Promise<T> {
    const started = performance.now()
    let failed = true
    let failure: unknown
    let span: SpanContext | undefined
    try {
      const value = await this.tracing!.regenerate(
        parent,
        keys,
        (started) => {
          span = started
          if (flight) flight.regenerateSpan = started
        },
        run,
      )
      failed = false
      return value
    } catch (error) {
      failure = error
      throw error
    } finally {
      this.regenerated(keys, (performance.now() - started) / 1000, failed, failure, flight?.coalesced ?? 0, span)
    }
  }

  /**
   * A regeneration of `keys` ended after `seconds` (`failed` with `failure`, whatever the creator threw, even
   * `undefined`), with `coalesced` callers that did not run the creator; `trace`: its `corral.regenerate` span.
   */
  regenerated(
    keys: string[],
    seconds: number,
    failed: boolean,
    failure: unknown,
    coalesced: number,
    trace?: SpanContext,
  ): void {
    // The time it finished only dates a prevented stampede (coalesced callers): no clock read otherwise.
    this.instrumentation.regenerate(keys, seconds, failed, failure, coalesced, coalesced > 0 ? this.clock() : 0, trace)
  }

  /** A creator ran past its soft or hard timeout. */
  timedOut(key: string, kind: TimeoutKind): void {
    this.instrumentation.note(kind === 'soft' ? 'softTimeouts' : 'hardTimeouts', 'timeout', key, kind)
  }

  /** Fail-safe served a value `ageSeconds` old instead of the creator's `error`. */
  failSafe(key: string, ageSeconds: number, error: unknown): void {
    this.instrumentation.note('failSafe', 'failSafe', key, ageSeconds, error)
  }

  #age(lookup: Stale): number {
    return (this.clock() - lookup.ct) / 1000
  }

  /** The span of a caller that did not lead, linked to the regeneration it was coalesced onto. */
  #finish(call: CallIdentity, result: GetResult, flight?: Flight, waitedSeconds?: number): void {
    if (call.startedAt === undefined) return
    const links: Link[] | undefined = flight?.regenerateSpan
      ? [{ context: flight.regenerateSpan }]
      : flight?.remoteCreator
        ? [
            {
              context: flight.remoteCreator,
              attributes: { 'corral.link.reason': 'waited_for_creator_in_other_process' },
            },
          ]
        : undefined
    this.tracing!.recordFinished(call.key, result, call.startedAt, links, waitedSeconds)
  }
}
