/** The tags of an "Invalidate tags" form, as the user types them. */
import type { MaxTagLength, MaxTags } from '@corral/exporter/api'

/**
 * `MAX_TAGS` and `MAX_TAG_LENGTH` of @corral/core, which the exporter checks again. Copied because the page does
 * not bundle core, and typed with core's literal types, so the type check fails when core's limits change.
 */
export const MAX_TAGS: MaxTags = 64
export const MAX_TAG_LENGTH: MaxTagLength = 256

/**
 * Splits the input on commas (and line breaks), trims each tag, and drops empty entries and duplicates. Returns the
 * tags, or an error message for the form: no tag at all, more than MAX_TAGS, or one longer than MAX_TAG_LENGTH.
 * A tag cannot contain a comma here (the API takes any string).
 */
export function parseTagsInput(input: string): { tags: string[] } | { error: string } {
  const tags = [
    ...new Set(
      input
        .split(/[,\r\n]/)
        .map((tag) => tag.trim())
        .filter((tag) => tag !== ''),
    ),
  ]
  if (tags.length === 0) return { error: 'Enter at least one tag.' }
  if (tags.length > MAX_TAGS) return { error: `At most ${MAX_TAGS} tags at once; got ${tags.length}.` }
  const long = tags.find((tag) => tag.length > MAX_TAG_LENGTH)
  if (long !== undefined) {
    return { error: `Tags are at most ${MAX_TAG_LENGTH} characters; “${long.slice(0, 24)}…” has ${long.length}.` }
  }
  return { tags }
}

/** `tag “a”`, `tags “a” and “b”`, `tags “a”, “b” and 3 more`: tags quoted, long ones shortened, at most `shown`. */
export function describeTags(tags: readonly string[], shown = 3): string {
  const quote = (tag: string) => `“${tag.length > 60 ? `${tag.slice(0, 59)}…` : tag}”`
  if (tags.length === 1) return `tag ${quote(tags[0] ?? '')}`
  const head = tags.slice(0, tags.length > shown ? shown - 1 : tags.length - 1).map(quote)
  const rest = tags.length - head.length
  const tail = rest === 1 ? quote(tags[tags.length - 1] ?? '') : `${rest} more`
  return `tags ${head.join(', ')} and ${tail}`
}
