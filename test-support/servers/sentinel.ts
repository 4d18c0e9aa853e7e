/** A Redis master with replicas, watched by sentinels. */
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { requireBinary } from './binaries.js'
import { LOOPBACK, type HostPort } from './ports.js'
import { makeTempDir, removeDir, startOnFreePort, waitFor } from './processes.js'
import { redisHandle, redisProbe, startRedisProcess, type RedisServer } from './redis.js'
import { parseInfo, redisCommand } from './resp.js'

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
