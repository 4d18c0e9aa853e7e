/**
 * The memcached lock beyond what the conformance suite checks: fenced writes against a real holder process that is
 * SIGSTOPped past its lock timeout, foreign and corrupt lock keys, what `acquire` returns (current, produced,
 * holder), and the commands and round trips a miss costs, counted on the wire.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import memjs from 'memjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startMemcachedWireCounter,
  totalCommands,
  type MemcachedWireCounter,
} from '../../../../../test-support/memcached-wire.js'
import { startMemcached, type MemcachedServer } from '../../../../../test-support/servers.js'
import { CachedValue, NO_VALUE, jsonSerializer, type NoValue } from '../../cached-value.js'
import { LockTimeoutError } from '../../errors.js'
import { RegionRegistry } from '../../registry.js'
import { reportFigure } from '../../testing/measure.js'
import { MemcachedBackend, type MemcachedBackendOptions } from './index.js'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const REPOSITORY = path.resolve(HERE, '../../../../..')
const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

let server: MemcachedServer
let raw: memjs.Client
const open: MemcachedBackend[] = []

beforeAll(async () => {
  server = await startMemcached()
  raw = memjs.Client.create(server.servers, { logger: { log: () => {} } })
})

afterAll(async () => {
  await Promise.all(open.map((backend) => backend.close()))
  raw?.close()
  await server?.stop()
})

/** A backend attached as a region would attach it (another instance: as another process would use the server). */
function backendFor(options: MemcachedBackendOptions = {}): MemcachedBackend {
  const backend = new MemcachedBackend({ servers: server.servers, keyPrefix: 'mutex:', ...options })
  backend.attach({ regionName: 'mutex', expirationTime: 60, serializer: jsonSerializer, reportError: () => {} })
  open.push(backend)
  return backend
}

const payload = (value: CachedValue | NoValue) => (value === NO_VALUE ? NO_VALUE : value.payload)
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const newKey = (label: string) => `${label}-${randomUUID().slice(0, 8)}`

/** A lock holder in a process of its own (test-support/fenced-holder.ts). */
class HolderProcess {
  readonly events: Array<Record<string, unknown>> = []
  readonly #waiters: Array<() => void> = []

  private constructor(readonly child: ChildProcess) {
    child.on('message', (message: Record<string, unknown>) => {
      this.events.push(message)
      for (const wake of this.#waiters.splice(0)) wake()
    })
  }

  static async start(): Promise<HolderProcess> {
    const env = { ...process.env }
    delete env.NODE_OPTIONS
    const child = fork(path.join(HERE, 'test-support/fenced-holder.ts'), [], {
      cwd: REPOSITORY,
      execArgv: ['--conditions=@corral/source', '--import', 'tsx'],
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    const holder = new HolderProcess(child)
    await holder.next('started')
    return holder
  }

  /** The first event named `name` (waiting for it if need be). */
  async next(name: string, timeoutMs = 15_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.events.find((event) => event.event === name || event.event === 'failed')
      if (found?.event === 'failed') throw new Error(`holder process failed: ${String(found.error)}`)
      if (found) return found
      if (Date.now() > deadline) throw new Error(`holder process: no "${name}" within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve)
        setTimeout(resolve, 50)
      })
    }
  }

  hold(key: string, lockTimeout: number, holdMs: number): void {
    this.child.send({
      op: 'hold',
      servers: server.servers,
      keyPrefix: 'mutex:',
      key,
      lockTimeout,
      holdMs,
      label: 'holder',
    })
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    const exited = new Promise((resolve) => this.child.once('exit', resolve))
    this.child.kill('SIGKILL')
    await exited
  }
}

describe('fenced writes on memcached', () => {
  const lockTimeout = 0.5

  /**
   * A holder process takes the lock of a new key and creates for 200 ms; `whilePaused` runs while it is SIGSTOPped
   * past its lock timeout (`pauseMs`; none: it is not paused). Resolves with whether its release stored.
   */
  async function holderPausedWhile(key: string, pauseMs: number | undefined, whilePaused: () => Promise<void>) {
    const holder = await HolderProcess.start()
    try {
      holder.hold(key, lockTimeout, 200)
      await holder.next('holding')
      if (pauseMs !== undefined) {
        holder.child.kill('SIGSTOP')
        await whilePaused()
        await sleep(Math.max(0, pauseMs))
        holder.child.kill('SIGCONT')
      }
      const released = await holder.next('released')
      expect(holder.events.filter((event) => event.event === 'unhandled')).toEqual([])
      return released.stored as boolean
    } finally {
      await holder.stop()
    }
  }

  it('a holder that is not paused stores as it releases (the control case)', async () => {
    const key = newKey('control')
    expect(await holderPausedWhile(key, undefined, async () => {})).toBe(true)
    expect(payload(await backendFor().get(key))).toBe('holder')
  })

  it('a holder SIGSTOPped past its lock timeout does not overwrite a value set() wrote meanwhile', async () => {
    const key = newKey('set-meanwhile')
    const writer = backendFor()
    const stored = await holderPausedWhile(key, 0, async () => {
      await sleep(lockTimeout * 1000 + 200)
      await writer.set(key, CachedValue.create('newer', Date.now()))
    })
    expect(stored).toBe(false)
    expect(payload(await writer.get(key))).toBe('newer')
  })

  it('... nor the value of the holder that took the lock over meanwhile', async () => {
    const key = newKey('taken-over')
    const other = backendFor({ lockTimeout })
    let takeoverStored: boolean | undefined
    const stored = await holderPausedWhile(key, 100, async () => {
      const mutex = other.getMutex(key)!
      const since = Date.now()
      const acquisition = await mutex.acquire({ wait: true })
      expect(acquisition.acquired).toBe(true)
      takeoverStored = await mutex.release({ value: CachedValue.create('takeover', Date.now()), since })
    })
    expect(takeoverStored).toBe(true)
    expect(stored).toBe(false)
    expect(payload(await other.get(key))).toBe('takeover')
  })

  it('a set() while the holder creates, its lock still valid, is not overwritten either (the CAS on the value)', async () => {
    const key = newKey('set-while-held')
    const writer = backendFor()
    const holder = await HolderProcess.start()
    try {
      holder.hold(key, 30, 300)
      await holder.next('holding')
      await writer.set(key, CachedValue.create('newer', Date.now()))
      expect((await holder.next('released')).stored).toBe(false)
    } finally {
      await holder.stop()
    }
    expect(payload(await writer.get(key))).toBe('newer')
    // The holder let go of its lock all the same.
    expect(await writer.getMutex(key)!.locked()).toBe(false)
  })

  it('... and stores nothing once its lock has expired, even if nobody wrote (the lock is no longer its own)', async () => {
    const key = newKey('expired')
    const stored = await holderPausedWhile(key, lockTimeout * 1000 + 200, async () => {})
    expect(stored).toBe(false)
    expect(await backendFor().get(key)).toBe(NO_VALUE)
  })

  it('setIfNotNewer stores over older values and foreign bytes, never over a newer value', async () => {
    const backend = backendFor()
    const key = newKey('if-not-newer')
    const at = Date.now()
    expect(await backend.setIfNotNewer(key, CachedValue.create('first', at), at)).toBe(true)
    expect(await backend.setIfNotNewer(key, CachedValue.create('same time', at + 1), at)).toBe(true)
    // A value created after `since` wins.
    expect(await backend.setIfNotNewer(key, CachedValue.create('late', at + 2), at)).toBe(false)
    expect(payload(await backend.get(key))).toBe('same time')
    expect(await backend.setIfNotNewer(key, CachedValue.create('later', at + 3), at + 1)).toBe(true)
    // Bytes that are no value, and a creation time from the future (a fast clock), do not block a write.
    await raw.set(backend.keyFor(key), Buffer.from('not a corral value'), {})
    expect(await backend.setIfNotNewer(key, CachedValue.create('over garbage', at + 4), at)).toBe(true)
    await backend.set(key, CachedValue.create('from the future', Date.now() + 3_600_000))
    expect(await backend.setIfNotNewer(key, CachedValue.create('now', Date.now()), Date.now())).toBe(true)
    expect(payload(await backend.get(key))).toBe('now')
  })

  it('concurrent setIfNotNewer from two instances: the newest value wins, whatever the order of arrival', async () => {
    const [one, two] = [backendFor(), backendFor()]
    const key = newKey('race')
    const base = Date.now()
    // Writer i made its value at base + i from data read at base + i: each may replace only older values.
    const order = Array.from({ length: 30 }, (_, i) => i).sort(() => Math.random() - 0.5)
    await Promise.all(
      order.map((i) => (i % 2 ? one : two).setIfNotNewer(key, CachedValue.create(i, base + i), base + i)),
    )
    expect(payload(await one.get(key))).toBe(29)
  })
})

describe('lock keys Corral did not write', () => {
  it('a foreign lock key without expiry, or one claiming to last for ever, is taken over after lockTimeout', async () => {
    const lockTimeout = 0.5
    for (const foreign of ['garbage without expiry', 'someone:9999999999999', '']) {
      const key = newKey('foreign')
      const backend = backendFor({ lockTimeout })
      await raw.set(backend.keyFor(`corral:lock:${key}`), Buffer.from(foreign), { expires: 0 })
      expect(await backend.getMutex(key)!.locked()).toBe(true)
      const region = new RegionRegistry().createRegion({ name: `foreign-${randomUUID().slice(0, 8)}` })
      region.configure(backend, { expirationTime: 60 })
      const started = performance.now()
      const value = await region.getOrCreate(key, () => 'made').catch((error: unknown) => error)
      const waited = performance.now() - started
      expect(value, JSON.stringify(foreign)).toBe('made')
      expect(waited).toBeGreaterThanOrEqual(lockTimeout * 1000 - 50)
      expect(waited).toBeLessThan(lockTimeout * 1000 + 1500)
    }
  })

  it('a lock someone keeps re-taking is still a LockTimeoutError, not a takeover', async () => {
    const lockTimeout = 0.5
    const key = newKey('retaken')
    const backend = backendFor({ lockTimeout })
    const lockKey = backend.keyFor(`corral:lock:${key}`)
    // Re-taken every 100 ms, each time for 1 s (below the lockTimeout + 1 s that a foreign lock is cut to), so the
    // lock never lapses even when the loaded test process runs the interval late.
    const hold = () => raw.set(lockKey, Buffer.from(`someone:${Date.now() + 1000}`), { expires: 2 })
    await hold()
    const hog = setInterval(() => void hold().catch(() => {}), 100)
    try {
      const region = new RegionRegistry().createRegion({ name: `retaken-${randomUUID().slice(0, 8)}` })
      region.configure(backend, { expirationTime: 60 })
      await expect(region.getOrCreate(key, () => 'made')).rejects.toBeInstanceOf(LockTimeoutError)
    } finally {
      clearInterval(hog)
    }
  })
})

describe('what acquire returns', () => {
  it('acquired: the value read with the lock, in the same round trip (current)', async () => {
    const wire = await startMemcachedWireCounter(server)
    try {
      const backend = backendFor({ servers: wire.servers })
      const [present, absent] = [newKey('present'), newKey('absent')]
      await backend.set(present, CachedValue.create({ n: 1 }, Date.now()))
      const mutex = backend.getMutex(present)!
      const counts = await wire.measure(async () => {
        const acquisition = await mutex.acquire({ wait: false })
        expect(acquisition.acquired).toBe(true)
        expect(payload(acquisition.current!)).toEqual({ n: 1 })
      })
      expect(counts.roundTrips).toBe(1)
      const other = backendFor().getMutex(absent)!
      expect(await other.acquire({ wait: false })).toEqual({ acquired: true, current: NO_VALUE })
      await Promise.all([mutex.release(), other.release()])
    } finally {
      await wire.close()
    }
  })

  it('busy: who holds the lock (holder), and a waiter ends with the value the holder released with (produced)', async () => {
    const [one, two] = [backendFor(), backendFor()]
    const key = newKey('produced')
    const holder = one.getMutex(key)!
    const since = Date.now()
    expect((await holder.acquire({ wait: false, holder: { traceparent: TRACEPARENT } })).acquired).toBe(true)
    expect(await two.getMutex(key)!.acquire({ wait: false })).toEqual({
      acquired: false,
      holder: { traceparent: TRACEPARENT },
    })
    const waiting = two.getMutex(key)!.acquire({ wait: true })
    await sleep(50)
    expect(await holder.release({ value: CachedValue.create('made', Date.now()), since })).toBe(true)
    const waited = await waiting
    expect(waited.acquired).toBe(false)
    expect(payload(waited.produced!)).toBe('made')
    expect(waited.holder).toEqual({ traceparent: TRACEPARENT })
    // The waiter did not take the lock to find it.
    expect(await two.getMutex(key)!.locked()).toBe(false)
  })

  it('a holder that releases without a value hands the lock to a waiter, which gets the current value with it', async () => {
    const [one, two] = [backendFor(), backendFor()]
    const key = newKey('handed')
    await one.set(key, CachedValue.create('old', Date.now() - 60_000))
    const holder = one.getMutex(key)!
    expect((await holder.acquire({ wait: false })).acquired).toBe(true)
    const waiting = two.getMutex(key)!.acquire({ wait: true })
    await sleep(50)
    await holder.release()
    const waited = await waiting
    expect(waited.acquired).toBe(true)
    expect(payload(waited.current!)).toBe('old')
  })
})

describe('what a miss costs memcached', () => {
  let wire: MemcachedWireCounter
  beforeAll(async () => {
    wire = await startMemcachedWireCounter(server)
  })
  afterAll(async () => {
    await wire?.close()
  })

  it('a miss is 3 round trips: GET; ADD lock + GET lock + GET value; the fenced write + the unlock', async () => {
    const region = new RegionRegistry().createRegion({ name: `cost-${randomUUID().slice(0, 8)}` })
    region.configure(backendFor({ servers: wire.servers, invalidationPollInterval: '1h' }), { expirationTime: 60 })
    await region.get('warm-up')
    const misses = 20
    const cold = await wire.measure(async () => {
      for (let i = 0; i < misses; i++) expect(await region.getOrCreate(`cold-${i}`, () => i)).toBe(i)
    })
    expect(cold.roundTrips / misses).toBe(3)
    expect(cold.commands).toEqual({ get: 3 * misses, add: 2 * misses, 'cas-delete': misses })
    // Regenerating an expired value: the write is a CAS over the version read with the lock.
    const stale = await wire.measure(async () => {
      for (let i = 0; i < misses; i++)
        expect(await region.getOrCreate(`cold-${i}`, () => -i, { expirationTime: 0.001 })).toBe(-i)
    })
    expect(stale.roundTrips / misses).toBe(3)
    expect(stale.commands).toEqual({ get: 3 * misses, add: misses, 'cas-set': misses, 'cas-delete': misses })
    reportFigure('memcached commands per miss (sent / round trips)', {
      commands: totalCommands(cold.commands) / misses,
      roundTrips: cold.roundTrips / misses,
    })
  })
})
