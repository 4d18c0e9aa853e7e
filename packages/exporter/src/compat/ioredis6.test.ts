/**
 * Fleet telemetry on clients made by ioredis 6 (the `ioredis6` alias of the dev dependencies; the workspace's
 * `ioredis` is 5), against a real redis-server: what the exporter's peer range `^5.4.0 || ^6.0.0` stands on, with
 * fleet/fleet.test.ts's processes on ioredis 5.
 */
import { randomUUID } from 'node:crypto'
import { createRegion, RegionRegistry } from '@corral/core'
import { Redis } from 'ioredis6'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../../../../test-support/servers.js'
import type { FleetJson } from '../api-types.js'
import { startExporter, type RunningExporter } from '../index.js'

let server: RedisServer
beforeAll(async () => {
  server = await startRedis()
})
afterAll(async () => {
  await server?.stop()
})

describe('fleet telemetry with ioredis 6 clients', () => {
  const clients: Redis[] = []
  const exporters: RunningExporter[] = []
  afterAll(async () => {
    await Promise.all(exporters.map((exporter) => exporter.close()))
    for (const client of clients) client.disconnect()
  })

  it('two exporters publish to one fleet through their own ioredis 6 clients; either lists both', async () => {
    const name = `v6-${randomUUID().slice(0, 8)}`
    for (const gets of [3, 4]) {
      const registry = new RegionRegistry()
      const catalog = createRegion({ name: 'catalog', registry }).configure('memory', { expirationTime: 60 })
      for (let i = 0; i < gets; i++) await catalog.getOrCreate('k', () => 'v')
      const client = new Redis(server.url)
      clients.push(client)
      exporters.push(
        await startExporter({
          port: 0,
          registry,
          adminToken: '',
          // typed with this workspace's ioredis 5; an application on ioredis 6 has only 6's types
          fleet: { redis: client as never, name, interval: 0.3 },
        }),
      )
    }
    const deadline = Date.now() + 10_000
    let fleet: FleetJson
    do {
      fleet = (await (await fetch(`${exporters[0]!.url}/api/fleet`)).json()) as FleetJson
      if (fleet.instances.length === 2) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    } while (Date.now() < deadline)
    expect(fleet.instances).toHaveLength(2)
    expect(fleet.regions.find((region) => region.name === 'catalog')?.stats.gets).toBe(7)
    for (const client of clients) expect(client.status).toBe('ready') // yours: never closed by the exporter
  })
})
