import { createHash } from 'node:crypto'
import { describeValue } from './describe-value.js'
import { ValidationError } from './errors.js'

/** Turns a cache key into the key stored in the backend (for example, a hash that fits memcached's limits). */
export type KeyMangler = (key: string) => string

/** Renders one function argument as a key fragment. */
export type ArgToString = (arg: unknown) => string

/** Options a key generator receives besides the namespace and the function. */
export interface KeyGeneratorOptions {
  toStr?: ArgToString
}

/**
 * dogpile.cache's `function_key_generator`: given the decorator's namespace and the decorated function, returns
 * the function that turns one call's arguments into a cache key.
 */
export type KeyGenerator = (
  namespace: string | undefined,
  fn: (...args: never[]) => unknown,
  options?: KeyGeneratorOptions,
) => (...args: unknown[]) => string

/** dogpile.cache's `function_multi_key_generator`: one key per argument. */
export type MultiKeyGenerator = (
  namespace: string | undefined,
  fn: (...args: never[]) => unknown,
  options?: KeyGeneratorOptions,
) => (...args: unknown[]) => string[]

/** The 40-character hex SHA-1 of the key: fixed length, no whitespace, safe for every backend. */
export const sha1KeyMangler: KeyMangler = (key) => createHash('sha1').update(key).digest('hex')

/**
 * Renders an argument for a cache key. Primitives are printed as they are (`user|42`, like dogpile's `str()`);
 * anything else becomes JSON with sorted object keys, so `{ a, b }` and `{ b, a }` make the same key and no
 * object ever renders as `[object Object]`.
 */
export const defaultArgToString: ArgToString = (arg) => {
  switch (typeof arg) {
    case 'string':
      return arg
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(arg)
    case 'undefined':
      return 'undefined'
    case 'symbol':
      throw new ValidationError(`a symbol cannot be part of a cache key (${arg.toString()})`)
    case 'function':
      throw new ValidationError(`a function cannot be part of a cache key (${arg.name || 'anonymous'})`)
    default:
      return arg === null ? 'null' : stableStringify(arg)
  }
}

/** JSON with object keys sorted at every level; Maps and Sets as sorted arrays; Dates as ISO strings. */
export function stableStringify(value: unknown): string {
  const seen = new Set<object>()
  const normalize = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') {
      if (typeof v === 'bigint') return `${v}n`
      if (typeof v === 'function' || typeof v === 'symbol') return undefined
      return v
    }
    if (seen.has(v)) throw new ValidationError('a cache key argument contains a circular reference')
    seen.add(v)
    try {
      if (v instanceof Date) return v.toISOString()
      if (Array.isArray(v)) return v.map((item) => normalize(item) ?? null)
      if (v instanceof Map) return [...v.entries()].map(([k, item]) => [normalize(k), normalize(item)]).sort(byJson)
      if (v instanceof Set) return [...v].map(normalize).sort(byJson)
      const out: Record<string, unknown> = {}
      for (const key of Object.keys(v).sort()) {
        const item = normalize((v as Record<string, unknown>)[key])
        if (item !== undefined) out[key] = item
      }
      return out
    } finally {
      seen.delete(v)
    }
  }
  return JSON.stringify(normalize(value))
}

const byJson = (a: unknown, b: unknown): number => {
  const x = JSON.stringify(a)
  const y = JSON.stringify(b)
  return x < y ? -1 : x > y ? 1 : 0
}

/** `name`, or `name|namespace`; an anonymous function needs a namespace, or its keys would collide. */
export function functionKeyPrefix(namespace: string | undefined, fn: { name: string }): string {
  if (namespace !== undefined && typeof namespace !== 'string') {
    throw new ValidationError(`namespace must be a string; got ${typeof namespace}`)
  }
  const name = fn.name.replace(/^bound /, '')
  if (!name && !namespace) {
    throw new ValidationError(
      'cannot derive cache keys for an anonymous function: give it a name or pass { namespace } so its keys do not collide with other functions',
    )
  }
  if (!name) return namespace as string
  return namespace ? `${name}|${namespace}` : name
}

/** The default key generator: `name|arg1 arg2` or `name|namespace|arg1 arg2`. */
export const functionKeyGenerator: KeyGenerator = (namespace, fn, options) => {
  const prefix = `${functionKeyPrefix(namespace, fn)}|`
  const toStr = options?.toStr ?? defaultArgToString
  return (...args) => {
    if (args.length === 1) return prefix + toStr(args[0])
    return prefix + args.map(toStr).join(' ')
  }
}

/** The default multi-key generator: one `name|arg` key per argument. */
export const functionMultiKeyGenerator: MultiKeyGenerator = (namespace, fn, options) => {
  const prefix = `${functionKeyPrefix(namespace, fn)}|`
  const toStr = options?.toStr ?? defaultArgToString
  return (...args) => args.map((arg) => prefix + toStr(arg))
}

/** Checks the keys of a many-key method (`getMulti`, `deleteMulti`, `getOrCreateMulti`): an array of strings. */
export function assertKeyList(keys: unknown, method: string): asserts keys is readonly string[] {
  if (!Array.isArray(keys) || keys.some((key) => typeof key !== 'string')) {
    throw new ValidationError(`${method}(): keys must be an array of strings; got ${describeValue(keys)}`)
  }
}
