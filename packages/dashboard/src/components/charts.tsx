import { areaPath, linePath, niceCeil, type Point } from '../chart'
import { formatDuration, formatRate } from '../format'
import { setHistoryRange } from '../live'
import { bucketRates, type CounterName, type RatePoint, type Sample } from '../rates'
import { latencySeries, RANGES, rangeOf, type LatencyName, type RangeId } from '../server-history'
import {
  chartRegion,
  chartSamples,
  history,
  historyError,
  historyRange,
  now,
  regions,
  scope,
  serverHistory,
} from '../store'
import { RegionSelect } from './region-select'

const WIDTH = 600
const HEIGHT = 120

interface Line {
  label: string
  tone: string
  points: Point[]
  latest: string
}

/** An SVG chart of a few lines over [end - spanMs, end]. */
function Chart(props: {
  title: string
  testid: string
  lines: Line[]
  end: number
  spanMs: number
  spanLabel: string
  format: (v: number) => string
  area: boolean
  samples: number
}) {
  const { lines, end, spanMs } = props
  const start = end - spanMs
  const peak = Math.max(0, ...lines.flatMap((l) => l.points.map((p) => p.v ?? 0)))
  const yMax = niceCeil(peak)
  const frame = { start, end, width: WIDTH, height: HEIGHT, yMax }
  const measured = Math.max(0, ...lines.map((l) => l.points.filter((p) => p.v !== null && p.t >= start).length))
  return (
    <figure class="chart" data-testid={props.testid} data-samples={props.samples} data-points={measured}>
      <figcaption class="chart-head">
        <span class="chart-title">{props.title}</span>
        <span class="legend">
          {lines.map((l) => (
            <span class="legend-item" key={l.label} data-testid={`legend-${l.label}`}>
              <span class={`swatch bg-${l.tone}`} aria-hidden="true" />
              {l.label} <b>{l.latest}</b>
            </span>
          ))}
        </span>
      </figcaption>
      <div class="chart-body">
        <div class="chart-y" aria-hidden="true">
          <span>{props.format(yMax)}</span>
          <span>{props.format(yMax / 2)}</span>
          <span>0</span>
        </div>
        <div class="chart-plot">
          <svg
            viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
            preserveAspectRatio="none"
            role="img"
            aria-label={`${props.title}, last ${props.spanLabel}`}
          >
            <line x1="0" x2={WIDTH} y1={HEIGHT / 2} y2={HEIGHT / 2} class="grid" />
            <line x1="0" x2={WIDTH} y1={0.5} y2={0.5} class="grid" />
            <line x1="0" x2={WIDTH} y1={HEIGHT - 0.5} y2={HEIGHT - 0.5} class="axis" />
            {props.area &&
              lines.map((l) => (
                <path key={`a-${l.label}`} d={areaPath(l.points, frame)} class={`area fill-${l.tone}`} />
              ))}
            {lines.map((l) => (
              <path key={`l-${l.label}`} d={linePath(l.points, frame)} class={`line stroke-${l.tone}`} />
            ))}
          </svg>
          {measured < 2 && <div class="chart-note">collecting samples…</div>}
          <div class="chart-x" aria-hidden="true">
            <span>−{props.spanLabel}</span>
            <span>now</span>
          </div>
        </div>
      </div>
    </figure>
  )
}

function rateLines(points: RatePoint[], series: Array<{ label: string; tone: string; counter: CounterName }>): Line[] {
  const latest = [...points].reverse().find((p) => p.perSecond !== null)
  return series.map((s) => ({
    label: s.label,
    tone: s.tone,
    points: points.map((p): Point => ({ t: p.t, v: p.perSecond ? p.perSecond[s.counter] : null })),
    latest: latest?.perSecond ? formatRate(latest.perSecond[s.counter]) : '—',
  }))
}

const LATENCY: Array<{ label: string; tone: string; name: LatencyName }> = [
  { label: 'regeneration p50', tone: 'hit', name: 'regenerationP50' },
  { label: 'regeneration p99', tone: 'regen', name: 'regenerationP99' },
  { label: 'lock wait p99', tone: 'accent', name: 'lockWaitP99' },
]

export function Charts() {
  const end = now.value
  const region = chartRegion.value
  const range = rangeOf(historyRange.value)
  const names = (regions.value ?? []).map((r) => r.name)
  const server = serverHistory.value
  // The server's history fills the charts at once; without it (history off), the page's own samples do.
  const samples: readonly Sample[] = server ? chartSamples.value : history.value.samples
  const inRange = server ? server.samples.filter((s) => s.at >= end - range.ms).length : samples.length
  const stepMs = Math.max(range.stepMs, (server?.intervalSeconds ?? 0) * 1000)
  const points = bucketRates(samples, {
    end,
    spanMs: range.ms,
    stepMs,
    minPartialMs: Math.min(2000, stepMs / 2),
    ...(region ? { region } : {}),
  })
  const latency: Line[] = LATENCY.map((l) => {
    const series = server ? latencySeries(server, l.name, region) : []
    const latest = [...series].reverse().find((p) => p.v !== null)
    return { label: l.label, tone: l.tone, points: series, latest: latest ? formatDuration(latest.v) : '—' }
  })
  const common = { end, spanMs: range.ms, spanLabel: range.label, samples: inRange }
  return (
    <section class="panel" aria-labelledby="charts-title">
      <div class="panel-head">
        <h2 id="charts-title">{scope.value === 'fleet' ? 'Fleet traffic' : 'Traffic'}</h2>
        <span class="muted">
          per second, {stepMs / 1000} s buckets{server ? ', kept by the exporter' : ''}
          {historyError.value ? ` (history unavailable: ${historyError.value})` : ''}
        </span>
        <label class="select-label">
          <span class="sr-only">Time range</span>
          <select
            class="select"
            data-testid="range-select"
            value={range.id}
            onChange={(e) => setHistoryRange(e.currentTarget.value as RangeId)}
          >
            {RANGES.map((r) => (
              <option key={r.id} value={r.id}>
                last {r.label}
              </option>
            ))}
          </select>
        </label>
        <RegionSelect names={names} selected={chartRegion} />
      </div>
      <div class="charts">
        <Chart
          title="Gets"
          testid="chart-gets"
          format={formatRate}
          area
          {...common}
          lines={rateLines(points, [
            { label: 'hit', tone: 'hit', counter: 'hits' },
            { label: 'stale', tone: 'stale', counter: 'stale' },
            { label: 'miss', tone: 'miss', counter: 'misses' },
          ])}
        />
        <Chart
          title="Regenerations"
          testid="chart-regenerations"
          format={formatRate}
          area
          {...common}
          lines={rateLines(points, [
            { label: 'regenerations', tone: 'regen', counter: 'regenerations' },
            { label: 'errors', tone: 'miss', counter: 'regenerationErrors' },
            { label: 'coalesced', tone: 'accent', counter: 'coalesced' },
          ])}
        />
        <Chart
          title="Regeneration and lock-wait time"
          testid="chart-latency"
          format={(v) => formatDuration(v)}
          area={false}
          {...common}
          lines={latency}
        />
      </div>
    </section>
  )
}
