import { describeValue } from '../describe-value.js'
import { ValidationError } from '../errors.js'

type ArgumentKind = 'string' | 'boolean' | 'positiveInteger' | 'integer' | 'duration' | 'any'

/**
 * Checks a backend's `arguments` against what it accepts, so a typo (`maxEntires`) or a wrong type fails at
 * configure time with the backend's name and the list of valid arguments, instead of being silently ignored.
 * Strings holding numbers or booleans (from config files) are converted.
 */
export function readArguments(
  backend: string,
  args: Record<string, unknown>,
  accepted: Record<string, ArgumentKind>,
): Record<string, unknown> {
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    throw new ValidationError(`${backend} backend: arguments must be an object; got ${describeValue(args)}`)
  }
  const out: Record<string, unknown> = {}
  for (const [name, raw] of Object.entries(args)) {
    const kind = accepted[name]
    if (kind === undefined) {
      throw new ValidationError(
        `${backend} backend: unknown argument "${name}"; it accepts ${Object.keys(accepted).join(', ') || 'no arguments'}`,
      )
    }
    if (raw === undefined) continue
    out[name] = convert(backend, name, kind, raw)
  }
  return out
}

function convert(backend: string, name: string, kind: ArgumentKind, raw: unknown): unknown {
  const fail = (expected: string): never => {
    throw new ValidationError(`${backend} backend: argument "${name}" must be ${expected}; got ${describeValue(raw)}`)
  }
  switch (kind) {
    case 'any':
    case 'duration':
      return raw
    case 'string':
      return typeof raw === 'string' ? raw : fail('a string')
    case 'boolean':
      if (typeof raw === 'boolean') return raw
      if (raw === 'true') return true
      if (raw === 'false') return false
      return fail('a boolean')
    case 'integer':
    case 'positiveInteger': {
      const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw
      const positive = kind === 'positiveInteger'
      if (typeof value !== 'number' || !Number.isInteger(value) || (positive && value < 1)) {
        return fail(positive ? 'a positive integer' : 'an integer')
      }
      return value
    }
  }
}
