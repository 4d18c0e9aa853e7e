/**
 * The fleet view from the processes' snapshots: pure functions, so every rule is tested without Redis.
 *
 * - `sumStats`: a region's stats over the processes (every counter summed; ratios and quantiles recomputed).
 * - `mergeHotKeys`: the fleet's hottest keys of a region, with the error bound of the merge.
 * - `correlateIncidents`: each stampede once, with the creator's process and each process's coalesced callers.
 */
import type { RegionStatsSnapshot } from '@corral/core'
import type { FleetHotKeyJson, FleetRegionJson, IncidentJson, IncidentProcessJson } from '../api-types.js'
import { MATCH_SLACK_MS } from './episodes.js'
import type { BucketCounts, InstanceSnapshot, PublishedEpisode, PublishedRegion } from './snapshot.js'

/**
 * Prometheus's `histogram_quantile`: the `q` quantile of cumulative bucket counts (`counts[i]` for `bounds[i]`, then
 * the +Inf bucket), interpolated linearly within the bucket; null without observations. A quantile in the +Inf
 * bucket is the largest finite bound.
 */
export function bucketQuantile(q: number, bounds: readonly number[], counts: readonly number[]): number | null {
  const total = counts[bounds.length] ?? counts[counts.length - 1] ?? 0
  if (!(total > 0)) return null
  const rank = q * total
  for (let i = 0; i < bounds.length; i++) {
    const count = counts[i] ?? 0
    if (count >= rank) {
      const lower = i === 0 ? 0 : bounds[i - 1]!
      const before = i === 0 ? 0 : (counts[i - 1] ?? 0)
      const inBucket = count - before
      return inBucket <= 0 ? bounds[i]! : lower + ((bounds[i]! - lower) * (rank - before)) / inBucket
    }
  }
  return bounds[bounds.length - 1] ?? null
}

/** Element-wise `a + b` (the longer array's length; missing entries count 0). */
export function addCounts(a: readonly number[], b: readonly number[]): number[] {
  return Array.from({ length: Math.max(a.length, b.length) }, (_, i) => (a[i] ?? 0) + (b[i] ?? 0))
}

/**
 * The sum of several processes' stats of one region. Every number is summed, and every object of numbers field by
 * field (so a counter core adds to its snapshot is summed with no change here); `hitRatio` and `l1HitRatio` are recomputed from the
 * sums, and `regenerationTime` from the summed regeneration histograms (`buckets`), or null without them.
 */
export function sumStats(
  stats: readonly RegionStatsSnapshot[],
  regeneration?: { bounds: readonly number[]; counts: BucketCounts },
): RegionStatsSnapshot {
  const out: Record<string, unknown> = {}
  for (const one of stats) {
    for (const [field, value] of Object.entries(one)) {
      if (field === 'hitRatio' || field === 'l1HitRatio' || field === 'regenerationTime') continue
      if (typeof value === 'number') out[field] = ((out[field] as number | undefined) ?? 0) + value
      else if (value !== null && typeof value === 'object') {
        const sums = (out[field] ??= {}) as Record<string, number>
        for (const [name, n] of Object.entries(value as Record<string, unknown>)) {
          if (typeof n === 'number') sums[name] = (sums[name] ?? 0) + n
        }
      }
    }
  }
  const sum = out as unknown as RegionStatsSnapshot
  sum.hitRatio = sum.gets > 0 ? (sum.hits + sum.stale) / sum.gets : null
  sum.l1HitRatio = sum.gets > 0 ? sum.l1Hits / sum.gets : null
  const p50 = regeneration && bucketQuantile(0.5, regeneration.bounds, regeneration.counts)
  const p99 = regeneration && bucketQuantile(0.99, regeneration.bounds, regeneration.counts)
  sum.regenerationTime = p50 != null && p99 != null ? { p50, p99 } : null
  return sum
}

/** Every region of the fleet (in the order first seen), its stats summed over the instances. */
export function fleetRegions(instances: readonly InstanceSnapshot[]): FleetRegionJson[] {
  const byName = new Map<string, Array<{ region: PublishedRegion; bounds: number[] }>>()
  for (const instance of instances) {
    for (const region of instance.regions) {
      const list = byName.get(region.name) ?? []
      list.push({ region, bounds: instance.bounds.regeneration })
      byName.set(region.name, list)
    }
  }
  return [...byName].map(([name, list]) => {
    const bounds = list[0]!.bounds
    const sameBounds = list.every((entry) => sameNumbers(entry.bounds, bounds) && entry.region.buckets)
    const counts = sameBounds
      ? list.reduce<number[]>((acc, entry) => addCounts(acc, entry.region.buckets!.regeneration), [])
      : undefined
    return {
      name,
      backend: list.find((entry) => entry.region.backend !== null)?.region.backend ?? null,
      stats: sumStats(
        list.map((entry) => entry.region.stats),
        counts && { bounds, counts },
      ),
    }
  })
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i])
}

/**
 * The fleet's hottest keys of `region`. Each process lists its top keys; a key's `count` (and hits, misses,
 * regenerations) is the sum over the processes that list it. A process that does not list it saw it at most as
 * often as the last key it lists (when its list is full; never, when its list is complete), so `error`, the sum of
 * those bounds, is how much the count may be short. Sorted by count, then by the upper bound.
 */
export function mergeHotKeys(
  instances: readonly InstanceSnapshot[],
  region: string,
  limit: number,
): { windowSeconds: number; instances: number; keys: FleetHotKeyJson[] } {
  const lists = instances.flatMap((instance) => instance.regions.filter((r) => r.name === region).map((r) => r.hotKeys))
  const merged = new Map<string, FleetHotKeyJson>()
  for (const list of lists) {
    for (const key of list.keys) {
      const entry = merged.get(key.key) ?? {
        key: key.key,
        count: 0,
        hits: 0,
        misses: 0,
        regenerations: 0,
        error: 0,
        instances: 0,
      }
      entry.count += key.count
      entry.hits += key.hits
      entry.misses += key.misses
      entry.regenerations += key.regenerations
      entry.instances++
      merged.set(key.key, entry)
    }
  }
  for (const list of lists) {
    const floor = list.complete ? 0 : Math.min(...list.keys.map((k) => k.count))
    if (!(floor > 0)) continue
    const listed = new Set(list.keys.map((k) => k.key))
    for (const entry of merged.values()) if (!listed.has(entry.key)) entry.error += floor
  }
  const keys = [...merged.values()]
    .sort((a, b) => b.count - a.count || b.count + b.error - (a.count + a.error) || (a.key < b.key ? -1 : 1))
    .slice(0, limit)
  return { windowSeconds: Math.max(0, ...lists.map((l) => l.windowSeconds)), instances: lists.length, keys }
}

interface Entry {
  instance: InstanceSnapshot
  episode: PublishedEpisode
}

interface Group {
  creator: Entry | undefined
  entries: Entry[]
  startedAt: number
  endedAt: number
}

/**
 * Each stampede of the fleet once. The rule: episodes of the same region and key belong to one incident when their
 * times overlap, with `MATCH_SLACK_MS` of tolerance for the processes' clocks and the wake-up of waiters. An episode
 * with a regeneration is a creator and anchors an incident over its regeneration's time; every other episode joins
 * the creator it overlaps most, or, overlapping none, an incident of its own with the episodes it overlaps (the
 * creator unknown: no process reported one).
 */
export function correlateIncidents(instances: readonly InstanceSnapshot[], limit: number): IncidentJson[] {
  const byKey = new Map<string, Entry[]>()
  for (const instance of instances) {
    for (const episode of instance.episodes) {
      const id = `${episode.region}\u0000${episode.key}`
      const list = byKey.get(id) ?? []
      list.push({ instance, episode })
      byKey.set(id, list)
    }
  }
  const incidents: IncidentJson[] = []
  for (const entries of byKey.values()) {
    const groups: Group[] = entries
      .filter((e) => e.episode.regeneration !== null)
      .map((e) => ({ creator: e, entries: [e], startedAt: e.episode.startedAt, endedAt: e.episode.endedAt }))
    const loose: Entry[] = []
    for (const entry of entries) {
      if (entry.episode.regeneration !== null) continue
      let best: Group | undefined
      let bestOverlap = -Infinity
      for (const group of groups) {
        const regeneration = group.creator!.episode.regeneration!
        const overlap = overlapOf(
          entry.episode,
          regeneration.startedAt - MATCH_SLACK_MS,
          regeneration.at + MATCH_SLACK_MS,
        )
        if (overlap >= 0 && overlap > bestOverlap) {
          best = group
          bestOverlap = overlap
        }
      }
      if (best) {
        best.entries.push(entry)
        best.startedAt = Math.min(best.startedAt, entry.episode.startedAt)
        best.endedAt = Math.max(best.endedAt, entry.episode.endedAt)
      } else loose.push(entry)
    }
    loose.sort((a, b) => a.episode.startedAt - b.episode.startedAt)
    let open: Group | undefined
    for (const entry of loose) {
      if (open && entry.episode.startedAt <= open.endedAt + MATCH_SLACK_MS) {
        open.entries.push(entry)
        open.endedAt = Math.max(open.endedAt, entry.episode.endedAt)
      } else {
        open = {
          creator: undefined,
          entries: [entry],
          startedAt: entry.episode.startedAt,
          endedAt: entry.episode.endedAt,
        }
        groups.push(open)
      }
    }
    for (const group of groups) incidents.push(incidentOf(group))
  }
  return incidents.sort((a, b) => b.at - a.at).slice(0, limit)
}

/** How long [episode.startedAt, episode.endedAt] and [from, to] overlap, in ms; negative when they do not. */
function overlapOf(episode: PublishedEpisode, from: number, to: number): number {
  return Math.min(episode.endedAt, to) - Math.max(episode.startedAt, from)
}

function incidentOf(group: Group): IncidentJson {
  const byInstance = new Map<string, IncidentProcessJson>()
  for (const { instance, episode } of group.entries) {
    const process = byInstance.get(instance.id) ?? {
      instance: instance.id,
      hostname: instance.hostname,
      pid: instance.pid,
      role: 'waiter' as const,
      coalesced: 0,
    }
    process.coalesced += episode.coalesced
    if (group.creator?.instance === instance) process.role = 'creator'
    byInstance.set(instance.id, process)
  }
  const processes = [...byInstance.values()].sort(
    (a, b) => (a.role === 'creator' ? -1 : 0) - (b.role === 'creator' ? -1 : 0) || b.coalesced - a.coalesced,
  )
  const first = group.entries[0]!.episode
  return {
    region: first.region,
    key: first.key,
    startedAt: group.startedAt,
    at: group.endedAt,
    duration: group.creator?.episode.regeneration?.duration ?? null,
    coalesced: processes.reduce((sum, p) => sum + p.coalesced, 0),
    creator: processes.find((p) => p.role === 'creator') ?? null,
    processes,
  }
}
