/** Talking to the benchmark's own redis-server outside the libraries under test (raw RESP connections). */
import net from 'node:net'
import {
  commandStats as serverStats,
  redisCommand,
  resetCommandStats as resetServerStats,
  UNCOUNTED_COMMANDS,
  type HostPort,
} from '../../test-support/servers.ts'

export function target(url: string): HostPort {
  const parsed = new URL(url)
  return { host: parsed.hostname, port: Number(parsed.port) }
}

export async function flushAll(url: string): Promise<void> {
  await redisCommand(target(url), ['FLUSHALL'])
}

/** Zeroes the server's per-command counters (`CONFIG RESETSTAT`). */
export async function resetCommandStats(url: string): Promise<void> {
  await resetServerStats(target(url))
}

/** Calls per command since the last reset, from `INFO commandstats`, without the benchmark's own commands. */
export async function commandStats(url: string): Promise<Record<string, number>> {
  return await serverStats(target(url))
}

export interface CommandCounts {
  /** every command the server executed, from INFO commandstats (commands run inside Lua scripts included) */
  executed: Record<string, number>
  /** the commands clients sent, from MONITOR (script internals excluded; pipelined ones still count one each) */
  sent: Record<string, number>
}

/**
 * Runs `work` between a stats reset and a stats read, with a MONITOR connection watching; returns the Redis
 * commands it caused. Background traffic of the library (pub/sub, polling) during `work` is included: it is part
 * of what the library costs.
 */
export async function countCommands(url: string, work: () => Promise<void>): Promise<CommandCounts> {
  const monitor = await Monitor.start(url)
  await resetCommandStats(url)
  await work()
  const executed = await commandStats(url)
  const sent = await monitor.stop()
  return { executed, sent }
}

/**
 * A MONITOR connection: counts the commands clients send, by name. MONITOR marks the commands a Lua script runs
 * with "lua" as their source; those are left out (they are not round trips).
 */
class Monitor {
  private readonly sent: Record<string, number> = {}
  private buffer = ''
  private fenceSeen: (() => void) | undefined

  private constructor(private readonly socket: net.Socket) {}

  static async start(url: string): Promise<Monitor> {
    const socket = net.connect(target(url))
    const monitor = new Monitor(socket)
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject)
      socket.once('data', () => {
        socket.on('data', (chunk) => monitor.onData(chunk.toString('utf8')))
        resolve()
      }) // +OK
      socket.write('MONITOR\r\n')
    })
    return monitor
  }

  /** Stops after the server has reported everything sent before now (an ECHO fence), returning the counts. */
  async stop(): Promise<Record<string, number>> {
    const seen = new Promise<void>((resolve) => (this.fenceSeen = resolve))
    await redisCommand({ host: this.socket.remoteAddress!, port: this.socket.remotePort! }, ['ECHO', FENCE])
    await seen
    this.socket.destroy()
    return this.sent
  }

  private onData(text: string): void {
    this.buffer += text
    let end: number
    while ((end = this.buffer.indexOf('\r\n')) >= 0) {
      const line = this.buffer.slice(0, end)
      this.buffer = this.buffer.slice(end + 2)
      // +1700000000.123456 [0 127.0.0.1:54321] "get" "key"   or   [0 lua] "set" ...
      const match = /^\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"(?: "([^"]*)")?/.exec(line)
      if (!match) continue
      const [, source, command, firstArgument] = match
      const name = command!.toLowerCase()
      if (name === 'echo' && firstArgument === FENCE) {
        this.fenceSeen?.()
        continue
      }
      if (source === 'lua' || UNCOUNTED_COMMANDS.has(name)) continue
      this.sent[name] = (this.sent[name] ?? 0) + 1
    }
  }
}

const FENCE = 'corral-bench-monitor-fence'

export function totalCalls(calls: Record<string, number>): number {
  return Object.values(calls).reduce((total, count) => total + count, 0)
}

/** "get 1, set 1" — commands sorted by count, each divided by `per` (e.g. per hit). */
export function describeCalls(calls: Record<string, number>, per = 1): string {
  const entries = Object.entries(calls).sort((a, b) => b[1] - a[1])
  if (entries.length === 0) return 'none'
  return entries.map(([name, count]) => `${name} ${+(count / per).toFixed(2)}`).join(', ')
}
