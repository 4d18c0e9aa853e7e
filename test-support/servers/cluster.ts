/** An N-master Redis Cluster. */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { requireBinary } from './binaries.js'
import { freeClusterPort, type HostPort } from './ports.js'
import { errorMessage, makeTempDir, removeDir, waitFor } from './processes.js'
import { startRedisProcess, type RedisServer } from './redis.js'
import { parseInfo, redisCommand } from './resp.js'

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
