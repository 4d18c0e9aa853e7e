/**
 * The `/metrics` exposition, in the Prometheus text format 0.0.4 or in OpenMetrics 1.0.0, rendered from the
 * registries' `getMetricsAsJSON()`.
 *
 * Why not prom-client's `Registry.merge(...).metrics()`: merge throws as soon as two registries hold a metric of
 * the same name (two Corral registries, or a user registry that registered the region metrics too), and
 * prom-client's OpenMetrics rendering renames counters in place (`metric.name` loses its `_total`), which
 * corrupts every later text-format scrape of the same registry. Rendering from the JSON leaves the registries
 * untouched and lets same-named families merge: their samples are united (the first registry wins for a label
 * set that appears twice), and a family whose type disagrees with an earlier one of the same name is left out
 * (reported once through `onConflict`), so the output never holds a metric twice.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client'

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8'

/** What `/metrics` reads from a registry: the one method of a prom-client `Registry` it needs. */
export interface MetricsRegistryLike {
  getMetricsAsJSON(): Promise<MetricObjectWithValues<MetricValue<string>>[]>
}

/**
 * @deprecated Renamed `MetricsRegistryLike` (core's telemetry has a `MetricsSource` of its own); this alias goes in
 * the next major version.
 */
export type MetricsSource = MetricsRegistryLike

type LabelValue = string | number

/** An OpenMetrics exemplar: a sampled observation's labels (`trace_id`, `span_id`), value and time (seconds). */
interface Exemplar {
  labels: Record<string, LabelValue>
  value: number
  timestamp?: number
}

interface Sample {
  name: string
  labels: Record<string, LabelValue>
  value: number
  /** OpenMetrics only: the text format 0.0.4 has no syntax for it */
  exemplar?: Exemplar
}

export interface MetricFamily {
  name: string
  help: string
  type: string
  samples: Sample[]
}

/** Collects every registry's metrics (each registry once), merging same-named families. */
export async function collectFamilies(
  sources: readonly MetricsRegistryLike[],
  onConflict: (name: string, type: string, previousType: string) => void = () => {},
): Promise<MetricFamily[]> {
  const unique = [...new Set(sources)]
  const perSource = await Promise.all(unique.map((source) => source.getMetricsAsJSON()))
  const families = new Map<string, { family: MetricFamily; seen: Set<string> }>()
  for (const metrics of perSource) {
    for (const metric of metrics) {
      const type = String(metric.type)
      let entry = families.get(metric.name)
      if (entry === undefined) {
        entry = { family: { name: metric.name, help: metric.help, type, samples: [] }, seen: new Set() }
        families.set(metric.name, entry)
      } else if (entry.family.type !== type) {
        onConflict(metric.name, type, entry.family.type)
        continue
      }
      for (const value of metric.values ?? []) {
        const labels = (value.labels ?? {}) as Record<string, LabelValue>
        // histogram and summary samples name their series (`_bucket`, `_sum`, `_count`)
        const name = (value as { metricName?: string }).metricName ?? metric.name
        const sample: Sample = { name, labels, value: value.value }
        const exemplar = exemplarOf(value)
        if (exemplar) sample.exemplar = exemplar
        const key = sampleKey(sample)
        if (entry.seen.has(key)) continue
        entry.seen.add(key)
        entry.family.samples.push(sample)
      }
    }
  }
  return [...families.values()].map((entry) => entry.family)
}

/** prom-client's exemplar of a sample (`{ labelSet, value, timestamp }` on histogram buckets), if it has one. */
function exemplarOf(value: unknown): Exemplar | undefined {
  const exemplar = (value as { exemplar?: { labelSet?: unknown; value?: unknown; timestamp?: unknown } | null })
    .exemplar
  if (
    !exemplar ||
    typeof exemplar.value !== 'number' ||
    exemplar.labelSet === null ||
    typeof exemplar.labelSet !== 'object'
  )
    return undefined
  const labels = exemplar.labelSet as Record<string, LabelValue>
  if (Object.keys(labels).length === 0) return undefined
  return typeof exemplar.timestamp === 'number'
    ? { labels, value: exemplar.value, timestamp: exemplar.timestamp }
    : { labels, value: exemplar.value }
}

function sampleKey(sample: Sample): string {
  const labels = Object.keys(sample.labels)
    .sort()
    .map((name) => [name, String(sample.labels[name])])
  return `${sample.name}${JSON.stringify(labels)}`
}

/** A sample value as both formats spell it. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Number.POSITIVE_INFINITY) return '+Inf'
  if (value === Number.NEGATIVE_INFINITY) return '-Inf'
  return String(value)
}

const escapeHelpText = (text: string) => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
const escapeLabelValue = (value: LabelValue) =>
  typeof value === 'number' ? formatValue(value) : escapeHelpText(value).replace(/"/g, '\\"')

function formatLabels(labels: Record<string, LabelValue>): string {
  const parts = Object.entries(labels)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name}="${escapeLabelValue(value)}"`)
  return parts.length === 0 ? '' : `{${parts.join(',')}}`
}

/** The Prometheus text format 0.0.4, as prom-client writes it (families separated by a blank line). */
export function renderPrometheus(families: readonly MetricFamily[]): string {
  if (families.length === 0) return ''
  const blocks = families.map((family) => {
    const lines = [`# HELP ${family.name} ${escapeHelpText(family.help)}`, `# TYPE ${family.name} ${family.type}`]
    for (const sample of family.samples) {
      lines.push(`${sample.name}${formatLabels(sample.labels)} ${formatValue(sample.value)}`)
    }
    return lines.join('\n')
  })
  return `${blocks.join('\n\n')}\n`
}

const OPENMETRICS_TYPES: Record<string, string> = {
  counter: 'counter',
  gauge: 'gauge',
  histogram: 'histogram',
  summary: 'summary',
}

/**
 * OpenMetrics 1.0.0: counter families are named without `_total` and their samples with it, `untyped` is
 * `unknown`, HELP escapes quotes too, no blank lines, histogram buckets carry their exemplars
 * (`... 3 # {trace_id="…",span_id="…"} 0.042 1700000000.123`), and `# EOF` ends the exposition.
 */
export function renderOpenMetrics(families: readonly MetricFamily[]): string {
  const lines: string[] = []
  for (const family of families) {
    const type = OPENMETRICS_TYPES[family.type] ?? 'unknown'
    const name = type === 'counter' ? family.name.replace(/_total$/, '') : family.name
    lines.push(`# TYPE ${name} ${type}`, `# HELP ${name} ${escapeHelpText(family.help).replace(/"/g, '\\"')}`)
    for (const sample of family.samples) {
      const sampleName =
        type === 'counter' && (sample.name === family.name || sample.name === name) ? `${name}_total` : sample.name
      let line = `${sampleName}${formatLabels(sample.labels)} ${formatValue(sample.value)}`
      // exemplars belong to histogram buckets and counter totals (OpenMetrics 1.0, "Exemplars")
      const { exemplar } = sample
      if (exemplar && ((type === 'histogram' && sampleName.endsWith('_bucket')) || type === 'counter')) {
        line += ` # ${formatLabels(exemplar.labels) || '{}'} ${formatValue(exemplar.value)}`
        if (exemplar.timestamp !== undefined) line += ` ${exemplar.timestamp}`
      }
      lines.push(line)
    }
  }
  lines.push('# EOF')
  return `${lines.join('\n')}\n`
}

/**
 * Whether an Accept header prefers OpenMetrics over the text format: its best `application/openmetrics-text`
 * quality is positive and at least that of `text/plain` (or a wildcard). Prometheus asks for OpenMetrics first.
 */
export function prefersOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined) return false
  let openMetrics = 0
  let text = 0
  for (const range of accept.split(',')) {
    const [type = '', ...params] = range.split(';').map((part) => part.trim().toLowerCase())
    let q = 1
    for (const param of params) {
      const match = /^q=([0-9.]+)$/.exec(param)
      if (match) q = Number(match[1])
    }
    if (!Number.isFinite(q)) continue
    if (type === 'application/openmetrics-text') openMetrics = Math.max(openMetrics, q)
    else if (type === 'text/plain' || type === 'text/*' || type === '*/*') text = Math.max(text, q)
  }
  return openMetrics > 0 && openMetrics >= text
}
