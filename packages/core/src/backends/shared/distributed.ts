/**
 * Pieces shared by the backends that talk to a server (Redis, memcached): argument parsing, the server-side
 * expiry derived from the region's, rate-limited error reporting, and the waiting loop of a distributed lock.
 */
import { createRequire } from 'node:module'
import { parseDuration, parseExpiration } from '../../durations.js'
import { describeValue } from '../../describe-value.js'
import { storedCreationTime } from '../../cached-value.js'
import { FUTURE_CREATION_TOLERANCE_MS } from '../../freshness.js'
import { ValidationError } from '../../errors.js'
import type { BackendContext } from '../api.js'

/** Loads an optional peer dependency on first use, with an install hint when it is missing. */
export function loadOptionalPeer<T>(backend: string, module: string): T {
  const require = createRequire(import.meta.url)
  try {
    return require(module) as T
  } catch (error) {
    const code = (error as NodeJS.ErrnoException)?.code
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') {
      throw new ValidationError(
        `the ${backend} backend needs the "${module}" package, which is not installed: npm install ${module}`,
        { cause: error },
      )
    }
    throw error
  }
}

/** A positive duration argument in milliseconds (`fallback` when absent). */
export function durationMs(backend: string, name: string, value: unknown, fallbackSeconds: number): number {
  if (value === undefined) return fallbackSeconds * 1000
  const seconds = parseDuration(value, `${backend} backend: argument "${name}"`)
  if (seconds <= 0) throw new ValidationError(`${backend} backend: argument "${name}" must be greater than zero`)
  return seconds * 1000
}

/**
 * The server-side time to live of stored values, in seconds, or `undefined` for none.
 *
 * Explicit: the backend's own argument (`-1` turns server expiry off). Otherwise it is derived from the region's
 * expiration time E as `2 × E + 60 s`: long enough that an expired value is still there to be served stale while
 * one caller regenerates it, short enough that the server never grows without bound. A region that uses fail-safe
 * keeps values at least `failSafeMaxStaleAge + 60 s`, so the value fail-safe falls back on is still there. A region
 * without an expiration time stores values without a server TTL unless the argument says otherwise.
 */
export function serverTtlSeconds(
  backend: string,
  name: string,
  explicit: unknown,
  regionExpiration: number | undefined,
  failSafeMaxStaleAge?: number,
): number | undefined {
  if (explicit !== undefined) {
    const seconds = parseExpiration(explicit, `${backend} backend: argument "${name}"`)
    return seconds === Number.POSITIVE_INFINITY ? undefined : seconds
  }
  if (regionExpiration === undefined || !Number.isFinite(regionExpiration)) return undefined
  const keep = failSafeMaxStaleAge !== undefined && Number.isFinite(failSafeMaxStaleAge) ? failSafeMaxStaleAge : 0
  return Math.max(2 * regionExpiration, keep) + 60
}

const TRACEPARENT = /^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/

/**
 * `s` when it is a W3C traceparent, else `undefined`: what a lock holder names itself by in a lock value or a
 * release message that other processes parse (anything else could break their format).
 */
export function validTraceparent(s: string | undefined): string | undefined {
  return s !== undefined && TRACEPARENT.test(s) ? s : undefined
}

/**
 * A time to live in seconds as whole milliseconds, at least 1 (so a tiny TTL still expires, and Redis's PX / PEXPIRE
 * reject 0); `undefined` (no expiry) stays `undefined`.
 */
export function ttlMilliseconds(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : Math.max(1, Math.ceil(seconds * 1000))
}

/**
 * The rule of a fenced write: whether the stored bytes are a value created after `since` (bytes that are no value
 * never are), in which case a value created earlier must not replace them. A creation time more than the tolerance
 * ahead of this host's clock is not believed, as in the region's freshness rule, so a host with a fast clock cannot
 * pin its value against every later write.
 */
export function createdAfter(data: Uint8Array, since: number, now = Date.now()): boolean {
  const ct = storedCreationTime(data)
  return ct !== undefined && ct > since && ct <= now + FUTURE_CREATION_TOLERANCE_MS
}

/** `{ host, port }` from an object or a `'host:port'` string. */
export function parseHostPort(backend: string, name: string, value: unknown): { host: string; port: number } {
  let host: unknown
  let port: unknown
  if (typeof value === 'string') {
    const at = value.lastIndexOf(':')
    host = at > 0 ? value.slice(0, at).trim() : value.trim()
    port = at > 0 ? Number(value.slice(at + 1)) : undefined
  } else if (value !== null && typeof value === 'object') {
    host = (value as { host?: unknown }).host
    port = (value as { port?: unknown }).port
    if (typeof port === 'string' && port.trim() !== '') port = Number(port)
  }
  if (typeof host !== 'string' || host === '' || typeof port !== 'number' || !Number.isInteger(port) || port < 1) {
    throw new ValidationError(
      `${backend} backend: every entry of "${name}" must be { host, port } or 'host:port'; got ${describeValue(value)}`,
    )
  }
  return { host, port }
}

/** A list of `{ host, port }`: an array, or a comma-separated string (from a config file). */
export function parseHostList(backend: string, name: string, value: unknown): Array<{ host: string; port: number }> {
  const list = typeof value === 'string' ? value.split(',').filter((part) => part.trim() !== '') : value
  if (!Array.isArray(list) || list.length === 0) {
    throw new ValidationError(
      `${backend} backend: argument "${name}" must be a non-empty array of { host, port } (or 'host:port,host:port'); got ${describeValue(value)}`,
    )
  }
  return list.map((entry) => parseHostPort(backend, name, entry))
}

/**
 * Reports background failures (a dropped connection, a failed refresh) through the region's `backendError`
 * events, at most once per operation per `intervalMs`, so a server that is down for an hour does not flood
 * listeners with one event per reconnection attempt.
 */
export class ErrorThrottle {
  #context: BackendContext | undefined
  readonly #last = new Map<string, number>()

  constructor(private readonly intervalMs = 5000) {}

  set context(context: BackendContext) {
    this.#context = context
  }

  report(operation: string, error: unknown): void {
    const now = Date.now()
    const last = this.#last.get(operation)
    if (last !== undefined && now - last < this.intervalMs) return
    this.#last.set(operation, now)
    try {
      this.#context?.reportError(operation, error)
    } catch {
      // a reporting failure must never reach the client library's event loop
    }
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)))

/** `ms` scaled by a random factor in [0.5, 1): spreads pollers out so they do not hit the server in step. */
export const jittered = (ms: number) => ms * (0.5 + Math.random() * 0.5)

/** What one attempt to take a lock found. */
export type LockAttempt =
  | { readonly acquired: true }
  /**
   * `remainingMs`: how long the current holder's lock has left, when known (`undefined`: unknown);
   * `holder`: who holds it (a token unique to each acquisition), when known. With it a waiter tells a new holder (a
   * release and a re-take, or a takeover after a dead holder: progress) from the same holder keeping its lock.
   */
  | { readonly acquired: false; readonly remainingMs: number | undefined; readonly holder?: string }

/** Waits for a lock to be released, until `signal` or the timer fires. */
export interface LockWaiter {
  /**
   * Resolves when a release is signalled or after `ms`, whichever comes first. Resolves `true` when the release
   * handed over what the waiter was waiting for (the holder's value), so there is no need to try again.
   */
  wait(ms: number): Promise<boolean | void>
  dispose(): void
}

/** A waiter gives up after this many lock timeouts without progress (see `waitForLock`). */
export const STALLED_LOCK_TIMEOUTS = 3
/** ...and in no case waits longer than this many lock timeouts in all (holder after holder, none producing). */
export const MAX_WAIT_LOCK_TIMEOUTS = 10

/** How long past its expiry a waiter still gives a holder's lock that is about to run out (timers and clocks). */
export const LOCK_GRACE_MS = 100

export interface WaitForLockOptions {
  lockTimeoutMs: number
  /** the pause before the next attempt when nothing wakes the waiter earlier (`round` resets on progress) */
  nextDelayMs: (round: number) => number
  /**
   * slack for clocks and timers: a holder's lock is given this long past its expiry before it counts as stuck
   * (`LOCK_GRACE_MS` unless given)
   */
  graceMs?: number
}

/**
 * The waiting side of a distributed lock, shared by Redis and memcached: try, then wait (for a release
 * notification, the holder's expiry, or the next poll), and try again.
 *
 * Resolves `true` when the lock was taken, `false` when the waiter's `wait` reported that the release handed over
 * the value, or when it gives up.
 *
 * Giving up (the region then throws `LockTimeoutError`) happens only when no holder makes progress: the lock has
 * been held by the same holder for `STALLED_LOCK_TIMEOUTS` (3) × `lockTimeoutMs` since this waiter began or since
 * the lock last changed hands, and that holder's lock has run past the expiry it had when the waiter first saw it
 * (plus `graceMs`). A Corral holder cannot do that (its lock expires after one lock timeout), so it means a lock
 * someone keeps alive without ever releasing it. Progress restarts the count: a new holder (a different token:
 * the release of one creator and the next acquisition, or a takeover after a holder died) gets a whole new bound,
 * so a takeover is never an error for the waiters of other processes while the new holder regenerates. Backends
 * that cannot tell holders apart (no `holder` in the attempt) count a lock whose expiry moved later as a new
 * holder. However holders come and go, no waiter waits more than `MAX_WAIT_LOCK_TIMEOUTS` (10) × `lockTimeoutMs`.
 */
export async function waitForLock(
  attempt: () => Promise<LockAttempt>,
  waiter: LockWaiter,
  options: WaitForLockOptions,
): Promise<boolean> {
  const { lockTimeoutMs, graceMs = LOCK_GRACE_MS } = options
  const started = performance.now()
  const stallMs = STALLED_LOCK_TIMEOUTS * lockTimeoutMs
  const hardLimit = started + MAX_WAIT_LOCK_TIMEOUTS * lockTimeoutMs
  let progressAt = started
  let round = 0
  let holder: string | undefined
  /** when the current holder's lock was due to run out when this waiter first saw that holder */
  let holderExpiry: number | undefined
  /** when the lock seen at the last attempt was due to run out (for backends without holder identity) */
  let lastExpiry: number | undefined
  try {
    for (;;) {
      const result = await attempt()
      if (result.acquired) return true
      const now = performance.now()
      const remaining = result.remainingMs
      const expiry = remaining === undefined ? undefined : now + remaining
      const changed =
        result.holder !== undefined
          ? result.holder !== holder
          : expiry !== undefined && (lastExpiry === undefined || expiry > lastExpiry + graceMs)
      if (changed) {
        // First sight of this holder, or the lock changed hands: a new holder is entitled to a whole lock.
        if (holder !== undefined || lastExpiry !== undefined) {
          progressAt = now
          // The previous holder finished; the new one is often a waiter that only re-reads and lets go at once,
          // so look again soon instead of at the backed-off pace.
          round = 0
        }
        holderExpiry = expiry
      }
      if (result.holder !== undefined) holder = result.holder
      lastExpiry = expiry
      const giveUpAt = Math.min(
        hardLimit,
        Math.max(progressAt + stallMs, holderExpiry === undefined ? 0 : holderExpiry + graceMs),
      )
      if (now >= giveUpAt) return false
      let delay = options.nextDelayMs(round++)
      // Wake when the holder's lock runs out (a dead holder), and when it is time to give up.
      if (remaining !== undefined) delay = Math.min(delay, remaining + 1)
      delay = Math.min(delay, giveUpAt - now + 1)
      if ((await waiter.wait(delay)) === true) return false
    }
  } finally {
    waiter.dispose()
  }
}

/**
 * Runs `task` again and again, each time after a jittered pause of at most `intervalMs` (between half of it and
 * all of it), so processes started together do not poll the server in step. The timer never keeps the process
 * alive. `task` must not throw.
 */
export class Poller {
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor(
    private readonly intervalMs: number,
    private readonly task: () => Promise<void>,
  ) {
    this.#schedule()
  }

  #schedule(): void {
    if (this.#stopped) return
    this.#timer = setTimeout(() => {
      void this.task().finally(() => this.#schedule())
    }, jittered(this.intervalMs))
    this.#timer.unref()
  }

  stop(): void {
    this.#stopped = true
    clearTimeout(this.#timer)
  }
}
