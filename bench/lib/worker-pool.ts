/** The parent side of the cross-process cases: P worker processes driven in lock step. */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { nowMs } from './stats.js'
import type { ParentMessage, RunResult, SetupMessage, WorkerMessage } from './worker-protocol.js'

const WORKER = fileURLToPath(new URL('./worker.ts', import.meta.url))
/** Lead time between sending `run` and the agreed start, so that every worker has received it. */
const START_LEAD_MS = 50

export class WorkerPool {
  private constructor(private readonly workers: ChildProcess[]) {}

  static async start(count: number): Promise<WorkerPool> {
    const workers = Array.from({ length: count }, () =>
      fork(WORKER, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    )
    await Promise.all(workers.map((worker) => new Promise((resolve) => worker.once('spawn', resolve))))
    return new WorkerPool(workers)
  }

  get size(): number {
    return this.workers.length
  }

  /** Builds `adapter`'s cache in every worker; rejects with the workers' error if it cannot be built. */
  async setup(options: Omit<SetupMessage, 'type'>): Promise<void> {
    await this.all({ type: 'setup', ...options })
  }

  /** Every worker fires `callers` concurrent calls on `key` at the same instant; one result per worker. */
  async run(key: string, callers: number): Promise<RunResult[]> {
    const replies = await this.all({ type: 'run', key, callers, startAt: nowMs() + START_LEAD_MS })
    return replies as RunResult[]
  }

  async teardown(): Promise<void> {
    await this.all({ type: 'teardown' })
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.exitCode !== null || worker.signalCode !== null) return resolve()
            worker.once('exit', () => resolve())
            worker.disconnect()
            setTimeout(() => worker.kill('SIGKILL'), 5000).unref()
          }),
      ),
    )
  }

  private async all(message: ParentMessage): Promise<WorkerMessage[]> {
    const replies = await Promise.all(this.workers.map((worker) => request(worker, message)))
    const failure = replies.find((reply) => reply.type === 'failed')
    if (failure && failure.type === 'failed') throw new Error(failure.message)
    return replies
  }
}

function request(worker: ChildProcess, message: ParentMessage): Promise<WorkerMessage> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) =>
      reject(new Error(`worker ${worker.pid} exited (${code}) during ${message.type}`))
    worker.once('exit', onExit)
    worker.once('message', (reply: WorkerMessage) => {
      worker.off('exit', onExit)
      resolve(reply)
    })
    worker.send(message)
  })
}
