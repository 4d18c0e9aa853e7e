import type { LockHost } from './lock/dogpile.js'
import type { CallSettings } from './policy.js'
import type { Instrumentation } from './telemetry/instrumentation.js'
import type { RegionTracing } from './telemetry/tracing.js'

/**
 * The region as its parts see it: the lock (`LockHost`, lock/dogpile.ts), the reads (reads.ts), the writes and
 * dependencies (writes.ts). The region makes one in its constructor and hands the same object to each; its methods
 * read the region's configuration as it is at the time of the call, so a `configure()` that replaces the backend
 * reaches them all. Nothing outside the package sees it.
 */
export interface RegionInternals extends LockHost {
  /** counters, events, hot keys and debug lines of the calls that do not go through the lock */
  readonly instrumentation: Instrumentation
  /** undefined when the region was created with `telemetry: false` */
  readonly tracing: RegionTracing | undefined
  /** the settings of a call without options: the region's expiration (milliseconds) and resilience policy */
  defaults(): CallSettings
  /** `key` as the backend stores it (the key mangler applied); throws when it is not a string or not configured */
  storeKey(key: string): string
}
