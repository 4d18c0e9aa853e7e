/**
 * A counting TCP proxy for the memcached binary protocol: clients connect to it instead of the server, and it
 * counts what they send. Used to measure what a cache operation costs memcached, independently of the client
 * library: commands sent (by opcode) and round trips (a burst of requests, however many, sent before the client
 * waits for an answer, counted per connection).
 */
import net from 'node:net'
import { LOOPBACK, type HostPort } from './servers/ports.js'

/** Binary-protocol opcode names, for readable counts. */
const OPCODES: Record<number, string> = {
  0x00: 'get',
  0x01: 'set',
  0x02: 'add',
  0x03: 'replace',
  0x04: 'delete',
  0x05: 'incr',
  0x06: 'decr',
  0x07: 'quit',
  0x08: 'flush',
  0x09: 'getq',
  0x0a: 'noop',
  0x0b: 'version',
  0x0c: 'getk',
  0x0d: 'getkq',
  0x10: 'stat',
  0x1c: 'touch',
  0x1d: 'gat',
  0x20: 'sasl-list',
  0x21: 'sasl-auth',
}

export interface WireCounts {
  /** requests sent, by command (`set` and `delete` with a CAS version count as `cas-set`, `cas-delete`) */
  readonly commands: Record<string, number>
  /** bursts of requests after which the client waited for an answer */
  readonly roundTrips: number
}

export interface MemcachedWireCounter extends HostPort {
  /** `'host:port'` of the proxy, as memjs wants it */
  readonly servers: string
  /** Runs `work` and returns what it sent. */
  measure(work: () => Promise<void>): Promise<WireCounts>
  close(): Promise<void>
}

/** The total of a `commands` record. */
export const totalCommands = (commands: Record<string, number>): number =>
  Object.values(commands).reduce((sum, count) => sum + count, 0)

/** Starts a counting proxy in front of the memcached server at `target`. */
export async function startMemcachedWireCounter(target: HostPort): Promise<MemcachedWireCounter> {
  let commands: Record<string, number> = {}
  let roundTrips = 0
  const sockets = new Set<net.Socket>()

  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host)
    sockets.add(client)
    sockets.add(upstream)
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    // The client is "waiting" once the server has answered something since its last burst.
    let answered = true
    let pending = Buffer.alloc(0)
    client.on('data', (chunk: Buffer) => {
      if (answered) roundTrips++
      answered = false
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 24 && pending[0] === 0x80) {
        const length = 24 + pending.readUInt32BE(8)
        if (pending.length < length) break
        const opcode = pending[1]!
        const withCas = pending.readBigUInt64BE(16) !== 0n
        const name = OPCODES[opcode] ?? `0x${opcode.toString(16)}`
        const label = withCas && (name === 'set' || name === 'delete') ? `cas-${name}` : name
        commands[label] = (commands[label] ?? 0) + 1
        pending = pending.subarray(length)
      }
      upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => {
      answered = true
      client.write(chunk)
    })
    const close = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('close', close)
    upstream.on('close', close)
    client.on('error', close)
    upstream.on('error', close)
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, LOOPBACK, () => resolve())
  })
  const port = (server.address() as net.AddressInfo).port
  const counts = (): WireCounts => ({ commands: { ...commands }, roundTrips })
  const reset = () => {
    commands = {}
    roundTrips = 0
  }
  return {
    host: LOOPBACK,
    port,
    servers: `${LOOPBACK}:${port}`,
    async measure(work) {
      reset()
      await work()
      return counts()
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}
