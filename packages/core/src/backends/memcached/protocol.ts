/**
 * The memcached binary protocol, as far as the backend needs it: the commands it sends (built here and written by
 * `transport.ts` on memjs's connections, because memjs's own methods expose neither CAS nor pipelining, and its
 * `increment` decodes 64-bit results wrongly), how their answers read, and what memcached accepts as a key and as
 * an expiry.
 */
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
const COMMAND_NAMES: Record<number, string> = {
  [OP_GET]: 'GET',
  [OP_SET]: 'SET',
  [OP_ADD]: 'ADD',
  [OP_DELETE]: 'DELETE',
  [OP_INCREMENT]: 'INCR',
  [OP_TOUCH]: 'TOUCH',
}

export const EMPTY = Buffer.alloc(0)

/** One request, before it is framed. */
export interface Command {
  readonly opcode: number
  readonly key: string
  readonly extras: Buffer
  readonly value: Buffer
  /** only if the item is still this version (SET, DELETE); absent: unconditionally */
  readonly cas?: Buffer | undefined
}

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

export const getCommand = (key: string): Command => ({ opcode: OP_GET, key, extras: EMPTY, value: EMPTY })

/** SET or ADD with an expiry field (see `expiryField`); with `cas`, a SET only replaces that version. */
export function storeCommand(opcode: number, key: string, value: Buffer, expiry: number, cas?: Buffer): Command {
  const extras = Buffer.alloc(8)
  extras.writeUInt32BE(expiry >>> 0, 4)
  return { opcode, key, extras, value, cas }
}

/** DELETE; with `cas`, only that version. */
export const deleteCommand = (key: string, cas?: Buffer): Command => ({
  opcode: OP_DELETE,
  key,
  extras: EMPTY,
  value: EMPTY,
  cas,
})

/** The item a GET answered, `null` when absent; other statuses throw. */
export function itemOf(response: Response): Item | null {
  if (response.status === STATUS_OK) return { value: response.value, cas: response.cas }
  if (response.status === STATUS_NOT_FOUND) return null
  throw statusError(OP_GET, response.status)
}

/**
 * Whether a SET or ADD stored: false when its condition failed (ADD of an existing key, CAS mismatch, a CAS write
 * of an item that is gone); other statuses throw.
 */
export function storedBy(response: Response, command: Command): boolean {
  if (response.status === STATUS_OK) return true
  if (response.status === STATUS_EXISTS || response.status === STATUS_NOT_STORED) return false
  if (response.status === STATUS_NOT_FOUND && command.cas !== undefined) return false
  throw statusError(command.opcode, response.status)
}

/** Whether a DELETE deleted: false when nothing was there, or not that version; other statuses throw. */
export function deletedBy(response: Response): boolean {
  if (response.status === STATUS_OK) return true
  if (response.status === STATUS_NOT_FOUND || response.status === STATUS_EXISTS) return false
  throw statusError(OP_DELETE, response.status)
}

/** A binary-protocol request: the 24-byte header (with `opaque` and CAS), extras, key, value. */
export function frame(command: Command, opaque: number): Buffer {
  const key = Buffer.from(command.key, 'utf8')
  const { extras, value, cas } = command
  const request = Buffer.alloc(24 + extras.length + key.length + value.length)
  request.writeUInt8(0x80, 0)
  request.writeUInt8(command.opcode, 1)
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

export function statusError(opcode: number, status: number): BackendError {
  const command = COMMAND_NAMES[opcode] ?? `0x${opcode.toString(16)}`
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
