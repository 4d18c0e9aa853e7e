#!/usr/bin/env node
/**
 * `npm start`: a small application with a few cache regions under synthetic, skewed traffic, published by the
 * exporter (metrics, admin API, live events, dashboard) on http://127.0.0.1:9464.
 *
 * Environment: PORT, HOST (a non-loopback HOST needs CORRAL_ADMIN_TOKEN), CORRAL_ADMIN_TOKEN, REDIS_URL (adds an
 * `inventory` region on Redis, and publishes to the fleet `demo` on it), CORRAL_DEMO_RATE (steady gets per second,
 * default 800), CORRAL_DEMO_PROCESSES (default 1: with REDIS_URL, that many processes share the Redis, each with its
 * own exporter on the next port, so the dashboard's fleet view shows them all and their cross-process stampedes),
 * CORRAL_DEMO_FILE (a directory: adds a `catalog` region on the file backend, shared with every demo process started
 * with the same directory).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { createRegion, regions, type CacheRegion } from '@corral/core'
import type { ExporterLogger } from '../options.js'
import { startExporter, type RunningExporter } from '../server.js'
import { fileMode, slotBursts } from './file-mode.js'
import { Workload, type RegionTraffic } from './workload.js'

const words = ['red', 'shoes', 'café', 'wool', 'organic', 'bike', 'lamp', 'desk', 'tea', 'ünïcode']

function range(n: number, name: (i: number) => string): string[] {
  return Array.from({ length: n }, (_, i) => name(i))
}

/** A few keys with spaces, slashes, unicode and `%`, among the hot ones, as real applications have. */
function productKeys(): string[] {
  const keys = range(500, (i) => `product:sku-${String(i + 1).padStart(5, '0')}`)
  keys[3] = 'catalog/électroménager/page 1'
  keys[7] = 'search?q=100% cotton&lang=fr'
  keys[12] = 'product:ünïcode 🐄/limited'
  return keys
}

function buildRegions(): { traffic: RegionTraffic[]; extra: CacheRegion[]; stopFileMode: () => void } {
  const users = createRegion({ name: 'users' }).configure('memory', { expirationTime: 5 })
  const products = createRegion({ name: 'products' }).configure('memory', { expirationTime: 10 })
  // a longer expiration: a soft invalidation from the dashboard is served stale while one caller regenerates
  const sessions = createRegion({ name: 'sessions' }).configure('memory', {
    expirationTime: 30,
    arguments: { maxEntries: 10_000 },
  })
  const traffic: RegionTraffic[] = [
    {
      region: users,
      keys: range(2000, (i) => `user:${1000 + i}`),
      skew: 1.1,
      weight: 45,
      create: (key) => ({ id: key.slice(5), name: `User ${key.slice(5)}`, plan: key.length % 2 ? 'pro' : 'free' }),
    },
    {
      region: products,
      keys: productKeys(),
      skew: 1.25,
      weight: 35,
      latencyMs: [30, 200],
      errorRate: 0.01,
      create: (key) => ({ key, price: (key.length * 7.3) % 100, stock: key.length % 17 }),
    },
    {
      region: sessions,
      keys: range(300, (i) => `session:${(i * 2654435761) % 4294967296}`),
      skew: 0.9,
      weight: 20,
      latencyMs: [20, 80],
      create: (key) => ({ key, user: `user:${1000 + (key.length % 50)}`, at: Date.now() }),
    },
  ]
  const extra: CacheRegion[] = []
  const redisUrl = process.env.REDIS_URL
  if (redisUrl) {
    const inventory = createRegion({ name: 'inventory' })
    try {
      // An L1 in front of Redis: repeated reads answered from this process's memory (its L1 hit ratio shows).
      inventory.configure('redis', { expirationTime: 15, arguments: { url: redisUrl }, l1: true })
      traffic.push({
        region: inventory,
        keys: range(200, (i) => `stock:${words[i % words.length]}-${i}`),
        skew: 1.0,
        weight: 15,
        create: (key) => ({ key, units: key.length * 3 }),
      })
      extra.push(inventory)
    } catch (error) {
      console.warn(`REDIS_URL is set but the redis backend is not available (${(error as Error).message}); skipping it`)
      void inventory.close()
    }
  }
  const fileDirectory = process.env.CORRAL_DEMO_FILE
  const file = fileDirectory ? fileMode(fileDirectory) : undefined
  if (file) traffic.push(file.traffic)
  return { traffic, extra, stopFileMode: () => file?.stop() }
}

/** Admin actions as one readable line each. */
const logger: ExporterLogger = {
  info(obj, msg) {
    if (obj.audit !== 'corral.admin') return console.log(msg)
    const client = obj.client as { address: string; token: string }
    const detail =
      obj.key !== undefined ? ` key=${JSON.stringify(obj.key)}` : obj.hard !== undefined ? ` hard=${obj.hard}` : ''
    console.log(
      `${obj.at} admin ${obj.action} ${obj.region ?? '?'}${detail}: ${obj.outcome} (${obj.status}) from ${client.address} token=${client.token}`,
    )
  },
  warn: (obj, msg) => console.warn(msg, obj),
  error: (obj, msg) => console.error(msg, obj),
}

/** The fleet the demo's processes publish to, on REDIS_URL. */
const FLEET_NAME = 'demo'
function readProcesses(redisUrl: string | undefined): number {
  const text = process.env.CORRAL_DEMO_PROCESSES ?? '1'
  const processes = Number(text)
  if (!Number.isInteger(processes) || processes < 1 || processes > 16)
    throw new Error(`CORRAL_DEMO_PROCESSES must be an integer from 1 to 16; got "${text}"`)
  if (processes > 1 && !redisUrl)
    throw new Error('CORRAL_DEMO_PROCESSES above 1 needs REDIS_URL: the processes share that Redis')
  return processes
}

/**
 * Starts the other processes of a multi-process demo (this very script, with CORRAL_DEMO_INSTANCE set), each on the
 * next port (or a free one with PORT=0); resolves with their URLs once they listen.
 */
async function startSiblings(count: number, port: number): Promise<{ children: ChildProcess[]; urls: string[] }> {
  const children: ChildProcess[] = []
  const urls = await Promise.all(
    Array.from({ length: count }, (_, i) => {
      const child = fork(process.argv[1]!, [], {
        env: { ...process.env, CORRAL_DEMO_INSTANCE: String(i + 1), PORT: String(port === 0 ? 0 : port + i + 1) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      })
      children.push(child)
      return new Promise<string>((resolve, reject) => {
        child.once('message', (message: { url?: string }) => resolve(message.url ?? ''))
        child.once('exit', (code) => reject(new Error(`demo process ${i + 1} exited (${code}) before listening`)))
      })
    }),
  )
  return { children, urls }
}

async function main(): Promise<void> {
  const port = process.env.PORT === undefined ? 9464 : Number(process.env.PORT)
  const hostname = process.env.HOST || '127.0.0.1'
  const rate = process.env.CORRAL_DEMO_RATE === undefined ? 800 : Number(process.env.CORRAL_DEMO_RATE)
  if (!Number.isFinite(rate) || rate <= 0) throw new Error(`CORRAL_DEMO_RATE must be a positive number`)
  const redisUrl = process.env.REDIS_URL || undefined
  const instance = Number(process.env.CORRAL_DEMO_INSTANCE ?? 0)
  const processes = instance === 0 ? readProcesses(redisUrl) : 1
  const quiet = instance > 0

  const { traffic, extra, stopFileMode } = buildRegions()
  const workload = new Workload(traffic, {
    getsPerSecond: rate,
    onError: (error) => console.error('demo workload:', error),
  })
  workload.start()
  const inventory = extra[0]
  // every process bursts on the same key at once: the fleet view shows one incident with each process's waiters
  const stopSharedBursts =
    inventory && (processes > 1 || instance > 0) ? slotBursts(inventory, 'stock:restock-') : () => {}

  let exporter: RunningExporter
  let siblings: { children: ChildProcess[]; urls: string[] } = { children: [], urls: [] }
  try {
    exporter = await startExporter({
      port,
      hostname,
      logger,
      ...(redisUrl ? { fleet: { redis: redisUrl, name: FLEET_NAME } } : {}),
    })
    if (processes > 1) siblings = await startSiblings(processes - 1, port)
  } catch (error) {
    for (const child of siblings.children) child.kill('SIGTERM')
    stopSharedBursts()
    stopFileMode()
    await workload.stop()
    await regions.close()
    throw error
  }

  if (quiet) {
    process.send?.({ url: exporter.url })
  } else {
    console.log(`Corral demo: ${traffic.map((t) => t.region.name).join(', ')} under ~${rate} gets/s`)
    console.log(`  dashboard  ${exporter.url}/`)
    console.log(`  metrics    ${exporter.url}/metrics`)
    console.log(
      `  admin API  ${exporter.url}/api/regions${process.env.CORRAL_ADMIN_TOKEN ? ' (Bearer token required)' : ''}`,
    )
    if (redisUrl) {
      console.log(
        `  fleet      ${exporter.url}/api/fleet (fleet "${FLEET_NAME}" on ${redisUrl.replace(/\/\/[^@/]*@/, '//')})`,
      )
      siblings.urls.forEach((url, i) => console.log(`  process ${i + 2}  ${url}/`))
      if (processes > 1) console.log(`  ${processes} processes: switch the dashboard to "Fleet" to see them all.`)
    }
    console.log('Press Ctrl-C to stop.')
  }

  let stopping = false
  const stop = async (signal: NodeJS.Signals | 'disconnect') => {
    if (stopping) {
      // Ctrl-C reaches the siblings twice (from the terminal and from the first process): they finish cleanly
      if (quiet) return
      console.log(`${signal} again: exiting now`)
      process.exit(130)
    }
    stopping = true
    if (!quiet) console.log(`\n${signal}: stopping the workload and the exporter...`)
    const force = setTimeout(() => {
      console.error('shutdown took longer than 5 s; exiting')
      process.exit(1)
    }, 5000)
    force.unref()
    const children = siblings.children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve()
          child.once('exit', () => resolve())
          child.kill('SIGTERM')
        }),
    )
    stopSharedBursts()
    stopFileMode()
    await workload.stop()
    await exporter.close()
    await regions.close()
    await Promise.all(children)
    clearTimeout(force)
    if (!quiet) console.log(`stopped after ${workload.issued.gets} gets and ${workload.issued.bursts} bursts`)
    process.exitCode = 0
    // the channel to the first process would keep a sibling alive
    if (quiet && process.connected) process.disconnect()
  }
  process.on('SIGINT', (signal) => void stop(signal))
  process.on('SIGTERM', (signal) => void stop(signal))
  // a sibling whose first process died (even SIGKILLed) stops too
  if (quiet) process.on('disconnect', () => void stop('disconnect'))
}

main().catch((error: unknown) => {
  console.error(`corral demo: ${error instanceof Error ? error.message : String(error)}`)
  process.exit(1)
})
