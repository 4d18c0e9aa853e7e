/**
 * The admin API's region routes: stats, hot keys, recent stampedes, and the two write paths (invalidate a region,
 * delete a key), which act on the live regions and so emit the matching `invalidate` events.
 */
import { ValidationError, type CacheRegion, type RegionRegistry } from '@corral/core'
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
  stats: {
    hits: number
    misses: number
    stale: number
    gets: number
    regenerations: number
    regenerationErrors: number
    lockWaits: number
    /** stampedes prevented: callers that needed a value and did not run the creator */
    coalesced: number
    coalescedWaited: number
    coalescedStale: number
    invalidations: { hard: number; soft: number }
    backendErrors: number
    /** (hits + stale) / gets, or null before the first get */
    hitRatio: number | null
    /** seconds, over the last 1024 regenerations; null before the first */
    regenerationTime: { p50: number; p99: number } | null
  }
  /** the last invalidation (region or key), `at` in epoch milliseconds */
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

/** Reads the JSON body of a POST: malformed JSON or anything but an object is a 400. */
async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  const text = await c.req.text()
  if (text.trim() === '') return {}
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw httpError(400, 'the body is not valid JSON')
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw httpError(400, 'the body must be a JSON object such as {"hard": true}')
  }
  return body as Record<string, unknown>
}

const INVALIDATE_PATH = '/regions/:name/invalidate'
const KEY_PATH = '/regions/:name/keys/:key{.+}'

/**
 * The audit of the two write paths. Mounted under `/api` before the guards (auth, cross-site, content type, body
 * size), so that the requests they refuse are logged and counted too.
 */
export function regionWriteAudits(metrics: ExporterMetrics, logger: ExporterLogger | undefined): Hono<ExporterEnv> {
  const app = new Hono<ExporterEnv>()
  app.post(INVALIDATE_PATH, auditAdminAction('invalidate', metrics, logger))
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
    const body = await readJsonObject(c)
    const hard = 'hard' in body ? body.hard : true
    if (typeof hard !== 'boolean') throw httpError(400, `"hard" must be true or false; got ${JSON.stringify(hard)}`)
    c.set('auditDetails', { hard })
    if (!region.isConfigured) throw httpError(409, `region "${region.name}" is not configured yet`)
    if (!hard && region.expirationTime === undefined) {
      throw httpError(
        409,
        `region "${region.name}" has no expiration time, so it cannot be soft-invalidated; use {"hard": true}`,
      )
    }
    try {
      await region.invalidate({ hard })
    } catch (error) {
      if (corralCode(error) === ValidationError.code) throw httpError(409, (error as Error).message)
      throw error
    }
    const at = region.stats.lastInvalidation?.at ?? Date.now()
    return c.json({ region: region.name, hard, invalidatedAt: Math.floor(at) })
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
    [KEY_PATH, 'DELETE'],
  ] as const) {
    app.all(path, (c) => {
      c.header('Allow', allow)
      return c.json({ error: `method ${c.req.method} is not allowed here; use ${allow}` }, 405)
    })
  }

  return app
}
