import { describeValue } from './describe-value.js'
import { ValidationError } from './errors.js'

/** Seconds as a number (fractions allowed), or a string such as `'250ms'`, `'30s'`, `'5m'`, `'2h'`, `'1d'`. */
export type Duration = number | `${number}${DurationUnit}`
type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd'

const SECONDS_PER_UNIT: Record<DurationUnit, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 }
const DURATION_PATTERN = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h|d)\s*$/

/**
 * Parses a duration into seconds. `what` names the option in the error message, so that a typo in a config file
 * points at the setting that holds it.
 */
export function parseDuration(value: unknown, what: string): number {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value
  } else if (typeof value === 'string') {
    const match = DURATION_PATTERN.exec(value)
    if (match) return Number(match[1]) * SECONDS_PER_UNIT[match[2] as DurationUnit]
    // Config maps deliver plain numbers as strings.
    if (/^\s*\d+(\.\d+)?\s*$/.test(value)) return Number(value)
  }
  throw new ValidationError(
    `${what} must be a non-negative number of seconds or a string like '250ms', '30s', '5m', '2h', '1d'; got ${describeValue(value)}`,
  )
}

/**
 * Parses an expiration time. `undefined` means "none configured"; `-1` means "never expires" (dogpile's
 * convention for a single call), which is returned as `Infinity`.
 */
export function parseExpiration(value: unknown, what: string): number | undefined {
  if (value === undefined || value === null) return undefined
  if (value === -1 || value === '-1') return Number.POSITIVE_INFINITY
  const seconds = parseDuration(value, what)
  if (seconds === 0) throw new ValidationError(`${what} must be greater than zero (use -1 for "never expires")`)
  return seconds
}
