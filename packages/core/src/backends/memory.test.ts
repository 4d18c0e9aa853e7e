import { describe, expect, it } from 'vitest'
import { CachedValue, FORMAT_VERSION, NO_VALUE } from '../cached-value.js'
import { SerializationError, ValidationError } from '../errors.js'
import { RegionRegistry, createRegion } from '../registry.js'
import { MemoryBackend } from './memory.js'

const value = (payload: unknown, ct = 1000) => CachedValue.create(payload, ct)

function memoryRegion(args: Record<string, unknown> = {}) {
  return createRegion({ registry: new RegionRegistry() }).configure('memory', { arguments: args })
}

describe('MemoryBackend', () => {
  it('stores CachedValues with their metadata', async () => {
    const backend = new MemoryBackend()
    await backend.set('k', value({ a: 1 }, 42))
    expect(await backend.get('k')).toEqual(new CachedValue({ a: 1 }, { ct: 42, v: FORMAT_VERSION }))
    expect(await backend.get('missing')).toBe(NO_VALUE)
    await backend.setMulti([
      ['x', value(1)],
      ['y', value(2)],
    ])
    expect((await backend.getMulti(['y', 'nope', 'x'])).map((v) => (v === NO_VALUE ? v : v.payload))).toEqual([
      2,
      NO_VALUE,
      1,
    ])
    await backend.deleteMulti(['x', 'nope'])
    await backend.delete('y')
    expect(await backend.getMulti(['x', 'y'])).toEqual([NO_VALUE, NO_VALUE])
    expect(backend.count()).toBe(1)
  })

  it('defaults to 100000 entries', () => {
    expect(new MemoryBackend().maxEntries).toBe(100_000)
  })

  it('evicts the least recently used entry beyond maxEntries', async () => {
    const backend = new MemoryBackend({ maxEntries: 3 })
    await backend.set('a', value('A'))
    await backend.set('b', value('B'))
    await backend.set('c', value('C'))
    await backend.get('a') // a is now the most recently used; b the least
    await backend.set('d', value('D'))
    expect(await backend.get('b')).toBe(NO_VALUE)
    expect(await backend.getMulti(['a', 'c', 'd'])).not.toContain(NO_VALUE)
    expect(backend.count()).toBe(3)
    // reads through getMulti count as use too: c is now the least recently used
    await backend.getMulti(['a', 'd'])
    await backend.set('e', value('E'))
    expect(await backend.get('c')).toBe(NO_VALUE)
  })

  it('a region keeps at most maxEntries values, reads counting as use', async () => {
    const region = memoryRegion({ maxEntries: 2 })
    await region.set('a', 1)
    await region.set('b', 2)
    expect(await region.get('a')).toBe(1)
    await region.set('c', 3)
    expect(await region.getMulti(['a', 'b', 'c'])).toEqual([1, NO_VALUE, 3])
    // getOrCreate hits count as use as well
    expect(await region.getOrCreate('a', () => 'unused')).toBe(1)
    await region.set('d', 4)
    expect(await region.getMulti(['a', 'c', 'd'])).toEqual([1, NO_VALUE, 4])
  })

  it.each([
    ['zero', 0],
    ['a negative number', -1],
    ['a fraction', 1.5],
    ['a non-numeric string', 'many'],
    ['a boolean', true],
    ['null', null],
  ])('rejects maxEntries of %s with a ValidationError', (_label, maxEntries) => {
    expect(() => new MemoryBackend({ maxEntries: maxEntries as never })).toThrow(ValidationError)
    expect(() => new MemoryBackend({ maxEntries: maxEntries as never })).toThrow(/maxEntries.*positive integer/)
    expect(() => memoryRegion({ maxEntries })).toThrow(ValidationError)
  })

  it('accepts maxEntries as a numeric string, as config files give it', () => {
    expect(new MemoryBackend({ maxEntries: '25' as never }).maxEntries).toBe(25)
  })

  it('rejects unknown arguments and a non-boolean serialize', () => {
    expect(() => new MemoryBackend({ maxEntires: 5 } as never)).toThrow(ValidationError)
    expect(() => new MemoryBackend({ serialize: 'yes' as never })).toThrow(ValidationError)
  })

  it('by default hands out the stored object itself (fastest hit path)', async () => {
    const region = memoryRegion()
    const original = { n: 1 }
    await region.set('k', original)
    expect(await region.get('k')).toBe(original)
  })

  it('with serialize: true, readers get copies that cannot alter what is cached', async () => {
    const region = memoryRegion({ serialize: true })
    const original = { n: 1, list: [1] }
    await region.set('k', original)
    original.n = 2
    const first = (await region.get('k')) as { n: number; list: number[] }
    expect(first).toEqual({ n: 1, list: [1] })
    first.list.push(2)
    expect(await region.get('k')).toEqual({ n: 1, list: [1] })
  })

  it('with serialize: true, undefined and null are values, not misses', async () => {
    const region = memoryRegion({ serialize: true })
    let calls = 0
    const creator = () => {
      calls++
      return undefined
    }
    expect(await region.getOrCreate('u', creator)).toBeUndefined()
    expect(await region.getOrCreate('u', creator)).toBeUndefined()
    expect(calls).toBe(1)
    await region.set('n', null)
    expect(await region.get('n')).toBeNull()
  })

  it('with serialize: true, a value that cannot be serialized is a SerializationError at set', async () => {
    const backend = new MemoryBackend({ serialize: true })
    await expect(backend.set('k', value(1n))).rejects.toBeInstanceOf(SerializationError)
    await expect(
      backend.setMulti([
        ['a', value(1)],
        ['b', value(2n)],
      ]),
    ).rejects.toBeInstanceOf(SerializationError)
    expect(backend.count()).toBe(0)
  })

  it('close() empties it', async () => {
    const backend = new MemoryBackend()
    await backend.set('k', value(1))
    await backend.close()
    expect(await backend.get('k')).toBe(NO_VALUE)
    expect(backend.count()).toBe(0)
  })
})
