/**
 * The fleet's routes, mounted under `/api` when the exporter has the `fleet` option (404 otherwise, which is how the
 * dashboard knows whether to offer its fleet view):
 *
 * - `GET /api/fleet`: the live processes and every region's counters summed over them;
 * - `GET /api/fleet/regions/:name/hot-keys?limit=20`: the fleet's hottest keys of a region, with their error bound;
 * - `GET /api/fleet/stampedes?limit=50`: each stampede of the fleet once, with every process's coalesced callers;
 * - `GET /api/fleet/history?range=15m`: the fleet's traffic over time.
 */
import { Hono } from 'hono'
import type { FleetHotKeysJson, FleetJson, FleetStampedesJson, HistoryJson } from '../api-types.js'
import type { Fleet } from '../fleet/fleet.js'
import { correlateIncidents, fleetRegions, mergeHotKeys } from '../fleet/merge.js'
import type { InstanceSnapshot } from '../fleet/snapshot.js'
import type { History } from '../history.js'
import { httpError, intParam, type ExporterEnv } from '../http.js'
import { historyAnswer } from './history.js'
import { HOT_KEYS_LIMIT, STAMPEDES_LIMIT } from './regions.js'

const FLEET_OFF = 'fleet telemetry is off: start the exporter with { fleet: { redis: "redis://..." } } in every process'

export function fleetRoutes(fleet: Fleet | undefined, history: History | undefined): Hono<ExporterEnv> {
  const app = new Hono<ExporterEnv>()

  async function instances(): Promise<InstanceSnapshot[]> {
    if (fleet === undefined) throw httpError(404, FLEET_OFF)
    try {
      return await fleet.read()
    } catch (error) {
      throw httpError(502, `the fleet's Redis could not be read: ${(error as Error)?.message ?? String(error)}`)
    }
  }

  app.get('/fleet', async (c) => {
    const live = await instances()
    return c.json({
      name: fleet!.name,
      self: fleet!.id,
      instances: live.map((instance) => ({
        id: instance.id,
        hostname: instance.hostname,
        pid: instance.pid,
        startedAt: instance.startedAt,
        lastSeen: instance.lastSeen,
        interval: instance.interval / 1000,
        regions: instance.regions.map(({ name, backend, stats }) => ({ name, backend, stats })),
      })),
      regions: fleetRegions(live),
    } satisfies FleetJson)
  })

  app.get('/fleet/regions/:name/hot-keys', async (c) => {
    const limit = intParam(c.req.queries('limit'), 'limit', HOT_KEYS_LIMIT)
    const region = c.req.param('name')
    const live = await instances()
    if (!live.some((instance) => instance.regions.some((r) => r.name === region)))
      throw httpError(404, `no process of the fleet has a region "${region.slice(0, 200)}"`)
    return c.json({ region, ...mergeHotKeys(live, region, limit) } satisfies FleetHotKeysJson)
  })

  app.get('/fleet/stampedes', async (c) => {
    const limit = intParam(c.req.queries('limit'), 'limit', STAMPEDES_LIMIT)
    return c.json({ stampedes: correlateIncidents(await instances(), limit) } satisfies FleetStampedesJson)
  })

  app.get('/fleet/history', (c) => {
    if (fleet === undefined) throw httpError(404, FLEET_OFF)
    if (history === undefined) throw httpError(404, 'history is off: the exporter was created with { history: false }')
    return c.json(historyAnswer(c, history) satisfies HistoryJson)
  })

  return app
}
