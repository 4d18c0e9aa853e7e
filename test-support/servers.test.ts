import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Cluster, Redis } from 'ioredis'
import memjs from 'memjs'
import { describe, test } from 'vitest'
import {
  freeClusterPort,
  freePort,
  isPortFree,
  MissingBinaryError,
  promtoolCheckMetrics,
  redisCommand,
  requireBinary,
  startMemcached,
  startPrometheus,
  startRedis,
  startRedisCluster,
  startRedisSentinel,
} from './servers.js'
import { processState } from './servers/processes.js'

const here = path.dirname(fileURLToPath(import.meta.url))

/** Resolves 'refused' if nothing accepts connections on the port, 'open' otherwise. */
function probePort(port: number): Promise<'open' | 'refused'> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve('open')
    })
    socket.once('error', (err: NodeJS.ErrnoException) =>
      err.code === 'ECONNREFUSED' ? resolve('refused') : reject(err),
    )
  })
}

/** True while the pid exists and is not a zombie (a container's PID 1 may never reap orphans). */
function isRunning(pid: number): boolean {
  const state = processState(pid)
  return state !== undefined && state !== 'Z'
}

async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return check()
}

function redisClient(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null, lazyConnect: true })
}

describe.concurrent('ports', () => {
  test('freePort hands out distinct, bindable ports', async ({ expect }) => {
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()))
    expect(new Set(ports).size).toBe(20)
    for (const port of ports) expect(await isPortFree(port)).toBe(true)
  })

  test('freeClusterPort leaves room for the cluster bus port', async ({ expect }) => {
    const port = await freeClusterPort()
    expect(port).toBeLessThan(55_535)
    expect(await isPortFree(port + 10_000)).toBe(true)
  })
})

describe.concurrent('redis', () => {
  test('answers, stores a key through ioredis, and stop() frees the port and the temp dir', async ({ expect }) => {
    const server = await startRedis({ args: ['--notify-keyspace-events', 'KEA'] })
    try {
      expect(server.host).toBe('127.0.0.1')
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`)
      expect(server.pid).toBeGreaterThan(0)
      const client = redisClient(server.url)
      await client.connect()
      await client.set('corral:key', 'value')
      expect(await client.get('corral:key')).toBe('value')
      expect(await client.config('GET', 'notify-keyspace-events')).toEqual(['notify-keyspace-events', 'AKE'])
      expect(await client.config('GET', 'save')).toEqual(['save', ''])
      client.disconnect()
    } finally {
      await server.stop()
    }
    expect(await isPortFree(server.port)).toBe(true)
    expect(isRunning(server.pid)).toBe(false)
    expect(existsSync(server.dir)).toBe(false)
    await server.stop() // idempotent
  })

  test('password: url carries it, unauthenticated commands are refused', async ({ expect }) => {
    const server = await startRedis({ password: 's3cr:et@' })
    try {
      expect(server.url).toBe(`redis://:${encodeURIComponent('s3cr:et@')}@127.0.0.1:${server.port}`)
      const client = redisClient(server.url)
      await client.connect()
      expect(await client.ping()).toBe('PONG')
      client.disconnect()
      await expect(redisCommand(server, ['PING'])).rejects.toThrow(/NOAUTH/)
    } finally {
      await server.stop()
    }
  })

  test('restart() comes back on the same port with a new process (data lost)', async ({ expect }) => {
    const server = await startRedis()
    try {
      const { port, pid } = server
      await redisCommand(server, ['SET', 'k', 'v'])
      await server.restart()
      expect(server.port).toBe(port)
      expect(server.pid).not.toBe(pid)
      expect(isRunning(pid)).toBe(false)
      const client = redisClient(server.url)
      await client.connect()
      expect(await client.get('k')).toBeNull()
      await client.set('k', 'again')
      expect(await client.get('k')).toBe('again')
      client.disconnect()
    } finally {
      await server.stop()
    }
  })

  test('kill() makes the port refuse connections; restart() recovers', async ({ expect }) => {
    const server = await startRedis()
    try {
      const { pid } = server
      await server.kill()
      expect(await probePort(server.port)).toBe('refused')
      expect(isRunning(pid)).toBe(false)
      await server.restart()
      expect(await redisCommand(server, ['PING'])).toBe('PONG')
    } finally {
      await server.stop()
    }
  })

  test('pause() freezes the server with its port open; resume() thaws it; stop() ends a paused one', async ({
    expect,
  }) => {
    const server = await startRedis()
    try {
      const client = redisClient(server.url)
      await client.connect()
      await server.pause()
      expect(processState(server.pid)).toBe('T')
      // Connections are still accepted (by the kernel), but nothing answers.
      expect(await probePort(server.port)).toBe('open')
      await expect(redisCommand(server, ['PING'], { timeoutMs: 300 })).rejects.toThrow(/no reply/)
      const queued = client.set('k', 'sent while paused')
      await server.resume()
      expect(await queued).toBe('OK')
      expect(await client.get('k')).toBe('sent while paused')
      client.disconnect()
      await server.pause()
    } finally {
      await server.stop()
    }
    expect(await isPortFree(server.port)).toBe(true)
  })

  test('several servers start in parallel on distinct ports and dirs', async ({ expect }) => {
    const servers = await Promise.all(Array.from({ length: 4 }, () => startRedis()))
    try {
      expect(new Set(servers.map((s) => s.port)).size).toBe(4)
      expect(new Set(servers.map((s) => s.dir)).size).toBe(4)
      for (const s of servers) expect(await redisCommand(s, ['PING'])).toBe('PONG')
    } finally {
      await Promise.all(servers.map((s) => s.stop()))
    }
  })

  test('cluster: ioredis Cluster sets and gets keys in slots on every master', async ({ expect }) => {
    const cluster = await startRedisCluster({ masters: 3 })
    const client = new Cluster(cluster.nodes, { redisOptions: { maxRetriesPerRequest: 1 }, lazyConnect: true })
    try {
      expect(cluster.nodes).toHaveLength(3)
      await client.connect()
      const keys = Array.from({ length: 30 }, (_, i) => `corral:key:${i}`)
      for (const key of keys) await client.set(key, `v-${key}`)
      for (const key of keys) expect(await client.get(key)).toBe(`v-${key}`)
      const slots = await Promise.all(keys.map((k) => redisCommand(cluster.servers[0]!, ['CLUSTER', 'KEYSLOT', k])))
      expect(new Set(slots).size).toBeGreaterThan(10)
      // The keys really are spread over all three masters.
      const sizes = await Promise.all(cluster.servers.map((s) => redisCommand(s, ['DBSIZE'])))
      expect(sizes.every((n) => typeof n === 'number' && n > 0)).toBe(true)
      expect(sizes.reduce<number>((a, n) => a + Number(n), 0)).toBe(30)
    } finally {
      client.disconnect()
      await cluster.stop()
    }
    for (const node of cluster.nodes) expect(await isPortFree(node.port)).toBe(true)
  })

  test('sentinel: ioredis with sentinels + name connects to the master; SET/GET works', async ({ expect }) => {
    const setup = await startRedisSentinel({ name: 'corral' })
    const client = new Redis({
      sentinels: setup.sentinels,
      name: setup.name,
      maxRetriesPerRequest: 1,
      lazyConnect: true,
    })
    try {
      expect(setup.sentinels).toHaveLength(1)
      expect(setup.replicas).toHaveLength(1)
      expect(await setup.currentMaster()).toEqual(setup.master)
      await client.connect()
      await client.set('corral:sentinel', 'ok')
      expect(await client.get('corral:sentinel')).toBe('ok')
      const info = await client.info('server')
      expect(info).toContain(`tcp_port:${setup.master.port}`)
      // and it replicates (WAIT must run on the connection that wrote)
      expect(await client.wait(1, 5000)).toBe(1)
      expect(await redisCommand(setup.replicaServers[0]!, ['GET', 'corral:sentinel'])).toBe('ok')
    } finally {
      client.disconnect()
      await setup.stop()
    }
    for (const s of [...setup.sentinels, setup.master, ...setup.replicas]) expect(await isPortFree(s.port)).toBe(true)
  })
})

describe.concurrent('memcached', () => {
  test('memjs set/get works; kill() refuses connections; restart() same port; stop() frees it', async ({ expect }) => {
    const server = await startMemcached()
    const client = memjs.Client.create(server.servers, { retries: 0, logger: { log: () => {} } })
    try {
      expect(server.servers).toBe(`127.0.0.1:${server.port}`)
      await client.set('corral:mc', 'hello', { expires: 60 })
      expect((await client.get('corral:mc')).value?.toString()).toBe('hello')

      const { pid } = server
      await server.kill()
      expect(await probePort(server.port)).toBe('refused')
      expect(isRunning(pid)).toBe(false)

      await server.restart()
      expect(server.pid).not.toBe(pid)
      const fresh = memjs.Client.create(server.servers, { retries: 0, logger: { log: () => {} } })
      expect((await fresh.get('corral:mc')).value).toBeNull()
      await fresh.set('corral:mc', 'again', {})
      expect((await fresh.get('corral:mc')).value?.toString()).toBe('again')
      fresh.close()
    } finally {
      client.close()
      await server.stop()
    }
    expect(await isPortFree(server.port)).toBe(true)
  })

  test('pause() freezes memcached: requests get no answer until resume()', async ({ expect }) => {
    const server = await startMemcached()
    const client = memjs.Client.create(server.servers, { retries: 0, timeout: 0.3, logger: { log: () => {} } })
    try {
      await client.set('corral:mc', 'before', {})
      await server.pause()
      expect(processState(server.pid)).toBe('T')
      await expect(client.get('corral:mc')).rejects.toThrow()
      await server.resume()
      expect((await client.get('corral:mc')).value?.toString()).toBe('before')
    } finally {
      client.close()
      await server.stop()
    }
  })
})

describe.concurrent('prometheus', () => {
  test('scrapes a node:http target; query("test_metric") returns 1', async ({ expect }) => {
    const target = http.createServer((req, res) => {
      res.writeHead(req.url === '/metrics' ? 200 : 404, { 'content-type': 'text/plain; version=0.0.4' })
      res.end('# HELP test_metric A test metric.\n# TYPE test_metric gauge\ntest_metric 1\n')
    })
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve))
    const address = target.address() as net.AddressInfo
    const prometheus = await startPrometheus({ scrapeTargets: [`127.0.0.1:${address.port}`], scrapeInterval: '1s' })
    try {
      expect(prometheus.url).toBe(`http://127.0.0.1:${prometheus.port}`)
      // Prometheus 2.42 hands new targets to the scraper on a 5 s tick: expect ~5.3 s here.
      const result = await prometheus.waitForQuery('test_metric', (r) => r.length > 0, { timeoutMs: 15_000 })
      expect(result).toHaveLength(1)
      expect(result[0]?.value).toBe(1)
      expect(result[0]?.metric).toMatchObject({ __name__: 'test_metric', job: 'corral' })
      expect(await prometheus.targets()).toEqual([
        expect.objectContaining({ health: 'up', scrapeUrl: `http://127.0.0.1:${address.port}/metrics` }),
      ])
      expect(await prometheus.query('vector(2)')).toEqual([expect.objectContaining({ value: 2 })])
      await expect(prometheus.query('test_metric{')).rejects.toThrow(/parse error/)
    } finally {
      await prometheus.stop()
      await new Promise((resolve) => target.close(resolve))
    }
    expect(await isPortFree(prometheus.port)).toBe(true)
  }, 30_000)

  test('promtoolCheckMetrics accepts valid text and rejects a malformed exposition', async ({ expect }) => {
    const valid = await promtoolCheckMetrics(
      '# HELP test_metric A test metric.\n# TYPE test_metric gauge\ntest_metric 1\n',
    )
    expect(valid).toEqual({ ok: true, output: '', exitCode: 0 })

    const malformed = await promtoolCheckMetrics('test_metric{ 1\n')
    expect(malformed.ok).toBe(false)
    expect(malformed.output).toMatch(/parsing error/)

    // Lint problems (not just syntax errors) fail too: promtool exits 3.
    const noHelp = await promtoolCheckMetrics('test_metric 1\n')
    expect(noHelp).toMatchObject({ ok: false, exitCode: 3 })
    expect(noHelp.output).toContain('no help text')
  })
})

describe.concurrent('harness guarantees', () => {
  test('a missing binary fails with the install command (never skips)', async ({ expect }) => {
    const missing = requireBinary('memcached', { searchPath: '/nonexistent' })
    await expect(missing).rejects.toBeInstanceOf(MissingBinaryError)
    await expect(missing).rejects.toThrow('memcached not found: install it with "apt-get install -y memcached"')
    await expect(requireBinary('promtool', { searchPath: '/nonexistent' })).rejects.toThrow(
      'promtool not found: install it with "apt-get install -y prometheus"',
    )
    expect(await requireBinary('redis-server')).toMatch(/\/redis-server$/)
  })

  /** Runs fixtures/orphan.ts in a child node process; returns what it started. */
  async function runOrphanFixture(mode: 'exit' | 'wait') {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'fixtures', 'orphan.ts'), mode], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    await eventually(() => stdout.includes('\n') || child.exitCode !== null, 15_000)
    const line = stdout.split('\n')[0] ?? ''
    if (!line.startsWith('{')) throw new Error(`orphan fixture failed: ${stdout}\n${stderr}`)
    return { child, exited, started: JSON.parse(line) as { pids: number[]; dirs: string[]; ports: number[] } }
  }

  test('servers die with the test process when it exits without stop()', async ({ expect }) => {
    const { exited, started } = await runOrphanFixture('exit')
    await exited
    expect(await eventually(() => started.pids.every((pid) => !isRunning(pid)), 3000)).toBe(true)
    // A killed multi-threaded process shows up as a zombie before its last thread closed the sockets.
    expect(
      await eventually(
        async () => (await Promise.all(started.ports.map(probePort))).every((p) => p === 'refused'),
        3000,
      ),
    ).toBe(true)
    expect(await eventually(() => started.dirs.every((d) => !existsSync(d)), 3000)).toBe(true)
  })

  test('servers die even when the test process is SIGKILLed (watchdog)', async ({ expect }) => {
    const { child, exited, started } = await runOrphanFixture('wait')
    for (const pid of started.pids) expect(isRunning(pid)).toBe(true)
    child.kill('SIGKILL')
    await exited
    expect(await eventually(() => started.pids.every((pid) => !isRunning(pid)), 5000)).toBe(true)
    // A killed multi-threaded process shows up as a zombie before its last thread closed the sockets.
    expect(
      await eventually(
        async () => (await Promise.all(started.ports.map(probePort))).every((p) => p === 'refused'),
        3000,
      ),
    ).toBe(true)
    expect(await eventually(() => started.dirs.every((d) => !existsSync(d)), 5000)).toBe(true)
  })

  test('servers die when the test process gets SIGTERM', async ({ expect }) => {
    const { child, exited, started } = await runOrphanFixture('wait')
    child.kill('SIGTERM')
    await exited
    expect(child.signalCode).toBe('SIGTERM') // the default "die by the signal" behaviour is kept
    expect(await eventually(() => started.pids.every((pid) => !isRunning(pid)), 3000)).toBe(true)
  })
})
