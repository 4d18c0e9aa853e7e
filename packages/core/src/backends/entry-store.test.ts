import { describe, expect, it } from 'vitest'
import { CachedValue, NOT_FRESH, type ValueExtensions } from '../cached-value.js'
import type { FreshnessTest } from './api.js'
import { EntryStore, type EvictionReason } from './entry-store.js'

const value = (payload: unknown, ct = 1000, ext?: ValueExtensions) => new CachedValue(payload, ct, ext)

/** A freshness test that accepts values created at or after `since`, and records what it was asked. */
function freshSince(since: number): FreshnessTest & { asked: Array<[number, ValueExtensions | undefined, number]> } {
  const asked: Array<[number, ValueExtensions | undefined, number]> = []
  return {
    asked,
    isFreshStamp(ct, ext, expirationMs) {
      asked.push([ct, ext, expirationMs])
      return ct >= since
    },
  }
}

describe('EntryStore', () => {
  it('gives back what was stored: payload, creation time (fractions included) and extensions', () => {
    const store = new EntryStore(10)
    const payload = { id: 1 }
    store.set('a', value(payload, 1_700_000_000_000.123))
    store.set('b', value(undefined, 5, { tags: ['t'], jitterMs: 3 }))
    const a = store.get('a')!
    expect(a).toBeInstanceOf(CachedValue)
    expect(a.payload).toBe(payload)
    expect(a.ct).toBe(1_700_000_000_000.123)
    expect(a.ext).toBeUndefined()
    expect(store.get('b')).toEqual(value(undefined, 5, { tags: ['t'], jitterMs: 3 }))
    expect(store.get('missing')).toBeUndefined()
    expect(store.size).toBe(2)
  })

  it('keeps a NaN creation time (a value of another format version stays unusable)', () => {
    const store = new EntryStore(10)
    store.set('old', new CachedValue('x', { ct: 5, v: 1 }))
    expect(Number.isNaN(store.get('old')!.ct)).toBe(true)
  })

  it('replaces a value in place, extensions included', () => {
    const store = new EntryStore(10)
    store.set('a', value(1, 1, { tags: ['t'] }))
    store.set('a', value(2, 2))
    expect(store.get('a')).toEqual(value(2, 2))
    expect(store.size).toBe(1)
  })

  it('evicts the least recently used entry beyond its bound; reads and writes count as use', () => {
    const evicted: EvictionReason[] = []
    const store = new EntryStore(3, { evicted: (reason) => evicted.push(reason) })
    store.set('a', value('a'))
    store.set('b', value('b'))
    store.set('c', value('c'))
    store.get('a') // a is now the most recent: b is the least
    store.set('d', value('d'))
    expect(store.get('b')).toBeUndefined()
    expect(evicted).toEqual(['size'])
    store.set('c', value('c2')) // a write is a use too: a is now the least recent
    store.set('e', value('e'))
    expect(store.get('a')).toBeUndefined()
    expect([store.get('c')?.payload, store.get('d')?.payload, store.get('e')?.payload]).toEqual(['c2', 'd', 'e'])
    expect(store.size).toBe(3)
  })

  it('reads near the front leave an entry there: it still outlives three quarters of the bound of newer entries', () => {
    const store = new EntryStore(8)
    for (let i = 0; i < 8; i++) store.set(`k${i}`, value(i))
    store.get('k7') // the newest: nothing to do
    store.get('k6') // moved to the front one move ago: left in place
    store.get('k0') // the oldest: moved to the front
    // Six entries came after the read of k6 (k0's move and five writes): k1..k5 go, k6 and k7 stay, as k0 does.
    for (let i = 0; i < 5; i++) store.set(`new${i}`, value(i))
    expect(['k0', 'k6', 'k7'].map((key) => store.peek(key)?.payload)).toEqual([0, 6, 7])
    expect(['k1', 'k2', 'k3', 'k4', 'k5'].map((key) => store.peek(key))).toEqual(Array(5).fill(undefined))
  })

  it('peek and peekCreated leave recency alone', () => {
    const store = new EntryStore(2)
    store.set('a', value('a', 10))
    store.set('b', value('b', 20))
    expect(store.peek('a')?.payload).toBe('a')
    expect(store.peekCreated('a')).toBe(10)
    expect(store.peekCreated('missing')).toBe(Number.NEGATIVE_INFINITY)
    store.set('c', value('c')) // a was only peeked: it is still the least recent
    expect(store.peek('a')).toBeUndefined()
    expect(store.peek('b')?.payload).toBe('b')
  })

  it('getFresh answers the payload of a value the test accepts, and NOT_FRESH otherwise', () => {
    const store = new EntryStore(10)
    store.set('new', value('new', 2000, { jitterMs: 7 }))
    store.set('old', value('old', 1000))
    const test = freshSince(1500)
    expect(store.getFresh('new', test, 60_000)).toBe('new')
    expect(store.getFresh('old', test, 60_000)).toBe(NOT_FRESH)
    expect(store.getFresh('missing', test, 60_000)).toBe(NOT_FRESH)
    expect(test.asked).toEqual([
      [2000, { jitterMs: 7 }, 60_000],
      [1000, undefined, 60_000],
    ])
    // A payload that is undefined is a value like any other.
    store.set('nothing', value(undefined, 3000))
    expect(store.getFresh('nothing', test, 1)).toBeUndefined()
  })

  it('a fresh read counts as use; a read of a value that is not fresh does not', () => {
    const store = new EntryStore(2)
    store.set('a', value('a', 2000))
    store.set('b', value('b', 1000))
    const test = freshSince(1500)
    store.getFresh('a', test, 1) // fresh: a is now the most recent
    store.getFresh('b', test, 1) // not fresh: b stays the least recent
    store.set('c', value('c', 2000))
    expect(store.peek('b')).toBeUndefined()
    expect(store.peek('a')?.payload).toBe('a')
  })

  it('deletes, reuses the freed slots, and clears', () => {
    const store = new EntryStore(3)
    for (const key of ['a', 'b', 'c']) store.set(key, value(key))
    expect(store.delete('b')).toBe(true)
    expect(store.delete('b')).toBe(false)
    store.set('d', value('d')) // takes b's slot: nothing is evicted
    expect([store.get('a')?.payload, store.get('c')?.payload, store.get('d')?.payload]).toEqual(['a', 'c', 'd'])
    store.clear()
    expect(store.size).toBe(0)
    expect(store.get('a')).toBeUndefined()
    store.set('e', value('e'))
    expect(store.get('e')?.payload).toBe('e')
  })

  it('grows past its first arrays up to its bound, keeping every entry and the recency order', () => {
    const bound = 1000
    const store = new EntryStore(bound)
    for (let i = 0; i < bound; i++) store.set(`k${i}`, value(i, i, i % 7 === 0 ? { tags: [`t${i}`] } : undefined))
    expect(store.size).toBe(bound)
    for (let i = 0; i < bound; i++) {
      const stored = store.peek(`k${i}`)!
      expect([stored.payload, stored.ct, stored.tags]).toEqual([i, i, i % 7 === 0 ? [`t${i}`] : undefined])
    }
    store.get('k0')
    store.set('new', value('new'))
    expect(store.peek('k0')).toBeDefined()
    expect(store.peek('k1')).toBeUndefined()
  })

  it('with maxAgeMs, serves an entry for that long after it was set, then drops it as aged', () => {
    let now = 0
    const evicted: EvictionReason[] = []
    const store = new EntryStore(10, { maxAgeMs: 100, clock: () => now, evicted: (reason) => evicted.push(reason) })
    store.set('a', value('a'))
    now = 100
    expect(store.get('a')?.payload).toBe('a') // reading does not renew the age
    now = 101
    expect(store.getFresh('a', freshSince(0), 1)).toBe(NOT_FRESH)
    expect(store.size).toBe(0)
    expect(evicted).toEqual(['age'])
    store.set('b', value('b'))
    now = 150
    store.set('b', value('b2')) // a new value is a new copy: its age starts again
    now = 250
    expect(store.get('b')?.payload).toBe('b2')
    expect(store.peekCreated('b')).toBe(1000)
    now = 251
    expect(store.peek('b')).toBeUndefined()
  })
})
