/**
 * The clocks of a region. Both read the global `Date.now()` at call time, never a reference taken when the region
 * was created, so a test that installs fake timers (`vi.useFakeTimers()`, `@sinonjs/fake-timers`) at any moment
 * moves creation times and expiry alike.
 *
 * - `wallClock`: exact. Creation times, invalidation times, ages, fail-safe and every decision off the hit path.
 * - `coarseWallClock`: the hit path's expiry check. On this machine's kind of VM a `Date.now()` costs about as much
 *   as the rest of a hit (~45 ns), so, like lru-cache's `ttlResolution`, one reading is reused for up to
 *   `COARSE_RESOLUTION_MS` of event-loop time and at most `COARSE_MAX_READS` reads. It lags the exact clock, never
 *   leads it, and it only decides expiry: a value may be served as fresh for about a millisecond (or for the rest
 *   of the current run of synchronous code and microtasks, which no timer can interrupt, bounded by the read
 *   count) past its expiration time. Invalidation never depends on it (marks are compared with creation times),
 *   and a value it cannot prove fresh goes through the exact check. While `Date.now` is not the built-in one (fake
 *   timers, a patched clock), every read is exact.
 */

/** How long one reading of the coarse clock is reused, at most (event-loop time). */
export const COARSE_RESOLUTION_MS = 1
/** How many reads one reading of the coarse clock serves, at most: bounds its lag inside one long synchronous run. */
export const COARSE_MAX_READS = 512

const nativeDateNow = Date.now
const nativeSetTimeout = setTimeout

function isBuiltIn(fn: unknown): boolean {
  return typeof fn === 'function' && /\{\s*\[native code\]\s*\}\s*$/.test(Function.prototype.toString.call(fn))
}

/**
 * Whether the coarse clock can reuse readings: `Date.now` was the built-in one when this module loaded, and
 * `setTimeout` was not a fake (@sinonjs/fake-timers, and so Vitest and Jest, mark theirs with a `clock`): with fake
 * timers installed before that, every read is exact (a fake `setTimeout` would never expire a reading by itself).
 */
const COARSE_USABLE =
  isBuiltIn(nativeDateNow) && typeof nativeSetTimeout === 'function' && !('clock' in nativeSetTimeout)

/** Epoch milliseconds, exact: `Date.now()` looked up at every call. */
export const wallClock = (): number => Date.now()

let reading = 0
let readsLeft = 0
let expiring = false

/** Epoch milliseconds, at most about a millisecond behind `wallClock` (see the file header). */
export function coarseWallClock(): number {
  // `Date.now` is compared on every read: fake timers installed after the last reading make it exact at once.
  if (readsLeft > 0 && Date.now === nativeDateNow) {
    readsLeft--
    return reading
  }
  return takeReading()
}

function takeReading(): number {
  const now = Date.now()
  if (!COARSE_USABLE || Date.now !== nativeDateNow) return now
  reading = now
  readsLeft = COARSE_MAX_READS
  if (!expiring) {
    expiring = true
    // The built-in setTimeout, taken at load: a fake one installed later would never fire on its own.
    const timer = nativeSetTimeout(expireReading, COARSE_RESOLUTION_MS) as { unref?: () => void }
    timer.unref?.()
  }
  return now
}

function expireReading(): void {
  readsLeft = 0
  expiring = false
}
