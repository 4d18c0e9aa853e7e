import v8 from 'node:v8'
import vm from 'node:vm'
import { describe, expect, it } from 'vitest'
import { ValidationError } from '../errors.js'
import { HotKeyTracker, type HotKey } from './hot-keys.js'

/** xorshift32 in [0, 1): deterministic streams so that the measured figures are reproducible. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x1_0000_0000
  }
}

/** Draws ranks 0..n-1 with P(rank r) ∝ 1 / (r + 1)^s. */
function zipf(n: number, s: number, rand: () => number): () => number {
  const cdf = new Float64Array(n)
  let sum = 0
  for (let i = 0; i < n; i++) {
    sum += 1 / (i + 1) ** s
    cdf[i] = sum
  }
  for (let i = 0; i < n; i++) cdf[i] = (cdf[i] as number) / sum
  return () => {
    const u = rand()
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if ((cdf[mid] as number) < u) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

function manualClock(start = 0): { clock: () => number; now: number } {
  const state = { now: start, clock: () => state.now }
  return state
}

function byKey(list: HotKey[]): Map<string, HotKey> {
  return new Map(list.map((k) => [k.key, k]))
}

/** The `n` keys with the largest exact counts, heaviest first. */
function trueTop(exact: Map<string, number>, n: number): [string, number][] {
  return [...exact.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, n)
}

function countInto(exact: Map<string, number>, key: string): void {
  exact.set(key, (exact.get(key) ?? 0) + 1)
}

/**
 * The reported top `n` is the true top `n`, in the true order: position by position, the reported key's true count
 * is the true top's count there (keys with equal true counts may come in either order).
 */
function expectTrueOrder(top: HotKey[], exact: Map<string, number>, n: number): void {
  expect(top.map((k) => exact.get(k.key))).toEqual(trueTop(exact, n).map(([, count]) => count))
}

/** Every reported count lies within its published error of the true count. */
function expectWithinError(top: HotKey[], exact: Map<string, number>): void {
  for (const k of top) expect(Math.abs(k.count - (exact.get(k.key) ?? 0))).toBeLessThanOrEqual(k.error)
}

/** `global.gc` without `--expose-gc`, when the runtime allows switching the flag on. */
function exposeGc(): (() => void) | undefined {
  try {
    v8.setFlagsFromString('--expose-gc')
    const gc: unknown = vm.runInNewContext('gc')
    return typeof gc === 'function' ? (gc as () => void) : undefined
  } catch {
    return undefined
  }
}

describe('HotKeyTracker', () => {
  it('finds the true top-20 of a Zipf(1.1) stream over 100k keys mixed with 1M one-off keys', () => {
    const rand = random(1234)
    const draw = zipf(100_000, 1.1, rand)
    const keys = Array.from({ length: 100_000 }, (_, i) => `user:${i}:profile`)
    const tracker = new HotKeyTracker({ clock: () => 0 })
    const exact = new Map<string, number>()
    for (let i = 0; i < 1_000_000; i++) {
      const key = keys[draw()] as string
      exact.set(key, (exact.get(key) ?? 0) + 1)
      tracker.record(key, rand() < 0.9 ? 'hit' : 'miss')
      tracker.record(`once:${i}`, 'miss')
    }

    const truth = [...exact.entries()].sort((a, b) => b[1] - a[1]).slice(0, 20)
    const top = tracker.top(20)
    expect(top).toHaveLength(20)
    const truthKeys = new Set(truth.map(([key]) => key))
    const precision = top.filter((k) => truthKeys.has(k.key)).length / 20
    // Measured: 1.0 with the default 2 × 1024 sketch (0.99 on average over seeds even with a 2 × 64 one).
    expect(precision).toBeGreaterThanOrEqual(0.9)

    // The counts of the heavy keys are close to the real counts, and never invent traffic.
    for (const k of top) {
      const real = exact.get(k.key) ?? 0
      expect(Math.abs(k.count - real)).toBeLessThanOrEqual(real * 0.02)
      expect(k.hits + k.misses).toBeLessThanOrEqual(k.count)
    }
    // Heaviest first.
    for (let i = 1; i < top.length; i++)
      expect((top[i] as HotKey).count).toBeLessThanOrEqual((top[i - 1] as HotKey).count)
    // Zero one-off keys among the results.
    expect(top.some((k) => k.key.startsWith('once:'))).toBe(false)
  })

  it('keeps memory flat through 2M one-off keys', () => {
    const gc = exposeGc()
    const rand = random(42)
    const draw = zipf(1_000, 1.1, rand)
    const hot = Array.from({ length: 1_000 }, (_, i) => `hot:${i}`)
    const tracker = new HotKeyTracker({ clock: () => 0 })
    for (let i = 0; i < 200_000; i++) tracker.record(hot[draw()] as string, 'hit')
    const hottestBefore = tracker.top(5).map((k) => k.key)
    const bytesBefore = tracker.approximateBytes()
    gc?.()
    const heapBefore = process.memoryUsage().heapUsed

    for (let i = 0; i < 2_000_000; i++) {
      tracker.record(`once:${i}:${i * 7919}`, 'miss')
      if ((i & 3) === 0) tracker.record(hot[draw()] as string, 'hit')
    }

    const bytesAfter = tracker.approximateBytes()
    expect(bytesAfter).toBeLessThanOrEqual(bytesBefore + 1024)
    // Two 2 × 1024 sketches of 12-byte buckets (48 KiB) plus 2 × 50 candidates.
    expect(bytesAfter).toBeLessThan(64 * 1024)
    expect(tracker.top(5).map((k) => k.key)).toEqual(hottestBefore)
    if (gc) {
      gc()
      // 2M retained key strings would be ~100 MB; the tracker keeps none of them.
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(16 * 1024 * 1024)
    }
  })

  it('counts hits, misses and regenerations per key', () => {
    const time = manualClock()
    const tracker = new HotKeyTracker({ clock: time.clock })
    for (let i = 0; i < 7; i++) tracker.record('a', 'hit')
    for (let i = 0; i < 3; i++) tracker.record('a', 'miss')
    tracker.recordRegeneration('a')
    tracker.recordRegeneration('a')
    tracker.record('b', 'miss')
    tracker.recordRegeneration('b')
    tracker.record('b', 'hit')

    expect(tracker.top()).toEqual([
      { key: 'a', count: 10, error: 0, hits: 7, misses: 3, regenerations: 2 },
      { key: 'b', count: 2, error: 0, hits: 1, misses: 1, regenerations: 1 },
    ])
  })

  it('does not count a regeneration as a request, nor track a key from it alone', () => {
    const tracker = new HotKeyTracker({ clock: () => 0 })
    tracker.recordRegeneration('never-read')
    tracker.recordRegeneration('never-read')
    expect(tracker.top()).toEqual([])
    tracker.record('read', 'miss')
    tracker.recordRegeneration('read')
    expect(tracker.top()).toEqual([{ key: 'read', count: 1, error: 0, hits: 0, misses: 1, regenerations: 1 }])
  })

  it('replaces the lightest candidate when a heavier key arrives', () => {
    const tracker = new HotKeyTracker({ capacity: 3, clock: () => 0 })
    for (const [key, n] of [
      ['a', 5],
      ['b', 4],
      ['c', 3],
    ] as const)
      for (let i = 0; i < n; i++) tracker.record(key, 'hit')
    for (let i = 0; i < 10; i++) tracker.record('d', 'hit')
    const top = tracker.top()
    expect(top.map((k) => k.key)).toEqual(['d', 'a', 'b'])
    expect(byKey(top).get('d')?.count).toBe(10)
  })

  it('slides: old traffic fades, recent traffic counts, and a key is gone two windows later', () => {
    const time = manualClock(1_000)
    const tracker = new HotKeyTracker({ windowSeconds: 60, clock: time.clock })
    expect(tracker.windowSeconds).toBe(60)
    for (let i = 0; i < 1000; i++) {
      time.now = 1_000 + i * 50 // spread over the first window
      tracker.record('old', 'hit')
    }
    for (let i = 0; i < 10; i++) tracker.record('steady', 'hit')

    time.now = 61_000 // start of the second window: all of the first one is within the last 60 s
    expect(tracker.top().map((k) => [k.key, k.count])).toEqual([
      ['old', 1000],
      ['steady', 10],
    ])

    time.now = 91_000 // half of the first window has left the last 60 s
    expect(byKey(tracker.top()).get('old')?.count).toBe(500)
    for (let i = 0; i < 500; i++) tracker.record('steady', 'miss')
    const mid = byKey(tracker.top())
    expect(mid.get('steady')).toEqual({ key: 'steady', count: 505, error: 0, hits: 5, misses: 500, regenerations: 0 })
    expect(tracker.top()[0]?.key).toBe('steady')

    time.now = 121_000 // two windows after the first one: 'old' and the first 10 'steady' reads are gone
    tracker.record('new', 'hit') // rotation is driven by record() as well as by top()
    const late = byKey(tracker.top())
    expect(late.has('old')).toBe(false)
    expect(late.get('steady')).toEqual({ key: 'steady', count: 500, error: 0, hits: 0, misses: 500, regenerations: 0 })
    expect(late.get('new')?.count).toBe(1)

    time.now = 181_000 // 'steady' two windows old; 'new' one window old
    expect(tracker.top().map((k) => k.key)).toEqual(['new'])
    time.now = 241_000
    expect(tracker.top()).toEqual([])
  })

  it('reports about rate × window for steady traffic, whatever the phase within the window', () => {
    const time = manualClock()
    const tracker = new HotKeyTracker({ windowSeconds: 60, clock: time.clock })
    // 'a' at 10/s and 'b' at 2/s for five minutes; sample at several points within the sub-windows.
    const samples: [number, number][] = []
    for (let ms = 0; ms < 300_000; ms += 100) {
      time.now = ms
      tracker.record('a', 'hit')
      if (ms % 500 === 0) tracker.record('b', 'hit')
      if (ms >= 60_000 && ms % 7_300 === 0) {
        const top = byKey(tracker.top())
        samples.push([top.get('a')?.count ?? 0, top.get('b')?.count ?? 0])
      }
    }
    expect(samples.length).toBeGreaterThan(20)
    for (const [a, b] of samples) {
      expect(Math.abs(a - 600)).toBeLessThanOrEqual(6)
      expect(Math.abs(b - 120)).toBeLessThanOrEqual(2)
    }
  })

  it('forgets everything after a long idle period, then tracks again', () => {
    const time = manualClock()
    const tracker = new HotKeyTracker({ windowSeconds: 10, clock: time.clock })
    for (let i = 0; i < 100; i++) tracker.record('a', 'hit')
    time.now = 10 * 60_000
    expect(tracker.top()).toEqual([])
    tracker.record('b', 'hit')
    expect(tracker.top()).toEqual([{ key: 'b', count: 1, error: 0, hits: 1, misses: 0, regenerations: 0 }])
    time.now += 10_000 // next window: 'b' is still fully inside the last 10 s
    expect(tracker.top().map((k) => k.key)).toEqual(['b'])
  })

  it('handles limits: default 20, capped at capacity, 0 and nonsense give nothing', () => {
    const tracker = new HotKeyTracker({ capacity: 30, clock: () => 0 })
    for (let k = 0; k < 40; k++) for (let i = 0; i <= k; i++) tracker.record(`k${k}`, 'hit')
    expect(tracker.top()).toHaveLength(20)
    // k39 entered the full candidate set at its 11th read: the first 10 are in `count` (from the sketch) but
    // not in `hits`, which are exact from then on.
    expect(tracker.top()[0]).toEqual({ key: 'k39', count: 40, error: 0, hits: 30, misses: 0, regenerations: 0 })
    expect(tracker.top(5).map((k) => k.key)).toEqual(['k39', 'k38', 'k37', 'k36', 'k35'])
    expect(tracker.top(1000)).toHaveLength(30)
    expect(tracker.top(Number.POSITIVE_INFINITY)).toHaveLength(30)
    expect(tracker.top(2.9)).toHaveLength(2)
    expect(tracker.top(0)).toEqual([])
    expect(tracker.top(-3)).toEqual([])
    expect(tracker.top(Number.NaN)).toEqual([])
  })

  it('works with capacity 1', () => {
    const tracker = new HotKeyTracker({ capacity: 1, clock: () => 0 })
    tracker.record('a', 'hit')
    tracker.record('b', 'hit')
    tracker.record('b', 'hit')
    tracker.record('b', 'miss')
    expect(tracker.top().map((k) => k.key)).toEqual(['b'])
  })

  it('orders equal counts by key', () => {
    const tracker = new HotKeyTracker({ clock: () => 0 })
    for (const key of ['c', 'a', 'b']) tracker.record(key, 'hit')
    expect(tracker.top().map((k) => k.key)).toEqual(['a', 'b', 'c'])
  })

  it('is empty when nothing was recorded', () => {
    const tracker = new HotKeyTracker()
    expect(tracker.top()).toEqual([])
    expect(tracker.top(0)).toEqual([])
    // Two sub-windows × 2 rows × 1024 buckets × (fingerprint, count, upper bound).
    expect(tracker.approximateBytes()).toBe(2 * 2 * 1024 * 12)
  })

  it('clear() drops everything and restarts the window', () => {
    const time = manualClock()
    const tracker = new HotKeyTracker({ windowSeconds: 60, clock: time.clock })
    for (let i = 0; i < 100; i++) tracker.record(`k${i % 10}`, i % 2 ? 'hit' : 'miss')
    time.now = 70_000
    for (let i = 0; i < 10; i++) tracker.record('x', 'hit')
    const bytesBefore = tracker.approximateBytes()
    tracker.clear()
    expect(tracker.top()).toEqual([])
    expect(tracker.approximateBytes()).toBeLessThan(bytesBefore)
    time.now = 100_000
    tracker.record('y', 'hit')
    time.now = 129_000 // still the first window after clear()
    expect(tracker.top()).toEqual([{ key: 'y', count: 1, error: 0, hits: 1, misses: 0, regenerations: 0 }])
  })

  it('stores keys as given and counts them in approximateBytes()', () => {
    const tracker = new HotKeyTracker({ clock: () => 0 })
    const empty = tracker.approximateBytes()
    const long = 'k'.repeat(10_000)
    tracker.record(long, 'hit')
    expect(tracker.top()[0]?.key).toBe(long)
    expect(tracker.approximateBytes()).toBeGreaterThanOrEqual(empty + 10_000)
    tracker.record('', 'hit')
    expect(byKey(tracker.top()).get('')?.count).toBe(1)
  })

  it('rounds the width up to a power of two and validates options', () => {
    const tracker = new HotKeyTracker({ width: 1000, depth: 3, capacity: 7, windowSeconds: 0.5 })
    expect(tracker.width).toBe(1024)
    expect(tracker.depth).toBe(3)
    expect(tracker.capacity).toBe(7)
    expect(tracker.windowSeconds).toBe(0.5)
    expect(new HotKeyTracker({ width: 1 }).width).toBe(2)
    expect(() => new HotKeyTracker({ capacity: 0 })).toThrow(ValidationError)
    expect(() => new HotKeyTracker({ capacity: 1.5 })).toThrow(ValidationError)
    expect(() => new HotKeyTracker({ windowSeconds: 0 })).toThrow(ValidationError)
    expect(() => new HotKeyTracker({ windowSeconds: Number.POSITIVE_INFINITY })).toThrow(ValidationError)
    expect(() => new HotKeyTracker({ width: 0 })).toThrow(ValidationError)
    expect(() => new HotKeyTracker({ width: 2 ** 21 })).toThrow(ValidationError)
    expect(() => new HotKeyTracker({ depth: 9 })).toThrow(ValidationError)
    expect(() => new HotKeyTracker({ clock: 5 as unknown as () => number })).toThrow(ValidationError)
  })

  it('counts a 10,000-request Zipf burst within one second exactly: the true top 10, in the true order', () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `user:${i}`)
    for (const seed of [1, 2, 3, 4, 5]) {
      const draw = zipf(names.length, 1.0, random(seed))
      const time = manualClock(3_600_000) // an hour of quiet before the burst
      const tracker = new HotKeyTracker({ clock: time.clock })
      const exact = new Map<string, number>()
      for (let i = 0; i < 10_000; i++) {
        time.now = 3_600_000 + i / 10
        const key = names[draw()] as string
        countInto(exact, key)
        tracker.hit(key)
      }
      const top = tracker.top(10)
      expectTrueOrder(top, exact, 10)
      expectWithinError(top, exact)
      // Every hit was recorded: what is left is the sketch's uncertainty from before a key was tracked, if any.
      for (const k of top) expect(k.error).toBeLessThanOrEqual(0.02 * k.count)
    }
  })

  it('under load, finds the true top 10 of Zipf mixed with 1.5M one-off keys, in order, within the published error', () => {
    const names = Array.from({ length: 100_000 }, (_, i) => `product:${i}:details`)
    const rand = random(99)
    const draw = zipf(names.length, 1.0, rand)
    const time = manualClock()
    const tracker = new HotKeyTracker({ clock: time.clock })
    const exact = new Map<string, number>()
    // A whole 60 s window at 50k requests a second: 25k hits of the Zipf keys, 25k one-off misses.
    const rate = 50_000
    for (let i = 0; i < 60 * rate; i++) {
      time.now = (i * 1000) / rate
      if (rand() < 0.5) {
        const key = names[draw()] as string
        countInto(exact, key)
        tracker.hit(key)
      } else {
        tracker.record(`once:${i}`, 'miss')
      }
    }
    const top = tracker.top(10)
    expectTrueOrder(top, exact, 10)
    expectWithinError(top, exact)
    for (const k of top) {
      // Past 10,000 hits a second, hits are sampled: the error says so, and it is small enough to be useful.
      expect(k.error).toBeGreaterThan(0)
      expect(k.error).toBeLessThanOrEqual(0.1 * k.count)
    }
    expect(tracker.approximateBytes()).toBeLessThan(64 * 1024)
  })

  it('samples hits without bias, and the error covers the sampling error', () => {
    const names = Array.from({ length: 1_000 }, (_, i) => `k${i}`)
    let estimates = 0
    let signedRelativeError = 0
    for (let seed = 1; seed <= 30; seed++) {
      const draw = zipf(names.length, 1.0, random(seed))
      const time = manualClock()
      // A budget of 1000 exact hits a second makes 32k hits a second a sampled load (1 in 32).
      const tracker = new HotKeyTracker({ exactHitsPerSecond: 1_000, clock: time.clock })
      const exact = new Map<string, number>()
      for (let i = 0; i < 320_000; i++) {
        time.now = i / 32
        const key = names[draw()] as string
        countInto(exact, key)
        tracker.hit(key)
      }
      const top = tracker.top(10)
      expectWithinError(top, exact)
      // The true top 5 (ranks far apart, so no selection effect): their estimates are off either way.
      const reported = byKey(top)
      for (const [key, real] of trueTop(exact, 5)) {
        signedRelativeError += ((reported.get(key)?.count ?? 0) - real) / real
        estimates++
      }
    }
    // Each estimate is off by a few percent; over 150 of them an unbiased estimator's errors cancel out.
    expect(Math.abs(signedRelativeError / estimates)).toBeLessThan(0.015)
  })

  it('adapts: exact while quiet, sampled under load, exact again once the load is gone', () => {
    const names = Array.from({ length: 1_000 }, (_, i) => `k${i}`)
    const draw = zipf(names.length, 1.0, random(5))
    const time = manualClock()
    const tracker = new HotKeyTracker({ windowSeconds: 10, clock: time.clock })
    let exact = new Map<string, number>()
    const feed = (rate: number, seconds: number) => {
      const start = time.now
      for (let i = 0; i < rate * seconds; i++) {
        time.now = start + (i * 1000) / rate
        const key = names[draw()] as string
        countInto(exact, key)
        tracker.hit(key)
      }
      time.now = start + seconds * 1000
    }

    feed(5_000, 10) // one whole window at 5000 hits a second: every hit is counted
    let top = tracker.top(10)
    expectTrueOrder(top, exact, 10)
    for (const k of top) expect(k).toMatchObject({ count: exact.get(k.key), error: 0 })

    exact = new Map()
    feed(200_000, 10) // the next window under load: hits are sampled, and the error says so
    top = tracker.top(10) // the previous sub-window, the loaded one, is all of the last 10 s
    expectTrueOrder(top, exact, 10)
    expectWithinError(top, exact)
    for (const k of top) expect(k.error).toBeGreaterThan(0)

    time.now += 20_000 // two quiet windows: the load has slid out
    expect(tracker.top()).toEqual([])
    exact = new Map()
    feed(1_000, 10)
    top = tracker.top(10)
    expectTrueOrder(top, exact, 10)
    for (const k of top) expect(k).toMatchObject({ count: exact.get(k.key), error: 0 })
  })

  it('keeps the error valid across the two sub-windows of a sliding window', () => {
    const names = Array.from({ length: 1_000 }, (_, i) => `k${i}`)
    const draw = zipf(names.length, 1.0, random(11))
    const time = manualClock()
    const tracker = new HotKeyTracker({ windowSeconds: 10, clock: time.clock })
    const previous = new Map<string, number>()
    const current = new Map<string, number>()
    const rate = 50_000 // sampled hits
    for (let i = 0; i < 15 * rate; i++) {
      time.now = (i * 1000) / rate
      const key = names[draw()] as string
      countInto(time.now < 10_000 ? previous : current, key)
      tracker.hit(key)
    }
    time.now = 15_000 // half of the previous sub-window is still inside the last 10 s
    const expected = new Map([...previous].map(([key, count]) => [key, count / 2]))
    for (const [key, count] of current) expected.set(key, (expected.get(key) ?? 0) + count)
    const top = tracker.top(10)
    expectWithinError(top, expected)
    for (const k of top) expect(k.error).toBeGreaterThan(0)
  })

  it('a count the sketch under-counted before the key was tracked is still within its error', () => {
    // A tiny sketch (one row of 8 buckets) shared by 300 keys: keys lose requests to decay before they are tracked.
    const names = Array.from({ length: 300 }, (_, i) => `k${i}`)
    let underCounted = 0
    for (let seed = 1; seed <= 10; seed++) {
      const draw = zipf(names.length, 0.8, random(seed))
      const tracker = new HotKeyTracker({ capacity: 10, width: 8, depth: 1, clock: () => 0 })
      const exact = new Map<string, number>()
      for (let i = 0; i < 20_000; i++) {
        const key = names[draw()] as string
        countInto(exact, key)
        tracker.record(key, 'hit')
      }
      const top = tracker.top(10)
      expectWithinError(top, exact)
      underCounted += top.filter((k) => k.count < (exact.get(k.key) as number)).length
    }
    expect(underCounted).toBeGreaterThan(0)
  })

  it('counts hits exactly with the default clock (read once a second)', () => {
    const tracker = new HotKeyTracker()
    for (let i = 0; i < 100; i++) tracker.hit('a')
    tracker.hit('b')
    tracker.record('b', 'miss')
    expect(tracker.top()).toEqual([
      { key: 'a', count: 100, error: 0, hits: 100, misses: 0, regenerations: 0 },
      { key: 'b', count: 2, error: 0, hits: 1, misses: 1, regenerations: 0 },
    ])
  })

  it('validates exactHitsPerSecond', () => {
    expect(new HotKeyTracker().exactHitsPerSecond).toBe(10_000)
    expect(new HotKeyTracker({ exactHitsPerSecond: 1 }).exactHitsPerSecond).toBe(1)
    expect(() => new HotKeyTracker({ exactHitsPerSecond: 0 })).toThrow(ValidationError)
    expect(() => new HotKeyTracker({ exactHitsPerSecond: 2.5 })).toThrow(ValidationError)
    expect(() => new HotKeyTracker({ exactHitsPerSecond: 2 ** 31 })).toThrow(ValidationError)
  })
})
