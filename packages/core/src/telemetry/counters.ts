/**
 * Every counter a region keeps, declared once. `RegionStats` (the plain numbers the hit path increments), its
 * snapshot (`region.statsSnapshot()`, which the exporter serves as the admin API's `stats` and the dashboard
 * reads), and the Prometheus counters on `/metrics` are all derived from these two tables. Adding a counter is an
 * entry here and its call site; an event is its factory in events.ts.
 *
 * - `COUNTER_METRICS`: the Prometheus counter families, with their help text and the labels besides `region`.
 * - `COUNTERS`: each counter, the family it feeds with the label values of its series (or none: snapshot only),
 *   and whether it appears under its own name in the snapshot (`snapshot: true`; the others are folded into the
 *   snapshot's derived fields, see `RegionStats.snapshot`).
 */

export const COUNTER_METRICS = {
  corral_gets_total: {
    help: 'Cache reads by result: hit (fresh value), stale (old value served while another caller regenerates), miss.',
    labels: ['result'],
  },
  corral_regenerations_total: { help: 'Creator runs by outcome.', labels: ['outcome'] },
  corral_coalesced_total: {
    help: 'Callers that needed a new value but did not run the creator because another caller held the lock: stampedes prevented.',
    labels: ['mode'],
  },
  corral_fail_safe_total: {
    help: 'Values served by fail-safe: the creator failed or timed out and a recent enough stale value was served instead of the error.',
    labels: [],
  },
  corral_creator_timeouts_total: {
    help: 'Creators that ran past their soft timeout (the stale value was served) or hard timeout (abandoned).',
    labels: ['kind'],
  },
  corral_l1_hits_total: {
    help: "Hits answered from this process's memory (the L1 of a tiered region, or the memory backend), with no backend command. Divided by corral_gets_total: the L1 hit ratio.",
    labels: [],
  },
  corral_l1_evictions_total: {
    help: 'Copies removed from the L1 of a tiered region, by cause: bus (another process changed the key), size (LRU bound), age (l1.maxAge), disconnect (the bus connection dropped: every copy).',
    labels: ['cause'],
  },
  corral_invalidations_total: {
    help: 'Invalidations by kind (hard: values become misses; soft: values become stale) and scope.',
    labels: ['kind', 'scope'],
  },
} as const satisfies Record<string, { help: string; labels: readonly string[] }>

export type CounterMetricName = keyof typeof COUNTER_METRICS

interface CounterDeclaration {
  /** the Prometheus family this counter is a series of, with the series' label values */
  readonly metric?: { readonly name: CounterMetricName; readonly labels: Readonly<Record<string, string>> }
  /** appears under its own name in the stats snapshot */
  readonly snapshot: boolean
}

export const COUNTERS = {
  hits: { metric: { name: 'corral_gets_total', labels: { result: 'hit' } }, snapshot: true },
  /** hits answered by the L1 (`tier: 'l1'`); the others came from the backend */
  l1Hits: { metric: { name: 'corral_l1_hits_total', labels: {} }, snapshot: true },
  stale: { metric: { name: 'corral_gets_total', labels: { result: 'stale' } }, snapshot: true },
  misses: { metric: { name: 'corral_gets_total', labels: { result: 'miss' } }, snapshot: true },
  regenerations: { metric: { name: 'corral_regenerations_total', labels: { outcome: 'success' } }, snapshot: true },
  regenerationErrors: { metric: { name: 'corral_regenerations_total', labels: { outcome: 'error' } }, snapshot: true },
  /** callers that waited for another caller's regeneration (the histogram has their durations) */
  lockWaits: { snapshot: true },
  coalescedWaited: { metric: { name: 'corral_coalesced_total', labels: { mode: 'waited' } }, snapshot: true },
  coalescedStale: { metric: { name: 'corral_coalesced_total', labels: { mode: 'stale' } }, snapshot: true },
  /** values served by fail-safe instead of the creator's error */
  failSafe: { metric: { name: 'corral_fail_safe_total', labels: {} }, snapshot: true },
  softTimeouts: { metric: { name: 'corral_creator_timeouts_total', labels: { kind: 'soft' } }, snapshot: true },
  hardTimeouts: { metric: { name: 'corral_creator_timeouts_total', labels: { kind: 'hard' } }, snapshot: true },
  /** times the circuit breaker opened (its family, `corral_circuit_opens_total`, has a `backend` label: metrics.ts) */
  circuitOpens: { snapshot: true },
  l1EvictionsBus: { metric: { name: 'corral_l1_evictions_total', labels: { cause: 'bus' } }, snapshot: false },
  l1EvictionsSize: { metric: { name: 'corral_l1_evictions_total', labels: { cause: 'size' } }, snapshot: false },
  l1EvictionsAge: { metric: { name: 'corral_l1_evictions_total', labels: { cause: 'age' } }, snapshot: false },
  l1EvictionsDisconnect: {
    metric: { name: 'corral_l1_evictions_total', labels: { cause: 'disconnect' } },
    snapshot: false,
  },
  hardRegionInvalidations: {
    metric: { name: 'corral_invalidations_total', labels: { kind: 'hard', scope: 'region' } },
    snapshot: false,
  },
  softRegionInvalidations: {
    metric: { name: 'corral_invalidations_total', labels: { kind: 'soft', scope: 'region' } },
    snapshot: false,
  },
  keyInvalidations: {
    metric: { name: 'corral_invalidations_total', labels: { kind: 'hard', scope: 'key' } },
    snapshot: false,
  },
  hardTagInvalidations: {
    metric: { name: 'corral_invalidations_total', labels: { kind: 'hard', scope: 'tag' } },
    snapshot: false,
  },
  softTagInvalidations: {
    metric: { name: 'corral_invalidations_total', labels: { kind: 'soft', scope: 'tag' } },
    snapshot: false,
  },
  dependencyInvalidations: {
    metric: { name: 'corral_invalidations_total', labels: { kind: 'hard', scope: 'dependency' } },
    snapshot: false,
  },
} as const satisfies Record<string, CounterDeclaration>

export type CounterName = keyof typeof COUNTERS
export const COUNTER_NAMES = Object.keys(COUNTERS) as CounterName[]

/** The counters that appear under their own name in the stats snapshot. */
export type SnapshotCounterName = {
  [Name in CounterName]: (typeof COUNTERS)[Name]['snapshot'] extends true ? Name : never
}[CounterName]

/** One plain number per counter. */
export type Counts = { -readonly [Name in CounterName]: number }

/** The counters that are series of the Prometheus family `metric`, with their label values. */
export function seriesOf(
  metric: CounterMetricName,
): Array<{ readonly counter: CounterName; readonly labels: Readonly<Record<string, string>> }> {
  const declared: Record<CounterName, CounterDeclaration> = COUNTERS
  return COUNTER_NAMES.flatMap((counter) => {
    const series = declared[counter].metric
    return series?.name === metric ? [{ counter, labels: series.labels }] : []
  })
}
