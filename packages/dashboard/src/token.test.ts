import { describe, expect, it } from 'vitest'
import { normalizeToken } from './token'

describe('normalizeToken', () => {
  it('trims, and drops a pasted "Bearer " prefix', () => {
    expect(normalizeToken('  s3cret \n')).toEqual({ token: 's3cret' })
    expect(normalizeToken('Bearer s3cret')).toEqual({ token: 's3cret' })
  })
  it('refuses empty tokens and characters a header cannot carry', () => {
    expect(normalizeToken('   ')).toHaveProperty('error')
    expect(normalizeToken('a\u0000b')).toHaveProperty('error')
    expect(normalizeToken('pässword')).toHaveProperty('error')
  })
})
