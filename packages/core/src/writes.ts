/**
 * The writes: `set` and `setMulti` store values created now; `delete`, `deleteMulti`, `invalidate`,
 * `invalidateTags` and a dependency's invalidation remove or invalidate values and report it (events, counters, a
 * `corral.invalidate` span). Backend failures follow `BackendAccess`: a store reports and goes on, a delete or an
 * invalidation throws `BackendError`. The region wraps each call in its tracing channel and span.
 */
import { createValue, rejectUnknown } from './policy.js'
import type { DependencyHost } from './dependency.js'
import { describeValue } from './describe-value.js'
import { ValidationError } from './errors.js'
import { assertKeyList } from './keys.js'
import { SET_OPTIONS, type SetOptions } from './region-options.js'
import type { RegionInternals } from './region-internals.js'
import { validateTags } from './tags.js'

/** `region.set`: stores `value` under `key`, created now. */
export async function set(
  host: RegionInternals,
  key: string,
  value: unknown,
  options: SetOptions | undefined,
): Promise<void> {
  if (options !== undefined) rejectUnknown(options, SET_OPTIONS, 'set()')
  const tags = options?.tags === undefined ? undefined : validateTags(options.tags, 'set')
  await host.access.store(
    host.backend(),
    host.storeKey(key),
    createValue(value, host.stamp(), tags, host.defaults().policy),
  )
}

/** `region.setMulti`: stores many values, all created now, in one round trip. */
export async function setMulti(
  host: RegionInternals,
  entries: ReadonlyMap<string, unknown> | Record<string, unknown>,
  options: SetOptions | undefined,
): Promise<void> {
  if (options !== undefined) rejectUnknown(options, SET_OPTIONS, 'setMulti()')
  const tags = options?.tags === undefined ? undefined : validateTags(options.tags, 'setMulti')
  if (entries === null || typeof entries !== 'object')
    throw new ValidationError(`setMulti(): entries must be a Map or an object; got ${describeValue(entries)}`)
  const ct = host.stamp()
  const pairs = entries instanceof Map ? [...entries] : Object.entries(entries)
  const { policy } = host.defaults()
  await host.access.storeMulti(
    host.backend(),
    pairs.map(([key, value]) => [host.storeKey(key), createValue(value, ct, tags, policy)] as const),
  )
}

/** `region.delete`: removes `key`, counted as a key invalidation. */
export async function deleteKey(host: RegionInternals, key: string): Promise<void> {
  const backend = host.backend()
  const storeKey = host.storeKey(key)
  await host.access.write('delete', () => backend.delete(storeKey), backend, storeKey)
  host.instrumentation.invalidate(true, 'key', host.now(), key)
}

/** `region.deleteMulti`: removes many keys in one round trip. */
export async function deleteMulti(host: RegionInternals, keys: readonly string[]): Promise<void> {
  assertKeyList(keys, 'deleteMulti')
  const backend = host.backend()
  const storeKeys = keys.map((key) => host.storeKey(key))
  await host.access.write('deleteMulti', () => backend.deleteMulti(storeKeys), backend, storeKeys)
  const at = host.now()
  for (const key of keys) host.instrumentation.invalidate(true, 'key', at, key)
}

/** `region.invalidate`: every value created before now becomes a miss (hard) or stale (soft). */
export async function invalidate(host: RegionInternals, options: { hard?: boolean }): Promise<void> {
  rejectUnknown(options ?? {}, ['hard'], 'invalidate()')
  host.backend()
  const hard = invalidationKind(host, options, 'invalidate', 'invalidate({ hard: true })')
  const at = host.stamp()
  await traced(host, 'region', hard, [], () =>
    host.access.write('invalidate', () => host.freshness.invalidator.invalidate(hard, at), host.region.backend),
  )
  host.instrumentation.invalidate(hard, 'region', at)
}

/** `region.invalidateTags`: every value carrying one of `tags` created before now becomes a miss or stale. */
export async function invalidateTags(
  host: RegionInternals,
  tags: readonly string[] | string,
  options: { hard?: boolean },
): Promise<void> {
  rejectUnknown(options ?? {}, ['hard'], 'invalidateTags()')
  host.backend()
  const list = validateTags(typeof tags === 'string' ? [tags] : tags, 'invalidateTags', { atLeastOne: true })
  const hard = invalidationKind(host, options, 'invalidateTags', 'invalidateTags(tags, { hard: true })')
  const invalidator = host.freshness.invalidator
  if (!invalidator.invalidateTags) {
    throw new ValidationError(`region "${host.region.name}": its invalidator does not support tags`)
  }
  const at = host.stamp()
  await traced(host, 'tag', hard, list, () =>
    host.access.write('invalidateTags', () => invalidator.invalidateTags!(list, hard, at), host.region.backend),
  )
  for (const tag of list) host.instrumentation.invalidateTag(hard, tag, at)
}

/** What a dependency of the region needs (`region.dependency`): its invalidation deletes and reports as the writes do. */
export function dependencyHost(host: RegionInternals): DependencyHost {
  return {
    name: host.region.name,
    expirationTime: host.region.expirationTime,
    backend: () => host.backend(),
    storeKey: (key) => host.storeKey(key),
    now: () => host.stamp(),
    deleteDependents: async (dependency, storeKeys, keys) => {
      const backend = host.backend()
      await traced(host, 'dependency', true, [dependency], () =>
        host.access.write('invalidateDependency', () => backend.deleteMulti(storeKeys), backend, storeKeys),
      )
      host.instrumentation.invalidateDependency(dependency, keys, host.now())
    },
  }
}

/** `hard` of an invalidation's options; soft needs an expiration time to compare with. */
function invalidationKind(
  host: RegionInternals,
  options: { hard?: boolean },
  method: string,
  hardCall: string,
): boolean {
  const hard = options.hard ?? true
  if (typeof hard !== 'boolean')
    throw new ValidationError(`${method}(): hard must be a boolean; got ${describeValue(hard)}`)
  if (!hard && host.region.expirationTime === undefined) {
    throw new ValidationError(
      `region "${host.region.name}" has no expiration time, so soft invalidation has nothing to compare with: configure an expirationTime or use ${hardCall}`,
    )
  }
  return hard
}

/** Runs an invalidation inside a `corral.invalidate` span when tracing is on. */
function traced(
  host: RegionInternals,
  scope: string,
  hard: boolean,
  targets: readonly string[],
  run: () => Promise<void>,
): Promise<void> {
  return host.tracing?.enabled ? host.tracing.invalidation(scope, hard, targets, run) : run()
}
