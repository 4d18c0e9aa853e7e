import type { Registry } from 'prom-client'
import type { CacheBackend } from '../backends/api.js'
import { TieredBackend } from '../backends/tier/tiered-backend.js'
import type { RegionOptions } from '../region-options.js'
import type { RegionRegistry } from '../registry.js'
import { CallReporter } from './call-reporter.js'
import { EventHub } from './events.js'
import { HotKeyTracker } from './hot-keys.js'
import { Instrumentation } from './instrumentation.js'
import { CorralMetrics } from './metrics.js'
import { RegionOperations } from './operations.js'
import { fanOut, openTelemetryMetrics } from './otel-metrics.js'
import type { RegionStats } from './stats.js'
import { RegionTracing } from './tracing.js'

/**
 * A region's telemetry, wired once when the region is created: the event hub its `on`/`off` reach, the
 * instrumentation every step reports to (counters, events, hot keys, histograms, debug lines), its OpenTelemetry
 * spans, the tracing channels of its operations, the lock's `CallReporter`, and the metrics (Prometheus and
 * OpenTelemetry) it is counted in once it has a backend. `telemetry: false` turns off the hot keys, the spans and
 * the metrics; events still work.
 */
export class RegionTelemetry {
  readonly hub: EventHub
  readonly instrumentation: Instrumentation
  /** undefined when the region was created with `telemetry: false` */
  readonly tracing: RegionTracing | undefined
  /** the operations' tracing channels and spans */
  readonly operations: RegionOperations
  /** whether a `getOrCreate` starts its span before the lock runs (backend spans; see `RegionTracing.callScope`) */
  readonly callScopes: boolean
  /** the lock's one port to telemetry */
  readonly reporter: CallReporter
  readonly #metricsRegistry: Registry | undefined

  /**
   * `backend` answers the backend the region calls now (undefined before `configure()`): spans, messages and
   * metrics name it, and the metrics count its entries.
   */
  constructor(
    private readonly name: string,
    private readonly stats: RegionStats,
    private readonly backend: () => CacheBackend | undefined,
    options: RegionOptions,
    registry: RegionRegistry,
    clock: () => number,
  ) {
    const telemetry = options.telemetry === false ? undefined : (options.telemetry ?? {})
    this.hub = new EventHub((error, event) => registry.reportListenerError(error, name, event))
    const hotKeys =
      telemetry && telemetry.hotKeys !== false
        ? new HotKeyTracker({ clock: options.clock, ...telemetry.hotKeys })
        : undefined
    this.instrumentation = new Instrumentation(
      name,
      stats,
      this.hub,
      registry.hub,
      hotKeys,
      registry.stampedes,
      options.logger,
    )
    const backendName = () => backend()?.name ?? 'unconfigured'
    this.tracing = telemetry
      ? new RegionTracing(name, backendName, telemetry.recordKeys ?? true, telemetry.backendSpans === true)
      : undefined
    this.operations = new RegionOperations(name, backendName, this.tracing)
    this.callScopes = this.tracing?.backend !== undefined
    this.#metricsRegistry = telemetry ? (telemetry.metricsRegistry ?? registry.metrics) : undefined
    this.reporter = new CallReporter(this.instrumentation, this.tracing, clock)
  }

  /** Counts the region in its metrics registry (`/metrics`) and in the OpenTelemetry metrics: once, when it is first configured. */
  registerMetrics(): void {
    if (this.#metricsRegistry === undefined) return
    const { backend } = this
    const source = {
      name: this.name,
      stats: this.stats,
      backendName: () => backend()?.name,
      entryCount: () => backend()?.count?.(),
      l1EntryCount: () => {
        const current = backend()
        return current instanceof TieredBackend ? current.l1Size : undefined
      },
    }
    this.instrumentation.observers = fanOut(
      CorralMetrics.for(this.#metricsRegistry).add(source),
      openTelemetryMetrics.add(source),
    )
  }

  /** Stops counting the region in the metrics (it closed). */
  unregisterMetrics(): void {
    this.instrumentation.observers?.remove()
  }
}
