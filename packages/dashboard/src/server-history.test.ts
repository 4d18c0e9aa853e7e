import type { HistoryJson } from '@corral/exporter/api'
import { describe, expect, it } from 'vitest'
import { bucketRates } from './rates'
import { latencySeries, mergeHistory, rangeOf, samplesFromHistory } from './server-history'

const region = (name: string, hits: number, p99: number | null = null) => ({
  name,
  hits,
  stale: 0,
  misses: 0,
  regenerations: 0,
  regenerationErrors: 0,
  lockWaits: 0,
  coalesced: 0,
  regenerationP50: p99,
  regenerationP99: p99,
  lockWaitP99: null,
})
const all = (p99: number | null) => ({ regenerationP50: p99, regenerationP99: p99, lockWaitP99: null })

function history(hitsPerSample: number[], p99s: Array<number | null> = []): HistoryJson {
  return {
    intervalSeconds: 5,
    retentionSeconds: 3600,
    samples: hitsPerSample.map((hits, i) => ({
      at: 100_000 + i * 5000,
      regions: [region('users', hits, p99s[i] ?? null)],
      all: all(p99s[i] ?? null),
    })),
  }
}

describe('server history', () => {
  it('turns the server samples into rates, full from the first render', () => {
    const samples = samplesFromHistory(history([0, 50, 100, 100])).samples
    const points = bucketRates(samples, { end: 115_000, spanMs: 15_000, stepMs: 5000 })
    expect(points.map((p) => p.perSecond?.hits ?? null)).toEqual([10, 10, 0])
  })

  it('reads a quantile over time, for one region or all of them, with gaps', () => {
    const h = history([0, 1, 2], [null, 0.25, 0.5])
    expect(latencySeries(h, 'regenerationP99', 'users').map((p) => p.v)).toEqual([null, 0.25, 0.5])
    expect(latencySeries(h, 'regenerationP99').map((p) => p.v)).toEqual([null, 0.25, 0.5])
    expect(latencySeries(h, 'regenerationP99', 'absent').map((p) => p.v)).toEqual([null, null, null])
  })

  it('appends newer samples once and knows its ranges', () => {
    const merged = mergeHistory(history([0, 1]), {
      ...history([0, 1, 2, 3]),
      samples: history([0, 1, 2, 3]).samples.slice(1),
    })
    expect(merged.samples.map((s) => s.at)).toEqual([100_000, 105_000, 110_000, 115_000])
    expect(rangeOf('15m').ms).toBe(900_000)
    expect(rangeOf('bogus').id).toBe('5m')
  })
})
