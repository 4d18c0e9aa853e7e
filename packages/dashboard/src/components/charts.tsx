import { areaPath, linePath, niceCeil, type Point } from '../chart'
import { formatRate } from '../format'
import { bucketRates, type CounterName, type RatePoint } from '../rates'
import { chartRegion, history, now, regions } from '../store'
import { RegionSelect } from './region-select'

const SPAN_MS = 5 * 60_000
const STEP_MS = 5000
const WIDTH = 600
const HEIGHT = 120

interface SeriesSpec {
  label: string
  tone: string
  counter: CounterName
}

function Chart({
  title,
  series,
  points,
  end,
}: {
  title: string
  series: SeriesSpec[]
  points: RatePoint[]
  end: number
}) {
  const start = end - SPAN_MS
  const lines = series.map((s) => ({
    ...s,
    points: points.map((p): Point => ({ t: p.t, v: p.perSecond ? p.perSecond[s.counter] : null })),
  }))
  const peak = Math.max(0, ...lines.flatMap((l) => l.points.map((p) => p.v ?? 0)))
  const yMax = niceCeil(peak)
  const frame = { start, end, width: WIDTH, height: HEIGHT, yMax }
  const latest = [...points].reverse().find((p) => p.perSecond !== null)
  const measured = points.filter((p) => p.perSecond !== null).length
  return (
    <figure class="chart">
      <figcaption class="chart-head">
        <span class="chart-title">{title}</span>
        <span class="legend">
          {lines.map((l) => (
            <span class="legend-item" key={l.label}>
              <span class={`swatch bg-${l.tone}`} aria-hidden="true" />
              {l.label} <b>{latest?.perSecond ? formatRate(latest.perSecond[l.counter]) : '—'}</b>
            </span>
          ))}
        </span>
      </figcaption>
      <div class="chart-body">
        <div class="chart-y" aria-hidden="true">
          <span>{formatRate(yMax)}</span>
          <span>{formatRate(yMax / 2)}</span>
          <span>0</span>
        </div>
        <div class="chart-plot">
          <svg
            viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
            preserveAspectRatio="none"
            role="img"
            aria-label={`${title}, last 5 minutes`}
          >
            <line x1="0" x2={WIDTH} y1={HEIGHT / 2} y2={HEIGHT / 2} class="grid" />
            <line x1="0" x2={WIDTH} y1={0.5} y2={0.5} class="grid" />
            <line x1="0" x2={WIDTH} y1={HEIGHT - 0.5} y2={HEIGHT - 0.5} class="axis" />
            {lines.map((l) => (
              <path key={`a-${l.label}`} d={areaPath(l.points, frame)} class={`area fill-${l.tone}`} />
            ))}
            {lines.map((l) => (
              <path key={`l-${l.label}`} d={linePath(l.points, frame)} class={`line stroke-${l.tone}`} />
            ))}
          </svg>
          {measured < 2 && <div class="chart-note">collecting samples…</div>}
          <div class="chart-x" aria-hidden="true">
            <span>−5 min</span>
            <span>−2.5 min</span>
            <span>now</span>
          </div>
        </div>
      </div>
    </figure>
  )
}

export function Charts() {
  const end = now.value
  const region = chartRegion.value
  const names = (regions.value ?? []).map((r) => r.name)
  const points = bucketRates(history.value.samples, {
    end,
    spanMs: SPAN_MS,
    stepMs: STEP_MS,
    minPartialMs: 2000,
    ...(region ? { region } : {}),
  })
  return (
    <section class="panel" aria-labelledby="charts-title">
      <div class="panel-head">
        <h2 id="charts-title">Traffic</h2>
        <span class="muted">per second, last 5 minutes, {STEP_MS / 1000} s buckets</span>
        <RegionSelect names={names} selected={chartRegion} />
      </div>
      <div class="charts">
        <Chart
          title="Gets"
          end={end}
          points={points}
          series={[
            { label: 'hit', tone: 'hit', counter: 'hits' },
            { label: 'stale', tone: 'stale', counter: 'stale' },
            { label: 'miss', tone: 'miss', counter: 'misses' },
          ]}
        />
        <Chart
          title="Regenerations"
          end={end}
          points={points}
          series={[
            { label: 'regenerations', tone: 'regen', counter: 'regenerations' },
            { label: 'errors', tone: 'miss', counter: 'regenerationErrors' },
            { label: 'coalesced', tone: 'accent', counter: 'coalesced' },
          ]}
        />
      </div>
    </section>
  )
}
