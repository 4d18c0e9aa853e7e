import { PluginNotFoundError, ValidationError } from '../errors.js'
import type { BackendFactory, CacheBackend } from './api.js'
import { FileBackend, type FileBackendOptions } from './file/backend.js'
import { MemcachedBackend } from './memcached/backend.js'
import { MemoryBackend } from './memory.js'
import { NullBackend } from './null.js'
import { RedisBackend } from './redis/backend.js'

/**
 * Backends by name, as dogpile.cache's plugin registry. Factories are synchronous so that `configure()` can stay
 * synchronous; backends whose client libraries are optional (ioredis, memjs, lmdb) load them only when created.
 */
const factories = new Map<string, BackendFactory>([
  ['memory', (args) => new MemoryBackend(args)],
  ['null', (args) => new NullBackend(args)],
  ['redis', (args) => new RedisBackend(args)],
  ['memcached', (args) => new MemcachedBackend(args)],
  ['file', (args) => new FileBackend(args as unknown as FileBackendOptions)],
])

/** Makes `name` usable in `region.configure(name, ...)`. Registering a name again replaces its factory. */
export function registerBackend(name: string, factory: BackendFactory): void {
  if (typeof name !== 'string' || name.trim() === '')
    throw new ValidationError('registerBackend: the name must be a non-empty string')
  if (typeof factory !== 'function')
    throw new ValidationError(`registerBackend("${name}"): the factory must be a function (arguments) => CacheBackend`)
  factories.set(name, factory)
}

export function registeredBackends(): string[] {
  return [...factories.keys()]
}

/** What `createBackend` checks a factory's result for, so a broken plugin fails at configure time. */
const BACKEND_METHODS = ['get', 'getMulti', 'set', 'setMulti', 'delete', 'deleteMulti'] as const

export function createBackend(name: string, args: Record<string, unknown>): CacheBackend {
  const factory = factories.get(name)
  if (!factory) {
    throw new PluginNotFoundError(
      `no backend named "${name}"; registered backends: ${registeredBackends().join(', ')} (add one with registerBackend(name, factory))`,
    )
  }
  const backend = factory(args)
  const missing = BACKEND_METHODS.filter(
    (method) => typeof (backend as unknown as Record<string, unknown> | null)?.[method] !== 'function',
  )
  if (missing.length > 0) {
    throw new ValidationError(
      `the factory registered for backend "${name}" did not return a CacheBackend (missing ${missing.join(', ')})`,
    )
  }
  return backend
}
