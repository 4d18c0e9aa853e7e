/**
 * What `configure()` and `configureFromConfig()` read before they change anything: the backend chain (a
 * registered backend created from its arguments, or an instance, behind the proxies of `wrap`) and dogpile.cache's
 * flat configuration maps. Failing here leaves the region as it was.
 */
import type { CacheBackend } from './backends/api.js'
import { createBackend } from './backends/plugins.js'
import { ProxyBackend } from './backends/proxy.js'
import { describeValue } from './describe-value.js'
import type { Duration } from './durations.js'
import { ValidationError } from './errors.js'
import type { ConfigureOptions, WrapEntry } from './region-options.js'

/**
 * The backend `configure()` gives the region: `A -> B -> backend` for `wrap: [A, B]`. `owned` when the region
 * created it (from a registered name), so the region closes it; an instance the user passed is never closed.
 */
export function buildBackendChain(
  backend: string | CacheBackend,
  options: ConfigureOptions,
  closeQuietly: (backend: CacheBackend) => void,
): { instance: CacheBackend; owned: boolean } {
  const owned = typeof backend === 'string'
  let instance: CacheBackend
  if (owned) {
    instance = createBackend(backend, options.arguments ?? {})
  } else if (isBackend(backend)) {
    instance = backend
  } else {
    throw new ValidationError(
      `configure(): the backend must be a registered name or a CacheBackend instance; got ${describeValue(backend)}`,
    )
  }
  try {
    for (const entry of [...(options.wrap ?? [])].reverse()) instance = toProxy(entry).wrap(instance)
  } catch (error) {
    if (owned) closeQuietly(instance)
    throw error
  }
  return { instance, owned }
}

/**
 * Reads dogpile.cache's flat configuration (`configure_from_config`): `${prefix}backend`,
 * `${prefix}expiration_time` and every `${prefix}arguments.<name>`. Numbers and booleans given as strings are
 * converted later, by the backend's argument checks.
 */
export function fromFlatConfig(
  config: Record<string, unknown>,
  prefix: string,
): { backend: string; options: ConfigureOptions } {
  if (config === null || typeof config !== 'object')
    throw new ValidationError(`configureFromConfig(): config must be an object; got ${describeValue(config)}`)
  const backend = config[`${prefix}backend`]
  if (typeof backend !== 'string' || backend === '') {
    throw new ValidationError(`configureFromConfig(): "${prefix}backend" is missing or not a string`)
  }
  const args: Record<string, unknown> = {}
  const argumentPrefix = `${prefix}arguments.`
  for (const [key, value] of Object.entries(config)) {
    if (key.startsWith(argumentPrefix)) args[key.slice(argumentPrefix.length)] = value
  }
  const expiration = config[`${prefix}expiration_time`]
  return {
    backend,
    options: {
      ...(expiration !== undefined && expiration !== '' ? { expirationTime: expiration as Duration } : {}),
      arguments: args,
    },
  }
}

function isBackend(value: unknown): value is CacheBackend {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as CacheBackend).get === 'function' &&
    typeof (value as CacheBackend).set === 'function'
  )
}

function toProxy(entry: WrapEntry): ProxyBackend {
  if (entry instanceof ProxyBackend) return entry
  if (typeof entry === 'function' && (entry === ProxyBackend || entry.prototype instanceof ProxyBackend))
    return new entry()
  throw new ValidationError(
    `configure(): every wrap entry must be a ProxyBackend subclass or instance; got ${describeValue(entry)}`,
  )
}
