/**
 * A backend written as a third party would write it: against the public exports only (`@corral/core` and
 * `@corral/core/testing`, no relative import), checked by the conformance suite every built-in backend runs. It
 * keeps encoded values in a Map, as a backend for a key-value store keeps them on its server. The README's
 * "Writing a backend" example is this file.
 */
import {
  NO_VALUE,
  decodeCachedValue,
  encodeCachedValue,
  jsonSerializer,
  type BackendContext,
  type CacheBackend,
  type CachedValue,
  type NoValue,
  type Serializer,
} from '@corral/core'
import { describeBackendConformance } from '@corral/core/testing'

class MapBackend implements CacheBackend {
  readonly name = 'map'
  #serializer: Serializer = jsonSerializer

  constructor(readonly store = new Map<string, Uint8Array>()) {}

  /** A region tells its backend how to encode values. */
  attach(context: BackendContext): void {
    this.#serializer = context.serializer
  }

  async get(key: string): Promise<CachedValue | NoValue> {
    const bytes = this.store.get(key)
    return bytes === undefined ? NO_VALUE : decodeCachedValue(bytes, this.#serializer)
  }

  async getMulti(keys: readonly string[]): Promise<Array<CachedValue | NoValue>> {
    return Promise.all(keys.map((key) => this.get(key)))
  }

  async set(key: string, value: CachedValue): Promise<void> {
    this.store.set(key, encodeCachedValue(value, this.#serializer))
  }

  async setMulti(entries: ReadonlyArray<readonly [string, CachedValue]>): Promise<void> {
    // Encode everything first: a value that cannot be serialized stores nothing.
    const encoded = entries.map(([key, value]) => [key, encodeCachedValue(value, this.#serializer)] as const)
    for (const [key, bytes] of encoded) this.store.set(key, bytes)
  }

  async delete(key: string): Promise<void> {
    this.store.delete(key)
  }

  async deleteMulti(keys: readonly string[]): Promise<void> {
    for (const key of keys) this.store.delete(key)
  }
}

const store = new Map<string, Uint8Array>()

describeBackendConformance('third-party map', {
  create: async () => ({ backend: new MapBackend(store) }),
  capabilities: { stores: true, distributedLock: false, bytes: true },
  writeRaw: async (key, bytes) => {
    store.set(key, bytes)
  },
})
