import { describe, expect, it } from 'vitest'
import { parseDuration, parseExpiration } from './durations.js'
import { ValidationError } from './errors.js'

describe('parseDuration', () => {
  it('takes seconds as a number, fractions included', () => {
    expect(parseDuration(30, 'ttl')).toBe(30)
    expect(parseDuration(0.25, 'ttl')).toBe(0.25)
    expect(parseDuration(0, 'ttl')).toBe(0)
  })

  it.each([
    ['250ms', 0.25],
    ['30s', 30],
    ['5m', 300],
    ['2h', 7200],
    ['1d', 86_400],
    ['1.5h', 5400],
    ['.5s', 0.5],
    [' 5m ', 300],
  ])('reads %j as %d seconds', (text, seconds) => {
    expect(parseDuration(text, 'ttl')).toBeCloseTo(seconds, 9)
  })

  it('reads plain numbers given as strings (config files) as seconds', () => {
    expect(parseDuration('30', 'ttl')).toBe(30)
    expect(parseDuration('0.5', 'ttl')).toBe(0.5)
  })

  it.each([
    ['a negative number', -5],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['an unknown unit', '5w'],
    ['an upper-case unit', '5M'],
    ['a word', 'soon'],
    ['an empty string', ''],
    ['a negative string', '-3s'],
    ['null', null],
    ['a boolean', true],
    ['an object', { seconds: 5 }],
  ])('rejects %s with a ValidationError naming the option', (_label, value) => {
    expect(() => parseDuration(value, 'region "users": expirationTime')).toThrow(ValidationError)
    expect(() => parseDuration(value, 'region "users": expirationTime')).toThrow(
      /region "users": expirationTime must be a non-negative number of seconds or a string like '250ms'/,
    )
  })
})

describe('parseExpiration', () => {
  it('means "none configured" for undefined and null', () => {
    expect(parseExpiration(undefined, 'expirationTime')).toBeUndefined()
    expect(parseExpiration(null, 'expirationTime')).toBeUndefined()
  })

  it('turns -1 (number or string) into "never expires"', () => {
    expect(parseExpiration(-1, 'expirationTime')).toBe(Number.POSITIVE_INFINITY)
    expect(parseExpiration('-1', 'expirationTime')).toBe(Number.POSITIVE_INFINITY)
  })

  it('parses the other durations to seconds', () => {
    expect(parseExpiration('5m', 'expirationTime')).toBe(300)
    expect(parseExpiration(0.1, 'expirationTime')).toBe(0.1)
  })

  it('rejects zero, which would expire every value at once', () => {
    expect(() => parseExpiration(0, 'expirationTime')).toThrow(ValidationError)
    expect(() => parseExpiration('0s', 'expirationTime')).toThrow(/greater than zero \(use -1 for "never expires"\)/)
  })

  it('rejects other negative numbers', () => {
    expect(() => parseExpiration(-2, 'expirationTime')).toThrow(ValidationError)
  })
})
