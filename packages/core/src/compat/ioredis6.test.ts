/**
 * ioredis 6 (the `ioredis6` alias of the dev dependencies; the workspace's `ioredis` is 5): the Redis backend's
 * conformance suite, fault tests included, on clients made by ioredis 6 and passed as `client`, against a real
 * redis-server. With ioredis 5's run in backends/redis/redis.test.ts, this is what the peer range
 * `^5.4.0 || ^6.0.0` stands on.
 */
import { createRequire } from 'node:module'
import { Redis, type RedisOptions } from 'ioredis6'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startControlledRedis } from '../../../../test-support/redis-suite.js'
import { startRedis, type RedisServer } from '../../../../test-support/servers.js'
import { RegionRegistry } from '../index.js'
import { RedisBackend, type RedisBackendOptions } from '../backends/redis/index.js'
import { describeBackendConformance, type ConformanceInstance } from '../testing/index.js'

const version = (createRequire(import.meta.url)('ioredis6/package.json') as { version: string }).version

let server: RedisServer
let raw: Redis

beforeAll(async () => {
  server = await startRedis()
  raw = new Redis(server.url)
})
afterAll(async () => {
  raw?.disconnect()
  await server?.stop()
})

/**
 * A client as an application would configure one for a cache: commands do not wait for a server that is away
 * (Corral's own clients are made the same way), with the backend's `commandTimeout` when the suite sets one.
 */
function client(url: string, args: Record<string, unknown> = {}): Redis {
  const commandTimeout = typeof args.commandTimeout === 'number' ? args.commandTimeout * 1000 : 1000
  const options: RedisOptions = {
    maxRetriesPerRequest: 1,
    commandTimeout,
    connectTimeout: Math.max(1000, commandTimeout),
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 1000),
  }
  const made = new Redis(url, options)
  made.on('error', () => {}) // reported through the backend's own listener
  return made
}

/**
 * Our types name the `ioredis` this repository installs (5); an application with only ioredis 6 installed gets 6's
 * types there. Here both are installed side by side, so the 6 client is presented as the option's type.
 */
function asClient(own: unknown): RedisBackendOptions['client'] {
  return own as RedisBackendOptions['client']
}

async function backendOn(url: string, keyPrefix: string, args?: Record<string, unknown>): Promise<ConformanceInstance> {
  const own = client(url, args)
  return {
    backend: new RedisBackend({ ...args, client: asClient(own), keyPrefix }),
    cleanup: async () => own.disconnect(),
  }
}

describe(`ioredis ${version}`, () => {
  it('is the major version the peer range adds', () => {
    expect(version.split('.')[0]).toBe('6')
  })

  it('a region on an ioredis 6 client: the lock, reads and writes', async () => {
    const own = client(server.url)
    try {
      const region = new RegionRegistry()
        .createRegion({ name: 'ioredis6' })
        .configure(new RedisBackend({ client: asClient(own), keyPrefix: 'v6:' }), { expirationTime: 60 })
      let calls = 0
      const values = await Promise.all(
        Array.from({ length: 20 }, () =>
          region.getOrCreate('k', async () => {
            calls++
            await new Promise((resolve) => setTimeout(resolve, 20))
            return 'v'
          }),
        ),
      )
      expect(new Set(values)).toEqual(new Set(['v']))
      expect(calls).toBe(1)
      expect(await raw.exists('v6:k')).toBe(1)
      await region.close()
      expect(own.status).toBe('ready') // a client the user passed is never closed by Corral
    } finally {
      own.disconnect()
    }
  })
})

describeBackendConformance('redis (ioredis 6 client)', {
  create: (args) => backendOn(server.url, 'conf6:', args),
  capabilities: { stores: true, distributedLock: true, bytes: true, sharedInvalidation: true, counters: true },
  writeRaw: async (key, bytes) => {
    await raw.set(`conf6:${key}`, bytes)
  },
  faults: {
    startServer: () => startControlledRedis('faults6:', backendOn),
    shortTimeouts: { commandTimeout: 0.2 },
  },
})
