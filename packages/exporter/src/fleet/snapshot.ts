/**
 * What one process publishes to the fleet's Redis every interval: a compact, bounded JSON snapshot. Its size does not
 * grow with the number of keys: per region its stats, two histograms' bucket counts and its `HOT_KEYS_PER_REGION`
 * hottest keys; then its `EPISODES_PUBLISHED` most recent stampede episodes; keys are cut to `MAX_KEY_LENGTH`.
 */
import type { HotKeyJson } from '../api-types.js'
import type { RegionStatsSnapshot } from '@corral/core'

/** Bumped when the snapshot changes incompatibly; readers skip snapshots of another version. */
export const SNAPSHOT_VERSION = 1
export const HOT_KEYS_PER_REGION = 20
export const EPISODES_PUBLISHED = 50
export const MAX_REGIONS = 200
/** Longer keys are cut here and end with `…`: a key is user data of any length, a snapshot is bounded. */
export const MAX_KEY_LENGTH = 256

export function boundedKey(key: string): string {
  return key.length <= MAX_KEY_LENGTH ? key : `${key.slice(0, MAX_KEY_LENGTH - 1)}…`
}

/** Cumulative bucket counts of a histogram, one per upper bound, then the +Inf bucket (the count). */
export type BucketCounts = number[]

export interface PublishedRegion {
  name: string
  backend: string | null
  stats: RegionStatsSnapshot
  /** absent when the region has no metrics (telemetry off) */
  buckets?: { regeneration: BucketCounts; lockWait: BucketCounts }
  hotKeys: {
    windowSeconds: number
    /** true when the tracker listed fewer keys than were asked: no other key was tracked */
    complete: boolean
    keys: HotKeyJson[]
  }
}

/**
 * Callers of one process that were coalesced onto one regeneration of a key (an episode), and that regeneration
 * when this process ran it. See episodes.ts.
 */
export interface PublishedEpisode {
  region: string
  key: string
  /** epoch ms: the first coalesced caller, or the regeneration's start if earlier */
  startedAt: number
  /** epoch ms: the last coalesced caller, or the regeneration's end if later */
  endedAt: number
  coalesced: number
  regeneration: { startedAt: number; at: number; duration: number; outcome: 'success' | 'error' } | null
}

export interface InstanceSnapshot {
  v: typeof SNAPSHOT_VERSION
  id: string
  hostname: string
  pid: number
  startedAt: number
  lastSeen: number
  /** milliseconds between snapshots */
  interval: number
  /** the histograms' upper bounds, in seconds */
  bounds: { regeneration: number[]; lockWait: number[] }
  regions: PublishedRegion[]
  /** newest first */
  episodes: PublishedEpisode[]
}

const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)
const isString = (value: unknown): value is string => typeof value === 'string'

/** Whether `e`, read from Redis, has the fields of a published episode that readers rely on. */
export function isPublishedEpisode(e: unknown): e is PublishedEpisode {
  if (e === null || typeof e !== 'object') return false
  const episode = e as Partial<PublishedEpisode>
  return (
    isString(episode.region) &&
    isString(episode.key) &&
    isNumber(episode.startedAt) &&
    isNumber(episode.endedAt) &&
    isNumber(episode.coalesced)
  )
}

/**
 * Parses a snapshot read from Redis; undefined for anything that is not one of this version (another program's
 * key, a newer Corral): one bad snapshot never breaks the fleet view.
 */
export function parseSnapshot(text: string | null): InstanceSnapshot | undefined {
  if (text === null) return undefined
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return undefined
  }
  if (value === null || typeof value !== 'object') return undefined
  const s = value as Partial<InstanceSnapshot>
  if (s.v !== SNAPSHOT_VERSION || !isString(s.id) || !isString(s.hostname) || !isNumber(s.pid)) return undefined
  if (!isNumber(s.startedAt) || !isNumber(s.lastSeen) || !isNumber(s.interval)) return undefined
  if (!Array.isArray(s.regions) || !Array.isArray(s.episodes) || s.bounds === undefined) return undefined
  const regions = s.regions.filter(
    (r): r is PublishedRegion =>
      r !== null &&
      typeof r === 'object' &&
      isString(r.name) &&
      r.stats !== null &&
      typeof r.stats === 'object' &&
      r.hotKeys !== null &&
      typeof r.hotKeys === 'object' &&
      Array.isArray(r.hotKeys.keys),
  )
  const episodes = s.episodes.filter(isPublishedEpisode)
  return { ...(s as InstanceSnapshot), regions, episodes }
}
