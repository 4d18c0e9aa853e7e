import FakeTimers from '@sinonjs/fake-timers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { NO_VALUE } from './cached-value.js'
import { COARSE_MAX_READS, coarseWallClock, wallClock } from './clock.js'
import { CreatorTimeoutError } from './errors.js'
import { RegionRegistry } from './registry.js'
import { createRegion } from './index.js'
import type { Duration } from './durations.js'

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A memory region made while timers are real, with a creator that counts its runs. */
function region(expirationTime: Duration = 60) {
  const made = createRegion({ registry: new RegionRegistry() }).configure('memory', { expirationTime })
  let runs = 0
  const creator = () => `value ${++runs}`
  return { region: made, creator, runs: () => runs }
}

afterEach(() => {
  vi.useRealTimers()
})

describe('fake timers installed after the region was created', () => {
  it("Vitest's vi.useFakeTimers() moves expiry, even right after a hit read the coarse clock", async () => {
    const { region: users, creator, runs } = region(60)
    expect(await users.getOrCreate('u1', creator)).toBe('value 1')
    expect(await users.getOrCreate('u1', creator)).toBe('value 1') // a hit: the coarse clock holds a reading now

    vi.useFakeTimers()
    vi.advanceTimersByTime(59_000)
    expect(await users.getOrCreate('u1', creator)).toBe('value 1')
    vi.advanceTimersByTime(2_000)
    expect(await users.get('u1')).toBe(NO_VALUE)
    expect(await users.getOrCreate('u1', creator)).toBe('value 2')
    expect(runs()).toBe(2)
    // The new value's creation time is the fake clock's: it expires by it too.
    vi.advanceTimersByTime(60_001)
    expect(await users.getOrCreate('u1', creator)).toBe('value 3')
  })

  it('vi.setSystemTime moves expiry as well', async () => {
    const { region: users, creator } = region('5m')
    vi.useFakeTimers()
    await users.getOrCreate('u1', creator)
    vi.setSystemTime(Date.now() + 5 * 60_000 + 1)
    expect(await users.getOrCreate('u1', creator)).toBe('value 2')
  })

  it('@sinonjs/fake-timers install() and tick() move expiry', async () => {
    const { region: users, creator } = region(10)
    expect(await users.getOrCreate('u1', creator)).toBe('value 1')
    // Sinon's clock starts at the epoch unless told otherwise: values made before would then be from the future.
    const clock = FakeTimers.install({ now: Date.now() })
    try {
      clock.tick(9_999)
      expect(await users.getOrCreate('u1', creator)).toBe('value 1')
      clock.tick(2)
      expect(await users.getOrCreate('u1', creator)).toBe('value 2')
      // Set back to the epoch, what was created since is from the future: not believed, made again.
      clock.setSystemTime(0)
      expect(await users.getOrCreate('u1', creator)).toBe('value 3')
    } finally {
      clock.uninstall()
    }
  })

  it('a hard timeout is driven by the fake clock, even when a real-timer deadline of the same duration is pending', async () => {
    const { region: users } = region(60)
    // A regeneration under real timers: its duration's deadline list is armed with the real setTimeout.
    const slow = users.getOrCreate('real', () => sleep(30).then(() => 'done'), { hardTimeout: 5 })

    vi.useFakeTimers()
    const hanging = users.getOrCreate('fake', () => new Promise<string>(() => {}), { hardTimeout: 5 })
    const outcome = hanging.then(
      () => 'resolved',
      (error: unknown) => error,
    )
    await vi.advanceTimersByTimeAsync(5_000)
    expect(await outcome).toBeInstanceOf(CreatorTimeoutError)
    vi.useRealTimers()
    expect(await slow).toBe('done')
  })
})

describe('the coarse clock', () => {
  it('never leads the exact clock, and lags it by about a millisecond at most between turns of the event loop', async () => {
    for (let turn = 0; turn < 20; turn++) {
      const before = wallClock()
      const coarse = coarseWallClock()
      expect(coarse).toBeLessThanOrEqual(wallClock())
      // A reading is at most one event-loop resolution old when the loop has turned (here: a 2 ms sleep).
      expect(coarse).toBeGreaterThanOrEqual(before - 2)
      await sleep(2)
    }
  })

  it('takes a new reading after COARSE_MAX_READS reads, even inside one long synchronous run', () => {
    const first = coarseWallClock()
    const spinUntil = Date.now() + 3
    while (Date.now() < spinUntil) {
      // no turn of the event loop: only the read count can renew the reading
    }
    let latest = first
    for (let read = 0; read <= COARSE_MAX_READS; read++) latest = coarseWallClock()
    expect(latest).toBeGreaterThanOrEqual(first + 3)
  })

  it('is exact while Date.now is not the built-in one', () => {
    vi.useFakeTimers({ now: 1_000 })
    expect(coarseWallClock()).toBe(1_000)
    vi.setSystemTime(5_000)
    expect(coarseWallClock()).toBe(5_000)
  })
})
