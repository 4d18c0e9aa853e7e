/**
 * The exporter's server-side history (`GET api/history`, `api/fleet/history`) as the charts read it: the counter
 * samples become a `SampleHistory` (so the rate charts compute as before, from full history right after a page
 * load), and the interval quantiles become latency series.
 */
import type { HistoryJson, HistoryQuantilesJson } from '@corral/exporter/api'
import type { Point } from './chart'
import { emptyHistory, pushSample, type SampleHistory } from './rates'

/** The time ranges a user can choose, with the chart step for each (about 60 to 120 points). */
export const RANGES = [
  { id: '5m', label: '5 min', ms: 5 * 60_000, stepMs: 5000 },
  { id: '15m', label: '15 min', ms: 15 * 60_000, stepMs: 15_000 },
  { id: '1h', label: '1 hour', ms: 60 * 60_000, stepMs: 30_000 },
] as const
export type RangeId = (typeof RANGES)[number]['id']

export function rangeOf(id: string): (typeof RANGES)[number] {
  return RANGES.find((r) => r.id === id) ?? RANGES[0]
}

/** The counter samples of a history, oldest first, as the rate functions take them (built in one pass). */
export function samplesFromHistory(history: HistoryJson): SampleHistory {
  const out = emptyHistory()
  for (const sample of history.samples) {
    pushSample(
      out,
      sample.at,
      sample.regions.map((region) => ({ name: region.name, stats: region })),
    )
  }
  return out
}

export type LatencyName = keyof HistoryQuantilesJson

/** One quantile over time, for one region (or every region together with `region` empty). Null marks a gap. */
export function latencySeries(history: HistoryJson, name: LatencyName, region = ''): Point[] {
  return history.samples.map((sample) => {
    const source = region ? sample.regions.find((r) => r.name === region) : sample.all
    return { t: sample.at, v: source ? source[name] : null }
  })
}

/** Appends newer samples (`since` polling) to `history`, dropping what falls out of the retention. */
export function mergeHistory(history: HistoryJson | null, newer: HistoryJson): HistoryJson {
  if (history === null) return newer
  const last = history.samples.at(-1)?.at ?? -Infinity
  const latest = newer.samples.at(-1)?.at ?? last
  const from = latest - newer.retentionSeconds * 1000
  const samples = [...history.samples, ...newer.samples.filter((s) => s.at > last)].filter((s) => s.at >= from)
  return { ...newer, samples }
}
