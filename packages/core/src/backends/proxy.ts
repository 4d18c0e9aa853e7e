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
  delete(key: string): Promise<void> {
    return this.proxied.delete(key)
  }
  deleteMulti(keys: readonly string[]): Promise<void> {
    return this.proxied.deleteMulti(keys)
  }
  getMutex(key: string): CacheMutex | undefined {
    return this.proxied.getMutex?.(key)
  }
  createInvalidator(regionName: string): RegionInvalidator | undefined {
    return this.proxied.createInvalidator?.(regionName)
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
