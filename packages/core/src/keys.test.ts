import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ValidationError } from './errors.js'
import {
  defaultArgToString,
  functionKeyGenerator,
  functionMultiKeyGenerator,
  sha1KeyMangler,
  stableStringify,
} from './keys.js'

describe('sha1KeyMangler', () => {
  it('returns the 40-char hex SHA-1 of the key', () => {
    // FIPS 180 test vector
    expect(sha1KeyMangler('abc')).toBe('a9993e364706816aba3e25717850c26c9cd0d89d')
    expect(sha1KeyMangler('')).toBe('da39a3ee5e6b4b0d3255bfef95601890afd80709')
  })

  it('hashes the UTF-8 bytes of any key to a fixed-length, whitespace-free string', () => {
    const key = `users|${'é'.repeat(300)} with spaces\n`
    const mangled = sha1KeyMangler(key)
    expect(mangled).toMatch(/^[0-9a-f]{40}$/)
    expect(mangled).toBe(createHash('sha1').update(Buffer.from(key, 'utf8')).digest('hex'))
  })

  it('is deterministic and tells different keys apart', () => {
    expect(sha1KeyMangler('users|1')).toBe(sha1KeyMangler('users|1'))
    expect(sha1KeyMangler('users|1')).not.toBe(sha1KeyMangler('users|2'))
  })
})

describe('defaultArgToString', () => {
  it('prints primitives as they are', () => {
    expect(defaultArgToString('alice')).toBe('alice')
    expect(defaultArgToString(42)).toBe('42')
    expect(defaultArgToString(1.5)).toBe('1.5')
    expect(defaultArgToString(true)).toBe('true')
    expect(defaultArgToString(10n)).toBe('10')
    expect(defaultArgToString(null)).toBe('null')
    expect(defaultArgToString(undefined)).toBe('undefined')
  })

  it('renders objects as JSON with sorted keys, never [object Object]', () => {
    expect(defaultArgToString({ b: 2, a: 1 })).toBe('{"a":1,"b":2}')
    expect(defaultArgToString([3, 1])).toBe('[3,1]')
  })

  it('rejects symbols and functions, which have no stable rendering', () => {
    expect(() => defaultArgToString(Symbol('s'))).toThrow(ValidationError)
    expect(() => defaultArgToString(() => 1)).toThrow(ValidationError)
  })
})

describe('stableStringify', () => {
  it('sorts object keys at every level', () => {
    expect(stableStringify({ z: { y: 1, x: [{ d: 1, c: 2 }] }, a: null })).toBe(
      '{"a":null,"z":{"x":[{"c":2,"d":1}],"y":1}}',
    )
    expect(stableStringify({ b: 1, a: { d: 1, c: 1 } })).toBe(stableStringify({ a: { c: 1, d: 1 }, b: 1 }))
  })

  it('leaves out undefined properties, as JSON does', () => {
    expect(stableStringify({ a: 1, b: undefined })).toBe('{"a":1}')
  })

  it('renders Dates as ISO strings and Maps/Sets independent of insertion order', () => {
    expect(stableStringify({ at: new Date(Date.UTC(2024, 0, 2)) })).toBe('{"at":"2024-01-02T00:00:00.000Z"}')
    expect(
      stableStringify(
        new Map([
          ['b', 2],
          ['a', 1],
        ]),
      ),
    ).toBe(
      stableStringify(
        new Map([
          ['a', 1],
          ['b', 2],
        ]),
      ),
    )
    expect(stableStringify(new Set([3, 1, 2]))).toBe(stableStringify(new Set([2, 3, 1])))
    expect(stableStringify(new Set([1, 2]))).not.toBe(stableStringify(new Set([1, 3])))
  })

  it('renders BigInts instead of throwing', () => {
    expect(stableStringify({ n: 12n })).toBe('{"n":"12n"}')
  })

  it('rejects circular structures with a ValidationError', () => {
    const a: Record<string, unknown> = { name: 'a' }
    a.self = a
    expect(() => stableStringify(a)).toThrow(ValidationError)
  })

  it('accepts the same object twice when it is not circular', () => {
    const shared = { x: 1 }
    expect(stableStringify({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}')
  })
})

describe('functionKeyGenerator', () => {
  function getUser(..._args: unknown[]): void {}

  it('makes name|arg1 arg2 keys', () => {
    const key = functionKeyGenerator(undefined, getUser)
    expect(key(1)).toBe('getUser|1')
    expect(key('a', 'b')).toBe('getUser|a b')
    expect(key()).toBe('getUser|')
  })

  it('puts the namespace after the name: name|namespace|args', () => {
    expect(functionKeyGenerator('v2', getUser)(1, 2)).toBe('getUser|v2|1 2')
  })

  it('renders object arguments as stable JSON', () => {
    const key = functionKeyGenerator(undefined, getUser)
    expect(key({ b: 2, a: 1 }, 'x')).toBe('getUser|{"a":1,"b":2} x')
    expect(key({ b: 2, a: 1 })).toBe(key({ a: 1, b: 2 }))
  })

  it('uses toStr for each argument', () => {
    const key = functionKeyGenerator(undefined, getUser, { toStr: (arg) => `<${String(arg)}>` })
    expect(key(1, 'b')).toBe('getUser|<1> <b>')
  })

  it('names bound functions after the function they bind', () => {
    expect(functionKeyGenerator(undefined, getUser.bind(null))(1)).toBe('getUser|1')
  })

  it('rejects an anonymous function without a namespace, and accepts one with', () => {
    expect(() => functionKeyGenerator(undefined, (() => (): void => {})())).toThrow(ValidationError)
    expect(() => functionKeyGenerator(undefined, (() => (): void => {})())).toThrow(/namespace/)
    expect(functionKeyGenerator('users', (() => (): void => {})())(7)).toBe('users|7')
  })

  it('rejects a namespace that is not a string', () => {
    expect(() => functionKeyGenerator(42 as unknown as string, getUser)).toThrow(ValidationError)
  })
})

describe('functionMultiKeyGenerator', () => {
  function getUsers(..._ids: unknown[]): void {}

  it('makes one name|arg key per argument', () => {
    expect(functionMultiKeyGenerator(undefined, getUsers)(1, 'b', { z: 1, a: 2 })).toEqual([
      'getUsers|1',
      'getUsers|b',
      'getUsers|{"a":2,"z":1}',
    ])
    expect(functionMultiKeyGenerator('ns', getUsers)(1)).toEqual(['getUsers|ns|1'])
  })

  it('rejects an anonymous function without a namespace', () => {
    expect(() => functionMultiKeyGenerator(undefined, (() => (): void => {})())).toThrow(ValidationError)
  })
})
