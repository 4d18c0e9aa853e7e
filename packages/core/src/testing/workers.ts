/**
 * The parent side of the multi-process tests: forks `stampede-worker` children and talks to them over IPC.
 * Children are killed when the test process exits.
 *
 * From the TypeScript sources (this repository's tests) a child runs the worker's `.ts` through tsx with core from
 * source; from the compiled package (`@corral/core/testing` in your project) it runs the compiled `.js` with plain
 * Node.js.
 */
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import type { CallerResult, CreatedValue, LoadSample } from './stampede-worker.js'

export type { CallerResult, CreatedValue, LoadSample }

const HERE = fileURLToPath(import.meta.url)
const FROM_SOURCE = HERE.endsWith('.ts')
const WORKER = path.join(path.dirname(HERE), `stampede-worker${path.extname(HERE)}`)
/** Where children run: the repository root from the sources (where tsx is installed), else the current directory. */
const CWD = FROM_SOURCE ? path.resolve(path.dirname(HERE), '../../../..') : process.cwd()
const EXEC_ARGV = FROM_SOURCE ? ['--conditions=@corral/source', '--import', 'tsx'] : []

const live = new Set<ChildProcess>()
let exitHookInstalled = false

interface Reply {
  id?: number
  ok?: boolean
  result?: unknown
  error?: { name: string; code?: string; message: string }
  event?: string
  [field: string]: unknown
}

export class WorkerError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly remoteName: string,
  ) {
    super(message)
    this.name = 'WorkerError'
  }
}

export class Worker {
  readonly events: Reply[] = []
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  #next = 1
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
  readonly #eventWaiters: Array<{ event: string; resolve: (reply: Reply) => void }> = []
  #stderr = ''

  private constructor(readonly child: ChildProcess) {
    child.on('message', (message: Reply) => {
      if (message.event) {
        this.events.push(message)
        for (const waiter of this.#eventWaiters.filter((w) => w.event === message.event)) {
          this.#eventWaiters.splice(this.#eventWaiters.indexOf(waiter), 1)
          waiter.resolve(message)
        }
        return
      }
      const pending = this.#pending.get(message.id ?? -1)
      if (!pending) return
      this.#pending.delete(message.id!)
      if (message.ok) pending.resolve(message.result)
      else
        pending.reject(
          new WorkerError(
            message.error?.message ?? 'worker error',
            message.error?.code,
            message.error?.name ?? 'Error',
          ),
        )
    })
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr = (this.#stderr + chunk).slice(-8000)
    })
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child)
        for (const { reject } of this.#pending.values())
          reject(new Error(`worker ${child.pid} exited (${code ?? signal}) with requests pending\n${this.#stderr}`))
        this.#pending.clear()
        resolve({ code, signal })
      })
    })
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  /** Output the worker wrote to stderr (last 8000 characters). */
  get stderr(): string {
    return this.#stderr
  }

  /**
   * Forks a worker and waits until it runs. `setup`: a module (path or URL) it imports first, e.g. one that calls
   * `registerBackend` so that regions can be configured with your backend by name.
   */
  static async start(setup?: string | URL): Promise<Worker> {
    if (!exitHookInstalled) {
      exitHookInstalled = true
      process.on('exit', () => {
        for (const child of live) child.kill('SIGKILL')
      })
    }
    const env = { ...process.env }
    delete env.NODE_OPTIONS
    const child = fork(WORKER, setup === undefined ? [] : [moduleUrl(setup)], {
      cwd: CWD,
      execArgv: EXEC_ARGV,
      env,
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    })
    live.add(child)
    const worker = new Worker(child)
    await Promise.race([
      worker.waitFor('started'),
      worker.exited.then(({ code, signal }) => {
        throw new Error(`worker exited (${code ?? signal}) before starting:\n${worker.stderr}`)
      }),
    ])
    return worker
  }

  /** Sends one request; resolves with the worker's result. */
  call<T = unknown>(op: string, payload: Record<string, unknown> = {}, timeoutMs = 20_000): Promise<T> {
    const id = this.#next++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`worker ${this.pid}: ${op} got no answer within ${timeoutMs} ms\n${this.#stderr}`))
      }, timeoutMs)
      this.#pending.set(id, {
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

  /** The next event named `event` (or one already received). */
  waitFor(event: string, timeoutMs = 20_000): Promise<Reply> {
    const seen = this.events.find((e) => e.event === event)
    if (seen) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`worker ${this.pid}: no "${event}" within ${timeoutMs} ms`)),
        timeoutMs,
      )
      this.#eventWaiters.push({
        event,
        resolve: (reply) => {
          clearTimeout(timer)
          resolve(reply)
        },
      })
    })
  }

  /** Unhandled rejections / exceptions the worker reported. */
  get unhandled(): Reply[] {
    return this.events.filter((e) => e.event === 'unhandled')
  }

  /** SIGSTOP: the process freezes, timers and sockets included, until `resume()`. */
  pause(): void {
    this.child.kill('SIGSTOP')
  }

  /** SIGCONT: a paused process runs again, and its overdue timers fire. */
  resume(): void {
    this.child.kill('SIGCONT')
  }

  /** Whether the worker exited (or was killed) with a signal or an exit code other than the one `stop()` gives. */
  get crashed(): boolean {
    return this.child.signalCode !== null || (this.child.exitCode !== null && this.child.exitCode !== 0)
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<unknown> {
    this.child.kill(signal)
    return this.exited
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    try {
      await this.call('close', {}, 5000)
    } catch {
      // killed below
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000)
    await this.exited
    clearTimeout(timer)
  }
}

export async function startWorkers(count: number, setup?: string | URL): Promise<Worker[]> {
  return Promise.all(Array.from({ length: count }, () => Worker.start(setup)))
}

/** A module to import, as a URL (a relative path is taken from the current directory). */
function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href
  return /^[a-z][a-z0-9+.-]*:/i.test(module) && !path.isAbsolute(module)
    ? module
    : pathToFileURL(path.resolve(module)).href
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[index]!
}

export interface StampedeReport {
  pid: number
  runs: number
  results: CallerResult[]
}

/**
 * Fires `callers` concurrent getOrCreate in every worker at the same instant and sums up: creator runs, the
 * values returned, and each caller's latency.
 */
export async function stampede(
  workers: readonly Worker[],
  payload: { region: string; key: string; callers: number; creatorMs: number; label: string; tags?: string[] },
): Promise<{ runs: number; reports: StampedeReport[]; all: Array<CallerResult & { pid: number }> }> {
  const startAt = Date.now() + 150
  const reports = await Promise.all(workers.map((w) => w.call<StampedeReport>('stampede', { ...payload, startAt })))
  return {
    runs: reports.reduce((sum, r) => sum + r.runs, 0),
    reports,
    all: reports.flatMap((r) => r.results.map((result) => ({ ...result, pid: r.pid }))),
  }
}
