import type { InvalidationState, RegionInvalidator } from './backends/api.js'

/**
 * The default invalidator: marks kept in this process. Unlike dogpile.cache's default strategy, hard and soft
 * marks are kept separately, so a soft invalidation after a hard one does not turn the hard one soft.
 */
export class LocalInvalidator implements RegionInvalidator {
  private state: InvalidationState = { hardAt: 0, softAt: 0 }

  async invalidate(hard: boolean, at: number): Promise<void> {
    this.apply(hard, at)
  }

  /** Records a mark synchronously (also used by distributed invalidators for marks they receive). */
  apply(hard: boolean, at: number): void {
    const { hardAt, softAt } = this.state
    this.state = hard ? { hardAt: Math.max(hardAt, at), softAt } : { hardAt, softAt: Math.max(softAt, at) }
  }

  current(): InvalidationState {
    return this.state
  }
}
