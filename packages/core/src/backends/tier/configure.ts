/**
 * The `l1` option of `configure()`: checked before anything changes, then the backend chain wrapped in a
 * `TieredBackend` with the bus that reaches the other processes (the Redis backend's own pub/sub, a bus the backend
 * supplies, or a Redis URL given as `l1.bus`), or with `l1.maxAge` as the only bound on staleness.
 */
import { describeValue } from '../../describe-value.js'
import { parseDuration, type Duration } from '../../durations.js'
import { ValidationError } from '../../errors.js'
import { rejectUnknown } from '../../policy.js'
import type { CacheBackend, L1Bus } from '../api.js'
import { MemoryBackend } from '../memory.js'
import { NullBackend } from '../null.js'
import { ProxyBackend } from '../proxy.js'
import { RedisBackend } from '../redis/backend.js'
import { RedisBus } from '../redis/bus.js'
import { TieredBackend, type TierObserver } from './tiered-backend.js'

/** `configure(backend, { l1 })`: an in-process tier in front of a backend shared by processes. */
export interface L1Options {
  /** How many values the L1 keeps (least recently used ones go first). Default 10000. */
  maxEntries?: number
  /**
   * How long a copy is served from the L1 after this process read or wrote it, before it asks the backend again:
   * the bound on how stale a copy can be when no bus tells this process about changes. Required on memcached
   * without `bus`. Default: no bound (copies stay until the bus says they changed, or the LRU drops them).
   */
  maxAge?: Duration
  /**
   * A Redis URL (`redis://...`) on which the processes announce changes, for a backend without pub/sub
   * (memcached). A redis region announces on its own connection.
   */
  bus?: string
}

const DEFAULT_L1_MAX_ENTRIES = 10_000
const L1_OPTION_NAMES = ['maxEntries', 'maxAge', 'bus']

export interface ResolvedL1 {
  readonly maxEntries: number
  readonly maxAgeMs: number | undefined
  readonly busUrl: string | undefined
}

/** Checks `configure()`'s `l1` (`true`, `false` or `L1Options`); `undefined` when there is no L1. */
export function parseL1Options(value: unknown, where: string): ResolvedL1 | undefined {
  if (value === undefined || value === false) return undefined
  if (value === true) return { maxEntries: DEFAULT_L1_MAX_ENTRIES, maxAgeMs: undefined, busUrl: undefined }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ValidationError(
      `${where}: l1 must be true, false or { maxEntries?, maxAge?, bus? }; got ${describeValue(value)}`,
    )
  const options = value as Record<string, unknown>
  rejectUnknown(options, L1_OPTION_NAMES, `${where}: l1`)
  const { maxEntries, maxAge, bus } = options
  if (maxEntries !== undefined && (typeof maxEntries !== 'number' || !Number.isInteger(maxEntries) || maxEntries < 1))
    throw new ValidationError(`${where}: l1.maxEntries must be a positive integer; got ${describeValue(maxEntries)}`)
  let maxAgeMs: number | undefined
  if (maxAge !== undefined) {
    const seconds = parseDuration(maxAge, `${where}: l1.maxAge`)
    if (!(seconds > 0) || !Number.isFinite(seconds))
      throw new ValidationError(`${where}: l1.maxAge must be a positive duration; got ${describeValue(maxAge)}`)
    maxAgeMs = seconds * 1000
  }
  if (bus !== undefined && (typeof bus !== 'string' || !/^rediss?:\/\//.test(bus)))
    throw new ValidationError(`${where}: l1.bus must be a Redis URL (redis://...); got ${describeValue(bus)}`)
  return {
    maxEntries: (maxEntries as number | undefined) ?? DEFAULT_L1_MAX_ENTRIES,
    maxAgeMs,
    busUrl: bus as string | undefined,
  }
}

export interface TierContext {
  readonly regionName: string
  readonly observer: TierObserver
  readonly clock?: () => number
  /** closes a backend this function gives up on, in the background */
  readonly closeQuietly: (backend: CacheBackend) => void
}

/**
 * Puts an L1 in front of `chain` (the backend behind the proxies of `wrap`). The tier is the region's own (it closes
 * it), and closes `chain` only when the region owned it. Throws `ValidationError` when the L1 cannot be kept
 * coherent: a backend with nothing to be coherent with (memory, null), or one whose changes cannot reach the other
 * processes while neither `l1.maxAge` nor `l1.bus` is given.
 */
export function withL1(
  chain: { instance: CacheBackend; owned: boolean },
  l1: ResolvedL1,
  context: TierContext,
): { instance: CacheBackend; owned: boolean } {
  let bus: L1Bus | undefined
  try {
    bus = busFor(innermost(chain.instance), l1, context.regionName)
  } catch (error) {
    if (chain.owned) context.closeQuietly(chain.instance)
    throw error
  }
  const tier = new TieredBackend(chain.instance, {
    maxEntries: l1.maxEntries,
    maxAgeMs: l1.maxAgeMs,
    bus,
    ownsBus: bus !== undefined,
    ownsL2: chain.owned,
    observer: context.observer,
    ...(context.clock === undefined ? {} : { clock: context.clock }),
  })
  return { instance: tier, owned: true }
}

/** The backend at the end of a chain of proxies. */
function innermost(backend: CacheBackend): CacheBackend {
  let current = backend
  while (current instanceof ProxyBackend) current = current.proxied
  return current
}

function busFor(backend: CacheBackend, l1: ResolvedL1, region: string): L1Bus | undefined {
  const where = `region "${region}"`
  if (backend instanceof MemoryBackend || backend instanceof NullBackend)
    throw new ValidationError(
      `${where}: l1 is an in-process tier in front of a backend that processes share (redis, memcached); the ${backend.name} backend ${backend instanceof NullBackend ? 'stores nothing' : 'is in this process already'}`,
    )
  const own = backend.createBus?.()
  if (own !== undefined) {
    if (l1.busUrl !== undefined)
      throw new ValidationError(
        `${where}: l1.bus is for backends without pub/sub (memcached); a ${backend.name} region announces changes on its own connection`,
      )
    return own
  }
  if (l1.busUrl !== undefined) return new RedisBus(new RedisBackend({ url: l1.busUrl }), true)
  if (l1.maxAgeMs === undefined)
    throw new ValidationError(
      `${where}: the ${backend.name} backend cannot tell the other processes that a value changed, so their L1 copies would be served stale for as long as they stay in the L1. Give l1.maxAge (how long a copy is served without asking ${backend.name}: the bound on its staleness, e.g. l1: { maxAge: '5s' }) or l1.bus (a Redis URL on which the processes announce changes, e.g. l1: { bus: 'redis://cache:6379' })`,
    )
  return undefined
}
