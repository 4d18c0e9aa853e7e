import { Redis } from 'ioredis'
import { afterAll, beforeAll } from 'vitest'
import type { ConformanceInstance, ControlledServer } from '../packages/core/src/testing/conformance.js'
import { commandStats, resetCommandStats, startRedis, type RedisServer } from './servers.js'

/** The redis-server of one test file, and a plain client on it to look at what the tests did. */
export interface RedisSuite {
  readonly server: RedisServer
  readonly raw: Redis
  /** Commands the server executed while `work` ran (INFO commandstats), without the reset and read themselves. */
  commandsDuring(work: () => Promise<unknown>): Promise<Record<string, number>>
}

/**
 * Starts a redis-server before the file's tests (on a free loopback port) with a plain ioredis client on it, and
 * stops both after them. Call it at the top level of a test file; read `server` and `raw` inside the tests.
 */
export function redisSuite(): RedisSuite {
  let server: RedisServer | undefined
  let raw: Redis | undefined
  beforeAll(async () => {
    server = await startRedis()
    raw = new Redis(server.url)
  })
  afterAll(async () => {
    raw?.disconnect()
    await server?.stop()
  })
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('redisSuite(): the server starts in beforeAll; read it inside a test')
    return value
  }
  return {
    get server() {
      return started(server)
    },
    get raw() {
      return started(raw)
    },
    async commandsDuring(work) {
      const target = started(server)
      await resetCommandStats(target)
      await work()
      return await commandStats(target)
    },
  }
}

/**
 * A redis-server of the conformance fault tests' own (`ConformanceOptions.faults.startServer`): `create` makes a
 * backend on it (with `keyPrefix`, as another process would use it); locks are held by hand under that prefix.
 */
export async function startControlledRedis(
  keyPrefix: string,
  create: (url: string, keyPrefix: string, args?: Record<string, unknown>) => Promise<ConformanceInstance>,
): Promise<ControlledServer> {
  const own = await startRedis()
  const control = new Redis(own.url, { lazyConnect: true })
  control.on('error', () => {}) // it reconnects by itself after the server's restarts
  return {
    control: own,
    create: (args) => create(own.url, keyPrefix, args),
    holdLock: async (key, ttlMs) => {
      await control.set(`${keyPrefix}corral:lock:${key}`, 'someone else', 'PX', ttlMs)
    },
    close: async () => {
      control.disconnect()
      await own.stop()
    },
  }
}
