import { describe, expect, it } from 'vitest'
import {
  circuitBadge,
  DASH,
  displayKey,
  formatClock,
  formatDuration,
  formatExpiration,
  formatInt,
  formatPercent,
  formatRate,
  formatRelative,
  parseInstant,
  truncateMiddle,
} from './format'

describe('formatInt', () => {
  it('prints plain digits without separators', () => {
    expect(formatInt(0)).toBe('0')
    expect(formatInt(1234567)).toBe('1234567')
    expect(formatInt(12.6)).toBe('13')
  })
  it('prints a dash for missing values', () => {
    expect(formatInt(null)).toBe(DASH)
    expect(formatInt(undefined)).toBe(DASH)
    expect(formatInt(Number.NaN)).toBe(DASH)
  })
})

describe('formatRate', () => {
  it.each([
    [0, '0'],
    [0.01, '<0.1'],
    [0.4, '0.4'],
    [3.04, '3'],
    [3.45, '3.5'],
    [42.4, '42'],
    [9999, '9999'],
    [12_345, '12.3k'],
    [150_000, '150k'],
    [12_300_000, '12.3M'],
  ])('%s/s → %s', (n, text) => expect(formatRate(n)).toBe(text))
})

describe('formatPercent', () => {
  it('shows one decimal and never rounds up to 100%', () => {
    expect(formatPercent(0.934)).toBe('93.4%')
    expect(formatPercent(0.99996)).toBe('99.9%')
    expect(formatPercent(1)).toBe('100%')
    expect(formatPercent(0)).toBe('0.0%')
    expect(formatPercent(null)).toBe(DASH)
  })
})

describe('formatDuration', () => {
  it.each([
    [0, '0 ms'],
    [0.00085, '850 µs'],
    [0.0123, '12.3 ms'],
    [0.25, '250 ms'],
    [1.2449, '1.24 s'],
    [12.5, '12.5 s'],
    [125, '2 min 05 s'],
    [7260, '2 h 01 min'],
  ])('%s s → %s', (s, text) => expect(formatDuration(s)).toBe(text))
  it('prints a dash for null and negative values', () => {
    expect(formatDuration(null)).toBe(DASH)
    expect(formatDuration(-1)).toBe(DASH)
  })
})

describe('formatExpiration', () => {
  it.each([
    [null, 'no expiry'],
    [0.25, '250 ms'],
    [30, '30 s'],
    [300, '5 min'],
    [5400, '90 min'],
    [7200, '2 h'],
    [86_400 * 3, '3 d'],
  ])('%s → %s', (s, text) => expect(formatExpiration(s)).toBe(text))
})

describe('formatRelative', () => {
  const now = 1_700_000_000_000
  it.each([
    [now, 'just now'],
    [now + 5000, 'just now'],
    [now - 12_000, '12 s ago'],
    [now - 3 * 60_000, '3 min ago'],
    [now - 2 * 3_600_000, '2 h ago'],
    [now - 4 * 86_400_000, '4 d ago'],
  ])('%s → %s', (at, text) => expect(formatRelative(at, now)).toBe(text))
})

describe('formatClock', () => {
  it('prints local HH:MM:SS', () => {
    expect(formatClock(new Date(2024, 0, 1, 9, 5, 7).getTime())).toBe('09:05:07')
    expect(formatClock(null)).toBe(DASH)
  })
})

describe('parseInstant', () => {
  it('accepts epoch ms, epoch seconds and ISO strings', () => {
    expect(parseInstant(1_700_000_000_123)).toBe(1_700_000_000_123)
    expect(parseInstant(1_700_000_000.5)).toBe(1_700_000_000_500)
    expect(parseInstant('2024-01-01T00:00:00.000Z')).toBe(Date.UTC(2024, 0, 1))
    expect(parseInstant('1700000000123')).toBe(1_700_000_000_123)
    expect(parseInstant('soon')).toBeNull()
    expect(parseInstant(undefined)).toBeNull()
  })
})

describe('displayKey', () => {
  it('makes control characters visible and leaves the rest alone', () => {
    expect(displayKey('a\nb\tc\u0000\u007f')).toBe('a␊b␉c␀␡')
    expect(displayKey('users|get_user 42 <script>')).toBe('users|get_user 42 <script>')
  })
})

describe('truncateMiddle', () => {
  it('keeps short text as is', () => {
    expect(truncateMiddle('short', 10)).toBe('short')
    expect(truncateMiddle('exactly10!', 10)).toBe('exactly10!')
  })
  it('keeps both ends around an ellipsis, within the limit', () => {
    const out = truncateMiddle('users|get_user 1234567890', 11)
    expect(out).toBe('users…67890')
    expect(Array.from(out)).toHaveLength(11)
  })
  it('never splits a surrogate pair', () => {
    const out = truncateMiddle('😀😀😀😀😀😀😀😀', 5)
    expect(out).toBe('😀😀…😀😀')
  })
  it('degrades to an ellipsis for tiny limits', () => {
    expect(truncateMiddle('abcdef', 1)).toBe('…')
    expect(truncateMiddle('abcdef', 2)).toBe('a…')
  })
})

describe('circuitBadge', () => {
  it('shows nothing while the breaker is closed or the region has none', () => {
    expect(circuitBadge(null)).toBeNull()
    expect(circuitBadge(undefined)).toBeNull()
    expect(circuitBadge({ closed: 1, halfOpen: 0, open: 0 })).toBeNull()
  })

  it('says open or half-open, and how many processes when several are summed', () => {
    expect(circuitBadge({ closed: 0, halfOpen: 0, open: 1 })).toMatchObject({ state: 'open', text: 'circuit open' })
    expect(circuitBadge({ closed: 0, halfOpen: 1, open: 0 })).toMatchObject({
      state: 'half-open',
      text: 'circuit half-open',
    })
    expect(circuitBadge({ closed: 2, halfOpen: 1, open: 1 })).toMatchObject({ state: 'open', text: 'circuit open (1)' })
  })
})
