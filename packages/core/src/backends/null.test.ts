import { describe, expect, it } from 'vitest'
import { CachedValue, NO_VALUE } from '../cached-value.js'
import { ValidationError } from '../errors.js'
import { RegionRegistry, createRegion } from '../registry.js'
import type { CacheBackend } from './api.js'
import { NullBackend } from './null.js'
import { deferred } from '../test-support/deferred.js'

function nullRegion() {
  return createRegion({ registry: new RegionRegistry() }).configure('null', { expirationTime: 60 })
}

describe('null backend', () => {
  it('every read misses, even right after a write', async () => {
    const region = nullRegion()
    await region.set('k', 'v')
    await region.setMulti({ a: 1, b: 2 })
    expect(await region.get('k')).toBe(NO_VALUE)
    expect(await region.get('k', { ignoreExpiration: true })).toBe(NO_VALUE)
    expect(await region.getMulti(['a', 'b', 'k'])).toEqual([NO_VALUE, NO_VALUE, NO_VALUE])
    expect(await region.getValueMetadata('k')).toBeUndefined()
  })

  it('every getOrCreate runs its creator and returns its value', async () => {
    const region = nullRegion()
    let calls = 0
    const creator = async () => ++calls
    expect(await region.getOrCreate('k', creator)).toBe(1)
    expect(await region.getOrCreate('k', creator)).toBe(2)
    expect(await region.getOrCreate('k', creator)).toBe(3)
  })

  it('concurrent callers of one key each run their own creator (nothing is coalesced)', async () => {
    const region = nullRegion()
    const gate = deferred<void>()
    let started = 0
    const creator = async () => {
      const n = ++started
      await gate.promise
      return n
    }
    const pending = Array.from({ length: 5 }, () => region.getOrCreate('k', creator))
    // every creator starts before any of them finishes
    for (let i = 0; i < 10 && started < 5; i++) await new Promise((resolve) => setImmediate(resolve))
    expect(started).toBe(5)
    gate.resolve()
    expect((await Promise.all(pending)).sort()).toEqual([1, 2, 3, 4, 5])
  })

  it('getOrCreateMulti runs its creator for every key, every time', async () => {
    const region = nullRegion()
    const calls: string[][] = []
    const creator = (...keys: string[]) => {
      calls.push(keys)
      return keys.map((key) => key.toUpperCase())
    }
    expect(await region.getOrCreateMulti(['b', 'a'], creator)).toEqual(['B', 'A'])
    expect(await region.getOrCreateMulti(['b', 'a'], creator)).toEqual(['B', 'A'])
    expect(calls).toEqual([
      ['a', 'b'],
      ['a', 'b'],
    ])
  })

  it('decorated functions always run', async () => {
    const region = nullRegion()
    let calls = 0
    const load = region.cacheOnArguments(async function load(id: number) {
      calls++
      return id
    })
    await load(1)
    await load(1)
    expect(calls).toBe(2)
  })

  it('no key is ever reported locked; deletes and invalidations succeed', async () => {
    const region = nullRegion()
    expect(await region.keyIsLocked('k')).toBe(false)
    await region.delete('k')
    await region.deleteMulti(['k', 'j'])
    await region.invalidate({ hard: false })
    await region.invalidate()
  })

  it('takes no arguments', () => {
    expect(() => new NullBackend({ maxEntries: 1 })).toThrow(ValidationError)
    expect(() => createRegion({ registry: new RegionRegistry() }).configure('null', { arguments: { x: 1 } })).toThrow(
      ValidationError,
    )
  })

  it('as an instance, answers every read with NO_VALUE', async () => {
    const backend: CacheBackend = new NullBackend()
    await backend.set('k', CachedValue.create('v', 1))
    expect(await backend.get('k')).toBe(NO_VALUE)
    expect(await backend.getMulti(['k', 'j'])).toEqual([NO_VALUE, NO_VALUE])
  })
})
