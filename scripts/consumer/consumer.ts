/**
 * A user's program against the installed tarballs (see scripts/consumer-test.mjs): compiled with --strict and
 * skipLibCheck: false, then run. Fails by throwing.
 */
import assert from 'node:assert/strict'
import diagnosticsChannel from 'node:diagnostics_channel'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import {
  NO_VALUE,
  RegionRegistry,
  VERSION,
  ValidationError,
  cachedMethod,
  createRegion,
  tracingChannels,
  type CacheBackend,
  type RegionOperationMessage,
} from '@corral/core'
import { RedisBackend } from '@corral/core/redis'
import { createExporter, startExporter } from '@corral/exporter'
import { Redis } from 'ioredis'
import type { RegionsJson } from '@corral/exporter/api'

const require = createRequire(import.meta.url)
const manifest = JSON.parse(readFileSync('node_modules/@corral/core/package.json', 'utf8')) as { version: string }
assert.equal(VERSION, manifest.version)

const registry = new RegionRegistry()

// The dogpile lock: 50 concurrent callers on a cold key, one creator call.
const users = createRegion({ name: 'users', registry }).configure('memory', { expirationTime: '5m' })
let loads = 0
const load = async (id: number) => {
  loads++
  await new Promise((resolve) => setTimeout(resolve, 10))
  return { id, name: `user ${id}` }
}
const answers = await Promise.all(Array.from({ length: 50 }, () => users.getOrCreate('user:1', () => load(1))))
assert.equal(loads, 1)
assert.deepEqual(answers[49], { id: 1, name: 'user 1' })

// Decorators, typed: cacheOnArguments and a TC39 method decorator with cachedMethod().
const getUser = users.cacheOnArguments(async function getUser(id: number) {
  return load(id)
})
const first: { id: number; name: string } = await getUser(2)
assert.equal(first.id, 2)
await getUser.invalidate(2)
assert.equal(await getUser.get(2), NO_VALUE)

class UserService {
  version = 1
  @users.cached({ namespace: 'UserService' })
  async find(id: number): Promise<string> {
    return `${id}@v${this.version}`
  }
}
const service = new UserService()
assert.equal(await service.find(3), '3@v1')
service.version = 2
assert.equal(await cachedMethod(service, 'find').refresh(3), '3@v2')
await cachedMethod(service, 'find').invalidate(3)

// Wrong options fail at configure time with a typed error.
assert.throws(
  () => createRegion({ registry: new RegionRegistry() }).configure('memory', { expiresIn: 5 } as never),
  ValidationError,
)

// The tracing channel, subscribed by name.
const seen: string[] = []
const subscriber = {
  start: (message: RegionOperationMessage) => void seen.push(`${message.region}/${message.key}`),
  end: () => {},
  asyncStart: () => {},
  asyncEnd: () => {},
  error: () => {},
}
diagnosticsChannel.tracingChannel<unknown, RegionOperationMessage>('corral:getOrCreate').subscribe(subscriber)
await users.getOrCreate('user:9', () => 9)
tracingChannels.getOrCreate.unsubscribe(subscriber)
assert.deepEqual(seen, ['users/user:9'])

// Redis through ioredis 6, by name and through the subpath export.
const redisUrl = process.env.CORRAL_REDIS_URL
assert.ok(redisUrl, 'CORRAL_REDIS_URL')
const sessions = createRegion({ name: 'sessions', registry }).configure('redis', {
  expirationTime: '1m',
  arguments: { url: redisUrl },
})
assert.equal(await sessions.getOrCreate('s:1', () => 'alive'), 'alive')
assert.equal(await sessions.get('s:1'), 'alive')
const ownClient = new Redis(redisUrl) // ioredis 6: the client's types are the application's version
const backend: CacheBackend = new RedisBackend({ client: ownClient, keyPrefix: 'direct:' })
const direct = createRegion({ name: 'direct', registry }).configure(backend)
await direct.set('k', 1)
assert.equal(await direct.get('k'), 1)

// The installed exporter serves the installed dashboard, and the metrics.
const exporter = await startExporter({ port: 0, registry, adminToken: '' })
try {
  const page = await fetch(`${exporter.url}/`)
  assert.equal(page.status, 200)
  const html = await page.text()
  assert.match(html, /<script[^>]+src="\.\/assets\/[^"]+\.js"/, 'the dashboard page')
  const script = /<script[^>]+src="\.\/(assets\/[^"]+\.js)"/.exec(html)![1]!
  const asset = await fetch(`${exporter.url}/${script}`)
  assert.equal(asset.status, 200)
  assert.match(asset.headers.get('content-type') ?? '', /javascript/)
  const dashboardDir = path.dirname(require.resolve('@corral/dashboard/package.json'))
  assert.ok(dashboardDir.includes(path.join('node_modules', '@corral', 'dashboard')))

  const metrics = await (await fetch(`${exporter.url}/metrics`)).text()
  assert.match(metrics, /corral_gets_total\{region="users",result="hit"\} \d+/)
  const regions = (await (await fetch(`${exporter.url}/api/regions`)).json()) as RegionsJson
  assert.deepEqual(
    regions.regions.map((region) => region.name),
    ['users', 'sessions', 'direct'],
  )
} finally {
  await exporter.close()
}
assert.equal((await createExporter({ registry, adminToken: '' }).request('/healthz')).status, 200)

await Promise.all([users.close(), sessions.close(), direct.close()])
await backend.close?.()
assert.equal(ownClient.status, 'ready') // a client the application passed is never closed by Corral
ownClient.disconnect()
console.log('consumer (ESM): ok')
