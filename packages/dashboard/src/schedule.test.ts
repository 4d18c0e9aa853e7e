import { describe, expect, it } from 'vitest'
import { backoffDelay, type Clock, historyRequestDue, stateAfterFailure, throttle } from './schedule'

/** A manual clock: timers fire only when `advance` passes their due time. */
function manualClock() {
  let now = 0
  let nextId = 1
  const timers = new Map<number, { due: number; fn: () => void }>()
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = nextId++
      timers.set(id, { due: now + ms, fn })
      return id
    },
    clearTimeout: (id) => void timers.delete(id as number),
  }
  const advance = async (ms: number) => {
    const target = now + ms
    for (;;) {
      const next = [...timers.entries()].sort((a, b) => a[1].due - b[1].due)[0]
      if (!next || next[1].due > target) break
      timers.delete(next[0])
      now = next[1].due
      next[1].fn()
      await flush()
    }
    now = target
    await flush()
  }
  return { clock, advance, pendingTimers: () => timers.size }
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve()
}

describe('throttle', () => {
  it('runs at once, then collapses requests into one trailing run per interval', async () => {
    const { clock, advance } = manualClock()
    const runs: number[] = []
    const t = throttle(async () => void runs.push(clock.now()), 500, clock)
    t.request()
    await flush()
    expect(runs).toEqual([0])
    t.request()
    t.request()
    t.request()
    await advance(100)
    expect(runs).toEqual([0])
    await advance(400)
    expect(runs).toEqual([0, 500])
    await advance(2000)
    expect(runs).toEqual([0, 500])
    t.request()
    await flush()
    expect(runs).toEqual([0, 500, 2500])
  })

  it('never overlaps runs: a request during a slow run is served after it', async () => {
    const { clock, advance } = manualClock()
    let release: () => void = () => undefined
    let active = 0
    let maxActive = 0
    let runs = 0
    const t = throttle(
      () => {
        runs++
        active++
        maxActive = Math.max(maxActive, active)
        return new Promise<void>((resolve) => {
          release = () => {
            active--
            resolve()
          }
        })
      },
      500,
      clock,
    )
    t.request()
    await advance(1000)
    t.request()
    t.request()
    await advance(1000)
    expect(runs).toBe(1)
    release()
    await flush()
    expect(runs).toBe(2)
    release()
    await flush()
    expect(runs).toBe(2)
    expect(maxActive).toBe(1)
  })

  it('keeps working after a failed run, and cancel drops the trailing run', async () => {
    const { clock, advance, pendingTimers } = manualClock()
    let runs = 0
    const t = throttle(
      async () => {
        runs++
        throw new Error('boom')
      },
      500,
      clock,
    )
    t.request()
    await flush()
    t.request()
    expect(pendingTimers()).toBe(1)
    t.cancel()
    expect(pendingTimers()).toBe(0)
    await advance(1000)
    expect(runs).toBe(1)
    t.request()
    await flush()
    expect(runs).toBe(2)
  })
})

describe('backoffDelay', () => {
  it('doubles from the base up to the maximum', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffDelay(n, { jitter: 0 }))
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000])
  })
  it('spreads the delay by the jitter, never past the maximum', () => {
    expect(backoffDelay(1, { random: () => 0 })).toBe(800)
    expect(backoffDelay(1, { random: () => 1 })).toBe(1200)
    expect(backoffDelay(9, { random: () => 1 })).toBe(30000)
  })
})

describe('stateAfterFailure', () => {
  it('reconnects first, then reports polling', () => {
    expect(stateAfterFailure(1, false)).toBe('reconnecting')
    expect(stateAfterFailure(2, false)).toBe('reconnecting')
    expect(stateAfterFailure(3, false)).toBe('polling')
  })
  it('reports polling at once when the server does not offer the stream', () => {
    expect(stateAfterFailure(1, true)).toBe('polling')
  })
})

describe('historyRequestDue', () => {
  const last = { key: 'process:5m', startedAt: 1000, inFlight: false }

  it('throttles requests for the same scope and range, whether or not a history is held yet', () => {
    expect(historyRequestDue(last, 'process:5m', false, 2999, 2000)).toBe(false)
    expect(historyRequestDue(last, 'process:5m', false, 3000, 2000)).toBe(true)
  })

  it('never runs two requests for the same key at once unless forced', () => {
    const running = { ...last, inFlight: true }
    expect(historyRequestDue(running, 'process:5m', false, 60_000, 2000)).toBe(false)
    expect(historyRequestDue(running, 'process:5m', true, 1001, 2000)).toBe(true)
  })

  it('asks at once for another scope or range', () => {
    expect(historyRequestDue({ ...last, inFlight: true }, 'fleet:5m', false, 1001, 2000)).toBe(true)
  })
})
