/**
 * Plain-number counters per region. The hit path increments a field; Prometheus reads these at scrape time
 * (see metrics.ts), so no label hashing happens per get.
 */
export class RegionStats {
  hits = 0
  misses = 0
  stale = 0
  regenerations = 0
  regenerationErrors = 0
  lockWaits = 0
  coalescedWaited = 0
  coalescedStale = 0
  readonly invalidations = { hardRegion: 0, softRegion: 0, key: 0, hardTag: 0, softTag: 0, dependency: 0 }
  readonly backendErrors = new Map<string, number>()
  lastInvalidation: { at: number; hard: boolean; scope: string } | null = null
  private readonly durations = new Float64Array(1024)
  private durationCount = 0

  recordRegeneration(seconds: number, ok: boolean): void {
    if (ok) this.regenerations++
    else this.regenerationErrors++
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

  snapshot(): RegionStatsSnapshot {
    const gets = this.hits + this.stale + this.misses
    return {
      hits: this.hits,
      misses: this.misses,
      stale: this.stale,
      gets,
      regenerations: this.regenerations,
      regenerationErrors: this.regenerationErrors,
      lockWaits: this.lockWaits,
      coalesced: this.coalescedWaited + this.coalescedStale,
      coalescedWaited: this.coalescedWaited,
      coalescedStale: this.coalescedStale,
      invalidations: {
        hard:
          this.invalidations.hardRegion +
          this.invalidations.key +
          this.invalidations.hardTag +
          this.invalidations.dependency,
        soft: this.invalidations.softRegion + this.invalidations.softTag,
      },
      backendErrors: [...this.backendErrors.values()].reduce((a, b) => a + b, 0),
      hitRatio: gets === 0 ? null : (this.hits + this.stale) / gets,
      regenerationTime: this.regenerationTime(),
    }
  }
}

export interface RegionStatsSnapshot {
  hits: number
  misses: number
  /** stale values served while another caller regenerated */
  stale: number
  gets: number
  regenerations: number
  regenerationErrors: number
  lockWaits: number
  /** callers that needed a value and did not run the creator: stampedes prevented */
  coalesced: number
  coalescedWaited: number
  coalescedStale: number
  invalidations: { hard: number; soft: number }
  backendErrors: number
  /** (hits + stale) / gets, or null before the first get */
  hitRatio: number | null
  /** seconds, over the last 1024 regenerations */
  regenerationTime: { p50: number; p99: number } | null
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
