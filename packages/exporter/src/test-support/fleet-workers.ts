/** The parent side of the fleet tests: forks `fleet-worker.ts` processes and talks to them over IPC. */
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const WORKER = path.join(HERE, 'fleet-worker.ts')
const ROOT = path.resolve(HERE, '../../../..')
const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL')
})

interface Reply {
  id?: number
  ok?: boolean
  result?: unknown
  error?: { message: string }
  event?: string
  url?: string
}

export class FleetWorker {
  readonly exited: Promise<void>
  readonly unhandled: Reply[] = []
  url = ''
  private next = 1
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  private stderr = ''

  private constructor(readonly child: ChildProcess) {
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.stderr = (this.stderr + chunk).slice(-4000)))
    child.on('message', (message: Reply) => {
      if (message.event === 'unhandled') this.unhandled.push(message)
      const pending = this.pending.get(message.id ?? -1)
      if (!pending) return
      this.pending.delete(message.id!)
      if (message.ok) pending.resolve(message.result)
      else pending.reject(new Error(message.error?.message ?? 'worker error'))
    })
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        live.delete(child)
        for (const { reject } of this.pending.values()) reject(new Error(`worker exited\n${this.stderr}`))
        resolve()
      }),
    )
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  static async start(env: { REDIS_URL: string; FLEET_NAME: string; FLEET_INTERVAL: number }): Promise<FleetWorker> {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env, FLEET_INTERVAL: String(env.FLEET_INTERVAL) }
    delete childEnv.NODE_OPTIONS
    const child = fork(WORKER, [], {
      cwd: ROOT,
      execArgv: ['--conditions=@corral/source', '--import', 'tsx'],
      env: childEnv,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    })
    live.add(child)
    const worker = new FleetWorker(child)
    worker.url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker did not start\n${worker.stderr}`)), 30_000)
      child.on('message', (message: Reply) => {
        if (message.event === 'started') {
          clearTimeout(timer)
          resolve(message.url!)
        }
      })
      void worker.exited.then(() => reject(new Error(`worker exited before starting\n${worker.stderr}`)))
    })
    return worker
  }

  call<T>(op: string, payload: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> {
    const id = this.next++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${op}: no answer within ${timeoutMs} ms\n${this.stderr}`)),
        timeoutMs,
      )
      this.pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer)
          resolve(value as T)
        },
        reject: (error) => {
          clearTimeout(timer)
          reject(error)
        },
      })
      this.child.send({ id, op, ...payload })
    })
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    await this.call('close', {}, 5000).catch(() => undefined)
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000)
    await this.exited
    clearTimeout(timer)
  }

  kill(): Promise<void> {
    this.child.kill('SIGKILL')
    return this.exited
  }
}
