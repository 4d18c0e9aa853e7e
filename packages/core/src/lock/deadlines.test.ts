import { afterEach, describe, expect, it, vi } from 'vitest'
import { deadlineIn } from './deadlines.js'

afterEach(() => {
  vi.useRealTimers()
})

describe('deadlineIn', () => {
  it('expires each deadline after its duration, in order, and never a cancelled one', () => {
    vi.useFakeTimers()
    const expired: string[] = []
    const a = deadlineIn(1_000, () => expired.push('a'))
    vi.advanceTimersByTime(100)
    const b = deadlineIn(1_000, () => expired.push('b'))
    vi.advanceTimersByTime(100)
    deadlineIn(1_000, () => expired.push('c'))
    b.cancel()
    b.cancel() // idempotent
    vi.advanceTimersByTime(799)
    expect(expired).toEqual([])
    vi.advanceTimersByTime(1)
    expect(expired).toEqual(['a'])
    vi.advanceTimersByTime(200)
    expect(expired).toEqual(['a', 'c'])
    a.cancel() // after it expired: nothing happens
  })

  it('keeps one timer per duration however many regenerations are pending', () => {
    vi.useFakeTimers()
    const deadlines = Array.from({ length: 100 }, () => deadlineIn(30_000, () => {}))
    deadlineIn(5_000, () => {})
    expect(vi.getTimerCount()).toBe(2)
    for (const deadline of deadlines) deadline.cancel()
    // The timer stays armed until it fires, finds nothing due in its list, and goes.
    vi.advanceTimersByTime(30_000)
    expect(vi.getTimerCount()).toBe(0)
  })

  it('when the first deadline is cancelled, the timer still fires for the next one on time', () => {
    vi.useFakeTimers()
    const expired: number[] = []
    const first = deadlineIn(1_000, () => expired.push(Date.now()))
    vi.advanceTimersByTime(500)
    const start = Date.now()
    deadlineIn(1_000, () => expired.push(Date.now()))
    first.cancel()
    vi.advanceTimersByTime(1_000)
    expect(expired).toEqual([start + 1_000])
  })

  it('a throwing expiry does not strand the deadlines due after it', () => {
    vi.useFakeTimers()
    const expired: string[] = []
    const reported: unknown[] = []
    const original = globalThis.queueMicrotask
    globalThis.queueMicrotask = (task) => {
      try {
        task()
      } catch (error) {
        reported.push(error)
      }
    }
    try {
      deadlineIn(100, () => {
        throw new Error('listener bug')
      })
      deadlineIn(100, () => expired.push('second'))
      vi.advanceTimersByTime(100)
    } finally {
      globalThis.queueMicrotask = original
    }
    expect(expired).toEqual(['second'])
    expect(reported).toEqual([new Error('listener bug')])
  })

  it('expires on time with real timers', async () => {
    const started = performance.now()
    const elapsed = await new Promise<number>((resolve) => deadlineIn(20, () => resolve(performance.now() - started)))
    expect(elapsed).toBeGreaterThanOrEqual(19)
  })
})
