import { describe, expect, it, vi } from 'vitest'
import { MemoryBackend, REGION_EVENT_NAMES, RegionRegistry, createRegion, type RegionEventName } from '../index.js'

function setup() {
  let now = 3_000_000
  const registry = new RegionRegistry()
  const logged: Array<{ obj: Record<string, unknown>; msg: string }> = []
  const region = createRegion({
    name: 'orders',
    registry,
    clock: () => now,
    logger: { debug: (obj, msg) => logged.push({ obj, msg }) },
  }).configure('memory', { expirationTime: 10 })
  const seen: Array<[RegionEventName, unknown]> = []
  for (const name of REGION_EVENT_NAMES) region.on(name, (payload) => seen.push([name, payload]))
  return { region, registry, seen, logged, advance: (ms: number) => (now += ms) }
}

describe('region events', () => {
  it('emits each step of a cold get, a hit, an expiry and invalidations with exact payloads', async () => {
    const { region, seen, advance } = setup()
    await region.getOrCreate('order:1', () => ({ total: 10 }))
    await region.getOrCreate('order:1', () => ({ total: 0 }))
    advance(10_001)
    await region.getOrCreate('order:1', () => ({ total: 11 }))
    await region.invalidate({ hard: false })
    await region.invalidate()
    await region.delete('order:1')

    expect(seen).toEqual([
      ['miss', { region: 'orders', key: 'order:1', reason: 'absent' }],
      ['regenerate', { region: 'orders', keys: ['order:1'], duration: expect.any(Number), outcome: 'success' }],
      ['hit', { region: 'orders', key: 'order:1', tier: 'l1' }],
      ['miss', { region: 'orders', key: 'order:1', reason: 'expired' }],
      ['regenerate', { region: 'orders', keys: ['order:1'], duration: expect.any(Number), outcome: 'success' }],
      ['invalidate', { region: 'orders', hard: false, scope: 'region' }],
      ['invalidate', { region: 'orders', hard: true, scope: 'region' }],
      ['invalidate', { region: 'orders', hard: true, scope: 'key', key: 'order:1' }],
    ])
  })

  it('emits coalesced, lockWait and stale for callers that did not run the creator', async () => {
    const { region, seen, advance } = setup()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const calls = [1, 2].map(() => region.getOrCreate('k', async () => (await gate, 'v')))
    release()
    await Promise.all(calls)
    advance(12_000)
    let releaseAgain!: () => void
    const gateAgain = new Promise<void>((r) => (releaseAgain = r))
    const leader = region.getOrCreate('k', async () => (await gateAgain, 'v2'))
    expect(await region.getOrCreate('k', () => 'unused')).toBe('v')
    releaseAgain()
    await leader

    const names = seen.map(([name]) => name)
    expect(names).toEqual([
      'miss',
      'coalesced',
      'regenerate',
      'lockWait',
      'miss',
      'miss',
      'coalesced',
      'stale',
      'regenerate',
    ])
    expect(seen[1]![1]).toEqual({ region: 'orders', key: 'k', mode: 'waited' })
    expect(seen[3]![1]).toEqual({ region: 'orders', key: 'k', duration: expect.any(Number), distributed: false })
    expect(seen[6]![1]).toEqual({ region: 'orders', key: 'k', mode: 'stale' })
    expect(seen[7]![1]).toEqual({ region: 'orders', key: 'k', age: 12 })
  })

  it('reports backend failures as backendError and still answers', async () => {
    class Unreachable extends MemoryBackend {
      override getSync = undefined as never
      override async get(): Promise<never> {
        throw new Error('ECONNREFUSED')
      }
    }
    const registry = new RegionRegistry()
    const region = createRegion({ name: 'down', registry }).configure(new Unreachable(), { expirationTime: 5 })
    const errors: unknown[] = []
    region.on('backendError', (payload) => errors.push(payload))
    expect(await region.getOrCreate('k', () => 'fresh from the database')).toBe('fresh from the database')
    expect(errors).toEqual([{ region: 'down', operation: 'get', error: new Error('ECONNREFUSED') }])
  })

  it('re-emits every region event on the registry', async () => {
    const registry = new RegionRegistry()
    const a = createRegion({ name: 'a', registry }).configure('memory')
    const b = createRegion({ name: 'b', registry }).configure('memory')
    const misses: unknown[] = []
    registry.on('miss', (payload) => misses.push(payload))
    await a.getOrCreate('x', () => 1)
    await b.getOrCreate('y', () => 2)
    expect(misses).toEqual([
      { region: 'a', key: 'x', reason: 'absent' },
      { region: 'b', key: 'y', reason: 'absent' },
    ])
  })

  it('isolates a throwing listener: the caller gets its value and other listeners still run', async () => {
    const registry = new RegionRegistry()
    const reported: unknown[] = []
    registry.onListenerError((error, region, event) =>
      reported.push({ message: (error as Error).message, region, event }),
    )
    const region = createRegion({ name: 'r', registry }).configure('memory')
    const after = vi.fn()
    region.on('miss', () => {
      throw new Error('listener bug')
    })
    region.on('miss', after)
    registry.on('regenerate', () => {
      throw new Error('registry listener bug')
    })
    expect(await region.getOrCreate('k', () => 'ok')).toBe('ok')
    expect(after).toHaveBeenCalledOnce()
    expect(reported).toEqual([
      { message: 'listener bug', region: 'r', event: 'miss' },
      { message: 'registry listener bug', region: '*', event: 'regenerate' },
    ])
  })

  it('stops delivering after off()', async () => {
    const registry = new RegionRegistry()
    const region = createRegion({ name: 'r', registry }).configure('memory')
    const listener = vi.fn()
    region.on('hit', listener)
    await region.set('k', 1)
    await region.getOrCreate('k', () => 2)
    region.off('hit', listener)
    await region.getOrCreate('k', () => 2)
    expect(listener).toHaveBeenCalledTimes(1)
  })

  it('rejects unknown event names', () => {
    const registry = new RegionRegistry()
    const region = createRegion({ registry })
    expect(() => region.on('hti' as never, () => {})).toThrow(/unknown region event "hti"/)
  })

  it('writes dogpile.cache debug lines through the logger', async () => {
    const { region, logged } = setup()
    await region.getOrCreate('order:9', () => 9)
    await region.invalidate()
    await region.getOrCreate('order:9', () => 9)
    const messages = logged.map((l) => l.msg)
    expect(messages[0]).toBe('No value present for key: order:9')
    expect(messages[1]).toMatch(/^Cache value generated in \d+\.\d{3} seconds for key\(s\): order:9$/)
    expect(messages).toContain('Hard invalidation of the region')
    expect(messages).toContain('Hard invalidation detected for key: order:9')
    expect(logged[0]!.obj).toEqual({ region: 'orders', key: 'order:9', reason: 'absent' })
  })
})

describe('region stats', () => {
  it('summarises a region: hit ratio, percentiles, last invalidation', async () => {
    const { region, advance } = setup()
    await region.getOrCreate('a', () => 1)
    await region.getOrCreate('a', () => 1)
    await region.getOrCreate('a', () => 1)
    advance(5)
    await region.invalidate({ hard: false })
    const stats = region.statsSnapshot()
    expect(stats).toMatchObject({
      hits: 2,
      misses: 1,
      stale: 0,
      gets: 3,
      regenerations: 1,
      invalidations: { hard: 0, soft: 1 },
    })
    expect(stats.hitRatio).toBeCloseTo(2 / 3)
    expect(stats.regenerationTime!.p50).toBeGreaterThanOrEqual(0)
    expect(region.stats.lastInvalidation).toEqual({ at: expect.any(Number), hard: false, scope: 'region' })
  })

  it('tracks hot keys with hits, misses and regenerations', async () => {
    const { region } = setup()
    for (let i = 0; i < 5; i++) await region.getOrCreate('hot', () => 'h')
    await region.getOrCreate('cold', () => 'c')
    expect(region.hotKeys(2)).toEqual([
      { key: 'hot', count: 5, error: 0, hits: 4, misses: 1, regenerations: 1 },
      { key: 'cold', count: 1, error: 0, hits: 0, misses: 1, regenerations: 1 },
    ])
    expect(region.hotKeysWindowSeconds).toBe(60)
  })
})
