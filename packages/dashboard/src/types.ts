/** The JSON shapes of the exporter's admin API (CONTRACT.md section 4), as the dashboard reads them. */

export interface RegionStats {
  hits: number
  misses: number
  stale: number
  regenerations: number
  regenerationErrors: number
  lockWaits: number
  /** Callers that needed a value and did not run the creator: stampedes prevented. */
  coalesced: number
  invalidations: { hard: number; soft: number }
  /** 0..1, or null before the first get. */
  hitRatio: number | null
  /** Regeneration time quantiles in seconds; null (or absent) before the first regeneration. */
  regenerationTime?: { p50: number | null; p99: number | null } | null
}

export interface LastInvalidation {
  /** Epoch milliseconds. */
  at: number
  hard: boolean
  scope: string
}

export interface RegionInfo {
  name: string
  backend: string
  /** Seconds, or null when values never expire. */
  expirationTime: number | null
  stats: RegionStats
  lastInvalidation: LastInvalidation | null
}

export interface RegionsResponse {
  regions: RegionInfo[]
}

export interface HotKey {
  key: string
  count: number
  hits: number
  misses: number
  regenerations: number
}

export interface HotKeysResponse {
  region: string
  windowSeconds: number
  keys: HotKey[]
}

export interface Stampede {
  region: string
  key: string
  /** Epoch milliseconds. */
  at: number
  /** Callers that did not run the creator. */
  coalesced: number
  /** Regeneration time in seconds. */
  duration: number
}

export interface StampedesResponse {
  stampedes: Stampede[]
}

export interface InvalidateResponse {
  region: string
  hard: boolean
  invalidatedAt: number | string
}

export interface InvalidateTagsResponse extends InvalidateResponse {
  tags: string[]
}

/** The event names the exporter's SSE stream carries (the region events of CONTRACT.md section 3). */
export const REGION_EVENTS = [
  'hit',
  'miss',
  'stale',
  'regenerate',
  'lockWait',
  'coalesced',
  'invalidate',
  'backendError',
] as const
export type RegionEventName = (typeof REGION_EVENTS)[number]
