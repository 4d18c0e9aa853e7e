/**
 * `diagnostics_channel` tracing channels for the region's operations, the way Node.js itself, undici and
 * bentocache publish theirs: an APM tool (or a test, or a profiler) subscribes by name, without Corral knowing it.
 * One tracing channel per operation, so that subscribing to invalidations costs the hit path nothing; while no one
 * subscribes to a channel, its operation pays one property read.
 *
 * Each operation publishes `start` and `end` around its synchronous part, then `asyncStart` and `asyncEnd` when
 * its promise settles, or `error` (Node.js's `tracePromise`). Every event of one call carries the same message
 * object, which Node.js completes with `result` or `error`, and which subscribers may annotate (to keep their span
 * on it, for example).
 */
import diagnosticsChannel, { type TracingChannel } from 'node:diagnostics_channel'
import type { GetOrCreateResult } from '../region-options.js'
import type { Tier } from './events.js'

/** The region operations that publish a tracing channel, by the method's name. */
export type RegionOperation =
  | 'getOrCreate'
  | 'getOrCreateMulti'
  | 'get'
  | 'getMulti'
  | 'set'
  | 'setMulti'
  | 'delete'
  | 'deleteMulti'
  | 'invalidate'
  | 'invalidateTags'

/** The message of every event of one operation's tracing channel. */
export interface RegionOperationMessage {
  /** the method: `getOrCreate`, `get`, `set`, ... */
  readonly operation: RegionOperation
  /** the region's name */
  readonly region: string
  /** the backend's name (`memory`, `redis`, ...), `unconfigured` before `configure()` */
  readonly backend: string
  /** the key, for single-key operations (as the caller gave it, before the key mangler) */
  readonly key?: string
  /** the keys, for multi-key operations */
  readonly keys?: readonly string[]
  /** `invalidateTags`: the tags */
  readonly tags?: readonly string[]
  /** `invalidate`, `invalidateTags`: hard or soft */
  readonly hard?: boolean
  /**
   * `getOrCreate`, set before `asyncEnd` when the call succeeded: how the value was obtained — `hit`, `stale`,
   * `miss` (a new value, from this caller's creator or the one it waited for) or `failSafe`
   */
  outcome?: GetOrCreateResult<unknown>['result']
  /** `getOrCreate`: where a hit came from, `l1` (this process's memory) or `l2` (the shared backend) */
  tier?: Tier | undefined
  /** `getOrCreate`: whether this caller ran the creator */
  created?: boolean
  /** set by Node.js on `asyncEnd`: what the operation resolved to (a `getOrCreate`'s value) */
  result?: unknown
  /** set by Node.js on `error` (and `asyncEnd`): what the operation threw */
  error?: unknown
}

export type RegionTracingChannel = TracingChannel<unknown, RegionOperationMessage>

/** The channel names: `corral:<operation>` (Node.js prefixes the events: `tracing:corral:get:start`, ...). */
export const TRACING_CHANNEL_NAMES: { readonly [Operation in RegionOperation]: `corral:${Operation}` } = {
  getOrCreate: 'corral:getOrCreate',
  getOrCreateMulti: 'corral:getOrCreateMulti',
  get: 'corral:get',
  getMulti: 'corral:getMulti',
  set: 'corral:set',
  setMulti: 'corral:setMulti',
  delete: 'corral:delete',
  deleteMulti: 'corral:deleteMulti',
  invalidate: 'corral:invalidate',
  invalidateTags: 'corral:invalidateTags',
}

/**
 * The tracing channels, by operation: `tracingChannels.getOrCreate.subscribe({ start, asyncEnd, error })`, or
 * `diagnostics_channel.tracingChannel('corral:getOrCreate')` from code that does not import Corral.
 */
export const tracingChannels = Object.fromEntries(
  Object.entries(TRACING_CHANNEL_NAMES).map(([operation, name]) => [
    operation,
    diagnosticsChannel.tracingChannel<unknown, RegionOperationMessage>(name),
  ]),
) as { readonly [Operation in RegionOperation]: RegionTracingChannel }
