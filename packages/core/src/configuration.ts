/**
 * What `configure()` and `configureFromConfig()` read and build before they change anything: the backend the
 * region will call (a registered backend created from its arguments, or an instance, behind the proxies of `wrap`,
 * the circuit breaker and the L1) and dogpile.cache's flat configuration maps. Failing here leaves the region as it
 * was.
 */
import type { CacheBackend } from './backends/api.js'
import { createBackend } from './backends/plugins.js'
import { ProxyBackend } from './backends/proxy.js'
import { parseL1Options, withL1 } from './backends/tier/configure.js'
import type { TierObserver } from './backends/tier/tiered-backend.js'
import { guardBackend, parseCircuitBreaker } from './circuit-breaker.js'
import { describeValue } from './describe-value.js'
import { ValidationError } from './errors.js'
import type { ConfigureOptions, WrapEntry } from './region-options.js'
import type { CircuitState } from './telemetry/events.js'

/** The backend `configure()` gives the region, with what the region needs to know of it. */
export interface BackendAssembly {
  /** what the region calls: the chain of `wrap`, behind its circuit breaker, behind the L1 (each when there is one) */
  readonly instance: CacheBackend
  /** what `region.backend` answers: the chain the user configured (the L1 in front of it), never the breaker */
  readonly configured: CacheBackend
  /** the region created `instance`, so it closes it (a backend instance the user passed is never closed) */
  readonly owned: boolean
  /** the name of the backend the circuit breaker guards; undefined when there is no breaker */
  readonly guarded: string | undefined
}

/** What `assembleBackend` reports to, and the region's clock for the L1 (undefined: the wall clock). */
export interface AssemblyContext {
  readonly regionName: string
  readonly clock: (() => number) | undefined
  /** closes a backend the assembly gives up on, in the background */
  readonly closeQuietly: (backend: CacheBackend) => void
  /** the circuit breaker changed state */
  readonly circuit: (backend: string, state: CircuitState) => void
  readonly l1: TierObserver
}

/**
 * Builds what `configure(backend, options)` gives the region, checking the `circuitBreaker` and `l1` options
 * first: the chain of `wrap`, the circuit breaker around it when the backend lives outside the process, and the L1
 * in front of everything (proxies included: its hits never reach the backend). Throws, having closed whatever it
 * created, when an option or the backend is wrong.
 */
export function assembleBackend(
  backend: string | CacheBackend,
  options: ConfigureOptions,
  context: AssemblyContext,
): BackendAssembly {
  const where = `region "${context.regionName}": configure()`
  const breaker = parseCircuitBreaker(options.circuitBreaker, where)
  const l1 = parseL1Options(options.l1, where)
  const chain = buildBackendChain(backend, options, context.closeQuietly)
  const configured = chain.instance
  // The circuit breaker goes around the backend that lives outside the process (behind the L1, if any).
  const guarded = guardBackend(configured, breaker, (state) => context.circuit(configured.name, state))
  const { instance, owned } =
    l1 === undefined
      ? { instance: guarded, owned: chain.owned }
      : withL1({ instance: guarded, owned: chain.owned }, l1, {
          regionName: context.regionName,
          observer: context.l1,
          ...(context.clock === undefined ? {} : { clock: context.clock }),
          closeQuietly: context.closeQuietly,
        })
  return {
    instance,
    configured: instance === guarded ? configured : instance,
    owned,
    guarded: guarded === configured ? undefined : configured.name,
  }
}

/**
 * The backend `configure()` gives the region: `A -> B -> backend` for `wrap: [A, B]`. `owned` when the region
 * created it (from a registered name), so the region closes it; an instance the user passed is never closed.
 */
function buildBackendChain(
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
 * The settings a flat configuration map may hold under a region's prefix (dogpile.cache's `configure_from_config`),
 * each with the `configure()` option it becomes. Values may be strings, as config files and environments give them:
 * numbers and booleans are converted, durations are read as `configure()` reads them.
 */
const FLAT_SETTINGS: Readonly<Record<string, { readonly option: readonly string[]; readonly kind: FlatKind }>> = {
  expiration_time: { option: ['expirationTime'], kind: 'duration' },
  soft_timeout: { option: ['softTimeout'], kind: 'duration' },
  hard_timeout: { option: ['hardTimeout'], kind: 'duration' },
  expiration_jitter: { option: ['expirationJitter'], kind: 'duration' },
  eager_refresh: { option: ['eagerRefresh'], kind: 'number' },
  'fail_safe.max_stale_age': { option: ['failSafe', 'maxStaleAge'], kind: 'duration' },
  'fail_safe.throttle': { option: ['failSafe', 'throttle'], kind: 'duration' },
  l1: { option: ['l1'], kind: 'boolean' },
  'l1.max_entries': { option: ['l1', 'maxEntries'], kind: 'number' },
  'l1.max_age': { option: ['l1', 'maxAge'], kind: 'duration' },
  'l1.bus': { option: ['l1', 'bus'], kind: 'string' },
  circuit_breaker: { option: ['circuitBreaker'], kind: 'boolean' },
  'circuit_breaker.failures': { option: ['circuitBreaker', 'failures'], kind: 'number' },
  'circuit_breaker.window': { option: ['circuitBreaker', 'window'], kind: 'duration' },
  'circuit_breaker.cool_down': { option: ['circuitBreaker', 'coolDown'], kind: 'duration' },
}
type FlatKind = 'duration' | 'number' | 'boolean' | 'string'

/**
 * Reads dogpile.cache's flat configuration map: `${prefix}backend`, `${prefix}arguments.<name>` (the backend's
 * arguments, converted by its own checks) and the region settings of `FLAT_SETTINGS` under the prefix. Any other key
 * under the prefix is a `ValidationError` naming the valid ones: a misspelt setting must fail, not be ignored. Keys
 * outside the prefix (other regions', other programs') are left alone.
 */
export function fromFlatConfig(
  config: Record<string, unknown>,
  prefix: string,
): { backend: string; options: ConfigureOptions } {
  const where = 'configureFromConfig()'
  if (config === null || typeof config !== 'object')
    throw new ValidationError(`${where}: config must be an object; got ${describeValue(config)}`)
  const backend = config[`${prefix}backend`]
  if (typeof backend !== 'string' || backend === '') {
    throw new ValidationError(`${where}: "${prefix}backend" is missing or not a string`)
  }
  const args: Record<string, unknown> = {}
  const options: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(config)) {
    if (!key.startsWith(prefix)) continue
    const name = key.slice(prefix.length)
    if (name === 'backend') continue
    if (name.startsWith('arguments.')) {
      args[name.slice('arguments.'.length)] = value
      continue
    }
    const setting = FLAT_SETTINGS[name]
    if (setting === undefined) {
      const valid = ['backend', 'arguments.<name>', ...Object.keys(FLAT_SETTINGS)].map((n) => prefix + n)
      throw new ValidationError(`${where}: unknown setting "${key}"; the settings are ${valid.join(', ')}`)
    }
    // An empty value is an unset one, as an environment variable set to nothing is.
    if (value === '' || value === undefined) continue
    setOption(options, setting.option, flatValue(key, setting.kind, value))
  }
  return { backend, options: { ...(options as ConfigureOptions), arguments: args } }
}

function flatValue(key: string, kind: FlatKind, value: unknown): unknown {
  if (typeof value !== 'string' || kind === 'duration' || kind === 'string') return value
  if (kind === 'boolean') {
    if (value === 'true') return true
    if (value === 'false') return false
    throw new ValidationError(`configureFromConfig(): "${key}" must be true or false; got ${describeValue(value)}`)
  }
  const number = value.trim() === '' ? Number.NaN : Number(value)
  if (Number.isNaN(number))
    throw new ValidationError(`configureFromConfig(): "${key}" must be a number; got ${describeValue(value)}`)
  return number
}

/** Sets `options.a.b` for the path `['a', 'b']`; `l1: true` followed by `l1.max_entries` keeps the latter. */
function setOption(options: Record<string, unknown>, path: readonly string[], value: unknown): void {
  const [head, ...rest] = path as [string, ...string[]]
  if (rest.length === 0) {
    // `l1 = true` (or `circuit_breaker = true`) next to sub-settings adds nothing to them.
    if (value === true && typeof options[head] === 'object') return
    options[head] = value
    return
  }
  const current = options[head]
  // `l1 = false` (or `circuit_breaker = false`) wins over sub-settings given with it.
  if (current === false) return
  const nested = typeof current === 'object' && current !== null ? (current as Record<string, unknown>) : {}
  options[head] = nested
  setOption(nested, rest, value)
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
