import { execFile, fork } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { CachedValue, NO_VALUE, jsonSerializer, type NoValue } from '../../cached-value.js'
import { LockTimeoutError, ValidationError } from '../../errors.js'
import { RegionRegistry } from '../../registry.js'
import { describeBackendConformance, eventually } from '../../testing/conformance.js'
import { describeMultiProcess } from '../../testing/multiprocess.js'
import { Worker } from '../../testing/workers.js'
import { FileBackend, type FileBackendOptions } from './index.js'
import { bootId, storedKey, STORE_FORMAT } from './store.js'
import type { BurstPayload } from './test-support/write-burst.js'

const root = mkdtempSync(path.join(os.tmpdir(), 'corral-file-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

const conformanceDir = path.join(root, 'conformance')

describeBackendConformance('file', {
  create: async (args) => ({ backend: new FileBackend({ path: conformanceDir, ...args }) }),
  capabilities: { stores: true, distributedLock: true, bytes: true, sharedInvalidation: true, counters: true },
  // With a 1 s fallback poll, only the wake-up (fs.watch) can make this fast.
  waiterLatency: {
    label: 'file waiter latency after the creator finished (ms, two backends, fs.watch)',
    trials: 50,
    p99Ms: 100,
    args: { lockPollInterval: '1s' },
  },
  writeRaw: async (key, bytes) => {
    const backend = new FileBackend({ path: conformanceDir })
    try {
      // Our record around another format's (or another program's) bytes: the value's envelope must reject them.
      backend.store.writeRaw(key, bytes, { header: true })
    } finally {
      await backend.close()
    }
  },
})

describeMultiProcess('file', {
  backend: 'file',
  arguments: () => ({ path: path.join(root, 'multi-process') }),
  // fs.watch notifications: a few ms; the budget leaves room for a loaded machine
  invalidationBudgetMs: 250,
})

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Backends opened by a test, closed after it. */
const opened: FileBackend[] = []
afterEach(async () => {
  await Promise.all(opened.splice(0).map((backend) => backend.close()))
})

/** A backend on `dir` (a fresh directory by default), attached as a region would attach it. */
function open(options: Partial<FileBackendOptions> = {}, expirationTime?: number): FileBackend {
  const backend = new FileBackend({ path: path.join(root, `t-${randomUUID().slice(0, 8)}`), ...options })
  backend.attach({ regionName: 'test', expirationTime, serializer: jsonSerializer, reportError: () => {} })
  opened.push(backend)
  return backend
}

function payloadOf(value: CachedValue | NoValue): unknown {
  return value === NO_VALUE ? NO_VALUE : value.payload
}

function newRegion(name = `file-${randomUUID().slice(0, 8)}`) {
  const region = new RegionRegistry().createRegion({ name })
  const backendErrors: Array<{ operation: string; error: unknown }> = []
  region.on('backendError', ({ operation, error }) => backendErrors.push({ operation, error }))
  return { region, backendErrors }
}

describe('file backend', () => {
  it('validates its arguments at configure time', () => {
    const { region } = newRegion()
    const dir = path.join(root, 'arguments')
    expect(() => region.configure('file', { arguments: { path: dir, maxEntires: 10 } })).toThrow(
      /unknown argument "maxEntires"; it accepts path, maxEntries, maxBytes/,
    )
    expect(() => region.configure('file', { arguments: {} })).toThrow(/argument "path" .* is required/)
    expect(() => new FileBackend({ path: '' })).toThrow(ValidationError)
    expect(() => new FileBackend({ path: dir, maxEntries: 0 })).toThrow(/maxEntries.*positive integer/)
    expect(() => new FileBackend({ path: dir, maxBytes: 'lots' as never })).toThrow(/maxBytes/)
    expect(() => new FileBackend({ path: dir, lockTimeout: 0 })).toThrow(/greater than zero/)
    expect(() => new FileBackend({ path: dir, fileExpirationTime: 'soon' as never })).toThrow(/fileExpirationTime/)
    const file = path.join(root, 'a-file')
    writeFileSync(file, 'not a directory')
    expect(() => new FileBackend({ path: file })).toThrow(/"path" must be a directory/)
    expect(() => new FileBackend({ path: path.join(file, 'below') })).toThrow(/cannot create the directory/)
    // One store per directory per process: its bounds are the same for every backend on it.
    const first = new FileBackend({ path: dir, maxEntries: 10 })
    try {
      expect(() => new FileBackend({ path: dir, maxEntries: 20 })).toThrow(/already open .* maxEntries 10/)
    } finally {
      void first.close()
    }
  })

  it('loads lmdb only when a backend is created (importing @corral/core or @corral/core/file does not)', async () => {
    const script = `
      import { createRequire } from 'node:module'
      const cache = createRequire(import.meta.url).cache
      const loaded = () => Object.keys(cache).some((f) => f.includes('/lmdb/'))
      const core = await import('@corral/core')
      const { FileBackend } = await import('@corral/core/file')
      const before = loaded()
      const backend = new FileBackend({ path: process.argv[1] })
      const after = loaded()
      await backend.close()
      console.log(JSON.stringify({ registered: core.registeredBackends().includes('file'), before, after }))
    `
    const repository = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../..')
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@corral/source', '--import', 'tsx', '--input-type=module', '-e', script, path.join(root, 'lazy')],
      { cwd: repository },
    )
    expect(JSON.parse(stdout.trim())).toEqual({ registered: true, before: false, after: true })
  })

  it('is configured by name from a flat config, creates its directory, and keeps values there', async () => {
    const dir = path.join(root, 'by-name', 'nested')
    const { region } = newRegion()
    region.configureFromConfig(
      {
        'cache.backend': 'file',
        'cache.expiration_time': '60',
        'cache.arguments.path': dir,
        'cache.arguments.maxEntries': '500',
      },
      'cache.',
    )
    expect(region.backend.name).toBe('file')
    expect((region.backend as FileBackend).maxEntries).toBe(500)
    await region.set('k', { v: 1 })
    expect(await region.get('k')).toEqual({ v: 1 })
    expect(readdirSync(dir)).toEqual([`corral-file-v${STORE_FORMAT}`])
    expect((region.backend as FileBackend).storeDirectory).toBe(
      path.join(dir, `corral-file-v${STORE_FORMAT}`, bootId().id),
    )
    await region.close()
  })

  it('values survive a restart of every process', async () => {
    const dir = path.join(root, 'restart')
    const writer = await Worker.start()
    try {
      await writer.call('configure', {
        region: 'persist',
        backend: 'file',
        arguments: { path: dir },
        expirationTime: 60,
      })
      await writer.call('setMany', { region: 'persist', keys: ['a', 'b'], value: { kept: true } })
    } finally {
      await writer.stop()
    }
    const reader = await Worker.start()
    try {
      await reader.call('configure', {
        region: 'persist',
        backend: 'file',
        arguments: { path: dir },
        expirationTime: 60,
      })
      expect(await reader.call('getMany', { region: 'persist', keys: ['a', 'b', 'c'] })).toEqual({
        values: [{ kept: true }, { kept: true }, null],
      })
    } finally {
      await reader.stop()
    }
  })

  it('shares values, counters and marks between backends on one directory (one store per process)', async () => {
    const a = open()
    const b = open({ path: a.path })
    expect(b.storeDirectory).toBe(a.storeDirectory)
    await a.set('k', CachedValue.create('from a', 5))
    expect(payloadOf(await b.get('k'))).toBe('from a')
    expect(b.getSync('k')).not.toBe(NO_VALUE)
    await a.close()
    // Closing one backend leaves the store open for the others.
    expect(payloadOf(await b.get('k'))).toBe('from a')
    await expect(a.get('k')).rejects.toThrow(/closed/)
    expect(a.getSync('k')).toBe(NO_VALUE)
  })

  it('bounds the number of entries: the least recently written are evicted', async () => {
    const backend = open({ maxEntries: 100 })
    for (let batch = 0; batch < 10; batch++) {
      const entries = Array.from(
        { length: 100 },
        (_, i) => [`k${batch * 100 + i}`, CachedValue.create(batch * 100 + i, 1)] as const,
      )
      await backend.setMulti(entries)
    }
    expect(backend.count()).toBe(100)
    expect(backend.store.stats().evictions).toBe(900)
    const read = await backend.getMulti(Array.from({ length: 1000 }, (_, i) => `k${i}`))
    expect(read.slice(0, 900).every((v) => v === NO_VALUE)).toBe(true)
    expect(read.slice(900).map(payloadOf)).toEqual(Array.from({ length: 100 }, (_, i) => 900 + i))
    // Rewriting an entry makes it the most recent: it outlives older ones.
    await backend.set('k900', CachedValue.create('rewritten', 2))
    await backend.set('new', CachedValue.create('new', 3))
    expect(await backend.get('k901')).toBe(NO_VALUE)
    expect(payloadOf(await backend.get('k900'))).toBe('rewritten')
    expect(backend.count()).toBe(100)
  })

  it('bounds the bytes kept, and never keeps a value larger than the bound', async () => {
    const backend = open({ maxBytes: 64 * 1024 })
    for (let i = 0; i < 100; i++) await backend.set(`big${i}`, CachedValue.create('x'.repeat(4000), 1))
    const { bytes, count } = backend.store.stats()
    expect(bytes).toBeLessThanOrEqual(64 * 1024)
    // As many entries as fit: every entry has the same size (a 4000-character payload, its header and its key).
    const perEntry = bytes / count
    expect(perEntry).toBeGreaterThan(4000)
    expect(count).toBe(Math.floor((64 * 1024) / perEntry))
    expect(payloadOf(await backend.get('big99'))).toHaveLength(4000)
    expect(await backend.get('big0')).toBe(NO_VALUE)
    await backend.set('huge', CachedValue.create('y'.repeat(100_000), 1))
    expect(await backend.get('huge')).toBe(NO_VALUE)
    expect(backend.store.stats().bytes).toBeLessThanOrEqual(64 * 1024)
  })

  it('keeps values for 2 × the expiration time + 60 s by default, or fileExpirationTime; expired ones are swept', async () => {
    expect(open({}, 10).storeTtlMs).toBe(80_000)
    expect(open({ fileExpirationTime: '5m' }, 10).storeTtlMs).toBe(300_000)
    expect(open({ fileExpirationTime: -1 }, 10).storeTtlMs).toBeUndefined()
    expect(open({}).storeTtlMs).toBeUndefined()

    const backend = open({ fileExpirationTime: 0.2 }, 10)
    await backend.setMulti(Array.from({ length: 50 }, (_, i) => [`short${i}`, CachedValue.create(i, 1)] as const))
    await backend.setMultiWithTtl([['kept', CachedValue.create('kept', 1)]], 60)
    expect(backend.count()).toBe(51)
    await sleep(250)
    expect(await backend.get('short0')).toBe(NO_VALUE)
    expect(payloadOf(await backend.get('kept'))).toBe('kept')
    backend.store.sweep()
    expect(backend.store.stats().count).toBe(1)
  })

  it("keeps values as long as the region's fail-safe may serve them", async () => {
    const region = newRegion().region.configure('file', {
      expirationTime: 60,
      failSafe: { maxStaleAge: '2h' },
      arguments: { path: path.join(root, `failsafe-${randomUUID().slice(0, 8)}`) },
    })
    // 2 h + 60 s rather than the 2 × 60 s + 60 s derived from the expiration time alone.
    expect((region.backend as FileBackend).storeTtlMs).toBe(7_260_000)
    await region.close()
  })

  it('reads a store written by another program, or in another format, as misses', async () => {
    const dir = path.join(root, 'foreign')
    mkdirSync(dir, { recursive: true })
    // Another program's files in the directory are left alone.
    writeFileSync(path.join(dir, 'data.mdb'), "someone else's database")
    // A store of an earlier boot of this machine is removed (it could be torn by a machine crash).
    const earlierBoot = path.join(dir, `corral-file-v${STORE_FORMAT}`, 'an-earlier-boot')
    mkdirSync(earlierBoot, { recursive: true })
    writeFileSync(path.join(earlierBoot, 'data.mdb'), 'old')
    const backend = open({ path: dir })
    expect(readdirSync(path.join(dir, `corral-file-v${STORE_FORMAT}`))).toEqual([bootId().id])
    expect(await backend.get('k')).toBe(NO_VALUE)

    // Records without our header, or of another store format, are misses, and are replaced by writes.
    const record = (format: number) => {
      const header = Buffer.alloc(20)
      header.write('CF', 0, 'latin1')
      header[2] = format
      header[3] = 0x76
      return Buffer.concat([header, Buffer.from('c2:1700000000000:v\n"x"')])
    }
    backend.store.writeRaw('other-format', record(STORE_FORMAT + 1))
    backend.store.writeRaw('same-format', record(STORE_FORMAT))
    backend.store.writeRaw('no-header', Buffer.from('c2:1700000000000:v\n"x"'))
    expect(payloadOf(await backend.get('same-format'))).toBe('x') // the control: this one is ours
    expect(await backend.getMulti(['other-format', 'no-header'])).toEqual([NO_VALUE, NO_VALUE])
    await backend.set('no-header', CachedValue.create('mine', 2))
    expect(payloadOf(await backend.get('no-header'))).toBe('mine')
    // A garbage counter reads as 0.
    backend.store.writeRaw('counter', Buffer.from('not a number'))
    expect(await backend.increment('counter', 2)).toBe(2)
  })

  it('refuses a directory whose store file is not an LMDB environment, naming it', () => {
    const dir = path.join(root, 'garbage-store')
    const store = path.join(dir, `corral-file-v${STORE_FORMAT}`, bootId().id)
    mkdirSync(store, { recursive: true })
    writeFileSync(path.join(store, 'data.mdb'), Buffer.alloc(64 * 1024, 0x5a))
    expect(() => new FileBackend({ path: dir })).toThrow(/cannot open the store in .*garbage-store/)
  })

  it('hashes keys LMDB cannot hold, and keys that look hashed, so every string key works', async () => {
    const backend = open()
    const long = 'k'.repeat(5000)
    const hashedLooking = storedKey(long).toString('latin1')
    expect(hashedLooking).toMatch(/^sha1:[0-9a-f]{40}$/)
    await backend.setMulti([
      [long, CachedValue.create('long', 1)],
      [hashedLooking, CachedValue.create('looks hashed', 1)],
      ['', CachedValue.create('empty', 1)],
    ])
    expect((await backend.getMulti([long, hashedLooking, ''])).map(payloadOf)).toEqual([
      'long',
      'looks hashed',
      'empty',
    ])
  })
})

describe('file lock', () => {
  it('a waiter is woken by the release and gets the produced value without taking the lock', async () => {
    const one = open()
    const two = open({ path: one.path })
    const holder = one.getMutex('k')!
    expect((await holder.acquire({ wait: false, holder: { traceparent: 'tp-holder' } })).acquired).toBe(true)
    const waiting = two.getMutex('k')!.acquire({ wait: true })
    await sleep(50)
    expect(await holder.release({ value: CachedValue.create('made', Date.now()), since: Date.now() - 60 })).toBe(true)
    const acquisition = await waiting
    expect(acquisition.acquired).toBe(false)
    expect(payloadOf(acquisition.produced!)).toBe('made')
    expect(acquisition.holder).toEqual({ traceparent: 'tp-holder' })
    expect(await two.getMutex('k')!.locked()).toBe(false)
  })

  it('an acquisition returns the value read with the lock', async () => {
    const backend = open()
    await backend.set('k', CachedValue.create('there', 7))
    const mutex = backend.getMutex('k')!
    const acquisition = await mutex.acquire({ wait: false })
    expect(acquisition.acquired).toBe(true)
    expect(payloadOf(acquisition.current!)).toBe('there')
    expect(await mutex.release()).toBe(false)
    expect((await backend.getMutex('absent')!.acquire({ wait: false })).current).toBe(NO_VALUE)
  })

  it('release(store) is fenced: not over a newer value, not after losing the lock', async () => {
    const one = open({ lockTimeout: 0.2 })
    const two = open({ path: one.path, lockTimeout: 0.2 })
    const slow = one.getMutex('k')!
    expect((await slow.acquire({ wait: false })).acquired).toBe(true)
    const since = Date.now()
    // Someone set() a newer value while the holder was creating: the holder's value must not replace it.
    await two.set('k', CachedValue.create('newer', since + 5))
    expect(await slow.release({ value: CachedValue.create('older', since + 1), since })).toBe(false)
    expect(payloadOf(await two.get('k'))).toBe('newer')

    // A holder paused past its lock timeout, whose lock was taken over, stores nothing.
    expect((await slow.acquire({ wait: false })).acquired).toBe(true)
    const pausedSince = Date.now()
    await sleep(250)
    const takeover = two.getMutex('k')!
    expect((await takeover.acquire({ wait: false })).acquired).toBe(true)
    expect(await slow.release({ value: CachedValue.create('late', pausedSince + 10), since: pausedSince })).toBe(false)
    expect(await takeover.locked()).toBe(true)
    expect(payloadOf(await one.get('k'))).toBe('newer')
    expect(await takeover.release({ value: CachedValue.create('takeover', Date.now()), since: Date.now() - 1 })).toBe(
      true,
    )
    expect(payloadOf(await one.get('k'))).toBe('takeover')

    // setIfNotNewer: the same fence without a lock.
    const ct = Date.now()
    expect(await one.setIfNotNewer('k', CachedValue.create('stale write', ct), ct - 1_000_000)).toBe(false)
    expect(await one.setIfNotNewer('k', CachedValue.create('fresh write', ct + 1), ct + 1)).toBe(true)
    expect(payloadOf(await two.get('k'))).toBe('fresh write')
  })

  it('a lock record another program wrote is given an expiry instead of blocking for ever', async () => {
    const backend = open({ lockTimeout: 0.3 })
    backend.store.writeRawLock('k', Buffer.from('garbage without expiry'))
    const started = performance.now()
    const acquisition = await backend.getMutex('k')!.acquire({ wait: true })
    expect(acquisition.acquired).toBe(true)
    expect(performance.now() - started).toBeGreaterThanOrEqual(290)
  })

  describe('a waiter whose wait reaches lockTimeout (the fault rules of a distributed lock)', () => {
    const lockTimeout = 0.6

    it('gets LockTimeoutError when the lock is still held because someone keeps re-taking it', async () => {
      const { region } = newRegion()
      region.configure(open({ lockTimeout }), { expirationTime: 60 })
      const backend = region.backend as FileBackend
      backend.store.forceLock('retaken', 'someone else', 300)
      const hog = setInterval(() => backend.store.forceLock('retaken', 'someone else', 300), 100)
      try {
        const started = performance.now()
        let runs = 0
        const error = await region.getOrCreate('retaken', () => ++runs).catch((e: unknown) => e)
        const waited = performance.now() - started
        expect(error).toBeInstanceOf(LockTimeoutError)
        expect(runs).toBe(0)
        // The same holder kept the lock for 3 × lockTimeout: no progress, so the wait ends (the v2 waiting rule).
        expect(waited).toBeGreaterThanOrEqual(3 * lockTimeout * 1000 - 5)
        expect(waited).toBeLessThan(3 * lockTimeout * 1000 + 600)
      } finally {
        clearInterval(hog)
        await region.close()
      }
    })

    it('takes over the expired lock of a holder that died, even at the edge of lockTimeout', async () => {
      const { region } = newRegion()
      region.configure(open({ lockTimeout }), { expirationTime: 60 })
      const backend = region.backend as FileBackend
      for (const ttl of [300, lockTimeout * 1000]) {
        const key = `dead-${ttl}`
        backend.store.forceLock(key, 'a holder that died', ttl)
        const started = performance.now()
        expect(await region.getOrCreate(key, () => 'regenerated')).toBe('regenerated')
        const waited = performance.now() - started
        expect(waited).toBeGreaterThanOrEqual(ttl - 20)
        expect(waited).toBeLessThan(ttl + 300)
      }
      await region.close()
    })
  })
})

describe('crash safety', () => {
  const here = path.dirname(fileURLToPath(import.meta.url))
  const repository = path.resolve(here, '../../../../..')

  /** Starts a process that writes to `dir` without pause, and resolves once it is writing. */
  const startWriter = async (dir: string) => {
    const env = { ...process.env }
    delete env.NODE_OPTIONS
    const child = fork(path.join(here, 'test-support/write-burst.ts'), [dir, '200'], {
      cwd: repository,
      execArgv: ['--conditions=@corral/source', '--import', 'tsx'],
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    await new Promise<void>((resolve, reject) => {
      child.once('message', () => resolve())
      child.once('exit', (code, signal) => reject(new Error(`the writer exited (${code ?? signal}) before writing`)))
    })
    return { child, exited }
  }

  it('a process SIGKILLed in the middle of write bursts leaves a readable, writable, lockable store', async () => {
    const dir = path.join(root, 'crash')
    const keys = Array.from({ length: 200 }, (_, i) => `burst:${i}`)
    for (let round = 0; round < 5; round++) {
      const { child, exited } = await startWriter(dir)
      // Each burst writes ~2 MB in one transaction: a kill at a random moment lands in one (or in its commit).
      await sleep(20 + Math.random() * 80)
      child.kill('SIGKILL')
      await exited

      const backend = open({ path: dir, maxEntries: 150, lockTimeout: 5 })
      const values = await backend.getMulti(keys)
      const present = values.filter((v) => v !== NO_VALUE)
      // The store is within its bound and every value is whole: as written by one committed transaction.
      expect(present.length).toBeGreaterThan(0)
      expect(present.length).toBeLessThanOrEqual(150)
      for (const value of present) {
        const payload = value.payload as BurstPayload
        expect(payload.pad).toHaveLength(payload.size)
      }
      // The bookkeeping of the size bound committed with the values: it counts the values and the counter.
      const counter = await backend.increment('burst:counter', 0)
      expect(backend.store.stats().count).toBe(present.length + (counter > 0 ? 1 : 0))
      // Writes, counters and locks work at once: the dead writer's LMDB write lock was recovered.
      expect(await backend.increment('burst:counter', 1)).toBe(counter + 1)
      await backend.set('after', CachedValue.create('after crash', Date.now()))
      expect(payloadOf(await backend.get('after'))).toBe('after crash')
      const mutex = backend.getMutex(`after:${round}`)!
      expect((await mutex.acquire({ wait: false })).acquired).toBe(true)
      await mutex.release()
      await backend.close()
    }
  }, 60_000)

  it('a lock holder SIGKILLed mid-creation is taken over after lockTimeout', async () => {
    const dir = path.join(root, 'killed-holder')
    const region = 'killed'
    const holder = await Worker.start()
    const { region: waiter } = newRegion(region)
    try {
      await holder.call('configure', { region, backend: 'file', arguments: { path: dir, lockTimeout: '1s' } })
      waiter.configure('file', { expirationTime: 60, arguments: { path: dir, lockTimeout: '1s' } })
      await holder.call('hold', { region, key: 'k' })
      await holder.waitFor('holding')
      await holder.kill('SIGKILL')
      const killedAt = performance.now()
      expect(await waiter.keyIsLocked('k')).toBe(true)
      expect(await waiter.getOrCreate('k', () => 'taken over')).toBe('taken over')
      const waited = performance.now() - killedAt
      expect(waited).toBeLessThan(1000 + 300)
      await eventually(async () => !(await waiter.keyIsLocked('k')), 1000)
    } finally {
      await holder.kill('SIGKILL')
      await waiter.close()
    }
  })
})
