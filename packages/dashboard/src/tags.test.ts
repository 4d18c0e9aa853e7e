import { describe, expect, it } from 'vitest'
import { describeTags, MAX_TAG_LENGTH, MAX_TAGS, parseTagsInput } from './tags'

describe('parseTagsInput', () => {
  it('reads one tag, or several separated by commas or line breaks, trimmed', () => {
    expect(parseTagsInput('user:5')).toEqual({ tags: ['user:5'] })
    expect(parseTagsInput('  user:5 , feeds,settings  ')).toEqual({ tags: ['user:5', 'feeds', 'settings'] })
    expect(parseTagsInput('user:5\nfeeds\r\nx')).toEqual({ tags: ['user:5', 'feeds', 'x'] })
  })

  it('keeps spaces and any characters inside a tag', () => {
    expect(parseTagsInput('user 5, café/ünï 🐄, a:b|c')).toEqual({ tags: ['user 5', 'café/ünï 🐄', 'a:b|c'] })
  })

  it('drops empty entries and duplicates, keeping the first order', () => {
    expect(parseTagsInput(',user:5,, ,feeds,user:5,')).toEqual({ tags: ['user:5', 'feeds'] })
  })

  it('refuses an input without any tag', () => {
    for (const input of ['', '   ', ',', ' , ,\n']) {
      expect(parseTagsInput(input), JSON.stringify(input)).toEqual({ error: 'Enter at least one tag.' })
    }
  })

  it(`accepts ${MAX_TAGS} tags and refuses more`, () => {
    const tags = Array.from({ length: MAX_TAGS + 1 }, (_, i) => `t${i}`)
    expect(parseTagsInput(tags.slice(0, MAX_TAGS).join(','))).toEqual({ tags: tags.slice(0, MAX_TAGS) })
    expect(parseTagsInput(tags.join(','))).toEqual({ error: `At most ${MAX_TAGS} tags at once; got ${MAX_TAGS + 1}.` })
    // duplicates do not count
    expect(parseTagsInput([...tags.slice(0, MAX_TAGS), 't0'].join(','))).toHaveProperty('tags')
  })

  it(`accepts tags of ${MAX_TAG_LENGTH} characters and refuses longer ones`, () => {
    const max = 'x'.repeat(MAX_TAG_LENGTH)
    expect(parseTagsInput(` ${max} `)).toEqual({ tags: [max] })
    const result = parseTagsInput(`ok, ${max}y`)
    expect(result).toHaveProperty('error')
    expect((result as { error: string }).error).toContain(`at most ${MAX_TAG_LENGTH} characters`)
    expect((result as { error: string }).error).toContain(`has ${MAX_TAG_LENGTH + 1}`)
  })
})

describe('describeTags', () => {
  it('names one, two or three tags', () => {
    expect(describeTags(['user:5'])).toBe('tag “user:5”')
    expect(describeTags(['a', 'b'])).toBe('tags “a” and “b”')
    expect(describeTags(['a', 'b', 'c'])).toBe('tags “a”, “b” and “c”')
  })

  it('counts the rest beyond three', () => {
    expect(describeTags(['a', 'b', 'c', 'd'])).toBe('tags “a”, “b” and 2 more')
    expect(describeTags(Array.from({ length: 64 }, (_, i) => `t${i}`))).toBe('tags “t0”, “t1” and 62 more')
  })

  it('shortens long tags', () => {
    expect(describeTags(['x'.repeat(200)])).toBe(`tag “${'x'.repeat(59)}…”`)
  })
})
