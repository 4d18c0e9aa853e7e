import { RegionRegistry } from '@corral/core'
import { describe, expect, it } from 'vitest'
import { fixture } from './test-support/helpers.js'
import { fleetReadings, History, historySettings, localReadings, type RegionReading } from './history.js'
import { SNAPSHOT_VERSION, type InstanceSnapshot } from './fleet/snapshot.js'
import type { HistoryJson } from './api-types.js'

const counters = (hits: number, regenerations = 0) => ({
  hits,
  stale: 0,
  misses: 0,
  regenerations,
  regenerationErrors: 0,
  lockWaits: 0,
  coalesced: 0,
})

describe('History', () => {
  it('keeps a bounded ring and answers a range, oldest first', () => {
    let now = 0
    const history = new History(
      1000,
      5000,
      async () => new Map(),
      () => now,
    )
    for (let i = 1; i <= 20; i++) {
      now = i * 1000
      history.add(now, new Map([['users', { counters: counters(i) }]]))
    }
    const all = history.query()
    expect(all.samples.map((s) => s.at)).toEqual([15_000, 16_000, 17_000, 18_000, 19_000, 20_000])
    expect(history.query(2000).samples.map((s) => s.regions[0]!.hits)).toEqual([18, 19, 20])
    expect(history.query(undefined, 18_000).samples.map((s) => s.at)).toEqual([19_000, 20_000])
  })

  it('computes each interval’s quantiles from the histograms’ increase', async () => {
    const registry = new RegionRegistry()
    const region = registry.createRegion({ name: 'users' }).configure('memory', { expirationTime: 60 })
    let now = 1000
    const history = new History(1000, 60_000, localReadings(registry), () => now)
    await history.sample()
    for (let i = 0; i < 10; i++) await region.getOrCreate(`fast-${i}`, () => 1)
    now += 1000
    await history.sample()
    await region.getOrCreate('slow', () => new Promise((resolve) => setTimeout(() => resolve(1), 120)))
    now += 1000
    await history.sample()
    const [first, second, third] = history.query().samples
    expect(first!.regions[0]).toMatchObject({ name: 'users', misses: 0, regenerationP99: null })
    expect(second!.regions[0]).toMatchObject({ misses: 10, regenerations: 10 })
    expect(second!.regions[0]!.regenerationP99).toBeLessThan(0.01)
    // only the slow regeneration was in the third interval
    expect(third!.regions[0]!.regenerationP50).toBeGreaterThan(0.1)
    expect(third!.regions[0]!.lockWaitP99).toBeNull()
    expect(third!.all.regenerationP50).toBe(third!.regions[0]!.regenerationP50)
  })

  it('sums the fleet as increases per process: a process that leaves or restarts never makes the series go down', async () => {
    const snapshot = (id: string, hits: number): InstanceSnapshot => ({
      v: SNAPSHOT_VERSION,
      id,
      hostname: 'h',
      pid: 1,
      startedAt: 0,
      lastSeen: 0,
      interval: 1000,
      bounds: { regeneration: [], lockWait: [] },
      regions: [
        {
          name: 'users',
          backend: 'redis',
          stats: counters(hits) as never,
          hotKeys: { windowSeconds: 60, complete: true, keys: [] },
        },
      ],
      episodes: [],
    })
    const reads: InstanceSnapshot[][] = [
      [snapshot('a', 100), snapshot('b', 50)], // baseline
      [snapshot('a', 110), snapshot('b', 55)], // +15
      [snapshot('a', 120)], // b left: +10
      [snapshot('a', 5), snapshot('c', 1000)], // a restarted: +5; c is new: baseline
      [snapshot('a', 6), snapshot('c', 1010)], // +11
    ]
    const read = fleetReadings(async () => reads.shift()!)
    const totals: number[] = []
    for (let i = 0; i < 5; i++) totals.push(((await read()).get('users') as RegionReading).counters.hits)
    expect(totals).toEqual([0, 15, 25, 30, 41])
  })

  it('checks its options', () => {
    expect(historySettings(undefined)).toEqual({ intervalMs: 5000, retentionMs: 3_600_000 })
    expect(historySettings({ interval: '1s', retention: '10m' })).toEqual({ intervalMs: 1000, retentionMs: 600_000 })
    expect(() => historySettings({ interval: '1ms' })).toThrow(/at least 50ms/)
    expect(historySettings({ interval: '100ms' })).toEqual({ intervalMs: 100, retentionMs: 1_000_000 })
    expect(() => historySettings({ interval: '1s', retention: '1d' })).toThrow(/at most 10000 intervals/)
    expect(() => historySettings({ every: '1s' } as never)).toThrow(
      /unknown history option "every"; valid: interval, retention/,
    )
  })
})

describe('GET /api/history', () => {
  it('serves the samples kept so far, so a page opened now has its charts full', async () => {
    const { app, users } = fixture({ history: { interval: '50ms', retention: '1m' } })
    await users.getOrCreate('a', () => 1)
    await new Promise((resolve) => setTimeout(resolve, 300))
    const body = (await (await app.request('/api/history?range=5m')).json()) as HistoryJson
    expect(body.intervalSeconds).toBe(0.05)
    expect(body.retentionSeconds).toBe(60)
    expect(body.samples.length).toBeGreaterThanOrEqual(3)
    const last = body.samples.at(-1)!
    expect(last.regions.find((r) => r.name === 'users')).toMatchObject({ misses: 1, regenerations: 1 })
    const since = (await (await app.request(`/api/history?since=${last.at}`)).json()) as HistoryJson
    expect(since.samples.every((s) => s.at > last.at)).toBe(true)
  })

  it('answers a bad range or since with a 400, and a 404 when history is off', async () => {
    const { app } = fixture()
    expect((await app.request('/api/history?range=soon')).status).toBe(400)
    expect((await app.request('/api/history?since=yesterday')).status).toBe(400)
    expect((await app.request('/api/history?range=5m&range=1h')).status).toBe(400)
    const off = fixture({ history: false })
    expect((await off.app.request('/api/history')).status).toBe(404)
    expect((await off.app.request('/api/fleet')).status).toBe(404)
  })
})
