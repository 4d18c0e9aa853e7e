/** A redis region with an L1 on a real Redis Cluster: its bus is the cluster's pub/sub. */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedisCluster, type RedisCluster } from '../../../../../test-support/servers.js'
import { NO_VALUE } from '../../cached-value.js'
import type { CacheRegion } from '../../region.js'
import { RegionRegistry } from '../../registry.js'
import { eventually } from '../../testing/conformance.js'
import type { TieredBackend } from './tiered-backend.js'

let cluster: RedisCluster

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3 })
})

afterAll(async () => {
  await cluster?.stop()
})

describe('a redis cluster region with an L1', () => {
  it('answers from the L1 and removes the other processes’ copies of keys on every node', async () => {
    const name = `tier-cluster-${randomUUID().slice(0, 8)}`
    const regions: CacheRegion[] = []
    const tiered = () => {
      const region = new RegionRegistry().createRegion({ name })
      region.configure('redis', { expirationTime: 60, arguments: { cluster: cluster.nodes }, l1: true })
      regions.push(region)
      return { region, tier: region.backend as TieredBackend }
    }
    try {
      const [one, two] = [tiered(), tiered()]
      await eventually(() => one.tier.trusted && two.tier.trusted, 5000)
      // keys spread over the hash slots of every master
      const keys = Array.from({ length: 30 }, (_, i) => `spread:${randomUUID()}:${i}`)
      await one.region.setMulti(Object.fromEntries(keys.map((key) => [key, 'v1'])))
      await eventually(async () => {
        const values = await two.region.getMulti(keys)
        return values.every((v) => v === 'v1') && keys.every((key) => two.tier.getSync(key)?.payload === 'v1')
      })
      const tiers: string[] = []
      two.region.on('hit', ({ tier }) => tiers.push(tier))
      expect(await two.region.getMulti(keys)).toEqual(keys.map(() => 'v1'))
      expect(tiers).toEqual(keys.map(() => 'l1'))

      await one.region.deleteMulti(keys.slice(0, 10))
      await one.region.setMulti(Object.fromEntries(keys.slice(10).map((key) => [key, 'v2'])))
      await eventually(async () => {
        const values = await two.region.getMulti(keys)
        return values.slice(0, 10).every((v) => v === NO_VALUE) && values.slice(10).every((v) => v === 'v2')
      })
    } finally {
      await Promise.all(regions.map((region) => region.close()))
    }
  })
})
