/**
 * `createExporter()`: the Hono app behind `/metrics`, `/healthz`, the admin API (`/api/*`) and the dashboard.
 *
 * Request pipeline for `/api/*`: audit (write paths only: logs and counts whatever happens next) → loopback Host
 * check (only without a token) → bearer token (only with one) → cross-site check, JSON content type and body limit
 * (mutating methods) → well-formed path (region paths) → route. The write routes, their audit and their 405
 * answers all come from one table, `ADMIN_WRITE_ROUTES` in admin-writes.ts. Errors: client mistakes are 4xx `{ error }`; anything unexpected is logged and
 * answered `500 { error: 'internal error' }`.
 */
import { existsSync, statSync } from 'node:fs'
import { BackendError, regions as defaultRegistry, RegionNotConfiguredError, ValidationError } from '@corral/core'
import type { RegionRegistry } from '@corral/core'
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { HTTPException } from 'hono/http-exception'
import { ADMIN_ACTIONS, adminWriteAudits, adminWriteRoutes } from './admin-writes.js'
import { jsonLineLogger } from './audit.js'
import { adminAuth, loopbackHostGuard, requireJson, resolveAdminToken, sameOrigin } from './auth.js'
import { ExporterMetrics } from './exporter-metrics.js'
import type { MetricsRegistryLike } from './exposition.js'
import { corralCode, isClientAbort, securityHeaders, wellFormedPath, type ExporterEnv } from './http.js'
import type { ExporterLogger, ExporterOptions } from './options.js'
import { dashboardRoutes, defaultDashboardDir } from './routes/dashboard.js'
import {
  DEFAULT_BUFFER_SIZE,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_MAX_CLIENTS,
  EventFanout,
  eventRoutes,
} from './routes/events.js'
import { Fleet, fleetSettings } from './fleet/fleet.js'
import { fleetReadings, History, historySettings, localReadings } from './history.js'
import { fleetRoutes } from './routes/fleet.js'
import { historyRoutes } from './routes/history.js'
import { metricsRoutes } from './routes/metrics.js'
import { regionRoutes } from './routes/regions.js'

export const DEFAULT_BODY_LIMIT = 16 * 1024
export { CONTENT_SECURITY_POLICY } from './http.js'

/** What `startExporter` needs beyond the app. */
export interface ExporterParts {
  app: Hono<ExporterEnv>
  adminToken: string | undefined
  metrics: ExporterMetrics
  fanout: EventFanout
  registry: RegionRegistry
  /** this process in the fleet, with the `fleet` option */
  fleet: Fleet | undefined
  /** Ends every event stream (the server is closing). */
  closeStreams(): void
  /** Stops the history samplers and leaves the fleet (its snapshot is deleted at once). */
  stopBackground(): Promise<void>
}

function positiveInteger(value: number | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < 1)
    throw new ValidationError(`${name} must be a positive integer; got ${value}`)
  return value
}

function checkOptions(options: ExporterOptions): void {
  if (options === null || typeof options !== 'object')
    throw new ValidationError('createExporter(): options must be an object')
  if (options.registry !== undefined && typeof options.registry?.list !== 'function')
    throw new ValidationError('createExporter(): registry must be a RegionRegistry')
  const extra = options.metricsRegistry === undefined ? [] : [options.metricsRegistry].flat()
  for (const registry of extra) {
    if (typeof (registry as Partial<MetricsRegistryLike>)?.getMetricsAsJSON !== 'function')
      throw new ValidationError('createExporter(): metricsRegistry must be a prom-client Registry or an array of them')
  }
  const { dashboard } = options
  if (dashboard !== undefined && dashboard !== false) {
    if (typeof dashboard !== 'string' || !existsSync(dashboard) || !statSync(dashboard).isDirectory())
      throw new ValidationError(`createExporter(): dashboard must be a directory or false; got ${String(dashboard)}`)
  }
  if (options.logger !== undefined && options.logger !== false && typeof options.logger?.info !== 'function')
    throw new ValidationError('createExporter(): logger must have an info(obj, msg) method, or be false')
}

/** @internal createExporter plus what the server needs to shut down cleanly. */
export function buildExporter(options: ExporterOptions = {}): ExporterParts {
  checkOptions(options)
  const registry = options.registry ?? defaultRegistry
  const adminToken = resolveAdminToken(options.adminToken)
  const logger: ExporterLogger | undefined = options.logger === false ? undefined : (options.logger ?? jsonLineLogger)
  const extraRegistries = options.metricsRegistry === undefined ? [] : [options.metricsRegistry].flat()
  const metrics = new ExporterMetrics(ADMIN_ACTIONS)
  const fanout = new EventFanout(registry)
  const maxBody = positiveInteger(options.bodyLimit, 'bodyLimit', DEFAULT_BODY_LIMIT)
  const events = options.events ?? {}
  const fleetOptions = options.fleet === undefined ? undefined : fleetSettings(options.fleet)
  const historyOptions = options.history === false ? undefined : historySettings(options.history)

  // Background work, started once the options are known to be valid.
  const fleet =
    fleetOptions &&
    new Fleet(registry, fleetOptions, {
      onPublishFailure: () => metrics.fleetPublishFailures.inc(),
      onPublishProblem: (error) =>
        error
          ? warn(
              logger,
              { fleet: fleetOptions.name, err: error.message },
              `corral fleet: publishing to Redis failed: ${error.message}`,
            )
          : warn(logger, { fleet: fleetOptions.name }, 'corral fleet: publishing to Redis works again'),
    })
  const localHistory =
    historyOptions && new History(historyOptions.intervalMs, historyOptions.retentionMs, localReadings(registry))
  // the fleet's history is sampled at the fleet's pace: a finer one would only repeat the same snapshots
  const fleetHistory =
    historyOptions &&
    fleet &&
    new History(
      Math.max(historyOptions.intervalMs, fleet.intervalMs),
      historyOptions.retentionMs,
      fleetReadings(() => fleet.read()),
    )
  fleet?.start()
  localHistory?.start()
  fleetHistory?.start()

  const app = new Hono<ExporterEnv>()

  app.use('*', securityHeaders())

  app.get('/healthz', (c) => {
    c.header('Cache-Control', 'no-store')
    return c.json({ status: 'ok' })
  })

  const conflicts = new Set<string>()
  app.route(
    '/',
    metricsRoutes({
      sources: () => [registry.metrics, metrics.registry, ...extraRegistries],
      onConflict: (name, type, previousType) => {
        if (conflicts.has(name)) return
        conflicts.add(name)
        warn(
          logger,
          { metric: name, type, previousType },
          `metric "${name}" is registered twice with different types (${previousType}, ${type}): only the first is served on /metrics`,
        )
      },
    }),
  )

  const api = new Hono<ExporterEnv>()
  api.route('/', adminWriteAudits(metrics, logger))
  api.use('*', loopbackHostGuard(adminToken !== undefined, options.allowedHosts ?? []))
  api.use('*', adminAuth(adminToken))
  api.use('*', sameOrigin(options.allowedOrigins ?? []))
  api.use('*', requireJson())
  api.use(
    '*',
    bodyLimit({
      maxSize: maxBody,
      onError: (c) => c.json({ error: `the body is larger than ${maxBody} bytes` }, 413),
    }),
  )
  // before the region reads and writes alike: a malformed percent-escape is a 400, never a guessed key
  api.use('/regions/*', wellFormedPath)
  api.use('/fleet/regions/*', wellFormedPath)
  api.route('/', regionRoutes(registry))
  api.route('/', historyRoutes(localHistory))
  api.route('/', fleetRoutes(fleet, fleetHistory))
  api.route('/', adminWriteRoutes(registry))
  api.route(
    '/',
    eventRoutes({
      fanout,
      metrics,
      heartbeatMs: positiveInteger(events.heartbeatMs, 'events.heartbeatMs', DEFAULT_HEARTBEAT_MS),
      bufferSize: positiveInteger(events.bufferSize, 'events.bufferSize', DEFAULT_BUFFER_SIZE),
      maxClients: positiveInteger(events.maxClients, 'events.maxClients', DEFAULT_MAX_CLIENTS),
    }),
  )
  app.route('/api', api)

  if (options.dashboard !== false) {
    const dir = options.dashboard ?? defaultDashboardDir()
    app.route('/', dashboardRoutes(dir))
  }

  app.notFound((c) => c.json({ error: `not found: ${c.req.method} ${c.req.path.slice(0, 200)}` }, 404))

  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      if (error.res !== undefined && error.message === '') return error.getResponse()
      return c.json({ error: error.message || 'bad request' }, error.status)
    }
    // by code rather than instanceof: the registry may come from another copy of @corral/core
    const code = corralCode(error)
    if (code === ValidationError.code) return c.json({ error: error.message }, 400)
    if (code === RegionNotConfiguredError.code) return c.json({ error: error.message }, 409)
    // The client closed the connection while sending (reading its body failed): nobody to answer, nothing to log.
    if (isClientAbort(error, c.req.raw)) return c.json({ error: 'the client closed the request' }, 400)
    if (code === BackendError.code) {
      logError(logger, error, c.req.method, c.req.path)
      return c.json({ error: `the cache backend failed: ${error.message}` }, 502)
    }
    logError(logger, error, c.req.method, c.req.path)
    return c.json({ error: 'internal error' }, 500)
  })

  return {
    app,
    adminToken,
    metrics,
    fanout,
    registry,
    fleet,
    closeStreams: () => fanout.closeAll(),
    async stopBackground() {
      localHistory?.stop()
      fleetHistory?.stop()
      await fleet?.close()
    },
  }
}

function warn(logger: ExporterLogger | undefined, obj: Record<string, unknown>, msg: string): void {
  if (logger?.warn) logger.warn(obj, msg)
  else process.emitWarning(msg, { code: 'CORRAL_EXPORTER' })
}

function logError(logger: ExporterLogger | undefined, error: unknown, method: string, path: string): void {
  const err =
    error instanceof Error ? { name: error.name, message: error.message, stack: error.stack } : { error: String(error) }
  const msg = `corral exporter: ${method} ${path} failed`
  try {
    if (logger?.error) logger.error({ err, method, path }, msg)
    else console.error(msg, error)
  } catch {
    // nothing left to report to
  }
}

/**
 * The exporter as a Hono app: serve it with any Hono adapter, mount it in another app, or test it with
 * `app.request()`. `startExporter()` serves it on a port.
 */
export function createExporter(options: ExporterOptions = {}): Hono<ExporterEnv> {
  return buildExporter(options).app
}
