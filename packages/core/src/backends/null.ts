import { NO_VALUE, type CachedValue, type NoValue } from '../cached-value.js'
import type { CacheBackend, CacheMutex } from './api.js'
import { readArguments } from './arguments.js'

const ALWAYS_FREE: CacheMutex = {
  acquire: async () => ({ acquired: true }),
  release: async () => false,
  locked: async () => false,
}

/**
 * Caching switched off: every read misses and every lock is granted at once, so each caller runs its creator
 * (as with dogpile.cache's `null` backend). Useful to disable a region in tests or by configuration.
 */
export class NullBackend implements CacheBackend {
  readonly name = 'null'
  /** Tells the region not to coalesce callers either: with caching off, every call runs its creator. */
  readonly coalesce = false

  constructor(args: Record<string, unknown> = {}) {
    readArguments('null', args, {})
  }

  getSync(): NoValue {
    return NO_VALUE
  }
  async get(): Promise<NoValue> {
    return NO_VALUE
  }
  async getMulti(keys: readonly string[]): Promise<NoValue[]> {
    return keys.map(() => NO_VALUE)
  }
  async set(_key: string, _value: CachedValue): Promise<void> {}
  async setMulti(): Promise<void> {}
  async delete(): Promise<void> {}
  async deleteMulti(): Promise<void> {}
  getMutex(): CacheMutex {
    return ALWAYS_FREE
  }
}
