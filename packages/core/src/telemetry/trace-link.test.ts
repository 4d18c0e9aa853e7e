/**
 * Traces across processes, with the real OpenTelemetry SDK in two real processes on one real Redis: the caller that
 * waited in one process for the creator of another links its `corral.get_or_create` span to the creator's
 * `corral.regenerate` span, and the link says why.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startRedis, type RedisServer } from '../../../../test-support/servers.js'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '../../../..')

interface SpanJson {
  name: string
  traceId: string
  spanId: string
  attributes: Record<string, unknown>
  links: Array<{ traceId: string; spanId: string; attributes: Record<string, unknown> }>
}
interface Answer {
  runs: number
  spans: SpanJson[]
}

let redis: RedisServer
const children: ChildProcess[] = []

function worker(env: Record<string, string>) {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env }
  delete childEnv.NODE_OPTIONS
  const child = fork(path.join(HERE, 'test-support/trace-worker.ts'), [], {
    cwd: ROOT,
    execArgv: ['--conditions=@corral/source', '--import', 'tsx'],
    env: childEnv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  children.push(child)
  let next = 1
  const started = new Promise<void>((resolve) =>
    child.on('message', (m: { started?: boolean }) => m.started && resolve()),
  )
  const call = (request: Record<string, unknown>) =>
    new Promise<Answer>((resolve, reject) => {
      const id = next++
      const onMessage = (m: { id?: number; ok?: boolean; error?: string } & Answer) => {
        if (m.id !== id) return
        child.off('message', onMessage)
        if (m.ok) resolve(m)
        else reject(new Error(m.error))
      }
      child.on('message', onMessage)
      child.send({ id, ...request })
    })
  return { started, call, pid: child.pid }
}

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL')
  await redis?.stop()
})

describe('a trace across processes', () => {
  it(
    "links the waiting process's span to the creator's regeneration in the other process",
    { timeout: 60_000 },
    async () => {
      const env = { REDIS_URL: redis.url, PREFIX: `t-${randomUUID().slice(0, 8)}` }
      const creator = worker(env)
      const waiter = worker(env)
      await Promise.all([creator.started, waiter.started])

      const creating = creator.call({ op: 'stampede', key: 'report:1', callers: 1, creatorMs: 500 })
      await new Promise((resolve) => setTimeout(resolve, 150))
      const waiting = waiter.call({ op: 'stampede', key: 'report:1', callers: 3, creatorMs: 500 })
      const [made, waited] = await Promise.all([creating, waiting])
      expect([made.runs, waited.runs]).toEqual([1, 0])

      const regenerate = made.spans.find((s) => s.name === 'corral.regenerate')!
      expect(regenerate).toBeDefined()
      const leader = waited.spans.find(
        (s) => s.name === 'corral.get_or_create' && s.links.some((l) => l.spanId === regenerate.spanId),
      )
      expect(leader, JSON.stringify(waited.spans, null, 1)).toBeDefined()
      const link = leader!.links.find((l) => l.spanId === regenerate.spanId)!
      expect(link.traceId).toBe(regenerate.traceId)
      expect(link.attributes).toEqual({ 'corral.link.reason': 'waited_for_creator_in_other_process' })
      // a different trace: the waiter's own, linked, not parented
      expect(leader!.traceId).not.toBe(regenerate.traceId)
      expect(leader!.attributes['corral.result']).toBe('miss')
    },
  )
})
