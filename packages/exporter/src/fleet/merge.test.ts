import { RegionRegistry } from '@corral/core'
import { describe, expect, it } from 'vitest'
import { bucketQuantile, correlateIncidents, fleetRegions, mergeHotKeys, sumStats } from './merge.js'
import { SNAPSHOT_VERSION, type InstanceSnapshot, type PublishedEpisode, type PublishedRegion } from './snapshot.js'

function instance(
  id: string,
  regions: Partial<PublishedRegion>[],
  episodes: PublishedEpisode[] = [],
): InstanceSnapshot {
  return {
    v: SNAPSHOT_VERSION,
    id,
    hostname: `host-${id}`,
    pid: Number(id.replace(/\D/g, '')) || 1,
    startedAt: 0,
    lastSeen: 1,
    interval: 5000,
    bounds: { regeneration: [0.1, 1], lockWait: [0.1, 1] },
    regions: regions.map((r) => ({
      name: 'users',
      backend: 'redis',
      stats: new RegionRegistry().createRegion().statsSnapshot(),
      hotKeys: { windowSeconds: 60, complete: true, keys: [] },
      ...r,
    })),
    episodes,
  }
}

const hot = (key: string, count: number) => ({ key, count, hits: count - 1, misses: 1, regenerations: 1 })

describe('bucketQuantile', () => {
  it('interpolates within the bucket as histogram_quantile does', () => {
    // 10 observations ≤ 0.1, 10 more ≤ 1
    expect(bucketQuantile(0.5, [0.1, 1], [10, 20, 20])).toBeCloseTo(0.1, 10)
    expect(bucketQuantile(0.75, [0.1, 1], [10, 20, 20])).toBeCloseTo(0.55, 10)
    expect(bucketQuantile(0.25, [0.1, 1], [10, 20, 20])).toBeCloseTo(0.05, 10)
  })
  it('is null without observations and the largest bound for the +Inf bucket', () => {
    expect(bucketQuantile(0.5, [0.1, 1], [0, 0, 0])).toBeNull()
    expect(bucketQuantile(0.99, [0.1, 1], [0, 0, 5])).toBe(1)
  })
})

describe('sumStats', () => {
  it('sums every counter, nested ones too, and recomputes the hit ratio and the quantiles', () => {
    const base = new RegionRegistry().createRegion().statsSnapshot()
    const a = {
      ...base,
      hits: 8,
      l1Hits: 8,
      misses: 2,
      gets: 10,
      coalesced: 3,
      invalidations: { hard: 1, soft: 0 },
      hitRatio: 0.8,
      l1HitRatio: 0.8,
    }
    const b = {
      ...base,
      hits: 1,
      stale: 1,
      misses: 8,
      gets: 10,
      coalesced: 4,
      invalidations: { hard: 0, soft: 2 },
      hitRatio: 0.2,
    }
    const sum = sumStats([a, b], { bounds: [0.1, 1], counts: [10, 20, 20] })
    expect(sum).toMatchObject({
      hits: 9,
      stale: 1,
      misses: 10,
      gets: 20,
      coalesced: 7,
      invalidations: { hard: 1, soft: 2 },
    })
    expect(sum.hitRatio).toBeCloseTo(0.5, 10)
    expect(sum.l1HitRatio).toBeCloseTo(0.4, 10) // 8 of the 20 reads, not 0.8 + 0
    expect(sum.regenerationTime!.p50).toBeCloseTo(0.1, 10)
    expect(sumStats([base]).hitRatio).toBeNull()
    expect(sumStats([base]).regenerationTime).toBeNull()
  })

  it('sums the regions of every instance by name', () => {
    const base = new RegionRegistry().createRegion().statsSnapshot()
    const regions = fleetRegions([
      instance('i1', [
        { name: 'users', stats: { ...base, gets: 3 } },
        { name: 'products', stats: { ...base, gets: 1 } },
      ]),
      instance('i2', [{ name: 'users', stats: { ...base, gets: 4 } }]),
    ])
    expect(regions.map((r) => [r.name, r.stats.gets])).toEqual([
      ['users', 7],
      ['products', 1],
    ])
  })
})

describe('mergeHotKeys', () => {
  it('sums the lists and bounds what a process that does not list a key may have seen of it', () => {
    const full = (keys: ReturnType<typeof hot>[]) => ({ hotKeys: { windowSeconds: 60, complete: false, keys } })
    const merged = mergeHotKeys(
      [
        instance('i1', [full([hot('a', 50), hot('shared', 20), hot('x', 5)])]),
        instance('i2', [full([hot('b', 40), hot('shared', 25), hot('y', 7)])]),
        instance('i3', [{ hotKeys: { windowSeconds: 60, complete: true, keys: [hot('shared', 3)] } }]),
      ],
      'users',
      10,
    )
    expect(merged.instances).toBe(3)
    expect(merged.keys.map((k) => [k.key, k.count, k.error, k.instances])).toEqual([
      ['a', 50, 7, 1], // i2 lists 7 at least, i3's list is complete: it never saw "a"
      ['shared', 48, 0, 3],
      ['b', 40, 5, 1],
      ['y', 7, 5, 1],
      ['x', 5, 7, 1],
    ])
    expect(merged.keys[1]).toMatchObject({ hits: 45, misses: 3, regenerations: 3 })
  })
})

describe('correlateIncidents', () => {
  const episode = (
    key: string,
    startedAt: number,
    endedAt: number,
    coalesced: number,
    regenerationMs?: [number, number],
  ) => ({
    region: 'users',
    key,
    startedAt,
    endedAt,
    coalesced,
    regeneration: regenerationMs
      ? {
          startedAt: regenerationMs[0],
          at: regenerationMs[1],
          duration: (regenerationMs[1] - regenerationMs[0]) / 1000,
          outcome: 'success' as const,
        }
      : null,
  })

  it('shows a stampede across processes once: the creator, then the waiting processes', () => {
    const t = 1_000_000
    const incidents = correlateIncidents(
      [
        instance('i1', [], [episode('k', t, t + 600, 9, [t, t + 600])]),
        instance('i2', [], [episode('k', t + 5, t + 602, 10)]),
        instance('i3', [], [episode('k', t + 8, t + 603, 4)]),
      ],
      10,
    )
    expect(incidents).toHaveLength(1)
    expect(incidents[0]).toMatchObject({ key: 'k', coalesced: 23, duration: 0.6, startedAt: t, at: t + 603 })
    expect(incidents[0]!.creator).toMatchObject({ instance: 'i1', role: 'creator', coalesced: 9 })
    expect(incidents[0]!.processes.map((p) => [p.instance, p.role, p.coalesced])).toEqual([
      ['i1', 'creator', 9],
      ['i2', 'waiter', 10],
      ['i3', 'waiter', 4],
    ])
  })

  it('keeps stampedes of one key apart when their times do not overlap, and groups waiters without a creator', () => {
    const t = 1_000_000
    const incidents = correlateIncidents(
      [
        instance('i1', [], [episode('k', t, t + 100, 2, [t, t + 100]), episode('k', t + 60_000, t + 60_200, 3)]),
        instance('i2', [], [episode('k', t + 10, t + 110, 1), episode('k', t + 60_050, t + 60_150, 6)]),
      ],
      10,
    )
    expect(incidents.map((i) => [i.at, i.coalesced, i.creator?.instance ?? null])).toEqual([
      [t + 60_200, 9, null],
      [t + 110, 3, 'i1'],
    ])
  })
})
