/**
 * `GET /metrics`: Corral's metrics (the region registry's), the exporter's own, and any registries the user adds,
 * merged into one exposition: the Prometheus text format 0.0.4, or OpenMetrics 1.0.0 when the Accept header
 * prefers it (as Prometheus's does). Open, like `/healthz`: no admin token needed.
 */
import { Hono } from 'hono'
import {
  collectFamilies,
  OPENMETRICS_CONTENT_TYPE,
  prefersOpenMetrics,
  PROMETHEUS_CONTENT_TYPE,
  renderOpenMetrics,
  renderPrometheus,
  type MetricsRegistryLike,
} from '../exposition.js'
import type { ExporterEnv } from '../http.js'

export interface MetricsRouteOptions {
  /** Read in this order; a metric name already seen is merged into the first family of that name. */
  sources: () => MetricsRegistryLike[]
  onConflict?: (name: string, type: string, previousType: string) => void
}

export function metricsRoutes(options: MetricsRouteOptions): Hono<ExporterEnv> {
  const app = new Hono<ExporterEnv>()
  app.get('/metrics', async (c) => {
    const families = await collectFamilies(options.sources(), options.onConflict)
    const openMetrics = prefersOpenMetrics(c.req.header('accept'))
    c.header('Vary', 'Accept')
    c.header('Cache-Control', 'no-store')
    c.header('Content-Type', openMetrics ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE)
    return c.body(openMetrics ? renderOpenMetrics(families) : renderPrometheus(families), 200)
  })
  return app
}
