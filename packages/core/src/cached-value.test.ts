import { describe, expect, it } from 'vitest'
import {
  CachedValue,
  FORMAT_VERSION,
  NO_VALUE,
  decodeCachedValue,
  encodeCachedValue,
  jsonSerializer,
  type Serializer,
} from './cached-value.js'
import { SerializationError } from './errors.js'

const roundTrip = (value: CachedValue, serializer: Serializer = jsonSerializer) =>
  decodeCachedValue(encodeCachedValue(value, serializer), serializer)

describe('NO_VALUE', () => {
  it('is a symbol distinct from every cacheable value', () => {
    expect(typeof NO_VALUE).toBe('symbol')
    for (const value of [undefined, null, 0, '', false]) expect(NO_VALUE).not.toBe(value)
  })
})

describe('CachedValue', () => {
  it('records the creation time and the current format version', () => {
    const value = CachedValue.create({ id: 1 }, 1_700_000_000_000)
    expect(value.payload).toEqual({ id: 1 })
    expect(value.metadata).toEqual({ ct: 1_700_000_000_000, v: FORMAT_VERSION })
  })
})

describe('encodeCachedValue / decodeCachedValue', () => {
  it.each([
    ['an object', { id: 1, tags: ['a', 'b'], nested: { ok: true } }],
    ['a string', 'hello\nworld'],
    ['a number', 42.5],
    ['null', null],
    ['false', false],
    ['an empty string', ''],
    ['undefined', undefined],
  ])('round-trips %s with its creation time', (_label, payload) => {
    const decoded = roundTrip(CachedValue.create(payload, 1_700_000_000_123.5))
    expect(decoded).not.toBe(NO_VALUE)
    expect((decoded as CachedValue).payload).toEqual(payload)
    expect((decoded as CachedValue).metadata).toEqual({ ct: 1_700_000_000_123.5, v: FORMAT_VERSION })
  })

  it('stores a readable header followed by the serialized payload', () => {
    const bytes = encodeCachedValue(CachedValue.create({ a: 1 }, 1000), jsonSerializer)
    expect(bytes.toString('utf8')).toBe(`c${FORMAT_VERSION}:1000:v\n{"a":1}`)
  })

  it('uses a custom serializer, including one that produces bytes', () => {
    const upper: Serializer = {
      serialize: (value) => new TextEncoder().encode(String(value).toUpperCase()),
      deserialize: (data) => `decoded:${Buffer.from(data).toString('utf8')}`,
    }
    const decoded = roundTrip(CachedValue.create('abc', 5), upper)
    expect((decoded as CachedValue).payload).toBe('decoded:ABC')
  })

  it('reads data written in another format version as a miss, not a crash', () => {
    const foreign = Buffer.from('c999:1000:v\n{"a":1}', 'utf8')
    expect(decodeCachedValue(foreign, jsonSerializer)).toBe(NO_VALUE)
    const future = Buffer.from(`c${FORMAT_VERSION + 9}:1000:v\n{"a":1}`, 'utf8')
    expect(decodeCachedValue(future, jsonSerializer)).toBe(NO_VALUE)
  })

  it.each([
    ['bytes written by another program', 'just a plain string'],
    ['an empty buffer', ''],
    ['a non-numeric creation time', `c${FORMAT_VERSION}:abc:v\n1`],
    ['an unknown payload kind', `c${FORMAT_VERSION}:1000:x\n1`],
    ['a payload the serializer rejects', `c${FORMAT_VERSION}:1000:v\n{not json`],
  ])('reads %s as a miss', (_label, text) => {
    expect(decodeCachedValue(Buffer.from(text, 'utf8'), jsonSerializer)).toBe(NO_VALUE)
  })

  it('raises SerializationError for values JSON cannot encode', () => {
    const circular: Record<string, unknown> = {}
    circular.self = circular
    expect(() => encodeCachedValue(CachedValue.create(10n, 1), jsonSerializer)).toThrow(SerializationError)
    expect(() => encodeCachedValue(CachedValue.create(circular, 1), jsonSerializer)).toThrow(SerializationError)
    // JSON.stringify(function) is undefined: nothing could be stored
    expect(() =>
      encodeCachedValue(
        CachedValue.create(() => 1, 1),
        jsonSerializer,
      ),
    ).toThrow(SerializationError)
  })

  it('keeps the serializer failure as cause', () => {
    const boom = new Error('boom')
    const failing: Serializer = {
      serialize: () => {
        throw boom
      },
      deserialize: () => null,
    }
    try {
      encodeCachedValue(CachedValue.create('x', 1), failing)
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(SerializationError)
      expect((error as SerializationError).code).toBe('E_SERIALIZATION')
      expect((error as SerializationError).cause).toBe(boom)
    }
  })
})
