import { afterEach, describe, expect, it, vi } from 'vitest'
import { TagMirror, chunks, formatTagMarks, parseTagMarks } from './tag-marks.js'

describe('TagMirror', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  it('answers only for tags it loaded, for trustMs, and within the current epoch', () => {
    vi.useFakeTimers()
    const mirror = new TagMirror(1000, () => undefined)
    expect(mirror.marks('t')).toBeUndefined()
    mirror.record('t', { hardAt: 5, softAt: 0 })
    expect(mirror.marks('t')).toEqual({ hardAt: 5, softAt: 0 })
    vi.advanceTimersByTime(999)
    expect(mirror.marks('t')).toEqual({ hardAt: 5, softAt: 0 })
    vi.advanceTimersByTime(2)
    expect(mirror.marks('t')).toBeUndefined()
    expect(mirror.peek('t')).toEqual({ hardAt: 5, softAt: 0 })

    mirror.record('t', { hardAt: 5, softAt: 0 })
    mirror.distrust()
    expect(mirror.marks('t')).toBeUndefined()
  })

  it('marks only rise; a local mark the server lacks is kept and listed for write-back while it matters', () => {
    const now = Date.now()
    let ttl: number | undefined = 60_000
    const mirror = new TagMirror(1000, () => ttl)
    mirror.record('t', { hardAt: now, softAt: 0 })
    mirror.record('t', { hardAt: now - 10, softAt: now - 5 })
    expect(mirror.marks('t')).toEqual({ hardAt: now, softAt: now - 5 })
    expect(mirror.takeUnsynced()).toEqual([['t', { hardAt: now, softAt: now - 5 }]])
    expect(mirror.takeUnsynced()).toEqual([])

    // Past its lifetime a mark invalidates nothing: the server's answer stands, nothing is written back.
    ttl = 1
    mirror.record('t', { hardAt: 0, softAt: 0 })
    expect(mirror.marks('t')).toEqual({ hardAt: 0, softAt: 0 })
    expect(mirror.takeUnsynced()).toEqual([])
  })

  it('a local mark counts at once for a trusted tag; an unknown tag is still loaded before use', () => {
    const mirror = new TagMirror(1000, () => undefined)
    mirror.record('known', { hardAt: 1, softAt: 2 })
    mirror.applyLocal('known', false, 10)
    expect(mirror.marks('known')).toEqual({ hardAt: 1, softAt: 10 })
    mirror.applyLocal('new', true, 7)
    expect(mirror.marks('new')).toBeUndefined()
    // The load merges what the server had with the local mark (and lists the tag for write-back).
    mirror.record('new', { hardAt: 0, softAt: 3 })
    expect(mirror.marks('new')).toEqual({ hardAt: 7, softAt: 3 })
    expect(mirror.takeUnsynced().map(([tag]) => tag)).toEqual(['new'])
  })

  it('notifications update the tags it holds and leave the others out', () => {
    const mirror = new TagMirror(1000, () => undefined)
    mirror.record('held', { hardAt: 1, softAt: 0 })
    mirror.recordIfKnown('held', { hardAt: 9, softAt: 0 })
    mirror.recordIfKnown('other', { hardAt: 9, softAt: 0 })
    expect(mirror.marks('held')).toEqual({ hardAt: 9, softAt: 0 })
    expect(mirror.peek('other')).toBeUndefined()
  })

  it('joins loads in flight, remembers the tags read, and is bounded', async () => {
    const mirror = new TagMirror(1000, () => undefined, 3)
    const fetched: string[][] = []
    let finish!: () => void
    const gate = new Promise<void>((resolve) => (finish = resolve))
    const fetch = async (tags: readonly string[]) => {
      fetched.push([...tags])
      await gate
      for (const tag of tags) mirror.record(tag, { hardAt: 0, softAt: 0 })
    }
    const first = mirror.load(['a', 'b'], fetch)
    const second = mirror.load(['b', 'c', 'c'], fetch)
    finish()
    await Promise.all([first, second])
    expect(fetched).toEqual([['a', 'b'], ['c']])
    mirror.marks('a')
    mirror.marks('c')
    expect(mirror.takeUsed()).toEqual(['a', 'c'])
    expect(mirror.takeUsed()).toEqual([])
    mirror.record('d', { hardAt: 0, softAt: 0 })
    expect(mirror.size).toBe(3)
    expect(mirror.peek('b')).toBeUndefined() // the least recently read went
  })

  it('stores marks as "hard,soft" text and reads anything else as not invalidated', () => {
    expect(formatTagMarks({ hardAt: 1732150239123.001, softAt: 0 })).toBe('1732150239123.001,0')
    expect(parseTagMarks('1732150239123.001,5')).toEqual({ hardAt: 1732150239123.001, softAt: 5 })
    for (const text of [null, undefined, '', 'garbage', 'x,y'])
      expect(parseTagMarks(text)).toEqual({ hardAt: 0, softAt: 0 })
    expect(chunks([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]])
  })
})
