export { createExporter, CONTENT_SECURITY_POLICY, DEFAULT_BODY_LIMIT } from './app.js'
export { startExporter, DEFAULT_PORT, DEFAULT_HOSTNAME } from './server.js'
export type { StartExporterOptions, RunningExporter } from './server.js'
export type { ExporterOptions, ExporterLogger, EventStreamOptions, FleetOptions, HistoryOptions } from './options.js'
export type { FleetRedisClient } from './fleet/store.js'
export type { ExporterEnv } from './http.js'
export type { AdminAction, AdminOutcome } from './audit.js'
export type * from './api-types.js'
export { tokenFingerprint } from './auth.js'
export {
  OPENMETRICS_CONTENT_TYPE,
  PROMETHEUS_CONTENT_TYPE,
  collectFamilies,
  renderOpenMetrics,
  renderPrometheus,
  type MetricsRegistryLike,
  type MetricsSource,
  type MetricFamily,
} from './exposition.js'
