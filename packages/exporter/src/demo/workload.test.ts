import { RegionRegistry } from '@corral/core'
import { describe, expect, it } from 'vitest'
import { Workload, zipfSampler } from './workload.js'

/** xorshift32 in [0, 1): reproducible draws. */
function seeded(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return (x >>> 0) / 0x1_0000_0000
  }
}

describe('zipfSampler', () => {
  it('draws ranks in range, the lowest ranks most often', () => {
    const draw = zipfSampler(100, 1.1, seeded(7))
    const counts = new Array<number>(100).fill(0)
    for (let i = 0; i < 20_000; i++) {
      const rank = draw()
      expect(rank).toBeGreaterThanOrEqual(0)
      expect(rank).toBeLessThan(100)
      counts[rank] = (counts[rank] ?? 0) + 1
    }
    const [first = 0, second = 0] = counts
    expect(first).toBeGreaterThan(second)
    expect(second).toBeGreaterThan(counts[50] ?? 0)
    // P(rank 0) = 1 / H(100, 1.1) ≈ 0.22
    expect(first / 20_000).toBeGreaterThan(0.19)
    expect(first / 20_000).toBeLessThan(0.25)
  })

  it('refuses an empty key space', () => {
    expect(() => zipfSampler(0, 1)).toThrow(RangeError)
  })
})

describe('Workload', () => {
  it('produces hits, regenerations and coalesced callers within a fraction of a second, and stops cleanly', async () => {
    const registry = new RegionRegistry()
    const region = registry.createRegion({ name: 'demo' }).configure('memory', { expirationTime: 1 })
    const errors: unknown[] = []
    const workload = new Workload(
      [
        {
          region,
          keys: Array.from({ length: 50 }, (_, i) => `k${i}`),
          skew: 1.2,
          weight: 1,
          latencyMs: [5, 20],
          errorRate: 0.05,
          create: (key) => key.toUpperCase(),
        },
      ],
      {
        getsPerSecond: 400,
        burstEveryMs: [40, 60],
        burstCallers: [10, 10],
        random: seeded(3),
        onError: (e) => errors.push(e),
      },
    )
    workload.start()
    await new Promise((resolve) => setTimeout(resolve, 400))
    await workload.stop()
    const stats = region.statsSnapshot()
    expect(workload.issued.gets).toBeGreaterThan(100)
    expect(workload.issued.bursts).toBeGreaterThan(2)
    expect(stats.hits).toBeGreaterThan(0)
    expect(stats.regenerations).toBeGreaterThan(0)
    expect(stats.coalesced).toBeGreaterThan(0)
    expect(region.hotKeys(1)[0]?.key).toBeDefined()
    expect(errors).toEqual([])
    const after = workload.issued.gets
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(workload.issued.gets).toBe(after)
  })
})
