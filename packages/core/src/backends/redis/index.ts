/**
 * `@corral/core/redis`: the Redis backend (ioredis: standalone, Sentinel, Cluster). Its own entry point, so that
 * the types of `@corral/core` never refer to ioredis. `configure('redis', ...)` works without importing it.
 */
export { RedisBackend, type RedisBackendOptions } from './backend.js'
