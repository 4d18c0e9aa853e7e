import { ValidationError } from './errors.js'

/** The most tags one value may carry: each costs a lookup on every read of the value. */
export const MAX_TAGS = 64
/** The longest tag, in characters. */
export const MAX_TAG_LENGTH = 256

/**
 * What is wrong with a tag list, or `undefined` when it is valid: an array of at most MAX_TAGS non-empty strings
 * of at most MAX_TAG_LENGTH characters (and at least one with `atLeastOne`). The one definition of a valid tag
 * list: the region throws it as a `ValidationError`, the exporter answers it as a 400.
 */
export function tagListProblem(tags: unknown, options: { atLeastOne?: boolean } = {}): string | undefined {
  if (!Array.isArray(tags)) return `"tags" must be an array of strings; got ${JSON.stringify(tags)?.slice(0, 100)}`
  if (options.atLeastOne && tags.length === 0) return '"tags" must hold at least one tag'
  if (tags.length > MAX_TAGS) return `"tags" holds at most ${MAX_TAGS} tags; got ${tags.length}`
  for (const tag of tags) {
    if (typeof tag !== 'string') return `every tag must be a string; got ${JSON.stringify(tag)?.slice(0, 100)}`
    if (tag.length === 0) return 'tags must not be empty strings'
    if (tag.length > MAX_TAG_LENGTH) return `tags are at most ${MAX_TAG_LENGTH} characters; got one of ${tag.length}`
  }
  return undefined
}

/** Checks a tag list (see `tagListProblem`); `method` names the call in the `ValidationError`. */
export function validateTags(tags: unknown, method: string, options?: { atLeastOne?: boolean }): readonly string[] {
  const problem = tagListProblem(tags, options)
  if (problem !== undefined) throw new ValidationError(`${method}(): ${problem}`)
  return tags as readonly string[]
}
