import type { RegionRegistry } from '@corral/core'
import type { Registry } from 'prom-client'
import type { FleetOptions } from './fleet/fleet.js'
import type { HistoryOptions } from './history.js'

export type { FleetOptions, HistoryOptions }

/** pino-compatible: `logger.info({ action, region }, 'message')`. `warn` and `error` are used when present. */
export interface ExporterLogger {
  info(obj: Record<string, unknown>, msg: string): void
  warn?(obj: Record<string, unknown>, msg: string): void
  error?(obj: Record<string, unknown>, msg: string): void
}

export interface EventStreamOptions {
  /** Milliseconds between heartbeat comments (`: ping`) on an idle stream. Default 15000. */
  heartbeatMs?: number
  /**
   * Events held per client while it is slow to read. When full, the oldest are dropped and the client is told
   * with an `event: dropped` frame (`data: {"dropped":n}`). Default 1000.
   */
  bufferSize?: number
  /** Concurrent event-stream clients; more get a 503. Default 100. */
  maxClients?: number
}

export interface ExporterOptions {
  /** The regions to publish. Default: core's process-wide `regions`. */
  registry?: RegionRegistry
  /**
   * Bearer token required on every `/api/*` route. Default: the environment variable `CORRAL_ADMIN_TOKEN`
   * (an empty value counts as unset). Printable ASCII without spaces; use a long random value.
   */
  adminToken?: string
  /** More prom-client registries served on `/metrics` next to Corral's own. */
  metricsRegistry?: Registry | Registry[]
  /**
   * A directory of static files served at `/` (the dashboard), or `false` for none. Default: the built
   * `@corral/dashboard` package (its `dist/`), or a page explaining how to build it.
   */
  dashboard?: string | false
  /** Where admin actions (and server errors) are logged. Default: one JSON line per action on stdout. `false`: none. */
  logger?: ExporterLogger | false
  /** Largest accepted request body in bytes (413 beyond). Default 16384. */
  bodyLimit?: number
  /**
   * Origins (e.g. `http://localhost:5173`) allowed to send mutating requests besides the exporter's own origin.
   * Default: none.
   */
  allowedOrigins?: string[]
  /**
   * Host names (without port) the admin API answers to when no admin token is set, besides the loopback names
   * (`localhost`, `127.0.0.1`, `::1`), which defeats DNS rebinding. Default: none.
   */
  allowedHosts?: string[]
  /** Server-Sent Events tuning. */
  events?: EventStreamOptions
  /**
   * Fleet telemetry: this process publishes its telemetry to a Redis the processes share, and `/api/fleet` shows
   * every live process. `{ redis: 'redis://...' | ioredisClient, name?: 'default', interval?: '5s' }`. Default: off.
   */
  fleet?: FleetOptions
  /**
   * The server-side history behind `/api/history` (and `/api/fleet/history`): a sample every `interval` (5 s),
   * kept for `retention` (1 h). `false`: none.
   */
  history?: HistoryOptions | false
}
