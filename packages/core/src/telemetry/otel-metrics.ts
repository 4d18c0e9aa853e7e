import {
  ValueType,
  metrics,
  type Attributes,
  type Histogram,
  type MeterProvider,
  type Observable,
  type ObservableCounter,
  type ObservableUpDownCounter,
} from '@opentelemetry/api'
import { VERSION } from '../version.js'
import { COUNTER_METRICS, seriesOf, type CounterMetricName, type CounterName } from './counters.js'
import { LOCK_WAIT_BUCKETS, REGENERATION_BUCKETS, type RegionMetricsSource, type RegionObservers } from './metrics.js'

const METER_NAME = '@corral/core'

type LabelOf<Metric extends CounterMetricName> = (typeof COUNTER_METRICS)[Metric]['labels'][number]

/**
 * The OpenTelemetry name, unit and attribute names of each counter family declared in counters.ts, after
 * OpenTelemetry's naming rules: dotted names without a `_total` suffix, the unit in `unit` (UCUM, counts as
 * `{annotation}`), namespaced attributes. Typed so that a family or label added there without its entry here does
 * not compile. Prometheus and OpenTelemetry read the same plain numbers.
 */
const OTEL_COUNTERS: {
  readonly [Metric in CounterMetricName]: {
    readonly name: string
    readonly unit: string
    readonly attributes: Readonly<Record<LabelOf<Metric>, string>>
  }
} = {
  corral_gets_total: { name: 'corral.gets', unit: '{get}', attributes: { result: 'corral.result' } },
  corral_regenerations_total: {
    name: 'corral.regenerations',
    unit: '{regeneration}',
    attributes: { outcome: 'corral.outcome' },
  },
  corral_coalesced_total: { name: 'corral.coalesced', unit: '{call}', attributes: { mode: 'corral.mode' } },
  corral_fail_safe_total: { name: 'corral.fail_safe', unit: '{value}', attributes: {} },
  corral_creator_timeouts_total: {
    name: 'corral.creator.timeouts',
    unit: '{timeout}',
    attributes: { kind: 'corral.timeout.kind' },
  },
  corral_invalidations_total: {
    name: 'corral.invalidations',
    unit: '{invalidation}',
    attributes: { kind: 'corral.invalidation.kind', scope: 'corral.invalidation.scope' },
  },
  corral_l1_hits_total: { name: 'corral.l1.hits', unit: '{hit}', attributes: {} },
  corral_l1_evictions_total: {
    name: 'corral.l1.evictions',
    unit: '{eviction}',
    attributes: { cause: 'corral.l1.eviction.cause' },
  },
}

interface Instruments {
  readonly provider: MeterProvider
  readonly regeneration: Histogram
  readonly lockWait: Histogram
}

/** One series of a counter family: the counter it reads and its attributes besides the region. */
interface CounterSeries {
  readonly counter: CounterName
  readonly attributes: Attributes
}

/**
 * Corral's metrics through the OpenTelemetry metrics API, beside the Prometheus ones: the same counters (read from
 * the regions' plain numbers when the SDK collects, so the hit path does nothing more), the backend errors, the
 * entries, and the two duration histograms, recorded where the Prometheus ones are observed (the miss path).
 *
 * The API has no proxy meter: instruments made before the application registers a MeterProvider stay no-ops. So
 * the provider is re-checked once a second while any region reports here, and the instruments are made again
 * on a new one; counters are cumulative since the region's start, so nothing is lost in between.
 */
class OpenTelemetryMetrics {
  private readonly sources = new Set<RegionMetricsSource>()
  private instruments: Instruments | undefined
  private watch: ReturnType<typeof setInterval> | undefined

  /** Starts reporting `source`; returns its histogram recorders. */
  add(source: RegionMetricsSource): RegionObservers {
    this.sources.add(source)
    if (this.watch === undefined) {
      this.watch = setInterval(() => this.current(), 1000)
      this.watch.unref()
    }
    const attributes: Attributes = { 'corral.region': source.name }
    return {
      regeneration: (seconds) => this.current().regeneration.record(seconds, attributes),
      lockWait: (seconds) => this.current().lockWait.record(seconds, attributes),
      remove: () => {
        this.sources.delete(source)
        if (this.sources.size === 0 && this.watch !== undefined) {
          clearInterval(this.watch)
          this.watch = undefined
        }
      },
    }
  }

  /** The instruments of the provider registered now (made anew when it changed). */
  private current(): Instruments {
    const provider = metrics.getMeterProvider()
    if (this.instruments?.provider !== provider) this.instruments = this.create(provider)
    return this.instruments
  }

  private create(provider: MeterProvider): Instruments {
    const meter = provider.getMeter(METER_NAME, VERSION)
    const sources = this.sources
    const families: Array<{ instrument: ObservableCounter; series: CounterSeries[] }> = []
    for (const [metric, { help }] of Object.entries(COUNTER_METRICS)) {
      const otel = OTEL_COUNTERS[metric as CounterMetricName]
      const names = otel.attributes as Readonly<Record<string, string>>
      families.push({
        instrument: meter.createObservableCounter(otel.name, {
          description: help,
          unit: otel.unit,
          valueType: ValueType.INT,
        }),
        series: seriesOf(metric as CounterMetricName).map(({ counter, labels }) => ({
          counter,
          attributes: Object.fromEntries(Object.entries(labels).map(([label, value]) => [names[label]!, value])),
        })),
      })
    }
    const backendErrors = meter.createObservableCounter('corral.backend.errors', {
      description: 'Backend operations that failed (the cache answered anyway where it could).',
      unit: '{error}',
      valueType: ValueType.INT,
    })
    const entries: ObservableUpDownCounter = meter.createObservableUpDownCounter('corral.entries', {
      description: 'Entries held by the region backend (backends that can count them).',
      unit: '{entry}',
      valueType: ValueType.INT,
    })
    const observables: Observable[] = [...families.map((family) => family.instrument), backendErrors, entries]
    meter.addBatchObservableCallback((result) => {
      // Regions of the same name in different registries are one series here: their counts add up.
      const totals = new Map<string, { observable: Observable; attributes: Attributes; value: number }>()
      const add = (observable: Observable, attributes: Attributes, value: number) => {
        const id = `${observables.indexOf(observable)}\u0000${JSON.stringify(attributes)}`
        const total = totals.get(id)
        if (total) total.value += value
        else totals.set(id, { observable, attributes, value })
      }
      for (const source of sources) {
        const region = source.name
        const counts = source.stats.counts
        for (const { instrument, series } of families) {
          for (const { counter, attributes } of series) {
            add(instrument, { 'corral.region': region, ...attributes }, counts[counter])
          }
        }
        for (const [operation, count] of source.stats.backendErrors) {
          add(backendErrors, { 'corral.region': region, 'corral.operation': operation }, count)
        }
        const count = source.entryCount()
        if (count !== undefined && Number.isFinite(count)) add(entries, { 'corral.region': region }, count)
      }
      for (const { observable, attributes, value } of totals.values()) result.observe(observable, value, attributes)
    }, observables)
    return {
      provider,
      regeneration: meter.createHistogram('corral.regeneration.duration', {
        description: 'How long the creator took.',
        unit: 's',
        advice: { explicitBucketBoundaries: REGENERATION_BUCKETS },
      }),
      lockWait: meter.createHistogram('corral.lock_wait.duration', {
        description: "How long callers waited for another caller's regeneration (in-process or distributed lock).",
        unit: 's',
        advice: { explicitBucketBoundaries: LOCK_WAIT_BUCKETS },
      }),
    }
  }
}

/** The process's one reporter: the OpenTelemetry API is process-wide too. */
export const openTelemetryMetrics = new OpenTelemetryMetrics()

/**
 * Records each histogram observation in Prometheus and OpenTelemetry; `remove` stops both. The span context (the
 * Prometheus exemplar's) goes to both; the OpenTelemetry SDK takes its exemplars from the active context itself.
 */
export function fanOut(first: RegionObservers, second: RegionObservers): RegionObservers {
  return {
    regeneration: (seconds, trace) => {
      first.regeneration(seconds, trace)
      second.regeneration(seconds, trace)
    },
    lockWait: (seconds, trace) => {
      first.lockWait(seconds, trace)
      second.lockWait(seconds, trace)
    },
    remove: () => {
      first.remove()
      second.remove()
    },
  }
}
