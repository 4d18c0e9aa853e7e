/** Timing policies of the live connection: throttled refreshes and reconnection backoff. */

export interface Clock {
  now(): number
  setTimeout(fn: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>),
}

export interface Throttled {
  /** Asks for a run: now if the last one started at least `intervalMs` ago, else once at the end of the interval. */
  request(): void
  /** Forgets a pending run (a run in flight finishes, but is not followed by another). */
  cancel(): void
}

/**
 * Throttles an async task: at most one run in flight, runs start at least `intervalMs` apart, and requests made
 * meanwhile collapse into one trailing run, so that the last request is always followed by a run.
 */
export function throttle(run: () => Promise<unknown>, intervalMs: number, clock: Clock = systemClock): Throttled {
  let running = false
  let pending = false
  let timer: unknown = null
  let lastStart = -Infinity

  const start = () => {
    timer = null
    pending = false
    running = true
    lastStart = clock.now()
    let finished: Promise<unknown>
    try {
      finished = Promise.resolve(run())
    } catch (error) {
      finished = Promise.reject(error)
    }
    finished
      .catch(() => undefined)
      .then(() => {
        running = false
        if (pending) request()
      })
  }

  const request = () => {
    if (running) {
      pending = true
      return
    }
    if (timer !== null) return
    const wait = lastStart + intervalMs - clock.now()
    if (wait <= 0) start()
    else timer = clock.setTimeout(start, wait)
  }

  const cancel = () => {
    pending = false
    if (timer !== null) clock.clearTimeout(timer)
    timer = null
  }

  return { request, cancel }
}

export interface BackoffOptions {
  baseMs?: number
  maxMs?: number
  /** Relative jitter: 0.2 spreads the delay over ±20%. */
  jitter?: number
  random?: () => number
}

/** Exponential backoff: the delay before reconnection attempt `attempt` (1, 2, 3, ...): 1 s, 2 s, 4 s ... 30 s. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const { baseMs = 1000, maxMs = 30_000, jitter = 0.2, random = Math.random } = options
  const exponent = Math.max(0, Math.min(attempt - 1, 30))
  const nominal = Math.min(maxMs, baseMs * 2 ** exponent)
  const spread = nominal * jitter * (2 * random() - 1)
  return Math.max(0, Math.round(Math.min(maxMs, nominal + spread)))
}

export type ConnectionState = 'connecting' | 'live' | 'reconnecting' | 'polling' | 'unauthorized'

/** After this many consecutive failed attempts, the stream counts as unavailable and the page says "polling". */
export const FAILURES_BEFORE_POLLING = 3

/**
 * The state to show after the event stream failed `consecutiveFailures` times in a row. `unsupported` means
 * the server answered in a way that retrying soon will not change (404, 405, 501, not an event stream).
 */
export function stateAfterFailure(consecutiveFailures: number, unsupported: boolean): 'reconnecting' | 'polling' {
  return unsupported || consecutiveFailures >= FAILURES_BEFORE_POLLING ? 'polling' : 'reconnecting'
}

/** The last server-history request: what it was for (scope and range), when it started, whether it is running. */
export interface HistoryRequest {
  key: string
  startedAt: number
  inFlight: boolean
}

/**
 * Whether to ask for the server history of `key` now. Forced requests (a new scope or range) always go; others
 * only when the last request was for another key, or finished and started at least `intervalMs` ago. Whether a
 * history is held yet does not matter: without one, an unthrottled page would ask on every refresh.
 */
export function historyRequestDue(
  last: HistoryRequest,
  key: string,
  force: boolean,
  now: number,
  intervalMs: number,
): boolean {
  if (force || last.key !== key) return true
  return !last.inFlight && now - last.startedAt >= intervalMs
}
