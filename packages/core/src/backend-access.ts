import type { CacheBackend } from './backends/api.js'
import { NO_VALUE, type CachedValue, type NoValue } from './cached-value.js'
import { BackendError, CorralError, SerializationError } from './errors.js'
import type { BackendSpans } from './telemetry/backend-spans.js'
import type { Tier } from './telemetry/events.js'
import type { RegionTracing } from './telemetry/tracing.js'

/**
 * How a region talks to its backend, with one failure policy: reads never fail (a failing backend is reported
 * and reads as a miss, so the creator still runs), value writes report and go on (the caller still gets the value
 * it created), and deletes and invalidations report and throw `BackendError` (they must not fail silently). A value
 * the serializer cannot encode is always the caller's `SerializationError`.
 *
 * With `telemetry: { backendSpans: true }`, each round trip is a CLIENT span (see `BackendSpans`), which records
 * a failure before this policy handles it.
 */
export class BackendAccess {
  readonly #spans: BackendSpans | undefined

  constructor(
    private readonly regionName: string,
    private readonly reportError: (operation: string, error: unknown) => void,
    private readonly tracing?: RegionTracing,
  ) {
    this.#spans = tracing?.backend
  }

  /** One round trip, inside its CLIENT span when the region asked for them and an SDK is registered. */
  #call<T>(
    backend: CacheBackend,
    operation: string,
    keys: string | readonly string[] | undefined,
    run: () => Promise<T>,
  ): Promise<T> {
    return this.tracing!.enabled ? this.#spans!.around(backend, operation, keys, run) : run()
  }

  async read(backend: CacheBackend, storeKey: string): Promise<CachedValue | NoValue> {
    try {
      return await (this.#spans === undefined
        ? backend.get(storeKey)
        : this.#call(backend, 'get', storeKey, () => backend.get(storeKey)))
    } catch (error) {
      this.reportError('get', error)
      return NO_VALUE
    }
  }

  async readMulti(backend: CacheBackend, storeKeys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    if (storeKeys.length === 0) return []
    try {
      return await (this.#spans === undefined
        ? backend.getMulti(storeKeys)
        : this.#call(backend, 'getMulti', storeKeys, () => backend.getMulti(storeKeys)))
    } catch (error) {
      this.reportError('getMulti', error)
      return storeKeys.map(() => NO_VALUE)
    }
  }

  /**
   * Reads many keys from this process's memory first (`getSync`: the memory backend, a region's L1), then in one
   * `getMulti` the keys it did not know. `tiers[i]` tells where `values[i]` came from.
   */
  async readMultiThrough(
    backend: CacheBackend,
    storeKeys: readonly string[],
  ): Promise<{ values: Array<CachedValue | NoValue>; tiers: Tier[] }> {
    if (backend.getSync === undefined)
      return { values: await this.readMulti(backend, storeKeys), tiers: storeKeys.map(() => 'l2') }
    const values = new Array<CachedValue | NoValue>(storeKeys.length)
    const tiers = new Array<Tier>(storeKeys.length).fill('l1')
    const missing: number[] = []
    storeKeys.forEach((storeKey, i) => {
      const value = backend.getSync!(storeKey)
      if (value === undefined) missing.push(i)
      else values[i] = value
    })
    if (missing.length > 0) {
      const read = await this.readMulti(
        backend,
        missing.map((i) => storeKeys[i]!),
      )
      missing.forEach((i, j) => {
        values[i] = read[j] ?? NO_VALUE
        tiers[i] = 'l2'
      })
    }
    return { values, tiers }
  }

  async store(backend: CacheBackend, storeKey: string, value: CachedValue): Promise<void> {
    try {
      await (this.#spans === undefined
        ? backend.set(storeKey, value)
        : this.#call(backend, 'set', storeKey, () => backend.set(storeKey, value)))
    } catch (error) {
      if (error instanceof SerializationError) throw error
      this.reportError('set', error)
    }
  }

  /**
   * Stores `value` unless a value created after `since` is already there (a newer write won the race); backends
   * without `setIfNotNewer` store it plainly. Failures as `store`.
   */
  async storeIfNotNewer(backend: CacheBackend, storeKey: string, value: CachedValue, since: number): Promise<void> {
    try {
      if (this.#spans === undefined) {
        // The common case without a closure: a regeneration's store is on every miss.
        await (backend.setIfNotNewer ? backend.setIfNotNewer(storeKey, value, since) : backend.set(storeKey, value))
        return
      }
      const write = backend.setIfNotNewer
        ? async () => void (await backend.setIfNotNewer!(storeKey, value, since))
        : () => backend.set(storeKey, value)
      await this.#call(backend, 'set', storeKey, write)
    } catch (error) {
      if (error instanceof SerializationError) throw error
      this.reportError('set', error)
    }
  }

  async storeMulti(backend: CacheBackend, entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    try {
      await (this.#spans === undefined
        ? backend.setMulti(entries)
        : this.#call(
            backend,
            'setMulti',
            entries.map(([key]) => key),
            () => backend.setMulti(entries),
          ))
    } catch (error) {
      if (error instanceof SerializationError) throw error
      this.reportError('setMulti', error)
    }
  }

  /**
   * Deletes and invalidations: report, then throw a `BackendError` naming the operation. `backend` and `keys` name
   * the round trip's CLIENT span.
   */
  async write(
    operation: string,
    run: () => Promise<void>,
    backend?: CacheBackend,
    keys?: string | readonly string[],
  ): Promise<void> {
    try {
      await (this.#spans === undefined || backend === undefined ? run() : this.#call(backend, operation, keys, run))
    } catch (error) {
      if (error instanceof CorralError) throw error
      this.reportError(operation, error)
      throw new BackendError(
        `region "${this.regionName}": ${operation} failed: ${(error as Error)?.message ?? error}`,
        {
          cause: error,
        },
      )
    }
  }
}
