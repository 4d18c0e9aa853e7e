import type { CircuitState } from './events.js'
import {
  COUNTERS,
  COUNTER_METRICS,
  COUNTER_NAMES,
  seriesOf,
  type CounterMetricName,
  type Counts,
  type SnapshotCounterName,
} from './counters.js'

/**
 * Plain-number counters per region (declared in counters.ts). The hit path increments a field; Prometheus reads
 * these at scrape time (see metrics.ts), so no label hashing happens per get.
 */
export class RegionStats {
  /** one number per counter of `COUNTERS` */
  readonly counts: Counts = Object.fromEntries(COUNTER_NAMES.map((name) => [name, 0])) as Counts
  readonly backendErrors = new Map<string, number>()
  lastInvalidation: { at: number; hard: boolean; scope: string } | null = null
  /** the circuit breaker around the region's backend, when it has one */
  circuit: { backend: string; state: CircuitState } | null = null
  private readonly durations = new Float64Array(1024)
  private durationCount = 0

  recordRegeneration(seconds: number, ok: boolean): void {
    if (ok) this.counts.regenerations++
    else this.counts.regenerationErrors++
    this.durations[this.durationCount++ % this.durations.length] = seconds
  }

  recordBackendError(operation: string): void {
    this.backendErrors.set(operation, (this.backendErrors.get(operation) ?? 0) + 1)
  }

  /** p50/p99 over the last 1024 regenerations, in seconds; null before the first one. */
  regenerationTime(): { p50: number; p99: number } | null {
    const n = Math.min(this.durationCount, this.durations.length)
    if (n === 0) return null
    const sorted = this.durations.slice(0, n).sort()
    const at = (q: number) => sorted[Math.min(n - 1, Math.ceil(q * n) - 1)] ?? 0
    return { p50: at(0.5), p99: at(0.99) }
  }

  /** The sum of the counters that are series of the Prometheus family `metric`, optionally only those with `label`. */
  private sum(metric: CounterMetricName, label?: readonly [string, string]): number {
    let total = 0
    for (const { counter, labels } of SERIES[metric]) {
      if (label === undefined || labels[label[0]] === label[1]) total += this.counts[counter]
    }
    return total
  }

  snapshot(): RegionStatsSnapshot {
    const own = {} as Record<SnapshotCounterName, number>
    for (const name of SNAPSHOT_COUNTERS) own[name] = this.counts[name]
    const gets = this.sum('corral_gets_total')
    const { hits, stale, l1Hits } = this.counts
    return {
      ...own,
      gets,
      coalesced: this.sum('corral_coalesced_total'),
      invalidations: {
        hard: this.sum('corral_invalidations_total', ['kind', 'hard']),
        soft: this.sum('corral_invalidations_total', ['kind', 'soft']),
      },
      backendErrors: [...this.backendErrors.values()].reduce((a, b) => a + b, 0),
      hitRatio: gets === 0 ? null : (hits + stale) / gets,
      l1HitRatio: gets === 0 ? null : l1Hits / gets,
      regenerationTime: this.regenerationTime(),
      circuit:
        this.circuit === null
          ? null
          : {
              closed: this.circuit.state === 'closed' ? 1 : 0,
              halfOpen: this.circuit.state === 'half-open' ? 1 : 0,
              open: this.circuit.state === 'open' ? 1 : 0,
            },
    }
  }
}

const SERIES = Object.fromEntries(
  (Object.keys(COUNTER_METRICS) as CounterMetricName[]).map((metric) => [metric, seriesOf(metric)]),
) as Record<CounterMetricName, ReturnType<typeof seriesOf>>
const SNAPSHOT_COUNTERS = COUNTER_NAMES.filter((name) => COUNTERS[name].snapshot) as SnapshotCounterName[]

/**
 * A region's stats at one moment: every counter declared with `snapshot: true` under its own name (hits, misses,
 * stale, regenerations, regenerationErrors, lockWaits, coalescedWaited, coalescedStale, ...), plus the fields
 * derived from the counters. This is the `stats` object of the admin API.
 */
export interface RegionStatsSnapshot extends Record<SnapshotCounterName, number> {
  /** reads of every result (the series of corral_gets_total) */
  gets: number
  /** callers that needed a value and did not run the creator: stampedes prevented */
  coalesced: number
  /** invalidations by kind, every scope included */
  invalidations: { hard: number; soft: number }
  backendErrors: number
  /** (hits + stale) / gets, or null before the first get */
  hitRatio: number | null
  /**
   * l1Hits / gets: the share of reads answered from this process's memory with no backend command (a tiered
   * region's L1, or the memory backend), or null before the first get
   */
  l1HitRatio: number | null
  /** seconds, over the last 1024 regenerations */
  regenerationTime: { p50: number; p99: number } | null
  /**
   * The state of the circuit breaker around the backend as numbers (1 for the current state, so that the states
   * of several processes add up); null when the region has none (in-process backends, `circuitBreaker: false`)
   */
  circuit: { closed: number; halfOpen: number; open: number } | null
}

/** A regeneration that other callers were coalesced onto. */
export interface StampedeRecord {
  region: string
  key: string
  /** epoch milliseconds when the regeneration finished */
  at: number
  /** callers that did not run the creator because this one did */
  coalesced: number
  /** seconds the creator took */
  duration: number
}

/** A fixed-size ring of the most recent stampedes, newest first on read. */
export class StampedeLog {
  private readonly ring: Array<StampedeRecord | undefined>
  private next = 0

  constructor(readonly capacity = 200) {
    this.ring = new Array<StampedeRecord | undefined>(capacity)
  }

  add(record: StampedeRecord): void {
    this.ring[this.next] = record
    this.next = (this.next + 1) % this.capacity
  }

  recent(limit = 50): StampedeRecord[] {
    const out: StampedeRecord[] = []
    for (let i = 1; i <= this.capacity && out.length < limit; i++) {
      const record = this.ring[(this.next - i + this.capacity) % this.capacity]
      if (record === undefined) break
      out.push(record)
    }
    return out
  }
}
