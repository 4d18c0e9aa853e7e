/**
 * The admin API's region routes: stats, hot keys, recent stampedes, and the three write paths (invalidate a region,
 * invalidate tags, delete a key), which act on the live regions and so emit the matching `invalidate` events.
 */
import {
  MAX_TAG_LENGTH,
  MAX_TAGS,
  ValidationError,
  type CacheRegion,
  type RegionRegistry,
  type RegionStatsSnapshot,
} from '@corral/core'
import { Hono } from 'hono'
import type { Context, MiddlewareHandler } from 'hono'
import { auditAdminAction, type ExporterMetrics } from '../audit.js'
import { corralCode, httpError, intParam, rawPath, type ExporterEnv } from '../http.js'
import type { ExporterLogger } from '../options.js'

export const HOT_KEYS_LIMIT = { min: 1, max: 100, fallback: 20 }
export const STAMPEDES_LIMIT = { min: 1, max: 200, fallback: 50 }

/** The JSON of one region, as `/api/regions` lists it. */
export interface RegionJson {
  name: string
  /** the backend's name, or null while the region is not configured */
  backend: string | null
  configured: boolean
  /** seconds, or null when values never expire */
  expirationTime: number | null
  /** The region's stats snapshot, field by field (a field added to core is a deliberate API change here). */
  stats: RegionStatsSnapshot
  /** the last invalidation (region, key or tag), `at` in epoch milliseconds */
  lastInvalidation: { at: number; hard: boolean; scope: string } | null
}

export function regionJson(region: CacheRegion): RegionJson {
  const { name, backend, expirationTime } = region.describe()
  const s = region.statsSnapshot()
  const last = region.stats.lastInvalidation
  return {
    name,
    backend,
    configured: region.isConfigured,
    expirationTime,
    stats: {
      hits: s.hits,
      misses: s.misses,
      stale: s.stale,
      gets: s.gets,
      regenerations: s.regenerations,
      regenerationErrors: s.regenerationErrors,
      lockWaits: s.lockWaits,
      coalesced: s.coalesced,
      coalescedWaited: s.coalescedWaited,
      coalescedStale: s.coalescedStale,
      invalidations: { hard: s.invalidations.hard, soft: s.invalidations.soft },
      backendErrors: s.backendErrors,
      hitRatio: s.hitRatio,
      regenerationTime: s.regenerationTime,
    },
    lastInvalidation: last === null ? null : { at: Math.floor(last.at), hard: last.hard, scope: last.scope },
  }
}

/** 400 when the request path holds a malformed percent-escape (`%E0%A4%A`), instead of guessing a key. */
const wellFormedPath: MiddlewareHandler = async function corralWellFormedPath(c, next) {
  try {
    decodeURIComponent(rawPath(c.req.url))
  } catch {
    throw httpError(400, 'the request path holds a malformed percent-encoding')
  }
  return next()
}

function findRegion(registry: RegionRegistry, c: Context): CacheRegion {
  const name = c.req.param('name') ?? ''
  const region = registry.get(name)
  if (region === undefined) throw httpError(404, `unknown region "${name.slice(0, 200)}"`)
  return region
}

/** Reads the JSON body of a POST: malformed JSON or anything but an object (such as `example`) is a 400. */
async function readJsonObject(c: Context, example: string): Promise<Record<string, unknown>> {
  const text = await c.req.text()
  if (text.trim() === '') return {}
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw httpError(400, 'the body is not valid JSON')
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw httpError(400, `the body must be a JSON object such as ${example}`)
  }
  return body as Record<string, unknown>
}

/** The `hard` of an invalidation body: true when absent, as `region.invalidate()` does; a non-boolean is a 400. */
function hardOf(body: Record<string, unknown>): boolean {
  const hard = 'hard' in body ? body.hard : true
  if (typeof hard !== 'boolean') throw httpError(400, `"hard" must be true or false; got ${JSON.stringify(hard)}`)
  return hard
}

/**
 * The `tags` of an invalidate-tags body, checked as `region.invalidateTags()` checks them (1 to MAX_TAGS non-empty
 * strings of at most MAX_TAG_LENGTH characters), but answered as a 400 here; duplicates are dropped.
 */
function tagsOf(body: Record<string, unknown>): string[] {
  if (!('tags' in body)) throw httpError(400, '"tags" is required: an array of tags such as {"tags": ["user:42"]}')
  const tags = body.tags
  if (!Array.isArray(tags)) {
    throw httpError(400, `"tags" must be an array of strings; got ${JSON.stringify(tags).slice(0, 100)}`)
  }
  if (tags.length === 0) throw httpError(400, '"tags" must hold at least one tag')
  if (tags.length > MAX_TAGS) throw httpError(400, `"tags" holds at most ${MAX_TAGS} tags; got ${tags.length}`)
  for (const tag of tags) {
    if (typeof tag !== 'string') {
      throw httpError(400, `every tag must be a string; got ${JSON.stringify(tag).slice(0, 100)}`)
    }
    if (tag.length === 0) throw httpError(400, 'tags must not be empty strings')
    if (tag.length > MAX_TAG_LENGTH) {
      throw httpError(400, `tags are at most ${MAX_TAG_LENGTH} characters; got one of ${tag.length}`)
    }
  }
  return [...new Set(tags as string[])]
}

/**
 * Runs an invalidation of `region` and answers when it happened (epoch ms). A region that is not configured, or a
 * soft invalidation of one without expiration time, is a 409; so is any ValidationError the region still raises,
 * the input having been checked already: it is about the region's state.
 */
async function invalidation(region: CacheRegion, hard: boolean, run: () => Promise<void>): Promise<number> {
  if (!region.isConfigured) throw httpError(409, `region "${region.name}" is not configured yet`)
  if (!hard && region.expirationTime === undefined) {
    throw httpError(
      409,
      `region "${region.name}" has no expiration time, so it cannot be soft-invalidated; use {"hard": true}`,
    )
  }
  try {
    await run()
  } catch (error) {
    if (corralCode(error) === ValidationError.code) throw httpError(409, (error as Error).message)
    throw error
  }
  return Math.floor(region.stats.lastInvalidation?.at ?? Date.now())
}

const INVALIDATE_PATH = '/regions/:name/invalidate'
const INVALIDATE_TAGS_PATH = '/regions/:name/invalidate-tags'
const KEY_PATH = '/regions/:name/keys/:key{.+}'

/**
 * The audit of the three write paths. Mounted under `/api` before the guards (auth, cross-site, content type, body
 * size), so that the requests they refuse are logged and counted too.
 */
export function regionWriteAudits(metrics: ExporterMetrics, logger: ExporterLogger | undefined): Hono<ExporterEnv> {
  const app = new Hono<ExporterEnv>()
  app.post(INVALIDATE_PATH, auditAdminAction('invalidate', metrics, logger))
  app.post(INVALIDATE_TAGS_PATH, auditAdminAction('invalidate_tags', metrics, logger))
  app.delete(KEY_PATH, auditAdminAction('delete_key', metrics, logger))
  return app
}

/** Mounted under `/api`, after the guards. */
export function regionRoutes(registry: RegionRegistry): Hono<ExporterEnv> {
  const app = new Hono<ExporterEnv>()
  app.use('/regions/*', wellFormedPath)

  app.get('/regions', (c) => c.json({ regions: registry.list().map(regionJson) }))

  app.get('/regions/:name', (c) => c.json(regionJson(findRegion(registry, c))))

  app.get('/regions/:name/hot-keys', (c) => {
    const region = findRegion(registry, c)
    const limit = intParam(c.req.queries('limit'), 'limit', HOT_KEYS_LIMIT)
    return c.json({
      region: region.name,
      windowSeconds: region.hotKeysWindowSeconds,
      keys: region.hotKeys(limit).map(({ key, count, hits, misses, regenerations }) => ({
        key,
        count,
        hits,
        misses,
        regenerations,
      })),
    })
  })

  app.get('/stampedes', (c) => {
    const limit = intParam(c.req.queries('limit'), 'limit', STAMPEDES_LIMIT)
    return c.json({
      stampedes: registry
        .recentStampedes(limit)
        .map(({ region, key, at, coalesced, duration }) => ({ region, key, at: Math.floor(at), coalesced, duration })),
    })
  })

  app.post(INVALIDATE_PATH, async (c) => {
    const region = findRegion(registry, c)
    const hard = hardOf(await readJsonObject(c, '{"hard": true}'))
    c.set('auditDetails', { hard })
    const at = await invalidation(region, hard, () => region.invalidate({ hard }))
    return c.json({ region: region.name, hard, invalidatedAt: at })
  })

  app.post(INVALIDATE_TAGS_PATH, async (c) => {
    const region = findRegion(registry, c)
    const body = await readJsonObject(c, '{"tags": ["user:42"], "hard": true}')
    const tags = tagsOf(body)
    const hard = hardOf(body)
    c.set('auditDetails', { tags, hard })
    const at = await invalidation(region, hard, () => region.invalidateTags(tags, { hard }))
    return c.json({ region: region.name, tags, hard, invalidatedAt: at })
  })

  app.delete(KEY_PATH, async (c) => {
    const region = findRegion(registry, c)
    const key = c.req.param('key') ?? ''
    c.set('auditDetails', { key })
    if (!region.isConfigured) throw httpError(409, `region "${region.name}" is not configured yet`)
    await region.delete(key)
    return c.json({ region: region.name, key })
  })

  for (const [path, allow] of [
    [INVALIDATE_PATH, 'POST'],
    [INVALIDATE_TAGS_PATH, 'POST'],
    [KEY_PATH, 'DELETE'],
  ] as const) {
    app.all(path, (c) => {
      c.header('Allow', allow)
      return c.json({ error: `method ${c.req.method} is not allowed here; use ${allow}` }, 405)
    })
  }

  return app
}
