import { randomUUID } from 'node:crypto'
import { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisCluster, type RedisCluster } from '../../../../../test-support/servers.js'
import { CachedValue, NO_VALUE, jsonSerializer } from '../../cached-value.js'
import { RegionRegistry } from '../../registry.js'
import { describeBackendConformance, eventually } from '../../testing/conformance.js'
import { describeMultiProcess } from '../../testing/multiprocess.js'
import { RedisBackend } from './index.js'

let cluster: RedisCluster
let raw: Cluster

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3 })
  raw = new Cluster(cluster.nodes)
})

afterAll(async () => {
  raw?.disconnect()
  await cluster?.stop()
})

describeBackendConformance('redis cluster', {
  create: async (args) => ({ backend: new RedisBackend({ cluster: cluster.nodes, keyPrefix: 'conf:', ...args }) }),
  capabilities: { stores: true, distributedLock: true, bytes: true, sharedInvalidation: true, counters: true },
  waiterLatency: {
    label: 'redis cluster waiter latency after the creator finished (ms)',
    trials: 50,
    p99Ms: 100,
    args: { lockPollInterval: '1s' },
  },
  writeRaw: async (key, bytes) => {
    await raw.set(`conf:${key}`, bytes)
  },
})

describeMultiProcess('redis cluster', {
  backend: 'redis',
  arguments: () => ({ cluster: cluster.nodes, keyPrefix: 'mp:' }),
  invalidationBudgetMs: 250,
})

describe('redis backend on a cluster', () => {
  it('spreads keys over several hash slots and still reads and deletes them in one call', async () => {
    const backend = new RedisBackend({ cluster: cluster.nodes.map(({ host, port }) => `${host}:${port}`).join(',') })
    try {
      expect(backend.isCluster).toBe(true)
      const keys = Array.from({ length: 60 }, (_, i) => `spread:${randomUUID()}:${i}`)
      await backend.setMulti(keys.map((key, i) => [key, CachedValue.create(i, 1)] as const))
      // The keys live on every master.
      const perNode = await Promise.all(raw.nodes('master').map((node) => node.dbsize()))
      expect(perNode.filter((n) => n > 0)).toHaveLength(3)
      expect((await backend.getMulti(keys)).map((v) => (v as CachedValue).payload)).toEqual(keys.map((_, i) => i))
      await backend.deleteMulti(keys)
      expect(await raw.exists(keys[0]!)).toBe(0)
    } finally {
      await backend.close()
    }
  })

  it('keeps the tags of a region in one hash slot: many tags are one script to invalidate and one MGET to load', async () => {
    const name = `tags-${randomUUID().slice(0, 8)}`
    const make = () =>
      new RegionRegistry().createRegion({ name }).configure('redis', {
        expirationTime: 60,
        arguments: { cluster: cluster.nodes, keyPrefix: 'slot:', invalidationPollInterval: '1h' },
      })
    const [writer, reader, third] = [make(), make(), make()]
    const tags = Array.from({ length: 40 }, (_, i) => `tag-${i}-${randomUUID()}`)
    await writer.set('k', 'v', { tags })
    expect(await reader.get('k')).toBe('v')
    const slots = await Promise.all(tags.map((tag) => raw.cluster('KEYSLOT', `slot:corral:tag:{${name}}:${tag}`)))
    expect(new Set(slots).size).toBe(1)

    const calls = async () => {
      const totals: Record<string, number> = {}
      for (const node of raw.nodes('master')) {
        const text = await node.info('commandstats')
        for (const [, command, count] of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
          totals[command!] = (totals[command!] ?? 0) + Number(count)
      }
      return totals
    }
    await writer.invalidateTags(['warm-up']) // the node caches the script (EVALSHA then succeeds at once)
    const before = await calls()
    await writer.invalidateTags(tags.slice(0, 30))
    const afterInvalidate = await calls()
    expect(
      (afterInvalidate.evalsha ?? 0) + (afterInvalidate.eval ?? 0) - (before.evalsha ?? 0) - (before.eval ?? 0),
    ).toBe(1)
    await eventually(async () => (await reader.get('k')) === NO_VALUE)
    await third.get('warm-up')
    const beforeLoad = await calls()
    expect(await third.get('k')).toBe(NO_VALUE)
    const afterLoad = await calls()
    expect((afterLoad.mget ?? 0) - (beforeLoad.mget ?? 0)).toBe(1)
    await Promise.all([writer.close(), reader.close(), third.close()])
  })

  it("keeps each lock in its value's hash slot, whatever the key and prefix: both lock scripts run on one node", async () => {
    const keys = [
      ...Array.from({ length: 30 }, (_, i) => `plain:${randomUUID()}:${i}`),
      `{user:${randomUUID()}}:profile`,
      `users|{"id":${Date.now()}}`,
      `closing}brace:${randomUUID()}`,
      `empty{}tag:${randomUUID()}`,
      `open{only:${randomUUID()}`,
    ]
    for (const keyPrefix of ['slots:', '{app}:', 'half{open:']) {
      const [one, two] = [
        new RedisBackend({ cluster: cluster.nodes, keyPrefix }),
        new RedisBackend({ cluster: cluster.nodes, keyPrefix }),
      ]
      for (const backend of [one, two])
        backend.attach({ regionName: 'slots', expirationTime: 60, serializer: jsonSerializer, reportError: () => {} })
      try {
        for (const key of keys) {
          const holder = one.getMutex(key)!
          // A lock in another slot than its value would fail with CROSSSLOT here.
          expect((await holder.acquire({ wait: false })).acquired, `${keyPrefix}${key}`).toBe(true)
          expect(await two.getMutex(key)!.locked()).toBe(true)
          expect(await holder.release({ value: CachedValue.create(key, Date.now()), since: Date.now() - 1 })).toBe(true)
          expect(((await two.get(key)) as CachedValue).payload).toBe(key)
          expect(await two.setIfNotNewer(key, CachedValue.create('again', Date.now()), Date.now() - 60_000)).toBe(false)
        }
      } finally {
        await Promise.all([one.close(), two.close()])
      }
    }
  })

  it('accepts a Cluster the application owns', async () => {
    const client = new Cluster(cluster.nodes)
    const region = new RegionRegistry()
      .createRegion({ name: 'owned-cluster' })
      .configure('redis', { expirationTime: 60, arguments: { client } })
    expect(await region.getOrCreate('k', () => 'v')).toBe('v')
    await region.close()
    expect(client.status).toBe('ready')
    client.disconnect()
  })
})
