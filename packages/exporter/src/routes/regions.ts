/**
 * The admin API's region routes: stats, hot keys, recent stampedes (`regionRoutes`), and the handlers of the three
 * write routes (invalidate a region, invalidate tags, delete a key), which admin-writes.ts declares and mounts. The
 * writes act on the live regions and so emit the matching `invalidate` events.
 */
import { tagListProblem, ValidationError, type CacheRegion, type RegionRegistry } from '@corral/core'
import { Hono } from 'hono'
import type { Context } from 'hono'
import type {
  DeleteKeyJson,
  HotKeysJson,
  InvalidateJson,
  InvalidateTagsJson,
  RegionJson,
  RegionsJson,
  StampedesJson,
} from '../api-types.js'
import { corralCode, httpError, intParam, type ExporterEnv } from '../http.js'

export const HOT_KEYS_LIMIT = { min: 1, max: 100, fallback: 20 }
export const STAMPEDES_LIMIT = { min: 1, max: 200, fallback: 50 }

export function regionJson(region: CacheRegion): RegionJson {
  const { name, backend, expirationTime } = region.describe()
  const last = region.stats.lastInvalidation
  return {
    name,
    backend,
    configured: region.isConfigured,
    expirationTime,
    stats: region.statsSnapshot(),
    lastInvalidation: last === null ? null : { at: Math.floor(last.at), hard: last.hard, scope: last.scope },
  }
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
 * The `tags` of an invalidate-tags body, checked by core's `tagListProblem` as `region.invalidateTags()` checks
 * them, but answered as a 400 here; duplicates are dropped.
 */
function tagsOf(body: Record<string, unknown>): string[] {
  if (!('tags' in body)) throw httpError(400, '"tags" is required: an array of tags such as {"tags": ["user:42"]}')
  const problem = tagListProblem(body.tags, { atLeastOne: true })
  if (problem !== undefined) throw httpError(400, problem)
  return [...new Set(body.tags as string[])]
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

/** `POST /api/regions/:name/invalidate` */
export async function invalidateRegion(c: Context<ExporterEnv>, registry: RegionRegistry): Promise<Response> {
  const region = findRegion(registry, c)
  const hard = hardOf(await readJsonObject(c, '{"hard": true}'))
  c.set('auditDetails', { hard })
  const at = await invalidation(region, hard, () => region.invalidate({ hard }))
  return c.json({ region: region.name, hard, invalidatedAt: at } satisfies InvalidateJson)
}

/** `POST /api/regions/:name/invalidate-tags` */
export async function invalidateRegionTags(c: Context<ExporterEnv>, registry: RegionRegistry): Promise<Response> {
  const region = findRegion(registry, c)
  const body = await readJsonObject(c, '{"tags": ["user:42"], "hard": true}')
  const tags = tagsOf(body)
  const hard = hardOf(body)
  c.set('auditDetails', { tags, hard })
  const at = await invalidation(region, hard, () => region.invalidateTags(tags, { hard }))
  return c.json({ region: region.name, tags, hard, invalidatedAt: at } satisfies InvalidateTagsJson)
}

/** `DELETE /api/regions/:name/keys/:key` */
export async function deleteRegionKey(c: Context<ExporterEnv>, registry: RegionRegistry): Promise<Response> {
  const region = findRegion(registry, c)
  const key = c.req.param('key') ?? ''
  c.set('auditDetails', { key })
  if (!region.isConfigured) throw httpError(409, `region "${region.name}" is not configured yet`)
  await region.delete(key)
  return c.json({ region: region.name, key } satisfies DeleteKeyJson)
}

/** The read routes, mounted under `/api` after the guards. */
export function regionRoutes(registry: RegionRegistry): Hono<ExporterEnv> {
  const app = new Hono<ExporterEnv>()

  app.get('/regions', (c) => c.json({ regions: registry.list().map(regionJson) } satisfies RegionsJson))

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
    } satisfies HotKeysJson)
  })

  app.get('/stampedes', (c) => {
    const limit = intParam(c.req.queries('limit'), 'limit', STAMPEDES_LIMIT)
    return c.json({
      stampedes: registry
        .recentStampedes(limit)
        .map(({ region, key, at, coalesced, duration }) => ({ region, key, at: Math.floor(at), coalesced, duration })),
    } satisfies StampedesJson)
  })

  return app
}
