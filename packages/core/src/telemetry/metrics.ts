import { TraceFlags, isSpanContextValid, type SpanContext } from '@opentelemetry/api'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { COUNTER_METRICS, seriesOf, type CounterMetricName } from './counters.js'
import type { CircuitState } from './events.js'
import type { RegionStats } from './stats.js'

/** `corral_circuit_state`'s value of each state of the circuit breaker. */
const CIRCUIT_STATE_VALUES: Readonly<Record<CircuitState, number>> = { closed: 0, 'half-open': 1, open: 2 }

/** What the metrics read from a region at scrape time. */
export interface RegionMetricsSource {
  readonly name: string
  readonly stats: RegionStats
  backendName(): string | undefined
  entryCount(): number | undefined
  /** copies held by the region's L1, if it has one */
  l1EntryCount?(): number | undefined
}

/** Buckets from 0.5 ms to 60 s: a cache regeneration is a query (ms) up to a report (tens of seconds). */
export const REGENERATION_BUCKETS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
]
/** Lock waits are a regeneration seen from the waiting side, plus the sub-millisecond handoff. */
export const LOCK_WAIT_BUCKETS = [
  0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
]

/**
 * Backend operations whose `corral_backend_errors_total` series exist at 0 for every region from the start, so a
 * rate (and Grafana's "Backend errors" panel) reads 0 rather than "No data" before the first failure. Other
 * operations (`invalidate`, `subscribe`, ...) appear with their first failure.
 */
const BACKEND_OPERATIONS = ['get', 'getMulti', 'set', 'setMulti', 'delete', 'lock', 'unlock'] as const

/**
 * The histograms a region observes. `trace` is the span the observation belongs to: when it is sampled, its trace
 * id becomes the bucket's OpenMetrics exemplar, so Grafana can jump from a slow bucket to a trace of it.
 */
export interface RegionObservers {
  regeneration(seconds: number, trace?: SpanContext): void
  lockWait(seconds: number, trace?: SpanContext): void
  /** forgets the region's series (the region closed) */
  remove(): void
}

/**
 * Corral's Prometheus metrics on one prom-client Registry, shared by every region that reports to it.
 * Counters and gauges are computed in `collect()` from the regions' plain-number stats, so the hit path does no
 * label hashing; only the histograms are observed as events happen (on the miss path). No cache key is ever a
 * label.
 */
export class CorralMetrics {
  private static readonly byRegistry = new WeakMap<Registry, CorralMetrics>()
  private readonly sources = new Set<RegionMetricsSource>()
  private readonly regenerationSeconds: Histogram<'region'>
  private readonly lockWaitSeconds: Histogram<'region'>

  /** The metrics object for `registry`, created (and its metrics registered) on first use. */
  static for(registry: Registry): CorralMetrics {
    let metrics = CorralMetrics.byRegistry.get(registry)
    if (!metrics) {
      metrics = new CorralMetrics(registry)
      CorralMetrics.byRegistry.set(registry, metrics)
    }
    return metrics
  }

  private constructor(registry: Registry) {
    const sources = this.sources
    const registers = [registry]
    // The counter families declared in counters.ts, each series read from its counter at scrape time.
    for (const [metric, { help, labels }] of Object.entries(COUNTER_METRICS)) {
      const series = seriesOf(metric as CounterMetricName)
      new Counter({
        name: metric,
        help,
        labelNames: ['region', ...labels],
        registers,
        collect() {
          this.reset()
          for (const { name: region, stats } of sources) {
            for (const { counter, labels } of series) this.inc({ region, ...labels }, stats.counts[counter])
          }
        },
      })
    }
    new Counter({
      name: 'corral_backend_errors_total',
      help: 'Backend operations that failed (the cache answered anyway where it could).',
      labelNames: ['region', 'operation'] as const,
      registers,
      collect() {
        this.reset()
        for (const { name: region, stats } of sources) {
          for (const operation of BACKEND_OPERATIONS) this.inc({ region, operation }, 0)
          for (const [operation, count] of stats.backendErrors) this.inc({ region, operation }, count)
        }
      },
    })
    new Gauge({
      name: 'corral_entries',
      help: 'Entries held by the region backend (backends that can count them).',
      labelNames: ['region'] as const,
      registers,
      collect() {
        this.reset()
        for (const source of sources) {
          const count = source.entryCount()
          if (count !== undefined && Number.isFinite(count)) this.set({ region: source.name }, count)
        }
      },
    })
    new Gauge({
      name: 'corral_circuit_state',
      help: "State of the circuit breaker around the region's backend: 0 closed, 1 half-open (probing), 2 open (calls skip the backend).",
      labelNames: ['region', 'backend'] as const,
      registers,
      collect() {
        this.reset()
        for (const { name: region, stats } of sources) {
          if (stats.circuit)
            this.set({ region, backend: stats.circuit.backend }, CIRCUIT_STATE_VALUES[stats.circuit.state])
        }
      },
    })
    new Counter({
      name: 'corral_circuit_opens_total',
      help: "Times the circuit breaker around the region's backend opened after repeated failures.",
      labelNames: ['region', 'backend'] as const,
      registers,
      collect() {
        this.reset()
        for (const { name: region, stats } of sources) {
          if (stats.circuit) this.inc({ region, backend: stats.circuit.backend }, stats.counts.circuitOpens)
        }
      },
    })
    new Gauge({
      name: 'corral_l1_entries',
      help: 'Copies held by the L1 (the in-process tier) of regions configured with l1.',
      labelNames: ['region'] as const,
      registers,
      collect() {
        this.reset()
        for (const source of sources) {
          const count = source.l1EntryCount?.()
          if (count !== undefined) this.set({ region: source.name }, count)
        }
      },
    })
    new Gauge({
      name: 'corral_region_info',
      help: 'One series per configured region, with its backend.',
      labelNames: ['region', 'backend'] as const,
      registers,
      collect() {
        this.reset()
        for (const source of sources) {
          const backend = source.backendName()
          if (backend !== undefined) this.set({ region: source.name, backend }, 1)
        }
      },
    })
    // Exemplars on: prom-client refuses them on a registry of the text format's content type (the default), since that
    // format cannot carry them; registered by hand instead, so the text format leaves them out and OpenMetrics (the
    // exporter's, or an OpenMetrics registry's own) shows them.
    this.regenerationSeconds = new Histogram({
      name: 'corral_regeneration_duration_seconds',
      help: 'How long the creator took.',
      labelNames: ['region'] as const,
      buckets: REGENERATION_BUCKETS,
      enableExemplars: true,
      registers: [],
    })
    this.lockWaitSeconds = new Histogram({
      name: 'corral_lock_wait_duration_seconds',
      help: "How long callers waited for another caller's regeneration (in-process or distributed lock).",
      labelNames: ['region'] as const,
      buckets: LOCK_WAIT_BUCKETS,
      enableExemplars: true,
      registers: [],
    })
    registry.registerMetric(this.regenerationSeconds)
    registry.registerMetric(this.lockWaitSeconds)
  }

  /** Starts reporting `source`; returns its histogram observers, bound to its region label. */
  add(source: RegionMetricsSource): RegionObservers {
    this.sources.add(source)
    const labels = { region: source.name }
    // the series exist (at 0) from the start, as the counters do
    this.regenerationSeconds.zero(labels)
    this.lockWaitSeconds.zero(labels)
    const regeneration = this.regenerationSeconds.labels(labels)
    const lockWait = this.lockWaitSeconds.labels(labels)
    const regenerationSeconds = this.regenerationSeconds
    const lockWaitSeconds = this.lockWaitSeconds
    return {
      regeneration: (seconds, trace) => {
        const exemplarLabels = exemplarOf(trace)
        if (exemplarLabels) observeWithExemplar(regenerationSeconds, labels, seconds, exemplarLabels)
        else regeneration.observe(seconds)
      },
      lockWait: (seconds, trace) => {
        const exemplarLabels = exemplarOf(trace)
        if (exemplarLabels) observeWithExemplar(lockWaitSeconds, labels, seconds, exemplarLabels)
        else lockWait.observe(seconds)
      },
      remove: () => {
        this.sources.delete(source)
        this.regenerationSeconds.remove(labels)
        this.lockWaitSeconds.remove(labels)
      },
    }
  }
}

/** The exemplar labels of a sampled span (OpenMetrics' `trace_id` and `span_id`), else undefined. */
function exemplarOf(trace: SpanContext | undefined): { trace_id: string; span_id: string } | undefined {
  if (trace === undefined || (trace.traceFlags & TraceFlags.SAMPLED) === 0 || !isSpanContextValid(trace))
    return undefined
  return { trace_id: trace.traceId, span_id: trace.spanId }
}

function observeWithExemplar(
  histogram: Histogram<'region'>,
  labels: { region: string },
  value: number,
  exemplarLabels: Record<string, string>,
): void {
  // prom-client types exemplar labels as the metric's own label names; any names are valid (OpenMetrics)
  histogram.observe({ labels, value, exemplarLabels: exemplarLabels as never })
}
