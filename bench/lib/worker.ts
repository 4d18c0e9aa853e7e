/**
 * A worker process of the cross-process cases: an application instance sharing one Redis with its siblings.
 * It builds the requested library's cache, then on each `run` fires `callers` concurrent get-or-compute calls on
 * one key at the agreed start time and reports how many times its creator ran and when each caller was answered.
 */
import { redisAdapter, type CacheUnderTest } from './adapters.js'
import { nowMs, sleep } from './stats.js'
import type { ParentMessage, RunMessage, RunResult, SetupMessage, WorkerMessage } from './worker-protocol.js'

let cache: CacheUnderTest | undefined
let creatorCalls = 0
let storedAt: number[] = []

const send = (message: WorkerMessage) => process.send!(message)
const errorText = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error))

async function setup(message: SetupMessage): Promise<void> {
  cache = await redisAdapter(message.adapter).create({
    url: message.url,
    keyPrefix: message.keyPrefix,
    ttlMs: message.ttlMs,
    creator: async (key) => {
      creatorCalls++
      await sleep(message.creatorMs)
      return { key, pid: process.pid }
    },
  })
  cache.onStored?.(() => storedAt.push(nowMs()))
}

async function run(message: RunMessage): Promise<RunResult> {
  creatorCalls = 0
  storedAt = []
  // Sleep until just before the start time, then spin: the processes start within microseconds of each other.
  const wait = message.startAt - nowMs() - 2
  if (wait > 0) await sleep(wait)
  while (nowMs() < message.startAt) {
    // spin
  }
  const startedAt = nowMs()
  const answeredAt: number[] = []
  const errors: string[] = []
  await Promise.all(
    Array.from({ length: message.callers }, () =>
      cache!.getOrCreate(message.key).then(
        () => void answeredAt.push(nowMs()),
        (error: unknown) => void errors.push(errorText(error)),
      ),
    ),
  )
  return { type: 'result', pid: process.pid, creatorCalls, storedAt, answeredAt, errors: errors.slice(0, 5), startedAt }
}

process.on('message', (message: ParentMessage) => {
  const handle = async (): Promise<WorkerMessage> => {
    switch (message.type) {
      case 'setup':
        await setup(message)
        return { type: 'ready' }
      case 'run':
        return run(message)
      case 'teardown':
        await cache?.close()
        cache = undefined
        return { type: 'closed' }
    }
  }
  handle().then(send, (error: unknown) => send({ type: 'failed', message: errorText(error) }))
})

// The benchmark went away: nothing to report to anymore.
process.on('disconnect', () => process.exit(0))
