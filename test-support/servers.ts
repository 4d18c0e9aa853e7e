/**
 * Real-server test harness: starts redis-server (standalone, cluster, sentinel), memcached and
 * prometheus on free loopback ports, waits until they answer, and stops them again.
 *
 * Guarantees:
 * - Never skips: a missing binary fails with the exact `apt-get install` command.
 * - Parallel-safe: every server gets a fresh free port and its own temp dir; a start that loses a
 *   port race with another process (EADDRINUSE) is retried on a new port.
 * - Nothing outlives the test process: children are killed from `exit`/signal handlers, and a tiny
 *   detached watchdog process SIGKILLs them (and removes their temp dirs) if the test process dies
 *   without running its handlers (e.g. it is SIGKILLed by a timeout).
 * - `stop()` is idempotent and removes the server's temp dir.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, rmSync } from 'node:fs'
import { constants as fsConstants } from 'node:fs'
import { access, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

export const LOOPBACK = '127.0.0.1'

export interface HostPort {
  host: string
  port: number
}

// ---------------------------------------------------------------------------------------------
// Binaries
// ---------------------------------------------------------------------------------------------

const INSTALL_COMMANDS: Record<string, string> = {
  'redis-server': 'apt-get install -y redis-server',
  'redis-cli': 'apt-get install -y redis-tools',
  memcached: 'apt-get install -y memcached',
  prometheus: 'apt-get install -y prometheus',
  promtool: 'apt-get install -y prometheus',
  chromium: 'apt-get install -y chromium',
}

/** Thrown when a server binary is not installed. The message names the install command. */
export class MissingBinaryError extends Error {
  constructor(
    readonly binary: string,
    readonly installCommand: string,
    searched: string[],
  ) {
    super(
      `${binary} not found: install it with "${installCommand}" ` +
        `(or run .ci/run, which installs every server the tests need). Searched: ${searched.join(':')}`,
    )
    this.name = 'MissingBinaryError'
  }
}

/**
 * Absolute path of an executable on PATH (plus the sbin dirs, which a non-root PATH may lack);
 * throws MissingBinaryError otherwise. `searchPath` replaces that list (used by the harness's own test).
 */
export async function requireBinary(name: string, opts: { searchPath?: string } = {}): Promise<string> {
  const dirs =
    opts.searchPath !== undefined
      ? opts.searchPath.split(path.delimiter)
      : [...(process.env.PATH ?? '').split(path.delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  const searched = [...new Set(dirs.filter(Boolean))]
  for (const dir of searched) {
    const candidate = path.join(dir, name)
    try {
      await access(candidate, fsConstants.X_OK)
      if ((await stat(candidate)).isFile()) return candidate
    } catch {
      // not here
    }
  }
  throw new MissingBinaryError(name, INSTALL_COMMANDS[name] ?? `apt-get install -y ${name}`, searched)
}

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `corral-${prefix}-`))
  trackDir(dir)
  return dir
}

async function removeDir(dir: string): Promise<void> {
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

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

const handedOut = new Set<number>()

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.once('error', reject)
    server.listen({ port, host: LOOPBACK, exclusive: true }, () => {
      const address = server.address()
      const bound = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolve(bound))
    })
  })
}

/** True if nothing listens on 127.0.0.1:port (checked by binding it). */
export async function isPortFree(port: number): Promise<boolean> {
  try {
    await listenOnce(port)
    return true
  } catch {
    return false
  }
}

/**
 * A free TCP port on 127.0.0.1 (bind port 0, read it, close). Never returns the same port twice in
 * one process. Another process can still grab it before the server binds; the start functions retry
 * on EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = await listenOnce(0)
    if (!handedOut.has(port)) {
      handedOut.add(port)
      return port
    }
  }
  throw new Error('freePort: the OS kept returning ports already handed out in this process')
}

/** A port N (< 55535) such that both N and the cluster bus port N + 10000 are free. */
export async function freeClusterPort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = await listenOnce(0)
    const bus = port + 10_000
    if (port >= 55_535 || handedOut.has(port) || handedOut.has(bus)) continue
    if (!(await isPortFree(bus))) continue
    handedOut.add(port)
    handedOut.add(bus)
    return port
  }
  throw new Error('freeClusterPort: found no port N with N and N+10000 both free')
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

interface ServerSpec {
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
class ManagedServer {
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

  /** Stop if running, then start again on the same port. Data may be lost. */
  async restart(): Promise<void> {
    if (this.stopping) throw new Error(`${this.spec.what} on port ${this.port} was stopped; it cannot be restarted`)
    if (this.current) await terminate(this.current, this.spec.stopSignal, this.spec.stopGraceMs)
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
      if (this.current) await terminate(this.current, this.spec.stopSignal, this.spec.stopGraceMs)
      if (this.spec.ownsDir) await removeDir(this.spec.dir)
    })()
    return this.stopping
  }

  logs(): Promise<string> {
    return tail(this.logFile, Number.POSITIVE_INFINITY)
  }
}

/** Pick a port, start, and retry on another port if the server lost a port race (EADDRINUSE). */
async function startOnFreePort(
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

// ---------------------------------------------------------------------------------------------
// Minimal RESP client (readiness checks and cluster/sentinel setup without redis-cli)
// ---------------------------------------------------------------------------------------------

export class RespError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'RespError'
  }
}

export type RespValue = string | number | null | RespError | RespValue[]

function parseResp(buf: Buffer, pos: number): { value: RespValue; next: number } | undefined {
  if (pos >= buf.length) return undefined
  const lineEnd = buf.indexOf('\r\n', pos)
  if (lineEnd < 0) return undefined
  const type = String.fromCharCode(buf[pos] ?? 0)
  const line = buf.toString('utf8', pos + 1, lineEnd)
  const afterLine = lineEnd + 2
  switch (type) {
    case '+':
      return { value: line, next: afterLine }
    case '-':
      return { value: new RespError(line), next: afterLine }
    case ':':
      return { value: Number(line), next: afterLine }
    case '$': {
      const len = Number(line)
      if (len < 0) return { value: null, next: afterLine }
      if (buf.length < afterLine + len + 2) return undefined
      return { value: buf.toString('utf8', afterLine, afterLine + len), next: afterLine + len + 2 }
    }
    case '*': {
      const count = Number(line)
      if (count < 0) return { value: null, next: afterLine }
      const items: RespValue[] = []
      let next = afterLine
      for (let i = 0; i < count; i++) {
        const item = parseResp(buf, next)
        if (!item) return undefined
        items.push(item.value)
        next = item.next
      }
      return { value: items, next }
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`)
  }
}

function encodeCommand(args: ReadonlyArray<string | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const arg of args) {
    const data = Buffer.from(String(arg))
    parts.push(Buffer.from(`$${data.length}\r\n`), data, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** Opens a connection, sends `commands` pipelined, returns one reply per command (errors as RespError). */
export function respPipeline(
  target: HostPort,
  commands: ReadonlyArray<ReadonlyArray<string | number>>,
  timeoutMs = 2000,
): Promise<RespValue[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port })
    const replies: RespValue[] = []
    let buf = Buffer.alloc(0)
    let pos = 0
    const fail = (err: Error) => {
      socket.destroy()
      reject(err)
    }
    socket.setTimeout(timeoutMs, () =>
      fail(new Error(`RESP: no reply from ${target.host}:${target.port} in ${timeoutMs} ms`)),
    )
    socket.once('error', fail)
    socket.once('close', () => {
      if (replies.length < commands.length)
        reject(new Error(`RESP: ${target.host}:${target.port} closed the connection`))
    })
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      try {
        for (;;) {
          const parsed = parseResp(buf, pos)
          if (!parsed) break
          replies.push(parsed.value)
          pos = parsed.next
        }
      } catch (err) {
        fail(err as Error)
        return
      }
      if (replies.length >= commands.length) {
        socket.destroy()
        resolve(replies)
      }
    })
    socket.write(Buffer.concat(commands.map(encodeCommand)))
  })
}

/** Runs one Redis command (after AUTH if a password is given); rejects on an error reply. */
export async function redisCommand(
  target: HostPort,
  args: ReadonlyArray<string | number>,
  opts: { password?: string; timeoutMs?: number } = {},
): Promise<RespValue> {
  const commands = opts.password ? [['AUTH', opts.password], args] : [args]
  const replies = await respPipeline(target, commands, opts.timeoutMs)
  for (const reply of replies) if (reply instanceof RespError) throw reply
  return replies[replies.length - 1] ?? null
}

/** Parses `INFO`/`CLUSTER INFO` text into key → value. */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1).trim()
  }
  return out
}

async function waitFor<T>(
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
// Redis (standalone)
// ---------------------------------------------------------------------------------------------

export interface RedisServer extends HostPort {
  /** redis://[:password@]127.0.0.1:port */
  readonly url: string
  readonly password: string | undefined
  /** pid of the current process (changes after restart(); -1 if never started). */
  readonly pid: number
  /** The server's temp dir (its --dir). */
  readonly dir: string
  /** Graceful stop and temp dir removal. Idempotent; the server cannot be restarted afterwards. */
  stop(): Promise<void>
  /** SIGKILL, to simulate a crash. Resolves once the port refuses connections. */
  kill(): Promise<void>
  /** Stop (if running) and start again on the same port. Data is lost (no persistence). */
  restart(): Promise<void>
  /** Everything the server wrote to stdout/stderr. */
  logs(): Promise<string>
}

export interface StartRedisOptions {
  /** Extra redis-server arguments, appended last (so they win), e.g. ['--notify-keyspace-events', 'KEA']. */
  args?: string[]
  /** Sets --requirepass (and --masterauth). */
  password?: string
  startTimeoutMs?: number
}

function redisBaseArgs(port: number, dir: string, password: string | undefined): string[] {
  // prettier-ignore
  return [
    '--port', String(port),
    '--bind', LOOPBACK,
    '--save', '',
    '--appendonly', 'no',
    '--daemonize', 'no',
    '--dir', dir,
    // Redis 7 waits 5 s before a diskless full sync, in case more replicas come; tests want it now.
    '--repl-diskless-sync-delay', '0',
    ...(password ? ['--requirepass', password, '--masterauth', password] : []),
  ]
}

function redisProbe(password: string | undefined) {
  return async (port: number) =>
    (await redisCommand({ host: LOOPBACK, port }, ['PING'], { password, timeoutMs: 1000 })) === 'PONG'
}

function redisHandle(server: ManagedServer, dir: string, password: string | undefined): RedisServer {
  const auth = password ? `:${encodeURIComponent(password)}@` : ''
  return {
    host: server.host,
    port: server.port,
    url: `redis://${auth}${server.host}:${server.port}`,
    password,
    get pid() {
      return server.pid
    },
    dir,
    stop: () => server.stop(),
    kill: () => server.kill(),
    restart: () => server.restart(),
    logs: () => server.logs(),
  }
}

interface RedisProcessOptions {
  bin: string
  dir: string
  ownsDir: boolean
  password: string | undefined
  extraArgs: string[]
  startTimeoutMs: number
  pickPort?: () => Promise<number>
}

async function startRedisProcess(o: RedisProcessOptions): Promise<RedisServer> {
  const server = await startOnFreePort(
    () => ({
      what: 'redis-server',
      bin: o.bin,
      args: (port) => [...redisBaseArgs(port, o.dir, o.password), ...o.extraArgs],
      probe: redisProbe(o.password),
      dir: o.dir,
      ownsDir: o.ownsDir,
      startTimeoutMs: o.startTimeoutMs,
      stopSignal: 'SIGTERM',
      stopGraceMs: 5000,
    }),
    o.pickPort,
  )
  return redisHandle(server, o.dir, o.password)
}

/** Starts a standalone redis-server on a free loopback port; resolves once it answers PING. */
export async function startRedis(opts: StartRedisOptions = {}): Promise<RedisServer> {
  const bin = await requireBinary('redis-server')
  const dir = await makeTempDir('redis')
  try {
    return await startRedisProcess({
      bin,
      dir,
      ownsDir: true,
      password: opts.password,
      extraArgs: opts.args ?? [],
      startTimeoutMs: opts.startTimeoutMs ?? 10_000,
    })
  } catch (err) {
    await removeDir(dir)
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// Redis Cluster
// ---------------------------------------------------------------------------------------------

export interface RedisCluster {
  /** Startup nodes for ioredis `new Cluster(nodes)`. */
  readonly nodes: HostPort[]
  /** The individual nodes (kill/restart one to test failure handling). */
  readonly servers: RedisServer[]
  stop(): Promise<void>
}

export interface StartRedisClusterOptions {
  /** Number of masters (no replicas). Default 3. */
  masters?: number
  /** Extra redis-server arguments for every node. */
  args?: string[]
  startTimeoutMs?: number
}

const CLUSTER_SLOTS = 16_384

/**
 * Starts an N-master Redis Cluster (no replicas): nodes on ports N with free bus ports N+10000, slots
 * split evenly with CLUSTER ADDSLOTSRANGE, joined with CLUSTER MEET; resolves when every node reports
 * cluster_state:ok, knows all nodes and sees all 16384 slots.
 */
export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3
  if (!Number.isInteger(masters) || masters < 1)
    throw new Error(`startRedisCluster: masters must be >= 1, got ${masters}`)
  const timeoutMs = opts.startTimeoutMs ?? 20_000
  const bin = await requireBinary('redis-server')
  const root = await makeTempDir('redis-cluster')
  const servers: RedisServer[] = []
  let stopping: Promise<void> | undefined
  const stop = () =>
    (stopping ??= (async () => {
      await Promise.all(servers.map((s) => s.stop()))
      await removeDir(root)
    })())
  try {
    const started = await Promise.allSettled(
      Array.from({ length: masters }, async (_, i) => {
        const dir = path.join(root, `node-${i}`)
        await mkdir(dir)
        const server = await startRedisProcess({
          bin,
          dir,
          ownsDir: false,
          password: undefined,
          // prettier-ignore
          extraArgs: [
            '--cluster-enabled', 'yes',
            '--cluster-config-file', path.join(dir, 'nodes.conf'),
            '--cluster-node-timeout', '5000',
            ...(opts.args ?? []),
          ],
          startTimeoutMs: timeoutMs,
          pickPort: freeClusterPort,
        })
        servers.push(server)
        return server
      }),
    )
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed) throw failed.reason
    servers.sort((a, b) => a.port - b.port)

    // Distinct config epochs (as redis-cli --cluster create does) and an even slot split.
    await Promise.all(
      servers.map(async (server, i) => {
        const first = Math.floor((i * CLUSTER_SLOTS) / masters)
        const last = Math.floor(((i + 1) * CLUSTER_SLOTS) / masters) - 1
        await redisCommand(server, ['CLUSTER', 'SET-CONFIG-EPOCH', i + 1])
        await redisCommand(server, ['CLUSTER', 'ADDSLOTSRANGE', first, last])
      }),
    )
    // Full mesh of MEETs: relying on gossip to introduce the other nodes costs up to ~2 s more.
    await Promise.all(
      servers.flatMap((a, i) => servers.slice(i + 1).map((b) => redisCommand(a, ['CLUSTER', 'MEET', b.host, b.port]))),
    )

    await waitFor(
      `cluster_state:ok on all ${masters} nodes`,
      async () => {
        const infos = await Promise.all(
          servers.map(async (s) => parseInfo(String(await redisCommand(s, ['CLUSTER', 'INFO'])))),
        )
        return infos.every(
          (info) =>
            info.cluster_state === 'ok' &&
            info.cluster_known_nodes === String(masters) &&
            info.cluster_slots_ok === String(CLUSTER_SLOTS),
        )
      },
      timeoutMs,
      async () => {
        const infos = await Promise.all(
          servers.map(
            async (s) =>
              `${s.port}: ${String(await redisCommand(s, ['CLUSTER', 'INFO']).catch(errorMessage))
                .split('\r\n')
                .slice(0, 7)
                .join(' ')}`,
          ),
        )
        return infos.join('\n')
      },
    )
    return { nodes: servers.map(({ host, port }) => ({ host, port })), servers, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// Redis Sentinel
// ---------------------------------------------------------------------------------------------

export interface RedisSentinel {
  /** The monitored master name, e.g. 'corral' (ioredis `name`). */
  readonly name: string
  /** Sentinel addresses (ioredis `sentinels`). */
  readonly sentinels: HostPort[]
  /** The initial master (after a failover ask currentMaster()). */
  readonly master: HostPort
  readonly replicas: HostPort[]
  readonly masterServer: RedisServer
  readonly replicaServers: RedisServer[]
  readonly sentinelServers: RedisServer[]
  /** The master as the first sentinel currently reports it. */
  currentMaster(): Promise<HostPort>
  stop(): Promise<void>
}

export interface StartRedisSentinelOptions {
  /** Master name. Default 'corral'. */
  name?: string
  /** Replicas of the master. Default 1. */
  replicas?: number
  /** Number of sentinels. Default 1. */
  sentinels?: number
  /** Sentinel quorum. Default 1. */
  quorum?: number
  /** `sentinel down-after-milliseconds`. Default 1000 (fast failover tests). */
  downAfterMs?: number
  /** `sentinel failover-timeout`. Default 10000. */
  failoverTimeoutMs?: number
  /** Password for master and replicas (sentinels get `sentinel auth-pass`). */
  password?: string
  /** Extra redis-server arguments for master and replicas. */
  args?: string[]
  startTimeoutMs?: number
}

/** A double-quoted redis.conf string (the config parser understands \\, \" and \xHH escapes). */
function redisConfQuote(value: string): string {
  let out = '"'
  for (const ch of value) {
    const code = ch.charCodeAt(0)
    if (ch === '"' || ch === '\\') out += `\\${ch}`
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`
    else out += ch
  }
  return `${out}"`
}

/**
 * Starts a master, `replicas` replicas and `sentinels` sentinels (`redis-server sentinel.conf
 * --sentinel`) monitoring it; resolves once every sentinel reports the master via
 * SENTINEL get-master-addr-by-name, sees it as healthy, and knows the replicas and other sentinels.
 */
export async function startRedisSentinel(opts: StartRedisSentinelOptions = {}): Promise<RedisSentinel> {
  const name = opts.name ?? 'corral'
  const replicaCount = opts.replicas ?? 1
  const sentinelCount = opts.sentinels ?? 1
  const quorum = opts.quorum ?? 1
  const timeoutMs = opts.startTimeoutMs ?? 20_000
  const password = opts.password
  if (!/^[A-Za-z0-9._-]+$/.test(name))
    throw new Error(`startRedisSentinel: invalid master name ${JSON.stringify(name)}`)
  if (sentinelCount < 1) throw new Error('startRedisSentinel: need at least one sentinel')
  const bin = await requireBinary('redis-server')
  const root = await makeTempDir('redis-sentinel')
  const dataServers: RedisServer[] = []
  const sentinelServers: RedisServer[] = []
  let stopping: Promise<void> | undefined
  const stop = () =>
    (stopping ??= (async () => {
      // Sentinels first, so they do not react to the data nodes going away.
      await Promise.all(sentinelServers.map((s) => s.stop()))
      await Promise.all(dataServers.map((s) => s.stop()))
      await removeDir(root)
    })())
  const subdir = async (sub: string) => {
    const dir = path.join(root, sub)
    await mkdir(dir)
    return dir
  }
  try {
    const dataNode = async (sub: string, extraArgs: string[]) => {
      const server = await startRedisProcess({
        bin,
        dir: await subdir(sub),
        ownsDir: false,
        password,
        extraArgs: [...extraArgs, ...(opts.args ?? [])],
        startTimeoutMs: timeoutMs,
      })
      dataServers.push(server)
      return server
    }
    const masterServer = await dataNode('master', [])
    const replicaServers = await Promise.all(
      Array.from({ length: replicaCount }, (_, i) =>
        dataNode(`replica-${i}`, ['--replicaof', masterServer.host, String(masterServer.port)]),
      ),
    )
    await waitFor(
      'replicas to sync with the master',
      async () => {
        const infos = await Promise.all(
          replicaServers.map(async (r) =>
            parseInfo(String(await redisCommand(r, ['INFO', 'replication'], { password }))),
          ),
        )
        return infos.every((info) => info.master_link_status === 'up')
      },
      timeoutMs,
    )

    await Promise.all(
      Array.from({ length: sentinelCount }, async (_, i) => {
        const dir = await subdir(`sentinel-${i}`)
        const conf = path.join(dir, 'sentinel.conf')
        const server = await startOnFreePort(async (port) => {
          // Sentinel rewrites this file at runtime, so it lives in the (writable) temp dir.
          await writeFile(
            conf,
            [
              `port ${port}`,
              `bind ${LOOPBACK}`,
              'daemonize no',
              `dir ${redisConfQuote(dir)}`,
              `sentinel monitor ${name} ${masterServer.host} ${masterServer.port} ${quorum}`,
              `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
              `sentinel failover-timeout ${name} ${opts.failoverTimeoutMs ?? 10_000}`,
              `sentinel parallel-syncs ${name} 1`,
              ...(password ? [`sentinel auth-pass ${name} ${redisConfQuote(password)}`] : []),
              '',
            ].join('\n'),
          )
          return {
            what: 'redis-server --sentinel',
            bin,
            args: () => [conf, '--sentinel'],
            probe: redisProbe(undefined),
            dir,
            ownsDir: false,
            startTimeoutMs: timeoutMs,
            stopSignal: 'SIGTERM',
            stopGraceMs: 5000,
          }
        })
        const handle = redisHandle(server, dir, undefined)
        sentinelServers.push(handle)
      }),
    )
    sentinelServers.sort((a, b) => a.port - b.port)

    await waitFor(
      `every sentinel to report master "${name}" at ${masterServer.host}:${masterServer.port}`,
      async () => {
        for (const sentinel of sentinelServers) {
          const addr = await redisCommand(sentinel, ['SENTINEL', 'get-master-addr-by-name', name])
          if (!Array.isArray(addr) || addr[0] !== masterServer.host || Number(addr[1]) !== masterServer.port)
            return false
          const fields = await redisCommand(sentinel, ['SENTINEL', 'master', name])
          if (!Array.isArray(fields)) return false
          const info: Record<string, string> = {}
          for (let i = 0; i + 1 < fields.length; i += 2) info[String(fields[i])] = String(fields[i + 1])
          if (info.flags !== 'master') return false
          if (Number(info['num-slaves']) !== replicaCount) return false
          if (Number(info['num-other-sentinels']) !== sentinelCount - 1) return false
        }
        return true
      },
      timeoutMs,
      async () => {
        const first = sentinelServers[0]
        return first
          ? `SENTINEL master ${name}: ${JSON.stringify(await redisCommand(first, ['SENTINEL', 'master', name]))}`
          : ''
      },
    )

    const hp = ({ host, port }: HostPort): HostPort => ({ host, port })
    return {
      name,
      sentinels: sentinelServers.map(hp),
      master: hp(masterServer),
      replicas: replicaServers.map(hp),
      masterServer,
      replicaServers,
      sentinelServers,
      async currentMaster() {
        const first = sentinelServers[0]
        if (!first) throw new Error('no sentinel')
        const addr = await redisCommand(first, ['SENTINEL', 'get-master-addr-by-name', name])
        if (!Array.isArray(addr) || typeof addr[0] !== 'string')
          throw new Error(`sentinel does not know master ${name}`)
        return { host: addr[0], port: Number(addr[1]) }
      },
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// memcached
// ---------------------------------------------------------------------------------------------

export interface MemcachedServer extends HostPort {
  /** 'host:port', as memjs `Client.create()` wants it. */
  readonly servers: string
  readonly pid: number
  stop(): Promise<void>
  /** SIGKILL, to simulate a crash. */
  kill(): Promise<void>
  /** Start again on the same port (all data lost). */
  restart(): Promise<void>
  logs(): Promise<string>
}

export interface StartMemcachedOptions {
  /** Extra memcached arguments, e.g. ['-m', '16']. */
  args?: string[]
  startTimeoutMs?: number
}

function memcachedProbe(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: LOOPBACK, port })
    let data = ''
    socket.setTimeout(1000, () => {
      socket.destroy()
      reject(new Error('memcached: no reply to "version"'))
    })
    socket.once('error', reject)
    socket.on('data', (chunk) => {
      data += chunk.toString('utf8')
      if (data.includes('\r\n')) {
        socket.destroy()
        resolve(data.startsWith('VERSION '))
      }
    })
    socket.write('version\r\n')
  })
}

/** Starts memcached (`-l 127.0.0.1 -p N -U 0`) on a free port; resolves once it answers `version`. */
export async function startMemcached(opts: StartMemcachedOptions = {}): Promise<MemcachedServer> {
  const bin = await requireBinary('memcached')
  const dir = await makeTempDir('memcached')
  try {
    const runAsRoot = process.getuid?.() === 0 ? ['-u', 'root'] : []
    const server = await startOnFreePort(() => ({
      what: 'memcached',
      bin,
      args: (port) => ['-l', LOOPBACK, '-p', String(port), '-U', '0', ...runAsRoot, ...(opts.args ?? [])],
      probe: memcachedProbe,
      dir,
      ownsDir: true,
      startTimeoutMs: opts.startTimeoutMs ?? 10_000,
      // memcached only acts on SIGTERM at its once-a-second clock tick, and it persists nothing.
      stopSignal: 'SIGKILL',
      stopGraceMs: 0,
    }))
    return {
      host: server.host,
      port: server.port,
      servers: `${server.host}:${server.port}`,
      get pid() {
        return server.pid
      },
      stop: () => server.stop(),
      kill: () => server.kill(),
      restart: () => server.restart(),
      logs: () => server.logs(),
    }
  } catch (err) {
    await removeDir(dir)
    throw err
  }
}

// ---------------------------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------------------------

export interface PromSample {
  metric: Record<string, string>
  /** Parsed sample value (NaN / ±Infinity included). */
  value: number
  /** Evaluation timestamp in seconds. */
  timestamp: number
}

export interface PromTarget {
  scrapeUrl: string
  health: string
  lastError: string
}

export interface PrometheusServer extends HostPort {
  /** http://127.0.0.1:port */
  readonly url: string
  readonly pid: number
  /** Instant query; returns the result vector (a scalar result becomes one sample without labels). */
  query(promql: string): Promise<PromSample[]>
  /**
   * Polls query() until `predicate` holds (default: non-empty result; timeout 20 s); returns the last
   * result. Note: Prometheus 2.42 applies new scrape targets on a fixed 5 s tick, so the first sample
   * of a freshly started server shows up ~5.3 s after start.
   */
  waitForQuery(
    promql: string,
    predicate?: (result: PromSample[]) => boolean,
    opts?: { timeoutMs?: number },
  ): Promise<PromSample[]>
  /** Active scrape targets with their health and last error. */
  targets(): Promise<PromTarget[]>
  stop(): Promise<void>
  logs(): Promise<string>
}

export interface StartPrometheusOptions {
  /** 'host:port' targets to scrape. */
  scrapeTargets: string[]
  /** Scrape (and evaluation) interval, default '1s'. */
  scrapeInterval?: string
  /** Default '/metrics'. */
  metricsPath?: string
  /** Default 'corral'. */
  jobName?: string
  /** More command-line flags, e.g. `['--enable-feature=exemplar-storage']`. */
  extraArgs?: string[]
  startTimeoutMs?: number
}

function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no response in ${timeoutMs} ms`)))
    req.on('error', reject)
  })
}

function promNumber(text: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY
  if (text === '-Inf') return Number.NEGATIVE_INFINITY
  return Number(text) // 'NaN' -> NaN
}

/** Starts prometheus scraping `scrapeTargets`; resolves once /-/ready answers 200. */
export async function startPrometheus(opts: StartPrometheusOptions): Promise<PrometheusServer> {
  const bin = await requireBinary('prometheus')
  const dir = await makeTempDir('prometheus')
  try {
    const interval = opts.scrapeInterval ?? '1s'
    const configFile = path.join(dir, 'prometheus.yml')
    // JSON is valid YAML, and needs no escaping rules of our own.
    const config = {
      global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
      scrape_configs: [
        {
          job_name: opts.jobName ?? 'corral',
          scrape_interval: interval,
          scrape_timeout: interval,
          metrics_path: opts.metricsPath ?? '/metrics',
          static_configs: [{ targets: opts.scrapeTargets }],
        },
      ],
    }
    await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`)
    const server = await startOnFreePort(() => ({
      what: 'prometheus',
      bin,
      args: (port) => [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=${LOOPBACK}:${port}`,
        ...(opts.extraArgs ?? []),
      ],
      probe: async (port) => (await httpGet(`http://${LOOPBACK}:${port}/-/ready`, 1000)).status === 200,
      dir,
      ownsDir: true,
      startTimeoutMs: opts.startTimeoutMs ?? 20_000,
      stopSignal: 'SIGTERM',
      stopGraceMs: 5000,
    }))
    const url = `http://${server.host}:${server.port}`

    const query = async (promql: string): Promise<PromSample[]> => {
      const res = await httpGet(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`, 5000)
      let json: {
        status?: string
        error?: string
        data?: { resultType?: string; result?: unknown }
      }
      try {
        json = JSON.parse(res.body) as typeof json
      } catch {
        throw new Error(`prometheus query ${promql}: HTTP ${res.status}: ${res.body.slice(0, 500)}`)
      }
      if (json.status !== 'success' || !json.data) {
        throw new Error(`prometheus query ${promql} failed: ${json.error ?? res.body.slice(0, 500)}`)
      }
      const { resultType, result } = json.data
      if (resultType === 'vector') {
        return (result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((s) => ({
          metric: s.metric,
          value: promNumber(s.value[1]),
          timestamp: s.value[0],
        }))
      }
      if (resultType === 'scalar') {
        const [ts, v] = result as [number, string]
        return [{ metric: {}, value: promNumber(v), timestamp: ts }]
      }
      throw new Error(`prometheus query ${promql}: unsupported result type ${resultType}`)
    }

    const targets = async (): Promise<PromTarget[]> => {
      const res = await httpGet(`${url}/api/v1/targets`, 5000)
      const json = JSON.parse(res.body) as { data?: { activeTargets?: PromTarget[] } }
      return (json.data?.activeTargets ?? []).map(({ scrapeUrl, health, lastError }) => ({
        scrapeUrl,
        health,
        lastError,
      }))
    }

    return {
      host: server.host,
      port: server.port,
      url,
      get pid() {
        return server.pid
      },
      query,
      async waitForQuery(promql, predicate = (r) => r.length > 0, waitOpts = {}) {
        let last: PromSample[] = []
        await waitFor(
          `prometheus query ${promql}`,
          async () => {
            last = await query(promql)
            return predicate(last)
          },
          waitOpts.timeoutMs ?? 20_000,
          async () => `last result: ${JSON.stringify(last)}; targets: ${JSON.stringify(await targets())}`,
        )
        return last
      },
      targets,
      stop: () => server.stop(),
      logs: () => server.logs(),
    }
  } catch (err) {
    await removeDir(dir)
    throw err
  }
}

/** Pipes an exposition into `promtool check metrics`. ok is true only for exit code 0 (no lint problems). */
export async function promtoolCheckMetrics(
  text: string,
  opts: { timeoutMs?: number } = {},
): Promise<{ ok: boolean; output: string; exitCode: number | null }> {
  const bin = await requireBinary('promtool')
  installExitHandlers()
  const child = spawn(bin, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
  liveChildren.add(child)
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stdin.on('error', () => {}) // promtool may exit before reading everything
  child.stdin.end(text)
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 10_000)
  try {
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (code) => resolve(code))
    })
    return { ok: exitCode === 0, output: output.trim(), exitCode }
  } finally {
    clearTimeout(timer)
    liveChildren.delete(child)
  }
}
