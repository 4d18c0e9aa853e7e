/**
 * Pieces shared by the backends that talk to a server (Redis, memcached): argument parsing, the server-side
 * expiry derived from the region's, rate-limited error reporting, and the waiting loop of a distributed lock.
 */
import { createRequire } from 'node:module'
import { parseDuration, parseExpiration } from '../../durations.js'
import { describeValue } from '../../describe-value.js'
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
 * one caller regenerates it, short enough that the server never grows without bound. A region without an
 * expiration time stores values without a server TTL unless the argument says otherwise.
 */
export function serverTtlSeconds(
  backend: string,
  name: string,
  explicit: unknown,
  regionExpiration: number | undefined,
): number | undefined {
  if (explicit !== undefined) {
    const seconds = parseExpiration(explicit, `${backend} backend: argument "${name}"`)
    return seconds === Number.POSITIVE_INFINITY ? undefined : seconds
  }
  if (regionExpiration === undefined || !Number.isFinite(regionExpiration)) return undefined
  return 2 * regionExpiration + 60
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
   * `remainingMs`: how long the current holder's lock has left, when known (`undefined`: unknown / no expiry);
   * `holder`: who holds it, when known (a new holder resets a polling waiter's backoff)
   */
  | { readonly acquired: false; readonly remainingMs: number | undefined; readonly holder?: string }

/** Waits for a lock to be released, until `signal` or the timer fires. */
export interface LockWaiter {
  /** Resolves when a release is signalled or after `ms`, whichever comes first. */
  wait(ms: number): Promise<void>
  dispose(): void
}

/**
 * The waiting side of a distributed lock, shared by Redis and memcached: try, then wait (for a release
 * notification, the holder's expiry, or the next poll), and try again until `lockTimeoutMs` has passed.
 *
 * Giving up: a waiter returns `false` (the region then throws `LockTimeoutError`) only when, after waiting
 * `lockTimeoutMs`, the lock is *still* held by a lock that does not run out within `graceMs`, which means someone
 * re-took it after this waiter began waiting (a holder that was already there when it began has expired by then).
 * A holder that died is therefore never an error: its lock expires, one waiter takes it and regenerates.
 */
export async function waitForLock(
  attempt: () => Promise<LockAttempt>,
  waiter: LockWaiter,
  options: { lockTimeoutMs: number; nextDelayMs: (round: number) => number; graceMs: number },
): Promise<boolean> {
  const deadline = performance.now() + options.lockTimeoutMs
  let round = 0
  let lastHolder: string | undefined
  try {
    for (;;) {
      const result = await attempt()
      if (result.acquired) return true
      const now = performance.now()
      const remaining = result.remainingMs
      if (now >= deadline) {
        // Past the deadline: keep waiting only for a lock that is about to run out (and not for long).
        if (remaining === undefined || remaining > options.graceMs || now > deadline + 4 * options.graceMs) return false
        await waiter.wait(remaining + 1)
        continue
      }
      // The lock changed hands: the previous holder finished. The new one is often a waiter that only re-reads
      // the value and lets go at once, so look again soon instead of at the backed-off pace.
      if (result.holder !== undefined && lastHolder !== undefined && result.holder !== lastHolder) round = 0
      lastHolder = result.holder
      let delay = options.nextDelayMs(round++)
      // Wake when the holder's lock runs out (a dead holder), and at the deadline.
      if (remaining !== undefined) delay = Math.min(delay, remaining + 1)
      delay = Math.min(delay, deadline - now + 1)
      await waiter.wait(delay)
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
