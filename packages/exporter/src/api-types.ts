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
