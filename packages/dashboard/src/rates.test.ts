import { describe, expect, it } from 'vitest'
import {
  appendSample,
  bucketRates,
  countersOf,
  emptyHistory,
  type SampleHistory,
  sampleTotals,
  windowRates,
} from './rates'

const stats = (hits: number, misses = 0, extra: Record<string, number> = {}) => ({ hits, misses, ...extra })

function history(points: Array<[number, Record<string, ReturnType<typeof stats>>]>, retentionMs = 600_000) {
  let h: SampleHistory = emptyHistory()
  for (const [t, regions] of points) {
    h = appendSample(
      h,
      t,
      Object.entries(regions).map(([name, s]) => ({ name, stats: s })),
      { retentionMs },
    )
  }
  return h
}

describe('countersOf', () => {
  it('reads counters and treats junk as zero', () => {
    const c = countersOf({ hits: 3, misses: -1, stale: Number.NaN, coalesced: '5' as unknown as number })
    expect(c).toMatchObject({ hits: 3, misses: 0, stale: 0, coalesced: 0, regenerations: 0 })
  })
})

describe('appendSample', () => {
  it('starts every region at zero and accumulates its increases', () => {
    const h = history([
      [0, { a: stats(100) }],
      [1000, { a: stats(150) }],
    ])
    expect(h.samples.map((s) => s.regions['a']?.hits)).toEqual([0, 50])
  })

  it('treats a counter that goes down as a reset (the application restarted)', () => {
    const h = history([
      [0, { a: stats(100) }],
      [1000, { a: stats(150) }],
      [2000, { a: stats(20) }],
      [3000, { a: stats(30) }],
    ])
    expect(h.samples.map((s) => s.regions['a']?.hits)).toEqual([0, 50, 70, 80])
  })

  it('does not count a new region’s history as a burst, and keeps a vanished region’s value', () => {
    const h = history([
      [0, { a: stats(10) }],
      [1000, { a: stats(20), b: stats(5000) }],
      [2000, { a: stats(30) }],
      [3000, { a: stats(40), b: stats(5010) }],
    ])
    expect(h.samples.map((s) => sampleTotals(s).hits)).toEqual([0, 10, 20, 40])
  })

  it('replaces a sample taken at the same time, and prunes samples past retention but keeps a baseline', () => {
    const h = history(
      [
        [0, { a: stats(0) }],
        [1000, { a: stats(1) }],
        [1000, { a: stats(2) }],
        [5000, { a: stats(3) }],
        [9000, { a: stats(4) }],
      ],
      5000,
    )
    expect(h.samples.map((s) => [s.t, s.regions['a']?.hits])).toEqual([
      [1000, 2],
      [5000, 3],
      [9000, 4],
    ])
  })

  it('bounds the number of samples', () => {
    let h = emptyHistory()
    for (let i = 0; i < 50; i++)
      h = appendSample(h, i * 10, [{ name: 'a', stats: stats(i) }], { retentionMs: 1e9, maxSamples: 10 })
    expect(h.samples).toHaveLength(10)
    expect(h.samples[9]?.regions['a']?.hits).toBe(49)
  })
})

describe('windowRates', () => {
  it('is null before there are two samples', () => {
    expect(windowRates(history([[0, { a: stats(1) }]]).samples, 5000)).toBeNull()
  })

  it('measures per-second rates over the window, summed or per region', () => {
    const h = history([
      [0, { a: stats(0, 0), b: stats(0, 0) }],
      [5000, { a: stats(100, 10), b: stats(50, 0) }],
      [6000, { a: stats(110, 10), b: stats(60, 0) }],
      [10_000, { a: stats(200, 20), b: stats(100, 0) }],
    ])
    const all = windowRates(h.samples, 5000)
    expect(all?.spanMs).toBe(5000)
    expect(all?.perSecond.hits).toBeCloseTo((300 - 150) / 5)
    expect(all?.perSecond.misses).toBeCloseTo(2)
    expect(windowRates(h.samples, 5000, 'b')?.perSecond.hits).toBeCloseTo(10)
  })

  it('uses the oldest sample when the history is shorter than the window', () => {
    const h = history([
      [0, { a: stats(0) }],
      [2000, { a: stats(10) }],
    ])
    expect(windowRates(h.samples, 5000)?.perSecond.hits).toBeCloseTo(5)
  })
})

describe('bucketRates', () => {
  it('returns evenly spaced buckets, null where there are no samples', () => {
    const h = history([
      [10_000, { a: stats(0) }],
      [20_000, { a: stats(100) }],
      [30_000, { a: stats(300) }],
    ])
    const points = bucketRates(h.samples, { end: 30_000, spanMs: 30_000, stepMs: 10_000 })
    expect(points.map((p) => [p.t, p.perSecond?.hits ?? null])).toEqual([
      [10_000, null],
      [20_000, 10],
      [30_000, 20],
    ])
  })

  it('interpolates between samples that do not fall on bucket boundaries', () => {
    const h = history([
      [0, { a: stats(0) }],
      [20_000, { a: stats(200) }],
    ])
    const points = bucketRates(h.samples, { end: 20_000, spanMs: 20_000, stepMs: 5000 })
    expect(points.map((p) => p.perSecond?.hits)).toEqual([10, 10, 10, 10])
  })

  it('adds a trailing partial bucket up to the latest sample when it is long enough', () => {
    const h = history([
      [0, { a: stats(0) }],
      [10_000, { a: stats(100) }],
      [13_000, { a: stats(160) }],
    ])
    const points = bucketRates(h.samples, { end: 13_000, spanMs: 10_000, stepMs: 5000 })
    expect(points.map((p) => [p.t, p.perSecond?.hits])).toEqual([
      [5000, 10],
      [10_000, 10],
      [13_000, 20],
    ])
  })

  it('filters by region', () => {
    const h = history([
      [0, { a: stats(0), b: stats(0) }],
      [5000, { a: stats(50), b: stats(5) }],
    ])
    expect(bucketRates(h.samples, { end: 5000, spanMs: 5000, stepMs: 5000, region: 'b' })[0]?.perSecond?.hits).toBe(1)
  })
})
