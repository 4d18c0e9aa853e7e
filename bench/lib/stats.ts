/** Small statistics and timing helpers shared by the cases. */

export function median(values: readonly number[]): number {
  return percentile(values, 50)
}

/** Nearest-rank percentile (p in 0..100) of `values`; NaN for an empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

/**
 * The latency of one `call(batch, i)`, ms: `calls` sequential calls per batch, a warm-up batch (0) then `batches`
 * timed ones; the median of the timed batches' mean.
 */
export async function callLatency(
  batches: number,
  calls: number,
  call: (batch: number, i: number) => Promise<unknown>,
): Promise<number> {
  const batchMs: number[] = []
  for (let batch = 0; batch <= batches; batch++) {
    const started = performance.now()
    for (let i = 0; i < calls; i++) await call(batch, i)
    if (batch > 0) batchMs.push((performance.now() - started) / calls)
  }
  return median(batchMs)
}

export function sum(values: readonly number[]): number {
  let total = 0
  for (const value of values) total += value
  return total
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Monotonic time in milliseconds (fractional). It is CLOCK_MONOTONIC underneath, which on Linux is one clock
 * for the whole machine, so timestamps taken in different processes can be subtracted (waiter latency).
 */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6
}

/** Deterministic PRNG (mulberry32): every run and every library sees the same key sequence. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * `length` draws of ranks 0..n-1 from a Zipf distribution with exponent `s` (rank r has weight 1/(r+1)^s),
 * by inverse-CDF sampling. Precomputed so that sampling costs nothing during the measurement.
 */
export function zipfSequence(n: number, s: number, length: number, seed: number): Uint32Array {
  const cdf = new Float64Array(n)
  let total = 0
  for (let r = 0; r < n; r++) {
    total += 1 / (r + 1) ** s
    cdf[r] = total
  }
  const random = seededRandom(seed)
  const out = new Uint32Array(length)
  for (let i = 0; i < length; i++) {
    const target = random() * total
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (cdf[mid]! < target) lo = mid + 1
      else hi = mid
    }
    out[i] = lo
  }
  return out
}

/** Forces full garbage collections (needs `node --expose-gc`); returns false when gc is not exposed. */
export function collectGarbage(): boolean {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) return false
  gc()
  gc()
  return true
}
