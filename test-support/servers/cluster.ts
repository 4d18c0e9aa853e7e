/** An N-master Redis Cluster, optionally with replicas (for failover tests). */
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { requireBinary } from './binaries.js'
import { freeClusterPort, type HostPort } from './ports.js'
import { errorMessage, makeTempDir, removeDir, waitFor } from './processes.js'
import { startRedisProcess, type RedisServer } from './redis.js'
import { parseInfo, redisCommand } from './resp.js'

export interface RedisCluster {
  /** Startup nodes for ioredis `new Cluster(nodes)` (the masters, then the replicas). */
  readonly nodes: HostPort[]
  /** The individual nodes (kill/restart one to test failure handling): the masters first, then the replicas. */
  readonly servers: RedisServer[]
  /** The initial masters (a failover promotes one of their replicas). */
  readonly masters: RedisServer[]
  /** The replicas, `replicas` per master, in master order. */
  readonly replicas: RedisServer[]
  stop(): Promise<void>
}

export interface StartRedisClusterOptions {
  /** Number of masters. Default 3. */
  masters?: number
  /** Replicas per master. Default 0. */
  replicas?: number
  /** `cluster-node-timeout`: how long a master may be unreachable before a replica takes over. Default 5000. */
  nodeTimeoutMs?: number
  /** Extra redis-server arguments for every node. */
  args?: string[]
  startTimeoutMs?: number
}

const CLUSTER_SLOTS = 16_384

/**
 * Starts an N-master Redis Cluster: nodes on ports N with free bus ports N+10000, slots split evenly over the
 * masters with CLUSTER ADDSLOTSRANGE, joined with CLUSTER MEET, and `replicas` replicas per master (CLUSTER
 * REPLICATE); resolves when every node reports cluster_state:ok, knows all nodes and sees all 16384 slots, and
 * every replica's link to its master is up.
 */
export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3
  if (!Number.isInteger(masters) || masters < 1)
    throw new Error(`startRedisCluster: masters must be >= 1, got ${masters}`)
  const replicasPerMaster = opts.replicas ?? 0
  if (!Number.isInteger(replicasPerMaster) || replicasPerMaster < 0)
    throw new Error(`startRedisCluster: replicas must be >= 0, got ${replicasPerMaster}`)
  const total = masters * (1 + replicasPerMaster)
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
      Array.from({ length: total }, async (_, i) => {
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
            '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 5000),
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
    const masterServers = servers.slice(0, masters)
    const replicaServers = servers.slice(masters)

    // Distinct config epochs (as redis-cli --cluster create does) and an even slot split over the masters.
    await Promise.all(
      masterServers.map(async (server, i) => {
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

    if (replicaServers.length > 0) {
      // A replica can only follow a master it knows: wait for the MEETs to propagate, then attach each one.
      await waitFor(
        `all ${total} nodes to know each other`,
        async () => {
          const infos = await Promise.all(
            servers.map(async (s) => parseInfo(String(await redisCommand(s, ['CLUSTER', 'INFO'])))),
          )
          return infos.every((info) => info.cluster_known_nodes === String(total))
        },
        timeoutMs,
      )
      const masterIds = await Promise.all(
        masterServers.map(async (m) => String(await redisCommand(m, ['CLUSTER', 'MYID']))),
      )
      // A node counted as known may still be in handshake: retry until the replica accepts its master.
      await Promise.all(
        replicaServers.map((replica, i) =>
          waitFor(
            `replica ${replica.port} to follow its master`,
            async () => {
              const master = masterIds[Math.floor(i / replicasPerMaster)]!
              return (await redisCommand(replica, ['CLUSTER', 'REPLICATE', master]).catch(() => undefined)) === 'OK'
            },
            timeoutMs,
          ),
        ),
      )
      await waitFor(
        'every replica to sync with its master',
        async () => {
          const infos = await Promise.all(
            replicaServers.map(async (r) => parseInfo(String(await redisCommand(r, ['INFO', 'replication'])))),
          )
          return infos.every((info) => info.master_link_status === 'up')
        },
        timeoutMs,
      )
    }

    await waitFor(
      `cluster_state:ok on all ${total} nodes`,
      async () => {
        const infos = await Promise.all(
          servers.map(async (s) => parseInfo(String(await redisCommand(s, ['CLUSTER', 'INFO'])))),
        )
        return infos.every(
          (info) =>
            info.cluster_state === 'ok' &&
            info.cluster_known_nodes === String(total) &&
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
    return {
      nodes: servers.map(({ host, port }) => ({ host, port })),
      servers,
      masters: masterServers,
      replicas: replicaServers,
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}
