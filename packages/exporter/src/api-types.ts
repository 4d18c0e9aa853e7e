/**
 * The admin API's JSON, as the exporter serves it and the dashboard reads it: the one definition of the wire
 * format (the routes are listed in the README's "Routes" section). Types only, published as
 * `@corral/exporter/api`, so a client imports them with `import type` and pays nothing at run time.
 *
 * A region's `stats` is core's own `RegionStatsSnapshot`, served as the region computes it: a counter core adds to
 * its snapshot reaches this JSON and every client's types without being copied anywhere.
 *
 * Times (`at`, `invalidatedAt`) are epoch milliseconds, durations seconds.
 */
import type { HotKey, MAX_TAG_LENGTH, MAX_TAGS, RegionStatsSnapshot, StampedeRecord } from '@corral/core'

/** `GET /healthz` */
export interface HealthJson {
  status: 'ok'
}

/** Every 4xx and 5xx answer of the exporter. */
export interface ErrorJson {
  error: string
}

/** The last invalidation of a region (of the region, a key, a tag or a dependency). */
export interface LastInvalidationJson {
  at: number
  hard: boolean
  scope: string
}

/** One region: an element of `GET /api/regions`, and the answer of `GET /api/regions/:name`. */
export interface RegionJson {
  name: string
  /** the backend's name, or null while the region is not configured */
  backend: string | null
  configured: boolean
  /** seconds, or null when values never expire */
  expirationTime: number | null
  /** the region's counters since the process started: `coalesced` counts the stampedes prevented */
  stats: RegionStatsSnapshot
  lastInvalidation: LastInvalidationJson | null
}

/** `GET /api/regions` */
export interface RegionsJson {
  regions: RegionJson[]
}

/** One hot key: requests (hits + misses) over the window, an estimate. */
export type HotKeyJson = Pick<HotKey, 'key' | 'count' | 'hits' | 'misses' | 'regenerations'>

/** `GET /api/regions/:name/hot-keys` */
export interface HotKeysJson {
  region: string
  windowSeconds: number
  /** heaviest first */
  keys: HotKeyJson[]
}

/** A regeneration that other callers were coalesced onto (`at`: when it finished, whole milliseconds). */
export type StampedeJson = Pick<StampedeRecord, 'region' | 'key' | 'at' | 'coalesced' | 'duration'>

/** `GET /api/stampedes`, newest first */
export interface StampedesJson {
  stampedes: StampedeJson[]
}

/** The body of `POST /api/regions/:name/invalidate`; `hard` defaults to true. */
export interface InvalidateBody {
  hard?: boolean
}

/** `POST /api/regions/:name/invalidate` */
export interface InvalidateJson {
  region: string
  hard: boolean
  invalidatedAt: number
}

/**
 * The body of `POST /api/regions/:name/invalidate-tags`: 1 to `MaxTags` non-empty tags of at most `MaxTagLength`
 * characters (a duplicate counts once); `hard` defaults to true.
 */
export interface InvalidateTagsBody {
  tags: readonly string[]
  hard?: boolean
}

/** `POST /api/regions/:name/invalidate-tags`: the tags invalidated, each once. */
export interface InvalidateTagsJson extends InvalidateJson {
  tags: string[]
}

/** `DELETE /api/regions/:name/keys/:key` */
export interface DeleteKeyJson {
  region: string
  key: string
}

/** The most tags an invalidate-tags body may hold: core's `MAX_TAGS`, as a literal type. */
export type MaxTags = typeof MAX_TAGS
/** The longest tag an invalidate-tags body may hold, in characters: core's `MAX_TAG_LENGTH`. */
export type MaxTagLength = typeof MAX_TAG_LENGTH

// ---------------------------------------------------------------------------------------------------- history

/**
 * One region in one history sample: its counters (cumulative, like `stats`; for the fleet, the increase since the
 * exporter began sampling) and the quantiles of the regenerations and lock waits of the interval that ended at the
 * sample, in seconds (null when there were none).
 */
export interface HistoryRegionJson extends HistoryQuantilesJson {
  name: string
  hits: number
  stale: number
  misses: number
  regenerations: number
  regenerationErrors: number
  lockWaits: number
  coalesced: number
}

/** The quantiles of one interval over every region together (their histograms summed), in seconds. */
export interface HistoryQuantilesJson {
  regenerationP50: number | null
  regenerationP99: number | null
  lockWaitP99: number | null
}

export interface HistorySampleJson {
  /** epoch milliseconds */
  at: number
  regions: HistoryRegionJson[]
  /** every region together */
  all: HistoryQuantilesJson
}

/** `GET /api/history?range=15m&since=<ms>` and `GET /api/fleet/history`: samples oldest first. */
export interface HistoryJson {
  /** seconds between samples */
  intervalSeconds: number
  /** seconds of history the exporter keeps */
  retentionSeconds: number
  samples: HistorySampleJson[]
}

// ---------------------------------------------------------------------------------------------------- fleet

/** A region of one process of the fleet, or of the whole fleet (counters summed over the live processes). */
export interface FleetRegionJson {
  name: string
  /** the backend's name (for the fleet: the first process's), null while not configured */
  backend: string | null
  stats: RegionStatsSnapshot
}

/** One process that publishes its telemetry to the fleet's Redis. */
export interface FleetInstanceJson {
  /** unique per process start: `<hostname>:<pid>:<random>` */
  id: string
  hostname: string
  pid: number
  /** epoch milliseconds */
  startedAt: number
  /** when it last published, epoch milliseconds (its clock) */
  lastSeen: number
  /** seconds between its snapshots; it leaves the fleet three intervals after its last one */
  interval: number
  regions: FleetRegionJson[]
}

/** `GET /api/fleet` */
export interface FleetJson {
  /** the fleet's name (several fleets can share one Redis) */
  name: string
  /** the instance id of the process that answered */
  self: string
  instances: FleetInstanceJson[]
  /** every region seen in the fleet, its counters summed over the live instances */
  regions: FleetRegionJson[]
}

/**
 * A key among the fleet's hottest: `count` sums what the processes that list it report; a process that does not
 * list it may still have seen it up to the smallest count it does list, and `error` adds those up, so the true
 * count lies between `count` and `count + error` (up to the trackers' own estimates).
 */
export interface FleetHotKeyJson extends HotKeyJson {
  error: number
  /** how many processes list it */
  instances: number
}

/** `GET /api/fleet/regions/:name/hot-keys?limit=20` */
export interface FleetHotKeysJson {
  region: string
  windowSeconds: number
  /** processes that report hot keys for the region */
  instances: number
  keys: FleetHotKeyJson[]
}

/** One process's part in a stampede incident. */
export interface IncidentProcessJson {
  instance: string
  hostname: string
  pid: number
  /** `creator`: it ran the creator; `waiter`: its callers waited for (or were served stale during) another's */
  role: 'creator' | 'waiter'
  /** callers of this process that did not run the creator */
  coalesced: number
}

/**
 * A stampede seen across the fleet, once: the creator's process (null when no process reported creating it) and
 * each process whose callers were coalesced onto it. Grouped by region, key and overlapping time (README: "Fleet").
 */
export interface IncidentJson {
  region: string
  key: string
  /** when the first caller was coalesced or the creator started, epoch ms */
  startedAt: number
  /** when it ended, epoch ms */
  at: number
  /** the creator's run in seconds, or null when unknown */
  duration: number | null
  /** callers coalesced in every process together */
  coalesced: number
  creator: IncidentProcessJson | null
  /** creator first, then the waiting processes, most callers first */
  processes: IncidentProcessJson[]
}

/** `GET /api/fleet/stampedes?limit=50`, newest first */
export interface FleetStampedesJson {
  stampedes: IncidentJson[]
}
