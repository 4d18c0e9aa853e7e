/**
 * How the memcached backend talks to its servers: requests built in `protocol.ts`, written on memjs's connections
 * (memjs picks the server for a key, connects, authenticates and parses answers), under a deadline of Corral's own.
 *
 * Why not memjs's timeouts: memjs arms one socket idle timer per connection, and every request written or answer
 * read resets it, so a request to a frozen server (SIGSTOP, a long pause) never times out while other requests
 * keep the connection busy. And memjs can lose a request outright: a connection it gave up on closes later, and
 * its close handler then wipes the state of the connection that replaced it, so what was queued there is never
 * written and never fails; a connection the server closed (a restart) leaves the requests it carried pending too.
 *
 * So every call here settles within `deadlineMs`, whatever memjs does, and a connection that failed a call — no
 * answer in time, an error, closed under its requests — is never used again: its memjs `Server` is replaced in
 * the client's server list by a fresh one (same address, credentials and options), and the old one is torn down
 * (socket destroyed, everything still waiting on it failed; memjs retries its own calls on the fresh one). A
 * fresh `Server` object rather than a fresh socket, because the old one's late events would corrupt a socket
 * that took its place.
 */
import type { Socket } from 'node:net'
import type { Client as MemjsClient } from 'memjs'
import { BackendError } from '../../errors.js'
import { OP_INCREMENT, frame, type Command, type Response } from './protocol.js'

/** The parts of a memjs 1.x `Server` the transport uses (its type declarations do not match its code). */
interface MemjsServer {
  readonly host: string
  readonly port: number
  readonly username?: string
  readonly password?: string
  readonly options: object
  readonly _socket?: Socket
  onResponse(seq: number, handler: (response: MemjsResponse) => void): void
  onError(seq: number, handler: (error: Error | string) => void): void
  write(blob: Buffer): void
  error(error: Error): void
}

interface MemjsResponse {
  header: { status: number; cas: Buffer }
  val: Buffer
}

/** The parts of a memjs 1.x `Client` the transport uses. */
interface MemjsInternals {
  servers: MemjsServer[]
  seq: number
  incrSeq(): void
  /** the server for a key (memjs's hashing, or the `getServer` a user installed); null when none is available */
  server(key: string): MemjsServer | null | undefined
}

type MemjsServerClass = new (
  host: string,
  port: number,
  username: string | undefined,
  password: string | undefined,
  options: object,
) => MemjsServer

/** Commands that must not be sent twice: the first may have run before its connection failed. */
const NOT_IDEMPOTENT = new Set([OP_INCREMENT])
/** Connection errors that mean nothing was sent: no server listens, or its name does not resolve. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN'])

/**
 * Whether a call that failed may still have run on the server: unless the connection was refused outright, a
 * request may have arrived (a frozen server executes what it received once it thaws, long after the deadline).
 */
export function mayHaveRun(error: unknown): boolean {
  return !(error instanceof Error && notSent(error.cause))
}

const notSent = (error: unknown): boolean => {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return typeof code === 'string' && NOT_SENT.has(code)
}

export class MemcachedTransport {
  readonly #client: MemjsInternals
  /** sockets whose close is watched */
  readonly #watched = new WeakSet<Socket>()
  #closed = false

  constructor(
    client: MemjsClient,
    /** how long a call may take, from being sent to its last answer */
    readonly deadlineMs: number,
  ) {
    this.#client = client as unknown as MemjsInternals
  }

  /**
   * Sends `commands` and resolves with their answers, in order. The commands for one server are written together
   * (one write, one round trip) and memcached answers them in order. Rejects with `BackendError` when a connection
   * fails (after one more try on a fresh connection, for commands that may be repeated) or at the deadline.
   */
  send(commands: readonly Command[]): Promise<Response[]> {
    if (this.#closed) return Promise.reject(new BackendError('memcached backend: closed'))
    return new Promise((resolve, reject) => {
      const client = this.#client
      const responses = new Array<Response | undefined>(commands.length)
      let remaining = commands.length
      let settled = false
      /** servers with a request of this call not answered yet: replaced if the deadline passes */
      const waitingOn = new Set<MemjsServer>()

      const finish = (error?: BackendError) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        if (error) reject(error)
        else resolve(responses as Response[])
      }
      const timer = setTimeout(() => {
        finish(new BackendError(`memcached: no answer within ${this.deadlineMs} ms`))
        const stuck = new BackendError(`memcached: a request got no answer within ${this.deadlineMs} ms`)
        for (const server of waitingOn) this.#replace(server, stuck)
      }, this.deadlineMs)

      const dispatch = (indices: readonly number[], retry: boolean) => {
        const byServer = new Map<MemjsServer, number[]>()
        for (const index of indices) {
          const server = client.server(commands[index]!.key)
          if (!server) return finish(new BackendError('memcached: no server available'))
          const group = byServer.get(server)
          if (group) group.push(index)
          else byServer.set(server, [index])
        }
        for (const [server, group] of byServer) {
          let failed = false
          let outstanding = group.length
          const onError = (error: Error | string) => {
            // memjs fails every request of a connection at once: handle the group once.
            if (failed) return
            failed = true
            waitingOn.delete(server)
            this.#replace(server, new BackendError('memcached: connection failed'))
            if (settled) return
            const unanswered = group.filter((index) => responses[index] === undefined)
            const message = typeof error === 'string' ? error : error.message
            // Sent again on a fresh connection (once) when the old one broke under it; a refused connection would
            // only be refused again.
            const refused = notSent(error)
            const repeatable = unanswered.every((index) => !NOT_IDEMPOTENT.has(commands[index]!.opcode))
            if (retry && !refused && repeatable && !this.#closed) {
              dispatch(unanswered, false)
            } else {
              finish(new BackendError(`memcached: ${message}`, { cause: error }))
            }
          }
          const frames = group.map((index) => {
            client.incrSeq()
            const seq = client.seq
            server.onResponse(seq, (response) => {
              if (failed) return
              responses[index] = { status: response.header.status, value: response.val, cas: response.header.cas }
              if (--outstanding === 0) waitingOn.delete(server)
              if (--remaining === 0) finish()
            })
            server.onError(seq, onError)
            return frame(commands[index]!, seq)
          })
          waitingOn.add(server)
          try {
            server.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames))
          } catch (error) {
            onError(error as Error)
            continue
          }
          this.#watch(server)
        }
      }
      dispatch(
        commands.map((_, index) => index),
        true,
      )
    })
  }

  /**
   * Watches the connection `server` just wrote on: closed under its requests (the server restarted, memjs gave up
   * on it), it is replaced at once instead of leaving them to the deadline. Pipelined writes go out without
   * Nagle's delay.
   */
  #watch(server: MemjsServer): void {
    const socket = server._socket
    if (socket === undefined || this.#watched.has(socket)) return
    this.#watched.add(socket)
    socket.setNoDelay(true)
    socket.once('close', () => {
      if (!this.#closed) this.#replace(server, new BackendError('memcached: connection closed'))
    })
  }

  /** Puts a fresh `Server` in `server`'s place and tears `server` down (unless that happened already). */
  #replace(server: MemjsServer, reason: Error): void {
    const index = this.#client.servers.indexOf(server)
    if (index < 0) return
    const Server = server.constructor as MemjsServerClass
    this.#client.servers[index] = new Server(server.host, server.port, server.username, server.password, server.options)
    try {
      server.error(reason)
    } catch {
      // memjs's own handlers of its failed requests: never our caller's problem
    }
  }

  /** No more calls; with `teardown`, the connections are destroyed and what waits on them fails at once. */
  close(teardown: boolean): void {
    this.#closed = true
    if (!teardown) return
    for (const server of [...this.#client.servers]) this.#replace(server, new BackendError('memcached backend: closed'))
  }
}
