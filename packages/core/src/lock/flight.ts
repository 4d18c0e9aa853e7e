import type { SpanContext } from '@opentelemetry/api'

/**
 * The in-process half of the dogpile lock.
 *
 * dogpile.cache guards each key with a mutex: the caller that takes it regenerates; a caller that finds a stale
 * value and cannot take it returns the stale value at once; a caller with no value blocks on the mutex and then
 * re-reads. In one Node.js process there are no threads to block, so the mutex is a `Flight`: the promise of the
 * one regeneration in progress for a key. Joining a flight costs no backend round trip, and waiters get the
 * creator's value straight from it, even when the value was not cached (`shouldCache` said no).
 *
 * Across processes the region additionally takes the backend's `CacheMutex` (Redis, memcached), once per
 * process per key: the flight's leader is the only caller in its process that talks to the distributed lock.
 */

/** Where a flight's answer came from: the creator, the stale value (soft timeout) or fail-safe. */
export type AnswerSource = 'created' | 'stale' | 'failSafe'

/** How a flight ended, as its waiters see it. */
export type FlightOutcome<T = unknown> =
  /**
   * the flight's answer (cached or not): the creator's value, or the stale value it fell back to (after a soft
   * timeout) or fail-safe served (after a failure)
   */
  | { readonly kind: 'value'; readonly value: T; readonly source?: AnswerSource }
  /** the creator failed: every waiter fails with the same error */
  | { readonly kind: 'error'; readonly error: unknown }
  /** the value was produced elsewhere (another process, an async runner): read it from the backend */
  | { readonly kind: 'reread' }

export class Flight<T = unknown> {
  readonly done: Promise<FlightOutcome<T>>
  /** callers that joined this flight instead of running the creator */
  coalesced = 0
  /** the `corral.regenerate` span, once it started: coalesced callers link to it */
  regenerateSpan: SpanContext | undefined
  /** the creator in another process this flight's leader waited for (its trace context), when it learnt it */
  remoteCreator: SpanContext | undefined
  private settleWith!: (outcome: FlightOutcome<T>) => void
  #settled = false

  constructor() {
    this.done = new Promise((resolve) => {
      this.settleWith = resolve
    })
  }

  /** Resolves the flight once; later calls are ignored (the first outcome is the truth). */
  settle(outcome: FlightOutcome<T>): void {
    if (this.#settled) return
    this.#settled = true
    this.settleWith(outcome)
  }
}

/** The flights in progress in one region, by backend key. */
export class FlightTable {
  private readonly flights = new Map<string, Flight>()

  get(key: string): Flight | undefined {
    return this.flights.get(key)
  }

  begin(key: string): Flight {
    const flight = new Flight()
    this.flights.set(key, flight)
    return flight
  }

  /** Ends `flight` for `key`, unless a newer flight already replaced it. */
  end(key: string, flight: Flight): void {
    if (this.flights.get(key) === flight) this.flights.delete(key)
  }

  get size(): number {
    return this.flights.size
  }
}
