/**
 * `@corral/core/memcached`: the memcached backend (memjs). Its own entry point, so that the types of
 * `@corral/core` never refer to memjs. `configure('memcached', ...)` works without importing it.
 */
export { MemcachedBackend, type MemcachedBackendOptions } from './backend.js'
