/**
 * Rates from cumulative counters. The dashboard samples `GET /api/regions` over time; every counter there is
 * cumulative since the exporter's process started, so rates are deltas between samples divided by elapsed time.
 *
 * Samples store a "reset-adjusted" series per region, as Prometheus' `increase()` does, so that sums over
 * regions never go down and only differences matter:
 * - a region seen for the first time starts at 0 (what it counted before the dashboard saw it is not a burst);
 * - a counter that goes down was reset (the application restarted): its new value is all new increase;
 * - a region that disappears keeps its last value, and continues from it (as above) if it comes back.
 */
import type { RegionJson } from '@corral/exporter/api'

type RegionStats = RegionJson['stats']
/** The names of the numeric fields of a region's `stats`. */
type NumericStat = { [K in keyof RegionStats]: RegionStats[K] extends number ? K : never }[keyof RegionStats]

/** The counters charted as rates: numeric fields of `stats`, checked against the exporter's types. */
export const COUNTERS = [
  'hits',
  'stale',
  'misses',
  'regenerations',
  'regenerationErrors',
  'lockWaits',
  'coalesced',
] as const satisfies readonly NumericStat[]
export type CounterName = (typeof COUNTERS)[number]
export type Counters = Record<CounterName, number>

export interface Sample {
  /** Epoch milliseconds. */
  t: number
  /** Reset-adjusted counters per region name. */
  regions: Record<string, Counters>
}

export interface SampleHistory {
  /** Oldest first. Every sample holds every region seen so far. */
  samples: Sample[]
  /** The last raw counters seen for each region, to detect resets. */
  lastRaw: Record<string, Counters>
}

export const emptyHistory = (): SampleHistory => ({ samples: [], lastRaw: {} })

export function zeroCounters(): Counters {
  return { hits: 0, stale: 0, misses: 0, regenerations: 0, regenerationErrors: 0, lockWaits: 0, coalesced: 0 }
}

/** Reads the counters of one region's `stats`, treating anything that is not a finite number as 0. */
export function countersOf(stats: Partial<Record<CounterName, unknown>>): Counters {
  const out = zeroCounters()
  for (const name of COUNTERS) {
    const v = stats[name]
    out[name] = typeof v === 'number' && Number.isFinite(v) && v > 0 ? v : 0
  }
  return out
}

export interface AppendOptions {
  /** Samples older than `t - retentionMs` are dropped (the oldest one before the window is kept as a baseline). */
  retentionMs: number
  /** Hard bound on the number of samples kept. */
  maxSamples?: number
}

type RegionSamples = ReadonlyArray<{ name: string; stats: Partial<Record<CounterName, unknown>> }>

/**
 * Returns a new history with the sample taken at `t` appended. A sample at the same time as (or before) the
 * last one replaces it, so clocks that do not move never produce a zero-length interval.
 */
export function appendSample(
  history: SampleHistory,
  t: number,
  regions: RegionSamples,
  options: AppendOptions,
): SampleHistory {
  const next: SampleHistory = { samples: [...history.samples], lastRaw: { ...history.lastRaw } }
  pushSample(next, t, regions)
  let samples = next.samples

  // Keep one sample older than the window so that the window's first interval has a baseline.
  const cutoff = t - options.retentionMs
  let first = 0
  while (first + 1 < samples.length && (samples[first + 1]?.t ?? Infinity) <= cutoff) first++
  const max = options.maxSamples ?? Infinity
  if (samples.length - first > max) first = samples.length - max
  if (first > 0) samples = samples.slice(first)

  return { samples, lastRaw: next.lastRaw }
}

/**
 * Appends the sample taken at `t` to `history` in place, as `appendSample` does but without copying or trimming:
 * for building a whole history in one pass.
 */
export function pushSample(history: SampleHistory, t: number, regions: RegionSamples): void {
  const { samples, lastRaw } = history
  const last = samples[samples.length - 1]
  const adjusted: Record<string, Counters> = { ...last?.regions }
  for (const region of regions) {
    const raw = countersOf(region.stats)
    const previousRaw = lastRaw[region.name]
    const previous = last?.regions[region.name]
    const value = zeroCounters()
    if (previous) {
      for (const name of COUNTERS) {
        const delta = previousRaw ? raw[name] - previousRaw[name] : 0
        value[name] = previous[name] + (delta < 0 ? raw[name] : delta)
      }
    }
    lastRaw[region.name] = raw
    adjusted[region.name] = value
  }
  if (last && t <= last.t) samples[samples.length - 1] = { t: last.t, regions: adjusted }
  else samples.push({ t, regions: adjusted })
}

/** The counters of one sample, summed over all regions or read for one region (zeros when it is absent). */
export function sampleTotals(sample: Sample, region?: string): Counters {
  if (region !== undefined) return sample.regions[region] ?? zeroCounters()
  const out = zeroCounters()
  for (const counters of Object.values(sample.regions)) {
    for (const name of COUNTERS) out[name] += counters[name]
  }
  return out
}

/** The increase of every counter between two samples (a region first seen after `from` started at 0). */
export function increase(from: Sample, to: Sample, region?: string): Counters {
  const a = sampleTotals(from, region)
  const b = sampleTotals(to, region)
  const out = zeroCounters()
  for (const name of COUNTERS) out[name] = Math.max(0, b[name] - a[name])
  return out
}

export interface Rates {
  /** Per second. */
  perSecond: Counters
  /** The interval the rates were measured over, in milliseconds. */
  spanMs: number
}

/**
 * Per-second rates over roughly the last `windowMs`: between the latest sample and the newest sample at least
 * `windowMs` older than it (or the oldest sample, when the history is shorter). Null with fewer than 2 samples.
 */
export function windowRates(samples: readonly Sample[], windowMs: number, region?: string): Rates | null {
  const latest = samples[samples.length - 1]
  if (!latest || samples.length < 2) return null
  let baseline = samples[0]
  for (let i = samples.length - 2; i >= 0; i--) {
    const s = samples[i]
    if (s && latest.t - s.t >= windowMs) {
      baseline = s
      break
    }
  }
  if (!baseline || baseline.t >= latest.t) return null
  const spanMs = latest.t - baseline.t
  const delta = increase(baseline, latest, region)
  const perSecond = zeroCounters()
  for (const name of COUNTERS) perSecond[name] = delta[name] / (spanMs / 1000)
  return { perSecond, spanMs }
}

export interface RatePoint {
  /** The end of the bucket, epoch milliseconds. */
  t: number
  /** Per-second rates over the bucket, or null where there is no data. */
  perSecond: Counters | null
}

/**
 * Evenly spaced per-second rates for a chart: buckets of `stepMs` aligned to multiples of `stepMs`, covering
 * `spanMs` up to `end`. Counters are interpolated linearly between samples at bucket boundaries; a bucket not
 * covered by samples on both sides is null. The last, partial bucket (up to the latest sample) is included when
 * it spans at least `minPartialMs`.
 */
export function bucketRates(
  samples: readonly Sample[],
  options: { end: number; spanMs: number; stepMs: number; region?: string; minPartialMs?: number },
): RatePoint[] {
  const { end, spanMs, stepMs, region } = options
  const minPartial = options.minPartialMs ?? stepMs / 2
  const lastBoundary = Math.floor(end / stepMs) * stepMs
  const firstBoundary = lastBoundary - Math.ceil(spanMs / stepMs) * stepMs
  const points: RatePoint[] = []
  let previous = firstBoundary
  let previousValue = valueAt(samples, previous, region)
  for (let b = firstBoundary + stepMs; b <= lastBoundary; b += stepMs) {
    const value = valueAt(samples, b, region)
    points.push({ t: b, perSecond: previousValue && value ? perSecond(previousValue, value, stepMs) : null })
    previous = b
    previousValue = value
  }
  const latest = samples[samples.length - 1]
  if (latest && latest.t > previous && latest.t <= end && latest.t - previous >= minPartial && previousValue) {
    points.push({
      t: latest.t,
      perSecond: perSecond(previousValue, valueAt(samples, latest.t, region)!, latest.t - previous),
    })
  }
  return points
}

function perSecond(from: Counters, to: Counters, ms: number): Counters {
  const out = zeroCounters()
  for (const name of COUNTERS) out[name] = Math.max(0, to[name] - from[name]) / (ms / 1000)
  return out
}

/** Counter values at time `t`, interpolated linearly between the samples around it; null outside them. */
export function valueAt(samples: readonly Sample[], t: number, region?: string): Counters | null {
  // Binary search for the first sample at or after t.
  let lo = 0
  let hi = samples.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((samples[mid]?.t ?? Infinity) < t) lo = mid + 1
    else hi = mid
  }
  const after = samples[lo]
  if (!after) return null
  if (after.t === t) return sampleTotals(after, region)
  const before = samples[lo - 1]
  if (!before) return null
  const fraction = (t - before.t) / (after.t - before.t)
  const a = sampleTotals(before, region)
  const b = sampleTotals(after, region)
  const out = zeroCounters()
  for (const name of COUNTERS) out[name] = a[name] + (b[name] - a[name]) * fraction
  return out
}
