/**
 * Real-server test harness: starts redis-server (standalone, cluster, sentinel), memcached and
 * prometheus on free loopback ports, waits until they answer, and stops them again.
 *
 * Guarantees:
 * - Never skips: a missing binary fails with the exact `apt-get install` command.
 * - Parallel-safe: every server gets a fresh free port and its own temp dir; a start that loses a
 *   port race with another process (EADDRINUSE) is retried on a new port.
 * - Nothing outlives the test process: children are killed from `exit`/signal handlers, and a tiny
 *   detached watchdog process SIGKILLs them (and removes their temp dirs) if the test process dies
 *   without running its handlers (e.g. it is SIGKILLed by a timeout).
 * - `stop()` is idempotent and removes the server's temp dir.
 *
 * One file per section under servers/: binaries and ports, processes (supervision, the watchdog), the RESP
 * client, Redis, Cluster, Sentinel, memcached, Prometheus. Import from here.
 */
export { MissingBinaryError, requireBinary } from './servers/binaries.js'
export { LOOPBACK, freeClusterPort, freePort, isPortFree, type HostPort } from './servers/ports.js'
export { ServerStartError } from './servers/processes.js'
export { RespError, parseInfo, redisCommand, respPipeline, type RespValue } from './servers/resp.js'
export {
  commandStats,
  resetCommandStats,
  startRedis,
  type RedisServer,
  UNCOUNTED_COMMANDS,
  type StartRedisOptions,
} from './servers/redis.js'
export { startRedisCluster, type RedisCluster, type StartRedisClusterOptions } from './servers/cluster.js'
export { startRedisSentinel, type RedisSentinel, type StartRedisSentinelOptions } from './servers/sentinel.js'
export { startMemcached, type MemcachedServer, type StartMemcachedOptions } from './servers/memcached.js'
export {
  promtoolCheckMetrics,
  startPrometheus,
  type PromSample,
  type PromTarget,
  type PrometheusServer,
  type StartPrometheusOptions,
} from './servers/prometheus.js'
