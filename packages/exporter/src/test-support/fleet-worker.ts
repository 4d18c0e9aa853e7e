/**
 * A process of a test fleet, driven over IPC by `fleet-workers.ts`:
 *
 *   node --conditions=@corral/source --import tsx fleet-worker.ts
 *
 * It creates a `catalog` region on the Redis of `REDIS_URL` (the distributed lock on) and an exporter publishing to
 * the fleet `FLEET_NAME` every `FLEET_INTERVAL` seconds, tells the parent its URL, and runs what it is asked:
 * sequential traffic on given keys, or a stampede of concurrent callers on one key.
 */
import { RegionRegistry } from '@corral/core'
import { startExporter } from '../server.js'

interface Request {
  id: number
  op: string
  [field: string]: unknown
}

const send = (message: unknown) => process.send?.(message)
const describe = (error: unknown) => ({
  name: (error as Error)?.name,
  message: (error as Error)?.message ?? String(error),
})
process.on('unhandledRejection', (error) => send({ event: 'unhandled', error: describe(error) }))
process.on('uncaughtException', (error) => send({ event: 'unhandled', error: describe(error) }))

const registry = new RegionRegistry()
const catalog = registry.createRegion({ name: 'catalog' }).configure('redis', {
  expirationTime: 60,
  arguments: { url: process.env.REDIS_URL, keyPrefix: `${process.env.FLEET_NAME}:` },
})
let creatorRuns = 0
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const exporter = await startExporter({
  port: 0,
  registry,
  logger: false,
  dashboard: false,
  adminToken: '',
  fleet: { redis: process.env.REDIS_URL!, name: process.env.FLEET_NAME!, interval: Number(process.env.FLEET_INTERVAL) },
})

async function handle(request: Request): Promise<unknown> {
  switch (request.op) {
    case 'traffic': {
      // [key, gets] pairs, interleaved so that no key is only at the start of the window
      const plan = request.gets as Array<[string, number]>
      const remaining = new Map(plan)
      while (remaining.size > 0) {
        for (const [key, left] of remaining) {
          await catalog.getOrCreate(key, () => `value of ${key}`)
          if (left <= 1) remaining.delete(key)
          else remaining.set(key, left - 1)
        }
      }
      return { gets: plan.reduce((sum, [, n]) => sum + n, 0) }
    }
    case 'stampede': {
      const { key, callers, creatorMs } = request as unknown as { key: string; callers: number; creatorMs: number }
      const before = creatorRuns
      const values = await Promise.all(
        Array.from({ length: callers }, () =>
          catalog.getOrCreate(key, async () => {
            creatorRuns++
            await sleep(creatorMs)
            return `made by ${process.pid}`
          }),
        ),
      )
      return { runs: creatorRuns - before, values: [...new Set(values)] }
    }
    case 'locked':
      return { locked: await catalog.keyIsLocked(request.key as string) }
    case 'close':
      await exporter.close()
      await registry.close()
      return { closed: true }
    default:
      throw new Error(`unknown op ${request.op}`)
  }
}

process.on('message', (request: Request) => {
  handle(request).then(
    (result) => send({ id: request.id, ok: true, result }),
    (error: unknown) => send({ id: request.id, ok: false, error: describe(error) }),
  )
})
send({ event: 'started', url: exporter.url, pid: process.pid })
