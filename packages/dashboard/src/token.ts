/** The admin token as the user types it. */

/**
 * Trims the token and checks it can travel in an HTTP header (fetch throws on anything outside Latin-1, and
 * control characters would break the header). Returns the token, or an error message for the form.
 */
export function normalizeToken(input: string): { token: string } | { error: string } {
  const token = input.trim()
  if (token === '') return { error: 'Enter the admin token.' }
  if (/^bearer\s/i.test(token)) return normalizeToken(token.replace(/^bearer\s+/i, ''))
  if (/[^\u0020-\u007e]/.test(token)) {
    return { error: 'The token can only contain printable ASCII characters.' }
  }
  return { token }
}
