import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisSentinel, type RedisSentinel } from '../../../../../test-support/servers.js'
import { RegionRegistry } from '../../registry.js'
import { describeBackendConformance } from '../../testing/conformance.js'
import { RedisBackend } from './index.js'

let sentinel: RedisSentinel
let raw: Redis

beforeAll(async () => {
  sentinel = await startRedisSentinel({ name: 'corral', replicas: 1, sentinels: 1 })
  raw = new Redis({ host: sentinel.master.host, port: sentinel.master.port })
})

afterAll(async () => {
  raw?.disconnect()
  await sentinel?.stop()
})

describeBackendConformance('redis sentinel', {
  create: async (args) => ({
    backend: new RedisBackend({ sentinels: sentinel.sentinels, name: sentinel.name, keyPrefix: 'conf:', ...args }),
  }),
  capabilities: { stores: true, distributedLock: true, bytes: true, sharedInvalidation: true, counters: true },
  writeRaw: async (key, bytes) => {
    await raw.set(`conf:${key}`, bytes)
  },
  writeForeignLock: async (key, ttlMs) => {
    const lockKey = `conf:corral:lock:${key}`
    await (ttlMs === undefined ? raw.set(lockKey, 'held by hand') : raw.set(lockKey, 'held by hand', 'PX', ttlMs))
  },
})

describe('redis backend through sentinels', () => {
  it('finds the master through the sentinels (configured by name, sentinels as a string)', async () => {
    const region = new RegionRegistry().createRegion({ name: 'sentinel-region' }).configureFromConfig(
      {
        'cache.backend': 'redis',
        'cache.expiration_time': '60',
        'cache.arguments.sentinels': sentinel.sentinels.map(({ host, port }) => `${host}:${port}`).join(','),
        'cache.arguments.name': sentinel.name,
        'cache.arguments.keyPrefix': 'sent:',
        'cache.arguments.lockTimeout': '5s',
      },
      'cache.',
    )
    expect(await region.getOrCreate('k', () => 'through sentinel')).toBe('through sentinel')
    expect(await raw.get('sent:k')).toContain('through sentinel')
    expect((region.backend as RedisBackend).lockTimeoutMs).toBe(5000)
    await region.close()
  })
})
