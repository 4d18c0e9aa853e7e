/**
 * The circuit breaker a region puts around a backend that lives outside the process (Redis, memcached): after
 * repeated failures it stops calling the backend for a cool-down, so a server that is down or frozen costs callers
 * nothing instead of a command timeout each, then probes it with a read of its own (half-open, in the background: no
 * caller waits for it) and closes again when that read succeeds.
 *
 * While it is open: reads miss (the creator runs, as when the server is down, but at once); writes, deletes,
 * counters and lock attempts fail at once with a `CircuitOpenError` (a `BackendError`), which the region reports as
 * it reports a failed write (`backendError`) or turns into the caller's `BackendError` (delete). A lock attempt that
 * fails makes the caller regenerate without the distributed lock, as when the server is unreachable. Releasing a lock
 * taken before the breaker opened is always attempted (the lock would otherwise stay held until it expires).
 * Invalidations go through the region's invalidator, not through the breaker: they still throw `BackendError` when
 * the server is down.
 */
import type { CacheBackend, CacheMutex } from './backends/api.js'
import { ProxyBackend } from './backends/proxy.js'
import { NO_VALUE, type CachedValue, type NoValue } from './cached-value.js'
import { describeValue } from './describe-value.js'
import { parseDuration, type Duration } from './durations.js'
import { BackendError, SerializationError, ValidationError } from './errors.js'
import { rejectUnknown } from './policy.js'
import type { CircuitState } from './telemetry/events.js'

/** `configure({ circuitBreaker })`. */
export interface CircuitBreakerOptions {
  /** Failures in a row (no success between them) that open the circuit. Default 5. */
  failures?: number
  /** Only failures within this long count towards `failures`. Default 10 s. */
  window?: Duration
  /** How long the circuit stays open before it probes the backend (a read of its own). Default 1 s. */
  coolDown?: Duration
}

export type { CircuitState }

export interface BreakerPolicy {
  readonly failures: number
  readonly windowMs: number
  readonly coolDownMs: number
}

export const DEFAULT_BREAKER: BreakerPolicy = Object.freeze({ failures: 5, windowMs: 10_000, coolDownMs: 1000 })

/** What the breaker reads to probe a backend whose circuit is open (a reserved key: normally absent). */
const PROBE_KEY = 'corral:circuit-probe'

/** A call refused because the circuit is open: the backend was not asked. */
export class CircuitOpenError extends BackendError {}

/** The policy `configure()` asked for: the defaults when not given, `undefined` for `false`. */
export function parseCircuitBreaker(value: unknown, where: string): BreakerPolicy | undefined {
  if (value === undefined) return DEFAULT_BREAKER
  if (value === false) return undefined
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ValidationError(
      `${where}: circuitBreaker must be { failures?, window?, coolDown? } or false; got ${describeValue(value)}`,
    )
  }
  rejectUnknown(value, ['failures', 'window', 'coolDown'], `${where}: circuitBreaker`)
  const { failures, window, coolDown } = value as CircuitBreakerOptions
  if (failures !== undefined && !(Number.isInteger(failures) && failures >= 1)) {
    throw new ValidationError(
      `${where}: circuitBreaker.failures must be a whole number of at least 1; got ${describeValue(failures)}`,
    )
  }
  const positiveMs = (name: string, given: unknown, fallback: number) => {
    if (given === undefined) return fallback
    const seconds = parseDuration(given, `${where}: circuitBreaker.${name}`)
    if (seconds <= 0)
      throw new ValidationError(
        `${where}: circuitBreaker.${name} must be greater than zero; got ${describeValue(given)}`,
      )
    return seconds * 1000
  }
  return {
    failures: failures ?? DEFAULT_BREAKER.failures,
    windowMs: positiveMs('window', window, DEFAULT_BREAKER.windowMs),
    coolDownMs: positiveMs('coolDown', coolDown, DEFAULT_BREAKER.coolDownMs),
  }
}

/** Whether a call goes to the backend, or is skipped because the circuit is open (or probing). */
type Admission = 'pass' | 'skip'

/**
 * The state machine, apart from any backend. Times are `performance.now()` milliseconds.
 *
 * The probe is the breaker's own call (`probe`, a read of a reserved key), started in the background by the first
 * call after the cool-down: no caller ever waits for a probe, and every caller sees the same state until the probe
 * answers (a caller's call as the probe would be slow while the others skipped, so callers of one key that arrive
 * together could see different states and run the creator twice).
 */
export class CircuitBreaker {
  #state: CircuitState = 'closed'
  /** when each failure in the current run of failures happened */
  #failures: number[] = []
  #openedAt = 0
  /** when the probe in flight started (undefined: none) */
  #probeSince: number | undefined

  constructor(
    readonly policy: BreakerPolicy,
    private readonly onState: (state: CircuitState) => void,
    private readonly probe: () => Promise<unknown>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get state(): CircuitState {
    return this.#state
  }

  admit(): Admission {
    if (this.#state === 'closed') return 'pass'
    const now = this.now()
    if (this.#state === 'open' && now - this.#openedAt < this.policy.coolDownMs) return 'skip'
    // Cooled down (or a probe that has not answered within a cool-down counts as lost): probe, and skip meanwhile.
    if (this.#probeSince === undefined || now - this.#probeSince >= this.policy.coolDownMs) this.#startProbe(now)
    return 'skip'
  }

  succeeded(): void {
    if (this.#state === 'closed') this.#failures = []
  }

  failed(): void {
    // Stragglers that went out before the circuit opened change nothing once it is open or probing.
    if (this.#state !== 'closed') return
    const now = this.now()
    this.#failures = this.#failures.filter((at) => now - at <= this.policy.windowMs)
    this.#failures.push(now)
    if (this.#failures.length >= this.policy.failures) this.#open(now)
  }

  #startProbe(now: number): void {
    const since = now
    this.#probeSince = since
    this.#set('half-open')
    const settle = (ok: boolean) => {
      // A probe given up as lost (another one started since) decides nothing.
      if (this.#probeSince !== since) return
      this.#probeSince = undefined
      if (ok) {
        this.#failures = []
        this.#set('closed')
      } else {
        this.#open(this.now())
      }
    }
    let probing: Promise<unknown>
    try {
      probing = this.probe()
    } catch (error) {
      probing = Promise.reject(error)
    }
    probing.then(
      () => settle(true),
      () => settle(false),
    )
  }

  #open(now: number): void {
    this.#failures = []
    this.#openedAt = now
    this.#set('open')
  }

  #set(state: CircuitState): void {
    if (state === this.#state) return
    this.#state = state
    this.onState(state)
  }
}

/**
 * A backend behind a circuit breaker: what the region calls (behind its L1, if any); `region.backend` still returns
 * the configured backend. `increment` and `setMultiWithTtl` exist only when the backend has them, so the region's
 * feature checks see what the real backend can do.
 */
class CircuitBreakerBackend extends ProxyBackend {
  readonly breaker: CircuitBreaker
  readonly increment?: CacheBackend['increment']
  readonly setMultiWithTtl?: CacheBackend['setMultiWithTtl']
  readonly #refuseSet: () => never
  readonly #refuseDelete: () => never

  /**
   * A `ProxyBackend` (its `proxied` is the backend behind the breaker), so that what looks through proxies (span
   * attributes, the L1 tier's choice of bus) sees the real backend.
   */
  constructor(proxied: CacheBackend, policy: BreakerPolicy, onState: (state: CircuitState) => void) {
    super()
    this.wrap(proxied)
    this.breaker = new CircuitBreaker(policy, onState, () => proxied.get(PROBE_KEY))
    const refuse = (operation: string) => (): never => {
      throw new CircuitOpenError(
        `${proxied.name}: ${operation} skipped: the circuit breaker is open after repeated failures (it probes again after ${policy.coolDownMs / 1000}s)`,
      )
    }
    if (proxied.increment) {
      const increment = proxied.increment.bind(proxied)
      this.increment = (key, by, ttl) => this.#guard(() => increment(key, by, ttl), refuse('increment'))
    }
    if (proxied.setMultiWithTtl) {
      const write = proxied.setMultiWithTtl.bind(proxied)
      this.setMultiWithTtl = (entries, ttl) => this.#guard(() => write(entries, ttl), refuse('setMultiWithTtl'))
    }
    this.#refuseSet = refuse('set')
    this.#refuseDelete = refuse('delete')
  }

  override get(key: string): Promise<CachedValue | NoValue> {
    return this.#guard(
      () => this.proxied.get(key),
      () => NO_VALUE,
    )
  }
  override getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    return this.#guard(
      () => this.proxied.getMulti(keys),
      () => keys.map(() => NO_VALUE),
    )
  }
  override set(key: string, value: CachedValue): Promise<void> {
    return this.#guard(() => this.proxied.set(key, value), this.#refuseSet)
  }
  override setIfNotNewer(key: string, value: CachedValue, since: number): Promise<boolean> {
    const proxied = this.proxied
    // Without a fence of its own the backend stores plainly, as the region would.
    const write = proxied.setIfNotNewer
      ? () => proxied.setIfNotNewer!(key, value, since)
      : () => proxied.set(key, value).then(() => true)
    return this.#guard(write, this.#refuseSet)
  }
  override getMutex(key: string): CacheMutex | undefined {
    const mutex = this.proxied.getMutex?.(key)
    return mutex === undefined ? undefined : this.#guardMutex(mutex)
  }
  override setMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    return this.#guard(() => this.proxied.setMulti(entries), this.#refuseSet)
  }
  override delete(key: string): Promise<void> {
    return this.#guard(() => this.proxied.delete(key), this.#refuseDelete)
  }
  override deleteMulti(keys: readonly string[]): Promise<void> {
    return this.#guard(() => this.proxied.deleteMulti(keys), this.#refuseDelete)
  }

  /** Runs `call` unless the circuit is open (then `skipped` answers), and tells the breaker how it went. */
  async #guard<T>(call: () => Promise<T>, skipped: () => T): Promise<T> {
    if (this.breaker.admit() === 'skip') return skipped()
    let result: T
    try {
      result = await call()
    } catch (error) {
      // A value the serializer refused never reached the server: it says nothing about the backend.
      if (!(error instanceof SerializationError)) this.breaker.failed()
      throw error
    }
    this.breaker.succeeded()
    return result
  }

  #guardMutex(mutex: CacheMutex): CacheMutex {
    const refuse = (): never => {
      throw new CircuitOpenError(
        `${this.proxied.name}: lock skipped: the circuit breaker is open after repeated failures (the caller regenerates without the distributed lock)`,
      )
    }
    return {
      acquire: (options) => this.#guard(() => mutex.acquire(options), refuse),
      locked: () => this.#guard(() => mutex.locked(), refuse),
      // Always attempted: a lock taken before the circuit opened would otherwise stay held until it expires.
      release: async (store) => {
        try {
          const stored = await mutex.release(store)
          this.breaker.succeeded()
          return stored
        } catch (error) {
          if (!(error instanceof SerializationError)) this.breaker.failed()
          throw error
        }
      },
    }
  }
}

/** `inner` behind a breaker when the policy asks for one and the backend lives outside the process. */
export function guardBackend(
  inner: CacheBackend,
  policy: BreakerPolicy | undefined,
  onState: (state: CircuitState) => void,
): CacheBackend {
  // A backend with a synchronous read lives in this process (memory, null): nothing to break, and its hit path
  // must keep its synchronous read.
  if (policy === undefined || inner.getSync !== undefined) return inner
  return new CircuitBreakerBackend(inner, policy, onState)
}
