/**
 * The bucket counts of Corral's two histograms per region, read from the region registry's prom-client registry:
 * the history (interval quantiles) and the fleet snapshots (fleet-wide quantiles) are computed from them, the way
 * Prometheus computes `histogram_quantile` from the same series.
 */
import { LOCK_WAIT_BUCKETS, REGENERATION_BUCKETS } from '@corral/core'
import type { Registry } from 'prom-client'
import type { BucketCounts } from './fleet/snapshot.js'

export const REGENERATION_HISTOGRAM = 'corral_regeneration_duration_seconds'
export const LOCK_WAIT_HISTOGRAM = 'corral_lock_wait_duration_seconds'

export const HISTOGRAM_BOUNDS = { regeneration: REGENERATION_BUCKETS, lockWait: LOCK_WAIT_BUCKETS }

export interface RegionBuckets {
  regeneration: BucketCounts
  lockWait: BucketCounts
}

interface HistogramValue {
  labels: Record<string, string | number>
  value: number
  metricName?: string
}

/** Cumulative counts per region of one histogram: one per bound of `bounds`, then +Inf. */
async function countsOf(registry: Registry, name: string, bounds: readonly number[]): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>()
  const metric = registry.getSingleMetric(name)
  if (metric === undefined) return out
  const { values } = (await metric.get()) as { values: HistogramValue[] }
  for (const { labels, value, metricName } of values) {
    if (metricName !== `${name}_bucket`) continue
    const region = String(labels.region)
    let counts = out.get(region)
    if (counts === undefined) {
      counts = new Array<number>(bounds.length + 1).fill(0)
      out.set(region, counts)
    }
    const index = labels.le === '+Inf' ? bounds.length : bounds.indexOf(Number(labels.le))
    if (index >= 0) counts[index] = value
  }
  return out
}

/** Both histograms' counts per region (regions without metrics are absent). */
export async function readRegionBuckets(registry: Registry): Promise<Map<string, RegionBuckets>> {
  const [regeneration, lockWait] = await Promise.all([
    countsOf(registry, REGENERATION_HISTOGRAM, REGENERATION_BUCKETS),
    countsOf(registry, LOCK_WAIT_HISTOGRAM, LOCK_WAIT_BUCKETS),
  ])
  const out = new Map<string, RegionBuckets>()
  for (const region of new Set([...regeneration.keys(), ...lockWait.keys()])) {
    out.set(region, {
      regeneration: regeneration.get(region) ?? new Array<number>(REGENERATION_BUCKETS.length + 1).fill(0),
      lockWait: lockWait.get(region) ?? new Array<number>(LOCK_WAIT_BUCKETS.length + 1).fill(0),
    })
  }
  return out
}
