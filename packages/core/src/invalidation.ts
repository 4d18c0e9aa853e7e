import type { InvalidationState, RegionInvalidator } from './backends/api.js'

export const NOT_INVALIDATED: InvalidationState = Object.freeze({ hardAt: 0, softAt: 0 })

/**
 * The default invalidator: marks kept in this process. Unlike dogpile.cache's default strategy, hard and soft
 * marks are kept separately, so a soft invalidation after a hard one does not turn the hard one soft.
 */
export class LocalInvalidator implements RegionInvalidator {
  private state: InvalidationState = NOT_INVALIDATED
  private readonly tags = new Map<string, InvalidationState>()

  /**
   * @param maxTags how many tag marks are kept. Beyond it the oldest marks are forgotten, which can make values
   *   created before such a mark valid again: keep it above the number of distinct tags invalidated within the
   *   lifetime of a value.
   */
  constructor(private readonly maxTags = 100_000) {}

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

  async invalidateTags(tags: readonly string[], hard: boolean, at: number): Promise<void> {
    for (const tag of tags) this.applyTag(tag, hard, at)
  }

  /** Records a tag mark synchronously (also used by distributed invalidators for marks they receive or load). */
  applyTag(tag: string, hard: boolean, at: number): void {
    const marks = this.tags.get(tag) ?? NOT_INVALIDATED
    // Re-inserting moves the tag to the end of the Map's order: the first entries are the oldest marks.
    this.tags.delete(tag)
    this.tags.set(
      tag,
      hard
        ? { hardAt: Math.max(marks.hardAt, at), softAt: marks.softAt }
        : { hardAt: marks.hardAt, softAt: Math.max(marks.softAt, at) },
    )
    if (this.tags.size > this.maxTags) this.tags.delete(this.tags.keys().next().value as string)
  }

  /** Every tag is known here: one never invalidated has no marks. */
  tagMarks(tag: string): InvalidationState {
    return this.tags.get(tag) ?? NOT_INVALIDATED
  }
}
