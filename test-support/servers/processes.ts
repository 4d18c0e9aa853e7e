/**
 * Server processes: launched with their output in a log file, supervised (start / stop / kill / pause / restart),
 * and never outliving the test process: they are killed from `exit` and signal handlers, and a tiny detached
 * watchdog process SIGKILLs them (and removes their temp dirs) if the test process dies without running its
 * handlers (e.g. it is SIGKILLed by a timeout).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import type net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { LOOPBACK, freePort } from './ports.js'

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `corral-${prefix}-`))
  trackDir(dir)
  return dir
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 })
  untrackDir(dir)
}

/** The file's text from byte `fromByte` on, cut to its last `maxChars` characters. */
async function tail(file: string, maxChars = 4000, fromByte = 0): Promise<string> {
  try {
    const text = (await readFile(file)).subarray(fromByte).toString('utf8')
    if (!text) return '(no output)'
    return text.length > maxChars ? `...${text.slice(-maxChars)}` : text
  } catch {
    return '(no output)'
  }
}

async function fileSize(file: string): Promise<number> {
  try {
    return (await stat(file)).size
  } catch {
    return 0
  }
}

export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs: number,
  describeFailure?: () => Promise<string>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  for (;;) {
    try {
      const result = await check()
      if (result !== undefined && result !== false) return result
    } catch (err) {
      last = errorMessage(err)
    }
    if (Date.now() > deadline) {
      const extra = describeFailure ? `\n${await describeFailure().catch((e: unknown) => errorMessage(e))}` : ''
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}${extra}`,
      )
    }
    await sleep(50)
  }
}

// ---------------------------------------------------------------------------------------------
// Child process registry, exit handlers and the orphan watchdog
// ---------------------------------------------------------------------------------------------

const liveChildren = new Set<ChildProcess>()
const liveDirs = new Set<string>()
let handlersInstalled = false

/** Runs detached; its stdin is a pipe from us. EOF means we died: SIGKILL the servers, remove dirs. */
const WATCHDOG_SOURCE = `
const { rmSync } = require('node:fs')
const pids = new Set(), dirs = new Set()
let buf = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  buf += chunk
  let i
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1)
    const set = line[1] === 'p' ? pids : dirs
    const value = line[1] === 'p' ? Number(line.slice(3)) : line.slice(3)
    if (line[0] === '+') set.add(value); else set.delete(value)
  }
})
let reaping = false
const reap = () => {
  if (reaping) return
  reaping = true
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL') } catch {} }
  setTimeout(() => {
    for (const dir of dirs) { try { rmSync(dir, { recursive: true, force: true, maxRetries: 10 }) } catch {} }
    process.exit(0)
  }, 300)
}
process.stdin.on('end', reap)
process.stdin.on('close', reap)
process.stdin.on('error', reap)
`

let watchdog: ChildProcess | undefined

function tellWatchdog(line: string): void {
  if (!watchdog) {
    const env: NodeJS.ProcessEnv = { ...process.env }
    delete env.NODE_OPTIONS
    watchdog = spawn(process.execPath, ['-e', WATCHDOG_SOURCE], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
      env,
    })
    watchdog.on('error', () => {})
    watchdog.stdin?.on('error', () => {})
    watchdog.unref()
    ;(watchdog.stdin as unknown as net.Socket | null)?.unref?.()
  }
  if (watchdog.stdin?.writable) watchdog.stdin.write(`${line}\n`)
}

function trackDir(dir: string): void {
  installExitHandlers()
  liveDirs.add(dir)
  tellWatchdog(`+d ${dir}`)
}

function untrackDir(dir: string): void {
  liveDirs.delete(dir)
  tellWatchdog(`-d ${dir}`)
}

function killEverythingSync(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL')
    } catch {
      // already gone
    }
  }
  liveChildren.clear()
  for (const dir of liveDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 })
    } catch {
      // the watchdog retries after we are gone
    }
  }
  liveDirs.clear()
}

/** Kills `child` with the test process (exit and signal handlers); `untrackChild` once it has exited. */
export function trackChild(child: ChildProcess): void {
  installExitHandlers()
  liveChildren.add(child)
}

export function untrackChild(child: ChildProcess): void {
  liveChildren.delete(child)
}

function installExitHandlers(): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', killEverythingSync)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      killEverythingSync()
      process.removeListener(signal, onSignal)
      // Keep the default behaviour (die by the signal) unless someone else handles it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
    }
    process.on(signal, onSignal)
  }
}

// ---------------------------------------------------------------------------------------------
// Launching and supervising one process
// ---------------------------------------------------------------------------------------------

interface ExitInfo {
  code: number | null
  signal: NodeJS.Signals | null
  error?: Error
}

interface Launched {
  child: ChildProcess
  exited: Promise<ExitInfo>
  exitInfo: ExitInfo | undefined
}

function launch(bin: string, args: string[], cwd: string, logFile: string): Launched {
  installExitHandlers()
  const fd = openSync(logFile, 'a')
  let child: ChildProcess
  try {
    child = spawn(bin, args, { cwd, stdio: ['ignore', fd, fd] })
  } finally {
    closeSync(fd)
  }
  const launched: Launched = { child, exitInfo: undefined, exited: undefined as unknown as Promise<ExitInfo> }
  liveChildren.add(child)
  const pid = child.pid
  if (pid !== undefined) tellWatchdog(`+p ${pid}`)
  launched.exited = new Promise<ExitInfo>((resolve) => {
    const done = (info: ExitInfo) => {
      if (launched.exitInfo) return
      launched.exitInfo = info
      liveChildren.delete(child)
      if (pid !== undefined) tellWatchdog(`-p ${pid}`)
      resolve(info)
    }
    child.once('exit', (code, signal) => done({ code, signal }))
    child.once('error', (error) => done({ code: null, signal: null, error }))
  })
  return launched
}

/** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves once the process has exited. */
async function terminate(launched: Launched, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (launched.exitInfo) return
  launched.child.kill(signal)
  if (signal === 'SIGKILL') {
    await launched.exited
    return
  }
  let timer: NodeJS.Timeout | undefined
  const exitedInTime = await Promise.race([
    launched.exited.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs)
    }),
  ])
  clearTimeout(timer)
  if (!exitedInTime) {
    launched.child.kill('SIGKILL')
    await launched.exited
  }
}

/** A start failure; `addressInUse` means "retry on another port". */
export class ServerStartError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message)
    this.name = 'ServerStartError'
  }
}

/** What a test can do to a server process it started: stop it, and the faults (crash, freeze, restart). */
export interface ServerControls {
  /** pid of the current process (changes after restart(); -1 if never started). */
  readonly pid: number
  /** Graceful stop and temp dir removal. Idempotent; the server cannot be restarted afterwards. */
  stop(): Promise<void>
  /** SIGKILL, to simulate a crash. Resolves once the port refuses connections. */
  kill(): Promise<void>
  /** SIGSTOP: the server hangs with its connections open, until `resume()`. */
  pause(): Promise<void>
  /** SIGCONT: a paused server answers again. */
  resume(): Promise<void>
  /** Stop (if running) and start again on the same port. Data is lost (no persistence). */
  restart(): Promise<void>
  /** Everything the server wrote to stdout/stderr. */
  logs(): Promise<string>
}

export interface ServerSpec {
  /** Human name for messages, e.g. "redis-server". */
  what: string
  bin: string
  args: (port: number) => string[]
  /** Resolves true once the server answers; may throw while it is still starting. */
  probe: (port: number) => Promise<boolean>
  dir: string
  /** Remove `dir` on stop (false when a parent owns the dir). */
  ownsDir: boolean
  startTimeoutMs: number
  /** Signal for stop() and restart(); SIGKILL follows after stopGraceMs. */
  stopSignal: NodeJS.Signals
  stopGraceMs: number
}

/** One supervised server process on a fixed port: start / stop / kill / restart. */
export class ManagedServer {
  readonly host = LOOPBACK
  readonly logFile: string
  private current: Launched | undefined
  private stopping: Promise<void> | undefined

  constructor(
    private readonly spec: ServerSpec,
    readonly port: number,
  ) {
    this.logFile = path.join(spec.dir, 'server.log')
  }

  get pid(): number {
    return this.current?.child.pid ?? -1
  }

  get running(): boolean {
    return this.current !== undefined && this.current.exitInfo === undefined
  }

  async start(): Promise<void> {
    const { spec, port } = this
    // The log is appended to across restarts; only this run's output explains this run's failure.
    const logOffset = await fileSize(this.logFile)
    const launched = launch(spec.bin, spec.args(port), spec.dir, this.logFile)
    this.current = launched
    const deadline = Date.now() + spec.startTimeoutMs
    let lastProbeError = ''
    let delay = 10
    for (;;) {
      if (launched.exitInfo) {
        const { code, signal, error } = launched.exitInfo
        const log = await tail(this.logFile, 4000, logOffset)
        const how = error ? `failed to spawn (${error.message})` : `exited with code ${code} signal ${signal}`
        throw new ServerStartError(
          `${spec.what} on ${this.host}:${port} ${how} before answering.\n--- ${spec.what} output ---\n${log}`,
          /address already in use/i.test(log),
        )
      }
      try {
        if (await spec.probe(port)) return
      } catch (err) {
        lastProbeError = errorMessage(err)
      }
      if (Date.now() > deadline) {
        await terminate(launched, 'SIGKILL')
        const log = await tail(this.logFile, 4000, logOffset)
        throw new ServerStartError(
          `${spec.what} on ${this.host}:${port} did not answer within ${spec.startTimeoutMs} ms` +
            `${lastProbeError ? ` (last probe error: ${lastProbeError})` : ''}.\n--- ${spec.what} output ---\n${log}`,
          /address already in use/i.test(log),
        )
      }
      await sleep(delay)
      delay = Math.min(delay * 2, 100)
    }
  }

  /** SIGKILL (simulated crash); resolves once the process is gone and its port is closed. */
  async kill(): Promise<void> {
    if (this.current) await terminate(this.current, 'SIGKILL')
  }

  /**
   * SIGSTOP: the process freezes with its connections open (a hung server, or a long GC pause). Its port still
   * accepts connections (the kernel completes them), but nothing is answered until `resume()`.
   */
  async pause(): Promise<void> {
    const current = this.current
    if (!current || current.exitInfo) throw new Error(`${this.spec.what} on port ${this.port} is not running`)
    current.child.kill('SIGSTOP')
    await waitForProcessState(current.child.pid, 'T')
  }

  /** SIGCONT: a paused process goes on, and answers what it was sent meanwhile. A no-op if it is not paused. */
  async resume(): Promise<void> {
    const current = this.current
    if (!current || current.exitInfo) return
    current.child.kill('SIGCONT')
    await waitForProcessState(current.child.pid, 'running')
  }

  /** Stop if running, then start again on the same port. Data may be lost. */
  async restart(): Promise<void> {
    if (this.stopping) throw new Error(`${this.spec.what} on port ${this.port} was stopped; it cannot be restarted`)
    if (this.current) {
      await this.resume() // a paused process would act on the stop signal only once resumed
      await terminate(this.current, this.spec.stopSignal, this.spec.stopGraceMs)
    }
    // The port should be free at once; if some other process grabbed it meanwhile, retry briefly.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start()
        return
      } catch (err) {
        if (!(err instanceof ServerStartError && err.addressInUse) || attempt >= 20) throw err
        await sleep(100)
      }
    }
  }

  /** Graceful stop (SIGTERM, SIGKILL after a grace period) and temp dir removal. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.current) {
        await this.resume()
        await terminate(this.current, this.spec.stopSignal, this.spec.stopGraceMs)
      }
      if (this.spec.ownsDir) await removeDir(this.spec.dir)
    })()
    return this.stopping
  }

  logs(): Promise<string> {
    return tail(this.logFile, Number.POSITIVE_INFINITY)
  }
}

/**
 * The process's state letter in /proc/<pid>/stat ('S' sleeping, 'T' stopped, 'Z' zombie, ...); undefined once it
 * is gone, or where there is no /proc.
 */
export function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  } catch {
    return undefined
  }
}

/**
 * Waits (up to a second) until the process is stopped (`'T'`) or no longer stopped (`'running'`), as Linux reports
 * it in /proc/<pid>/stat: a signal is delivered asynchronously. Where /proc is missing it returns at once.
 */
async function waitForProcessState(pid: number | undefined, state: 'T' | 'running'): Promise<void> {
  if (pid === undefined) return
  const deadline = Date.now() + 1000
  for (;;) {
    const current = processState(pid)
    if (current === undefined) return
    const stopped = current === 'T' || current === 't'
    if ((state === 'T') === stopped || Date.now() > deadline) return
    await sleep(1)
  }
}

/** Pick a port, start, and retry on another port if the server lost a port race (EADDRINUSE). */
export async function startOnFreePort(
  makeSpec: (port: number) => Promise<ServerSpec> | ServerSpec,
  pickPort: () => Promise<number> = freePort,
  attempts = 8,
): Promise<ManagedServer> {
  for (let attempt = 1; ; attempt++) {
    const port = await pickPort()
    const server = new ManagedServer(await makeSpec(port), port)
    try {
      await server.start()
      return server
    } catch (err) {
      if (!(err instanceof ServerStartError && err.addressInUse) || attempt >= attempts) throw err
    }
  }
}
