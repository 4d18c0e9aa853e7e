/**
 * History on the server: a bounded ring of per-region samples (by default one every 5 s for an hour: 720), so the
 * dashboard's charts are full as soon as the page opens instead of filling up while it stays open.
 *
 * Each sample holds every region's counters (cumulative) and the regeneration p50/p99 and lock-wait p99 of the
 * interval that ended at it, from the histograms' bucket counts (as `histogram_quantile` over `increase()` would).
 * The same ring serves this process (`/api/history`) and the fleet (`/api/fleet/history`), from different sources.
 */
import { parseDuration, ValidationError, type RegionRegistry } from '@corral/core'
import type { HistoryJson, HistoryQuantilesJson, HistoryRegionJson, HistorySampleJson } from './api-types.js'
import type { InstanceSnapshot } from './fleet/snapshot.js'
import { addCounts, bucketQuantile } from './fleet/merge.js'
import { HISTOGRAM_BOUNDS, readRegionBuckets, type RegionBuckets } from './histograms.js'

export const HISTORY_COUNTERS = [
  'hits',
  'stale',
  'misses',
  'regenerations',
  'regenerationErrors',
  'lockWaits',
  'coalesced',
] as const
type HistoryCounter = (typeof HISTORY_COUNTERS)[number]
type Counters = Record<HistoryCounter, number>

/** One region as a sampler reads it: cumulative counters and histogram bucket counts. */
export interface RegionReading {
  counters: Counters
  buckets?: RegionBuckets
}

/** The exporter's `history` option. */
export interface HistoryOptions {
  /** Between samples: seconds or a duration string. Default 5 s. */
  interval?: number | string
  /** How much history is kept. Default 1 h (less for intervals under 360 ms); at most 10 000 samples. */
  retention?: number | string
}

export const DEFAULT_HISTORY_INTERVAL_MS = 5000
export const DEFAULT_HISTORY_RETENTION_MS = 60 * 60_000
const MAX_SAMPLES = 10_000
const HISTORY_OPTIONS = ['interval', 'retention']

export function historySettings(options: HistoryOptions | undefined): { intervalMs: number; retentionMs: number } {
  if (options === undefined)
    return { intervalMs: DEFAULT_HISTORY_INTERVAL_MS, retentionMs: DEFAULT_HISTORY_RETENTION_MS }
  if (options === null || typeof options !== 'object' || Array.isArray(options))
    throw new ValidationError(
      'createExporter(): history must be an object such as { interval: "5s", retention: "1h" }, or false',
    )
  const unknown = Object.keys(options).filter((key) => !HISTORY_OPTIONS.includes(key))
  if (unknown.length > 0)
    throw new ValidationError(
      `createExporter(): unknown history option ${unknown.map((k) => `"${k}"`).join(', ')}; valid: ${HISTORY_OPTIONS.join(', ')}`,
    )
  const intervalMs =
    options.interval === undefined
      ? DEFAULT_HISTORY_INTERVAL_MS
      : 1000 * parseDuration(options.interval, 'history.interval')
  // without a retention, an hour, or as much as MAX_SAMPLES samples of a short interval hold
  const retentionMs =
    options.retention === undefined
      ? Math.min(DEFAULT_HISTORY_RETENTION_MS, intervalMs * MAX_SAMPLES)
      : 1000 * parseDuration(options.retention, 'history.retention')
  if (!(intervalMs >= 50)) throw new ValidationError('createExporter(): history.interval must be at least 50ms')
  if (!(retentionMs >= intervalMs) || retentionMs / intervalMs > MAX_SAMPLES)
    throw new ValidationError(
      `createExporter(): history.retention must be at least one interval and at most ${MAX_SAMPLES} intervals`,
    )
  return { intervalMs, retentionMs }
}

export class History {
  private readonly ring: Array<HistorySampleJson | undefined>
  private next = 0
  private count = 0
  private previousBuckets = new Map<string, RegionBuckets>()
  private timer: NodeJS.Timeout | undefined
  private sampling = false

  constructor(
    readonly intervalMs: number,
    readonly retentionMs: number,
    private readonly read: () => Promise<Map<string, RegionReading>>,
    private readonly clock: () => number = Date.now,
  ) {
    this.ring = new Array<HistorySampleJson | undefined>(Math.ceil(retentionMs / intervalMs) + 1)
  }

  /** Samples now and then every interval (unref'd timer). */
  start(): void {
    void this.sample()
    this.timer = setInterval(() => void this.sample(), this.intervalMs)
    this.timer.unref()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  /** Takes one sample (skipped while the previous one is still being read, or when the source fails). */
  async sample(): Promise<void> {
    if (this.sampling) return
    this.sampling = true
    try {
      const readings = await this.read()
      this.add(this.clock(), readings)
    } catch {
      // the source is unavailable (the fleet's Redis is down): a gap in the charts, not an error
    } finally {
      this.sampling = false
    }
  }

  /** Appends a sample taken at `at` (exposed for tests). */
  add(at: number, readings: Map<string, RegionReading>): void {
    const regions: HistoryRegionJson[] = []
    const buckets = new Map<string, RegionBuckets>()
    /** the regions' intervals summed; undefined when no region has one */
    let all: RegionBuckets | undefined
    for (const [name, reading] of readings) {
      // A histogram first seen after the first sample started from zero (prom-client has no series before the first
      // observation); at the first sample there is no baseline yet.
      const previous = this.previousBuckets.get(name) ?? (this.count > 0 ? ZERO_BUCKETS : undefined)
      let interval: RegionBuckets | undefined
      if (reading.buckets) {
        buckets.set(name, reading.buckets)
        interval = previous ? difference(reading.buckets, previous) : undefined
      }
      if (interval) {
        all = all
          ? {
              regeneration: addCounts(all.regeneration, interval.regeneration),
              lockWait: addCounts(all.lockWait, interval.lockWait),
            }
          : interval
      }
      regions.push({ name, ...reading.counters, ...quantilesOf(interval) })
    }
    this.previousBuckets = buckets
    this.ring[this.next] = { at, regions, all: quantilesOf(all) }
    this.next = (this.next + 1) % this.ring.length
    this.count = Math.min(this.count + 1, this.ring.length)
  }

  /** Samples of the last `rangeMs` (all kept by default; the sample at its start too), after `since`, oldest first. */
  query(rangeMs = this.retentionMs, since = -Infinity): HistoryJson {
    const from = this.clock() - rangeMs
    const samples: HistorySampleJson[] = []
    for (let i = this.count; i >= 1; i--) {
      const sample = this.ring[(this.next - i + this.ring.length) % this.ring.length]
      if (sample !== undefined && sample.at >= from && sample.at > since) samples.push(sample)
    }
    return { intervalSeconds: this.intervalMs / 1000, retentionSeconds: this.retentionMs / 1000, samples }
  }
}

const ZERO_BUCKETS: RegionBuckets = { regeneration: [], lockWait: [] }

function quantilesOf(interval: RegionBuckets | undefined): HistoryQuantilesJson {
  if (interval === undefined) return { regenerationP50: null, regenerationP99: null, lockWaitP99: null }
  return {
    regenerationP50: bucketQuantile(0.5, HISTOGRAM_BOUNDS.regeneration, interval.regeneration),
    regenerationP99: bucketQuantile(0.99, HISTOGRAM_BOUNDS.regeneration, interval.regeneration),
    lockWaitP99: bucketQuantile(0.99, HISTOGRAM_BOUNDS.lockWait, interval.lockWait),
  }
}

/** `a - b` per bucket, never below 0 (a histogram that went down was reset: its counts are all new). */
function difference(a: RegionBuckets, b: RegionBuckets): RegionBuckets {
  const minus = (x: number[], y: number[]) => {
    const reset = x.some((value, i) => value < (y[i] ?? 0))
    return reset ? [...x] : x.map((value, i) => value - (y[i] ?? 0))
  }
  return { regeneration: minus(a.regeneration, b.regeneration), lockWait: minus(a.lockWait, b.lockWait) }
}

function countersOf(stats: Record<HistoryCounter, number>): Counters {
  return Object.fromEntries(HISTORY_COUNTERS.map((name) => [name, stats[name] ?? 0])) as Counters
}

/** The sampler of this process: every region's stats and its histograms' buckets. */
export function localReadings(registry: RegionRegistry): () => Promise<Map<string, RegionReading>> {
  return async () => {
    const buckets = await readRegionBuckets(registry.metrics)
    const out = new Map<string, RegionReading>()
    for (const region of registry.list()) {
      const reading: RegionReading = { counters: countersOf(region.statsSnapshot()) }
      const regionBuckets = buckets.get(region.name)
      if (regionBuckets) reading.buckets = regionBuckets
      out.set(region.name, reading)
    }
    return out
  }
}

/**
 * The sampler of the fleet. Processes come and go, so the fleet's counters are kept as Prometheus's `increase()`
 * sums them: per process, the increase since its previous snapshot (all of its counters when they went down: it
 * restarted), added up; a process seen for the first time only sets its baseline. The series never go down when a
 * process leaves, and their differences are the fleet's traffic.
 */
export function fleetReadings(read: () => Promise<InstanceSnapshot[]>): () => Promise<Map<string, RegionReading>> {
  let previous = new Map<string, Map<string, RegionReading>>()
  const totals = new Map<string, Required<RegionReading>>()
  return async () => {
    const instances = await read()
    const seen = new Map<string, Map<string, RegionReading>>()
    for (const instance of instances) {
      const before = previous.get(instance.id)
      const now = new Map<string, RegionReading>()
      for (const region of instance.regions) {
        const reading: RegionReading = { counters: countersOf(region.stats as unknown as Counters) }
        if (region.buckets) reading.buckets = region.buckets
        now.set(region.name, reading)
        const total = (totals.get(region.name) ??
          totals
            .set(region.name, {
              counters: countersOf({} as Counters),
              buckets: {
                regeneration: new Array<number>(HISTOGRAM_BOUNDS.regeneration.length + 1).fill(0),
                lockWait: new Array<number>(HISTOGRAM_BOUNDS.lockWait.length + 1).fill(0),
              },
            })
            .get(region.name))!
        const last = before?.get(region.name)
        if (before === undefined) continue
        for (const name of HISTORY_COUNTERS) {
          const delta = reading.counters[name] - (last?.counters[name] ?? 0)
          total.counters[name] += delta < 0 ? reading.counters[name] : delta
        }
        if (reading.buckets) {
          const zero = { regeneration: [], lockWait: [] }
          const increase = difference(reading.buckets, last?.buckets ?? zero)
          total.buckets = {
            regeneration: addCounts(total.buckets.regeneration, increase.regeneration),
            lockWait: addCounts(total.buckets.lockWait, increase.lockWait),
          }
        }
      }
      seen.set(instance.id, now)
    }
    previous = seen
    return new Map(
      [...totals].map(([name, total]) => [name, { counters: { ...total.counters }, buckets: total.buckets }]),
    )
  }
}
