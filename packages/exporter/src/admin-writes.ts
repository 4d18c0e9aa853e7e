/**
 * The admin API's write routes, the ones that change a cache, each declared once: method, path (under `/api`), the
 * action its audit records, and its handler. The app mounts everything else from this table:
 *
 * - `adminWriteAudits`: the audit of each route (a log line and `corral_admin_actions_total{action, outcome}`),
 *   mounted before the guards so that the requests they refuse are logged and counted too;
 * - `adminWriteRoutes`: the handlers, after the guards, then a `405` for any other method on a write path, whose
 *   `Allow` header names the methods declared for that path;
 * - `ADMIN_ACTIONS`: the actions `corral_admin_actions_total` starts at 0.
 *
 * Adding a write route is one entry here (and its handler beside the routes of its area).
 */
import type { RegionRegistry } from '@corral/core'
import { Hono, type Context } from 'hono'
import { auditAdminAction } from './audit.js'
import type { ExporterMetrics } from './exporter-metrics.js'
import type { ExporterEnv } from './http.js'
import type { ExporterLogger } from './options.js'
import { deleteRegionKey, invalidateRegion, invalidateRegionTags } from './routes/regions.js'

export interface AdminWriteRoute {
  readonly method: 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  /** A Hono path under `/api`; a `:name` parameter is logged by the audit as the region. */
  readonly path: string
  /** The audit's `action` (log line and metric label): snake_case. */
  readonly action: string
  /** Answers the request; `c.set('auditDetails', {...})` adds what it did to the audit line. */
  readonly handler: (c: Context<ExporterEnv>, registry: RegionRegistry) => Promise<Response>
}

export const ADMIN_WRITE_ROUTES = [
  { method: 'POST', path: '/regions/:name/invalidate', action: 'invalidate', handler: invalidateRegion },
  { method: 'POST', path: '/regions/:name/invalidate-tags', action: 'invalidate_tags', handler: invalidateRegionTags },
  { method: 'DELETE', path: '/regions/:name/keys/:key{.+}', action: 'delete_key', handler: deleteRegionKey },
] as const satisfies readonly AdminWriteRoute[]

/** What an audited admin request did: `invalidate`, `invalidate_tags` or `delete_key`. */
export type AdminAction = (typeof ADMIN_WRITE_ROUTES)[number]['action']

export const ADMIN_ACTIONS: readonly AdminAction[] = ADMIN_WRITE_ROUTES.map((route) => route.action)

/** The audit of every write route. Mounted under `/api` before the guards (auth, cross-site, content type, size). */
export function adminWriteAudits(metrics: ExporterMetrics, logger: ExporterLogger | undefined): Hono<ExporterEnv> {
  const app = new Hono<ExporterEnv>()
  for (const route of ADMIN_WRITE_ROUTES) {
    app.on(route.method, route.path, auditAdminAction(route.action, metrics, logger))
  }
  return app
}

/** The write routes' handlers, then their 405 answers. Mounted under `/api` after the guards. */
export function adminWriteRoutes(registry: RegionRegistry): Hono<ExporterEnv> {
  const app = new Hono<ExporterEnv>()
  const methodsByPath = new Map<string, string[]>()
  for (const route of ADMIN_WRITE_ROUTES) {
    const handler = route.handler
    app.on(route.method, route.path, function corralAdminWrite(c) {
      return handler(c, registry)
    })
    methodsByPath.set(route.path, [...(methodsByPath.get(route.path) ?? []), route.method])
  }
  for (const [path, methods] of methodsByPath) {
    const allow = methods.join(', ')
    app.all(path, function corralMethodNotAllowed(c) {
      c.header('Allow', allow)
      return c.json({ error: `method ${c.req.method} is not allowed here; use ${allow}` }, 405)
    })
  }
  return app
}
