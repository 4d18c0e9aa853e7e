/**
 * What a memcached lock key holds: `<token>[:<traceparent>]:<expiresAtMs>`. The token identifies the holder, the
 * traceparent (W3C) lets waiters in other processes link their spans to the holder's, and `expiresAtMs` (wall
 * clock) is when others may take the lock over. Earlier versions wrote `<token>:<expiresAtMs>`, which reads the
 * same; they read the new form with the traceparent as part of the token, which is just as good.
 */
import { validTraceparent } from '../shared/distributed.js'

export interface LockValue {
  readonly token: string
  readonly traceparent?: string
  /** wall-clock epoch milliseconds */
  readonly expiresAt: number
}

const LOCK_VALUE = /^([^\s:]{1,128})(?::([^\s:]{1,128}))?:(\d{1,16})$/

/** A lock value, or `undefined` when it is not one Corral writes (a foreign or corrupt key). */
export function parseLock(data: Buffer): LockValue | undefined {
  const match = LOCK_VALUE.exec(data.toString('latin1'))
  if (!match) return undefined
  const traceparent = validTraceparent(match[2])
  return { token: match[1]!, ...(traceparent && { traceparent }), expiresAt: Number(match[3]) }
}

export function formatLock(token: string, traceparent: string | undefined, expiresAt: number): Buffer {
  return Buffer.from(`${token}${traceparent ? `:${traceparent}` : ''}:${Math.ceil(expiresAt)}`, 'latin1')
}
