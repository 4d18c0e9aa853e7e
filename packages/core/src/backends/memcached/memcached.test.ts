import { createHash, randomUUID } from 'node:crypto'
import net from 'node:net'
import memjs from 'memjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startMemcached, type MemcachedServer } from '../../../../../test-support/servers.js'
import { NO_VALUE } from '../../cached-value.js'
import { ValidationError } from '../../errors.js'
import { RegionRegistry } from '../../registry.js'
import { describeBackendConformance, eventually, type ControlledServer } from '../../testing/conformance.js'
import { reportFigure } from '../../testing/measure.js'
import { describeMultiProcess } from '../../testing/multiprocess.js'
import { MemcachedBackend } from './index.js'
import { expiryField } from './protocol.js'

let server: MemcachedServer
let raw: memjs.Client

beforeAll(async () => {
  server = await startMemcached()
  raw = memjs.Client.create(server.servers, { logger: { log: () => {} } })
})

afterAll(async () => {
  raw?.close()
  await server?.stop()
})

/** Where a backend with `keyPrefix` stores `key` (mangled or not). */
const storedKey = (key: string, keyPrefix = '') =>
  new MemcachedBackend({ servers: server.servers, keyPrefix }).keyFor(key)

describeBackendConformance('memcached', {
  create: async (args) => ({
    backend: new MemcachedBackend({
      servers: server.servers,
      keyPrefix: 'conf:',
      invalidationPollInterval: 0.2,
      ...args,
    }),
  }),
  capabilities: { stores: true, distributedLock: true, bytes: true, sharedInvalidation: true, counters: true },
  // Waiters back off and poll (memcached has no notification).
  waiterLatency: {
    label: 'memcached waiter latency after the creator finished (ms, backoff polling)',
    trials: 40,
    p99Ms: 150,
  },
  writeRaw: async (key, bytes) => {
    await raw.set(storedKey(key, 'conf:'), bytes, {})
  },
  faults: {
    startServer: startControlledMemcached,
    // 20 calls on a server that just went away take longer than on Redis
    downBudgetMs: 20 * 200,
    shortTimeouts: { timeout: 0.2 },
  },
})

/** A memcached server of the fault tests' own, and backends on it (as another process would use it). */
async function startControlledMemcached(): Promise<ControlledServer> {
  const own = await startMemcached()
  const control = memjs.Client.create(own.servers, { logger: { log: () => {} } })
  const lockKey = (key: string) =>
    new MemcachedBackend({ servers: own.servers, keyPrefix: 'faults:' }).keyFor(`corral:lock:${key}`)
  return {
    control: own,
    create: async (args) => ({
      backend: new MemcachedBackend({ servers: own.servers, keyPrefix: 'faults:', ...args }),
    }),
    // A lock's value is `<token>:<expiresAtMs>`; memcached itself keeps it a little longer (whole seconds).
    holdLock: async (key, ttlMs) => {
      await control.set(lockKey(key), Buffer.from(`someone-else:${Date.now() + ttlMs}`), {
        expires: Math.ceil(ttlMs / 1000) + 1,
      })
    },
    close: async () => {
      control.close()
      await own.stop()
    },
  }
}

describeMultiProcess('memcached', {
  backend: 'memcached',
  arguments: () => ({ servers: server.servers, keyPrefix: 'mp:' }),
  // polled every invalidationPollInterval (default 1 s), plus slack for a loaded machine
  invalidationBudgetMs: 1500,
})

function newRegion(options: { keyMangler?: false } = {}) {
  const region = new RegionRegistry().createRegion({ name: `memcached-${randomUUID().slice(0, 8)}`, ...options })
  const backendErrors: Array<{ operation: string; error: unknown }> = []
  region.on('backendError', ({ operation, error }) => backendErrors.push({ operation, error }))
  return { region, backendErrors }
}

describe('memcached backend', () => {
  it('validates its arguments at configure time', () => {
    const { region } = newRegion()
    expect(() => region.configure('memcached', { arguments: { server: 'x' } })).toThrow(/unknown argument "server"/)
    expect(() => new MemcachedBackend({ lockTimeout: 'long' as never })).toThrow(ValidationError)
    expect(() => new MemcachedBackend({ keyPrefix: 'has space' })).toThrow(/keyPrefix/)
    expect(() => new MemcachedBackend({ client: {} as never })).toThrow(/memjs Client/)
    expect(() => new MemcachedBackend({ client: raw, servers: server.servers })).toThrow(/do not combine/)
    expect(() => new MemcachedBackend({ timeout: 0 })).toThrow(/timeout/)
    expect(() => new MemcachedBackend({ memcachedExpireTime: 'x' as never })).toThrow(/memcachedExpireTime/)
  })

  it('long and odd keys are SHA-1 mangled inside the backend, even with keyMangler: false', async () => {
    const { region } = newRegion({ keyMangler: false })
    region.configure('memcached', { expirationTime: 60, arguments: { servers: server.servers, keyPrefix: 'odd:' } })
    const backend = region.backend as MemcachedBackend
    const keys = {
      long: `long-${'x'.repeat(300)}`,
      spaces: 'a key with spaces',
      newline: 'line\nbreak',
      tab: 'tab\there',
      control: 'bell\u0007',
      unicode: 'ключ-鍵-🔑',
      nbsp: 'no\u00a0break',
      plain: 'user:42',
      lookalike: `sha1:${'a'.repeat(40)}`,
    }
    for (const [label, key] of Object.entries(keys)) expect(await region.getOrCreate(key, () => label)).toBe(label)
    for (const [label, key] of Object.entries(keys)) expect(await region.get(key)).toBe(label)
    const sha1 = (key: string) => createHash('sha1').update(key).digest('hex')
    // Keys memcached can hold are stored as they are; the others under their SHA-1.
    expect(backend.keyFor(keys.plain)).toBe('odd:user:42')
    expect(backend.keyFor(keys.unicode)).toBe(`odd:${keys.unicode}`)
    for (const label of ['long', 'spaces', 'newline', 'tab', 'control', 'nbsp', 'lookalike'] as const) {
      expect(backend.keyFor(keys[label])).toBe(`odd:sha1:${sha1(keys[label])}`)
      expect((await raw.get(`odd:sha1:${sha1(keys[label])}`)).value?.toString()).toContain(`"${label}"`)
    }
    expect((await raw.get('odd:user:42')).value?.toString()).toContain('"plain"')
    // A 250-byte key is still fine; 251 bytes is not.
    expect(backend.keyFor('k'.repeat(250 - 'odd:'.length))).toBe(`odd:${'k'.repeat(246)}`)
    expect(backend.keyFor('k'.repeat(251 - 'odd:'.length))).toMatch(/^odd:sha1:/)
    expect(
      await region.getOrCreateMulti([keys.long, keys.spaces, 'fresh one'], (...ks) => ks.map((k) => k.length)),
    ).toEqual(['long', 'spaces', 9])
    await region.close()
  })

  it('expiry: derived from the region, 0 without one, unix time beyond 30 days', () => {
    expect(expiryField(undefined)).toBe(0)
    expect(expiryField(80)).toBe(80)
    expect(expiryField(0.2)).toBe(1)
    expect(expiryField(30 * 86_400)).toBe(30 * 86_400)
    const now = Math.floor(Date.now() / 1000)
    expect(expiryField(31 * 86_400)).toBeGreaterThanOrEqual(now + 31 * 86_400)
    expect(expiryField(31 * 86_400)).toBeLessThanOrEqual(now + 31 * 86_400 + 2)
  })

  it('values get the server-side expiry (a long expiry is stored as a unix time)', async () => {
    const short = newRegion().region.configure('memcached', {
      expirationTime: 60,
      arguments: { servers: server.servers, memcachedExpireTime: 1 },
    })
    await short.set('short-lived', 'v')
    expect(await short.get('short-lived')).toBe('v')
    await eventually(async () => (await short.get('short-lived')) === NO_VALUE, 3500, 100)
    await short.close()

    const long = newRegion().region.configure('memcached', {
      expirationTime: 60,
      arguments: { servers: server.servers, memcachedExpireTime: '40d' },
    })
    await long.set('long-lived', 'v') // would be "already expired" if 40 days were sent as a relative time
    expect(await long.get('long-lived')).toBe('v')
    await long.close()
  })

  it("values live on the server as long as the region's fail-safe may serve them", async () => {
    const region = new RegionRegistry()
      .createRegion({ name: `failsafe-${randomUUID().slice(0, 8)}` })
      .configure('memcached', {
        expirationTime: 60,
        failSafe: { maxStaleAge: '2h' },
        arguments: { servers: server.servers, keyPrefix: 'fs:' },
      })
    await region.set('kept', 'v')
    // 2 h + 60 s rather than the 2 × 60 s + 60 s derived from the expiration time alone.
    const ttl = await ttlOf((region.backend as MemcachedBackend).keyFor('kept'))
    expect(ttl).toBeGreaterThanOrEqual(7258)
    expect(ttl).toBeLessThanOrEqual(7260)
    await region.close()
  })

  it('uses a client it is given and never closes it', async () => {
    const client = memjs.Client.create(server.servers, { logger: { log: () => {} } })
    const region = newRegion().region.configure('memcached', { expirationTime: 60, arguments: { client } })
    expect(await region.getOrCreate('owned', () => 'v')).toBe('v')
    await region.close()
    expect((await client.get('owned')).value?.toString()).toContain('"v"')
    client.close()
  })
})

/** One text-protocol command on a fresh connection; resolves with the reply once it ends with `terminator`. */
function textCommand(command: string, terminator: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(server.port, server.host)
    let reply = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      reply += chunk
      if (terminator.test(reply)) {
        socket.end()
        resolve(reply)
      }
    })
    socket.on('error', reject)
    socket.write(`${command}\r\n`)
  })
}

/** The remaining time to live of `key` in seconds (meta get `t` flag): -1 without expiry, undefined when absent. */
async function ttlOf(key: string): Promise<number | undefined> {
  const reply = await textCommand(`mg ${key} t`, /\r\n$/)
  if (reply.startsWith('EN')) return undefined
  const match = /^HD t(-?\d+)/.exec(reply)
  if (!match) throw new Error(`unexpected mg reply ${JSON.stringify(reply)}`)
  return Number(match[1])
}

async function cmdGets(): Promise<number> {
  const reply = await textCommand('stats', /END\r\n$/)
  return Number(/STAT cmd_get (\d+)/.exec(reply)?.[1])
}

describe('group invalidation on memcached', () => {
  /** Two processes' view of one region: separate backends (connections, mirrors), same server and prefix. */
  const pair = (keyPrefix: string, expirationTime: number | null = 60) => {
    const name = `group-${randomUUID().slice(0, 8)}`
    const make = () =>
      new RegionRegistry().createRegion({ name }).configure('memcached', {
        ...(expirationTime === null ? {} : { expirationTime }),
        arguments: { servers: server.servers, keyPrefix, invalidationPollInterval: '1h' },
      })
    return { name, writer: make(), reader: make() }
  }

  it('a tagged hit is one GET once its tags are mirrored; unknown tags add their GETs, in the same round trip', async () => {
    const { writer, reader } = pair('tagcmd:')
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`)
    for (const [i, key] of keys.entries()) await writer.set(key, key, { tags: [`item:${i}`, 'catalog'] })
    await reader.get('warm-up')
    const before = await cmdGets()
    for (const key of keys) expect(await reader.getOrCreate(key, () => 'again')).toBe(key)
    const afterCold = await cmdGets()
    for (const key of keys) expect(await reader.getOrCreate(key, () => 'again')).toBe(key)
    const afterWarm = await cmdGets()
    const cold = (afterCold - before) / keys.length
    const warm = (afterWarm - afterCold) / keys.length
    reportFigure('memcached GETs per tagged hit (2 tags, one shared)', { notMirrored: cold, mirrored: warm })
    // The first read also fetched the shared tag: 1 value + 1 tag per read, + 1 once.
    expect(afterCold - before).toBe(2 * keys.length + 1)
    expect(warm).toBe(1)
    await Promise.all([writer.close(), reader.close()])
  })

  it('dependency bookkeeping and tag marks carry an expiry, so they cannot grow without bound', async () => {
    const { name, writer, reader } = pair('ttl:', 10)
    const dependency = writer.dependency('user:1', { expirationTime: 30 })
    await dependency.addMulti(['a', 'b'])
    for (const key of ['ttl:corral:dep:user:1', 'ttl:corral:dep:user:1:1', 'ttl:corral:dep:user:1:2']) {
      const ttl = await ttlOf(key)
      expect(ttl, key).toBeGreaterThanOrEqual(28)
      expect(ttl, key).toBeLessThanOrEqual(30)
    }
    // The counter lives 30 s after the last add, not the first (INCR alone would not extend it).
    await textCommand('touch ttl:corral:dep:user:1 5', /\r\n$/)
    expect(await ttlOf('ttl:corral:dep:user:1')).toBeLessThanOrEqual(5)
    await dependency.add('c')
    expect(await ttlOf('ttl:corral:dep:user:1')).toBeGreaterThanOrEqual(28)
    expect(await dependency.keys()).toEqual(['a', 'b', 'c'])
    expect(await reader.dependency('user:1').invalidate()).toBe(3)
    expect(await ttlOf('ttl:corral:dep:user:1')).toBeUndefined()

    // A tag mark lives as long as a value created before it can (2 × 10 s + 60 s), plus a minute of grace.
    await writer.invalidateTags(['user:1'])
    const markTtl = await ttlOf(`ttl:corral:tag:${name}:user:1`)
    expect(markTtl).toBeGreaterThanOrEqual(138)
    expect(markTtl).toBeLessThanOrEqual(140)
    await Promise.all([writer.close(), reader.close()])

    // Values that never expire: neither do the marks that invalidate them.
    const forever = pair('ttl-never:', null)
    await forever.writer.invalidateTags(['user:1'])
    expect(await ttlOf(`ttl-never:corral:tag:${forever.name}:user:1`)).toBe(-1)
    await Promise.all([forever.writer.close(), forever.reader.close()])
  })

  it('increment counts from zero, reads with 0 without creating, and rejects what memcached cannot count', async () => {
    const backend = new MemcachedBackend({ servers: server.servers, keyPrefix: `inc-${randomUUID().slice(0, 8)}:` })
    try {
      expect(await backend.increment('c', 0, 10)).toBe(0)
      expect(await ttlOf(backend.keyFor('c'))).toBeUndefined()
      expect(await backend.increment('c', 3, 10)).toBe(3)
      expect(await backend.increment('c', 2 ** 33, 10)).toBe(2 ** 33 + 3) // 64-bit counters decoded as such
      expect(await backend.increment('c', 0)).toBe(2 ** 33 + 3)
      await expect(backend.increment('c', -1)).rejects.toThrow(ValidationError)
      await expect(backend.increment('c', 1.5)).rejects.toThrow(ValidationError)
    } finally {
      await backend.close()
    }
  })
})
