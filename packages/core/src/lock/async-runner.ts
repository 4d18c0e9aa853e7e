import type { CacheRegion } from '../region.js'

/**
 * Receives the regeneration of a stale value, so the caller that took the lock can return the stale value at
 * once (dogpile.cache's `async_creation_runner`). `creator` runs the creator and stores its value (with the
 * region's `shouldCache`, serializer and telemetry); the runner decides when and where it runs, and must call
 * `mutex.release()` when it is done. If the runner returns a promise, the lock is also released when it settles.
 */
export type AsyncCreationRunner = (
  region: CacheRegion,
  key: string,
  creator: () => Promise<unknown>,
  mutex: { release(): Promise<void> },
) => void | Promise<void>

/** An async creation runner that regenerates on the next turn of the event loop. */
export const backgroundRunner: AsyncCreationRunner = (_region, _key, creator, mutex) => {
  setImmediate(() => {
    creator()
      .catch(() => {
        // the failure was already reported as a `regenerate` event with outcome `error`
      })
      .finally(() => mutex.release())
  })
}
