import { RegionRegistry } from '@corral/core'
import { describe, expect, it } from 'vitest'
import { EPISODE_GAP_MS, EpisodeLog, MAX_EPISODES } from './episodes.js'
import { boundedKey } from './snapshot.js'

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('EpisodeLog', () => {
  it('records a stampede of one process as the creator with its coalesced callers', async () => {
    const registry = new RegionRegistry()
    const region = registry.createRegion({ name: 'users' }).configure('memory', { expirationTime: 60 })
    const log = new EpisodeLog()
    log.attach(registry)
    await Promise.all(
      Array.from({ length: 8 }, () =>
        region.getOrCreate('user:1', async () => {
          await sleep(50)
          return 1
        }),
      ),
    )
    const [episode] = log.recent(10)
    expect(episode).toMatchObject({ region: 'users', key: 'user:1', coalesced: 7 })
    expect(episode!.regeneration).toMatchObject({ outcome: 'success' })
    expect(episode!.regeneration!.duration).toBeGreaterThanOrEqual(0.04)
    expect(episode!.endedAt - episode!.startedAt).toBeGreaterThanOrEqual(40)
    log.detach()
  })

  it('records nothing for a regeneration nobody waited for', async () => {
    const registry = new RegionRegistry()
    const region = registry.createRegion({ name: 'users' }).configure('memory', { expirationTime: 60 })
    const log = new EpisodeLog()
    log.attach(registry)
    await region.getOrCreate('user:1', () => 1)
    expect(log.recent(10)).toEqual([])
  })

  it('keeps callers of one key as one waiting episode until a gap, and attaches a regeneration that overlaps', () => {
    let now = 1_000_000
    const log = new EpisodeLog(() => now)
    log.coalesced('r', 'k', now)
    log.coalesced('r', 'k', now + 500)
    log.coalesced('r', 'k', now + 500 + EPISODE_GAP_MS + 1) // a new stampede
    expect(log.recent(10).map((e) => e.coalesced)).toEqual([1, 2])
    // a regeneration that ended long after the last caller joined the latest episode, and started before it
    log.regenerated('r', 'k', now + 500 + EPISODE_GAP_MS + 3000, 3.5, 'success')
    const [latest] = log.recent(1)
    expect(latest!.regeneration).toMatchObject({ duration: 3.5 })
    expect(latest!.startedAt).toBe(now + 500 + EPISODE_GAP_MS + 3000 - 3500)
    // a regeneration that does not overlap the latest episode is not its creator
    now += 100_000
    log.coalesced('r', 'other', now)
    log.regenerated('r', 'other', now + 5000, 1, 'success')
    expect(log.recent(1)[0]!.regeneration).toBeNull()
  })

  it('claims a regeneration nobody here waited for when callers elsewhere waited for it at that time', () => {
    const log = new EpisodeLog()
    log.regenerated('r', 'k', 10_000, 0.6, 'success') // ran 9400..10000
    expect(log.recent(10)).toEqual([])
    expect(log.hasUnclaimedSince(9000)).toBe(true)
    expect(log.claim('r', 'other', 9500, 10_005)).toBe(false)
    expect(log.claim('r', 'k', 20_000, 20_500)).toBe(false) // another time: another stampede
    expect(log.claim('r', 'k', 9450, 10_004)).toBe(true)
    expect(log.recent(10)).toEqual([
      {
        region: 'r',
        key: 'k',
        startedAt: 9400,
        endedAt: 10_000,
        coalesced: 0,
        regeneration: { startedAt: 9400, at: 10_000, duration: 0.6, outcome: 'success' },
      },
    ])
    expect(log.hasUnclaimedSince(0)).toBe(false)
    expect(log.claim('r', 'k', 9450, 10_004)).toBe(false) // once
  })

  it('claims a regeneration of a key too long to publish whole, by the bounded key the waits carry', () => {
    const key = `user:${'x'.repeat(400)}`
    const published = boundedKey(key)
    expect(published).not.toBe(key)
    const log = new EpisodeLog()
    log.regenerated('r', key, 10_000, 0.6, 'success')
    expect(log.claim('r', published, 9450, 10_004)).toBe(true)
    expect(log.recent(10)).toMatchObject([{ region: 'r', key: published, coalesced: 0 }])
    expect(log.hasUnclaimedSince(0)).toBe(false)
  })

  it('is bounded', () => {
    const log = new EpisodeLog()
    for (let i = 0; i < MAX_EPISODES * 3; i++) log.coalesced('r', `key-${i}`, 1000 + i)
    expect(log.size).toBe(MAX_EPISODES)
    expect(log.recent(1)[0]!.key).toBe(`key-${MAX_EPISODES * 3 - 1}`)
  })
})
