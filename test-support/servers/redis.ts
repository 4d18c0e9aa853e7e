/** A standalone redis-server (and the process plumbing the cluster and sentinel setups share). */
import { LOOPBACK, type HostPort } from './ports.js'
import { ManagedServer, makeTempDir, removeDir, startOnFreePort, type ServerControls } from './processes.js'
import { requireBinary } from './binaries.js'
import { parseInfo, redisCommand } from './resp.js'

export interface RedisServer extends HostPort, ServerControls {
  /** redis://[:password@]127.0.0.1:port */
  readonly url: string
  readonly password: string | undefined
  /** The server's temp dir (its --dir). */
  readonly dir: string
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

export function redisProbe(password: string | undefined) {
  return async (port: number) =>
    (await redisCommand({ host: LOOPBACK, port }, ['PING'], { password, timeoutMs: 1000 })) === 'PONG'
}

export function redisHandle(server: ManagedServer, dir: string, password: string | undefined): RedisServer {
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
    pause: () => server.pause(),
    resume: () => server.resume(),
    restart: () => server.restart(),
    logs: () => server.logs(),
  }
}

export interface RedisProcessOptions {
  bin: string
  dir: string
  ownsDir: boolean
  password: string | undefined
  extraArgs: string[]
  startTimeoutMs: number
  pickPort?: () => Promise<number>
}

export async function startRedisProcess(o: RedisProcessOptions): Promise<RedisServer> {
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

/** Commands that reset and read the statistics (and a benchmark's FLUSHALL between runs): never counted. */
export const UNCOUNTED_COMMANDS: ReadonlySet<string> = new Set(['info', 'config', 'config|resetstat', 'flushall'])

/** Zeroes the server's per-command counters (`CONFIG RESETSTAT`). */
export async function resetCommandStats(server: HostPort): Promise<void> {
  await redisCommand(server, ['CONFIG', 'RESETSTAT'])
}

/**
 * Calls per command since the last reset, from `INFO commandstats` (commands run inside Lua scripts included),
 * without the reset and read themselves. Used by the tests (`redisSuite().commandsDuring`) and the benchmarks.
 */
export async function commandStats(server: HostPort): Promise<Record<string, number>> {
  const info = parseInfo(String(await redisCommand(server, ['INFO', 'commandstats'])))
  const calls: Record<string, number> = {}
  for (const [field, value] of Object.entries(info)) {
    if (!field.startsWith('cmdstat_')) continue
    const name = field.slice('cmdstat_'.length)
    const count = Number(/calls=(\d+)/.exec(value)?.[1] ?? 0)
    if (!UNCOUNTED_COMMANDS.has(name) && count > 0) calls[name] = count
  }
  return calls
}
