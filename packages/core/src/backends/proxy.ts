import type { CachedValue, NoValue } from '../cached-value.js'
import type { KeyMangler } from '../keys.js'
import type { BackendContext, CacheBackend, CacheMutex, RegionInvalidator } from './api.js'

/**
 * dogpile.cache's ProxyBackend: a backend that sits in front of another and passes every call through, so that a
 * subclass overrides only what it changes (logging, retries, a fallback) and reaches the real backend as
 * `this.proxied`. `configure(backend, { wrap: [A, B] })` makes `A -> B -> backend`.
 *
 * A proxy has no `getSync`: a subclass that overrides `get` must see every read.
 */
export class ProxyBackend implements CacheBackend {
  #proxied: CacheBackend | undefined

  /** The wrapped backend. */
  get proxied(): CacheBackend {
    if (!this.#proxied)
      throw new Error(`${this.constructor.name} is not wrapping a backend yet: call wrap(backend) first`)
    return this.#proxied
  }

  /** Wraps `backend` and returns this proxy. */
  wrap(backend: CacheBackend): this {
    this.#proxied = backend
    return this
  }

  get name(): string {
    return this.proxied.name
  }
  get keyMangler(): KeyMangler | undefined {
    return this.proxied.keyMangler
  }
  get coalesce(): boolean | undefined {
    return this.proxied.coalesce
  }
  get lockTimeoutMs(): number | undefined {
    return this.proxied.lockTimeoutMs
  }

  get(key: string): Promise<CachedValue | NoValue> {
    return this.proxied.get(key)
  }
  getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    return this.proxied.getMulti(keys)
  }
  set(key: string, value: CachedValue): Promise<void> {
    return this.proxied.set(key, value)
  }
  setMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    return this.proxied.setMulti(entries)
  }
  setIfNotNewer(key: string, value: CachedValue, since: number): Promise<boolean> {
    const proxied = this.proxied
    // A subclass that overrides set() must see this write too (at the price of the fence).
    if (this.#overridesSet() || !proxied.setIfNotNewer) return this.set(key, value).then(() => true)
    return proxied.setIfNotNewer(key, value, since)
  }
  delete(key: string): Promise<void> {
    return this.proxied.delete(key)
  }
  deleteMulti(keys: readonly string[]): Promise<void> {
    return this.proxied.deleteMulti(keys)
  }
  getMutex(key: string): CacheMutex | undefined {
    const mutex = this.proxied.getMutex?.(key)
    if (!mutex || !(this.#overridesSet() || this.setIfNotNewer !== ProxyBackend.prototype.setIfNotNewer)) return mutex
    // The lock's release would store straight into the wrapped backend: store through this proxy instead.
    return {
      acquire: (options) => mutex.acquire(options),
      locked: () => mutex.locked(),
      release: async (store) => {
        if (!store) return mutex.release()
        const stored = await this.setIfNotNewer(key, store.value, store.since)
        await mutex.release()
        return stored
      },
    }
  }
  createInvalidator(regionName: string): RegionInvalidator | undefined {
    return this.proxied.createInvalidator?.(regionName)
  }
  #overridesSet(): boolean {
    return this.set !== ProxyBackend.prototype.set
  }
  attach(context: BackendContext): void {
    this.proxied.attach?.(context)
  }
  count(): number {
    return this.proxied.count?.() ?? Number.NaN
  }
  async close(): Promise<void> {
    await this.proxied.close?.()
  }
}
