/**
 * The memcached binary protocol, as far as the backend needs it: requests are built here and sent through memjs's
 * `perform`, because memjs's own methods do not expose CAS (the lock and the invalidation marks need it) and its
 * `increment` decodes 64-bit results wrongly. Also what memcached accepts as a key and as an expiry.
 */
import type { Client as MemjsClient } from 'memjs'
import { BackendError } from '../../errors.js'

export const OP_GET = 0x00
export const OP_SET = 0x01
export const OP_ADD = 0x02
export const OP_DELETE = 0x04
export const OP_INCREMENT = 0x05
export const OP_TOUCH = 0x1c
export const STATUS_OK = 0x0000
export const STATUS_NOT_FOUND = 0x0001
export const STATUS_EXISTS = 0x0002
export const STATUS_NOT_STORED = 0x0005
const STATUS_NAMES: Record<number, string> = {
  0x0003: 'value too large',
  0x0004: 'invalid arguments',
  0x0006: 'not a number (incr on a value that is not a counter)',
  0x0081: 'unknown command',
  0x0082: 'out of memory',
  0x0084: 'internal error',
  0x0085: 'busy',
  0x0086: 'temporary failure',
}

export const EMPTY = Buffer.alloc(0)

/** An item as GET returns it. */
export interface Item {
  readonly value: Buffer
  /** the item's CAS version, for compare-and-swap / compare-and-delete */
  readonly cas: Buffer
}

/** A response: its status, value and the item's CAS version. */
export interface Response {
  readonly status: number
  readonly value: Buffer
  readonly cas: Buffer
}

interface MemjsResponse {
  header: { status: number; cas: Buffer }
  val: Buffer
}

/**
 * Sends one request on memjs's connection for `key` and resolves with the response. A failed connection rejects
 * with `BackendError`; a response with an error status resolves (the caller decides what the status means).
 *
 * A request memjs has not settled within `boundMs` rejects too. memjs 1.x can lose one: a connection it gave up on
 * (a request timed out) is only half-closed, and when it finally closes its handler clears the state of the
 * connection that replaced it, so a request queued on that one is never written and never fails. A server that
 * froze (SIGSTOP, a long pause) and came back is enough. `boundMs` lies beyond memjs's own timeouts and retries
 * (`requestBoundMs`), so it only catches such requests.
 */
export function request(
  client: MemjsClient,
  opcode: number,
  key: string,
  extras: Buffer,
  value: Buffer,
  cas: Buffer | undefined,
  boundMs: number,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    client.incrSeq()
    const seq = client.seq
    const message = buildRequest(opcode, Buffer.from(key, 'utf8'), extras, value, seq, cas)
    const lost = setTimeout(
      () => reject(new BackendError(`memcached: no answer and no error from memjs within ${boundMs} ms`)),
      boundMs,
    )
    client.perform(key, message, seq, (error: Error | null, response?: MemjsResponse) => {
      clearTimeout(lost)
      if (error || !response) {
        reject(new BackendError(`memcached: ${error?.message ?? String(error)}`, { cause: error }))
        return
      }
      resolve({ status: response.header.status, value: response.val, cas: response.header.cas })
    })
  })
}

/** memjs's settings, where `requestBoundMs` reads them (they are not in its type declarations). */
interface MemjsSettings {
  options?: { retries?: number; retry_delay?: number; failover?: boolean }
  servers?: Array<{ options?: { timeout?: number; conntimeout?: number } }>
}

/**
 * The longest memjs takes to answer or fail a request, from the client's own settings (memjs's defaults where it
 * has none): each attempt may wait to connect, then for the answer; attempts are `retries` apart by
 * `retry_delay`. One second more is allowed for a loaded event loop. Past that, `request` takes it as lost.
 */
export function requestBoundMs(client: MemjsClient): number {
  const { options = {}, servers = [] } = client as unknown as MemjsSettings
  const timeout = servers[0]?.options?.timeout ?? 0.5
  const connect = servers[0]?.options?.conntimeout ?? 2 * timeout
  const attempts = Math.max(1, options.retries ?? 2) * (options.failover ? Math.max(1, servers.length) : 1)
  const seconds = attempts * (connect + timeout) + (attempts - 1) * (options.retry_delay ?? 0.2)
  return Math.ceil(seconds * 1000) + 1000
}

/** A binary-protocol request: the 24-byte header (with CAS), extras, key, value. */
function buildRequest(
  opcode: number,
  key: Buffer,
  extras: Buffer,
  value: Buffer,
  opaque: number,
  cas?: Buffer,
): Buffer {
  const request = Buffer.alloc(24 + extras.length + key.length + value.length)
  request.writeUInt8(0x80, 0)
  request.writeUInt8(opcode, 1)
  request.writeUInt16BE(key.length, 2)
  request.writeUInt8(extras.length, 4)
  request.writeUInt32BE(extras.length + key.length + value.length, 8)
  request.writeUInt32BE(opaque >>> 0, 12)
  if (cas) cas.copy(request, 16, 0, 8)
  extras.copy(request, 24)
  key.copy(request, 24 + extras.length)
  value.copy(request, 24 + extras.length + key.length)
  return request
}

export function statusError(command: string, status: number): BackendError {
  return new BackendError(
    `memcached ${command} failed: ${STATUS_NAMES[status] ?? `status 0x${status.toString(16).padStart(4, '0')}`}`,
  )
}

/** memcached's longest relative expiry; anything longer is read as a unix timestamp. */
const MAX_RELATIVE_EXPIRY = 60 * 60 * 24 * 30

/** The expiry field for a time to live in seconds (0: never; past 30 days, memcached wants a unix time). */
export function expiryField(ttlSeconds: number | undefined): number {
  if (ttlSeconds === undefined) return 0
  const seconds = Math.max(1, Math.ceil(ttlSeconds))
  return seconds <= MAX_RELATIVE_EXPIRY ? seconds : Math.floor(Date.now() / 1000) + seconds
}

/** The longest key memcached accepts, in bytes. */
export const MAX_KEY_BYTES = 250

/** Whitespace (ASCII and Unicode) and control characters: memcached's text protocol cannot carry them in keys. */
export function unsafeKey(key: string): boolean {
  for (let i = 0; i < key.length; i++) {
    const code = key.charCodeAt(i)
    if (code <= 0x20 || (code >= 0x7f && code <= 0x9f)) return true
  }
  return /\s/u.test(key)
}
