import { ValidationError } from '@corral/core'
import { describe, expect, it } from 'vitest'
import { hostName, isJsonContentType, isLoopbackHostname, resolveAdminToken, tokenFingerprint } from './auth.js'
import { fixture, JSON_HEADERS, postJson } from './test-support/helpers.js'

const TOKEN = 's3cret-token-0123456789abcdef'
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

describe('bearer token', () => {
  it('is required on every /api route when set, with WWW-Authenticate: Bearer', async () => {
    const { app } = fixture({ adminToken: TOKEN })
    for (const path of [
      '/api/regions',
      '/api/regions/users',
      '/api/regions/users/hot-keys',
      '/api/stampedes',
      '/api/events',
    ]) {
      const res = await app.request(path)
      expect(res.status, path).toBe(401)
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="corral"')
      expect(await res.json()).toEqual({ error: 'an admin token is required: send "Authorization: Bearer <token>"' })
    }
    const post = await app.request('/api/regions/users/invalidate', postJson({ hard: true }))
    expect(post.status).toBe(401)
    const del = await app.request('/api/regions/users/keys/a', { method: 'DELETE' })
    expect(del.status).toBe(401)
    // unknown /api paths too: the token is checked before routing, so nothing about the API leaks
    expect((await app.request('/api/nope')).status).toBe(401)
  })

  it('rejects a wrong token, of any length, with error="invalid_token"', async () => {
    const { app } = fixture({ adminToken: TOKEN })
    for (const wrong of ['x', `${TOKEN}x`, TOKEN.slice(0, -1), TOKEN.toUpperCase()]) {
      const res = await app.request('/api/regions', { headers: bearer(wrong) })
      expect(res.status, wrong).toBe(401)
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="corral", error="invalid_token"')
      expect(await res.json()).toEqual({ error: 'the admin token is not valid' })
    }
  })

  it('rejects other schemes and malformed headers', async () => {
    const { app } = fixture({ adminToken: TOKEN })
    for (const authorization of [`Basic ${TOKEN}`, TOKEN, 'Bearer', 'Bearer ', `Bearer ${TOKEN} extra`]) {
      const res = await app.request('/api/regions', { headers: { authorization } })
      expect(res.status, authorization).toBe(401)
    }
  })

  it('accepts the right token (scheme case-insensitive)', async () => {
    const { app } = fixture({ adminToken: TOKEN })
    expect((await app.request('/api/regions', { headers: bearer(TOKEN) })).status).toBe(200)
    expect((await app.request('/api/regions', { headers: { authorization: `bearer ${TOKEN}` } })).status).toBe(200)
    const res = await app.request('/api/regions/users/invalidate', postJson({ hard: true }, bearer(TOKEN)))
    expect(res.status).toBe(200)
  })

  it('leaves /metrics and /healthz open', async () => {
    const { app } = fixture({ adminToken: TOKEN })
    expect((await app.request('/metrics')).status).toBe(200)
    expect((await app.request('/healthz')).status).toBe(200)
  })

  it('defaults to CORRAL_ADMIN_TOKEN; an explicit option wins; empty means none', () => {
    expect(resolveAdminToken(undefined, { CORRAL_ADMIN_TOKEN: 'from-env' })).toBe('from-env')
    expect(resolveAdminToken('explicit', { CORRAL_ADMIN_TOKEN: 'from-env' })).toBe('explicit')
    expect(resolveAdminToken('', { CORRAL_ADMIN_TOKEN: 'from-env' })).toBeUndefined()
    expect(resolveAdminToken(undefined, { CORRAL_ADMIN_TOKEN: '' })).toBeUndefined()
    expect(resolveAdminToken(undefined, {})).toBeUndefined()
  })

  it('refuses tokens that cannot travel in a header', () => {
    for (const token of ['has space', 'new\nline', 'é-accent']) {
      expect(() => resolveAdminToken(token, {})).toThrow(ValidationError)
    }
  })

  it('fingerprints tokens without revealing them', () => {
    const fingerprint = tokenFingerprint(TOKEN)
    expect(fingerprint).toMatch(/^sha256:[0-9a-f]{12}$/)
    expect(fingerprint).toBe(tokenFingerprint(TOKEN))
    expect(fingerprint).not.toBe(tokenFingerprint(`${TOKEN}x`))
    expect(fingerprint).not.toContain(TOKEN.slice(0, 6))
  })
})

describe('loopback Host check (no token)', () => {
  it('answers loopback host names', async () => {
    const { app } = fixture()
    for (const host of ['localhost', 'localhost:9464', '127.0.0.1:9464', '127.1.2.3', '[::1]:9464', 'app.localhost']) {
      const res = await app.request('/api/regions', { headers: { host } })
      expect(res.status, host).toBe(200)
    }
  })

  it('refuses other host names with 403, which defeats DNS rebinding', async () => {
    const { app } = fixture()
    for (const host of [
      'evil.example',
      'evil.example:9464',
      '10.0.0.5:9464',
      'localhost.evil.example',
      '127.0.0.1.nip.io',
    ]) {
      const res = await app.request('/api/regions', { headers: { host } })
      expect(res.status, host).toBe(403)
      expect((await res.json()) as object).toHaveProperty('error')
    }
    // /metrics and /healthz are not part of the admin API
    expect((await app.request('/metrics', { headers: { host: 'evil.example' } })).status).toBe(200)
  })

  it('allows the hosts listed in allowedHosts, and any host once a token is set', async () => {
    const { app } = fixture({ allowedHosts: ['corral.internal'] })
    expect((await app.request('/api/regions', { headers: { host: 'corral.internal:9464' } })).status).toBe(200)
    const withToken = fixture({ adminToken: TOKEN }).app
    const res = await withToken.request('/api/regions', { headers: { host: 'cache.example.com', ...bearer(TOKEN) } })
    expect(res.status).toBe(200)
  })

  it('parses host names', () => {
    expect(hostName('LOCALHOST:80')).toBe('localhost')
    expect(hostName('[::1]:9464')).toBe('::1')
    expect(hostName('bad host')).toBeUndefined()
    expect(hostName(undefined)).toBeUndefined()
    expect(isLoopbackHostname('::ffff:127.0.0.1')).toBe(true)
    expect(isLoopbackHostname('0.0.0.0')).toBe(false)
    expect(isLoopbackHostname('128.0.0.1')).toBe(false)
  })
})

describe('cross-site protection of mutations', () => {
  const invalidate = (headers: Record<string, string>) => postJson({ hard: true }, headers)

  it('accepts same-origin requests and requests without Origin (curl, scripts)', async () => {
    const { app } = fixture()
    const same = await app.request(
      'http://127.0.0.1:9464/api/regions/users/invalidate',
      invalidate({ host: '127.0.0.1:9464', origin: 'http://127.0.0.1:9464', 'sec-fetch-site': 'same-origin' }),
    )
    expect(same.status).toBe(200)
    expect((await app.request('/api/regions/users/invalidate', invalidate({}))).status).toBe(200)
  })

  it('refuses another Origin, Origin: null, and Sec-Fetch-Site: cross-site / same-site with 403', async () => {
    const { app } = fixture()
    const cases: Record<string, string>[] = [
      { host: '127.0.0.1:9464', origin: 'http://evil.example' },
      { host: '127.0.0.1:9464', origin: 'http://127.0.0.1:9465' },
      { host: '127.0.0.1:9464', origin: 'null' },
      { host: '127.0.0.1:9464', 'sec-fetch-site': 'cross-site' },
      { host: '127.0.0.1:9464', 'sec-fetch-site': 'same-site' },
    ]
    for (const headers of cases) {
      const res = await app.request('/api/regions/users/invalidate', invalidate(headers))
      expect(res.status, JSON.stringify(headers)).toBe(403)
      expect(((await res.json()) as { error: string }).error).toMatch(/^cross-site request refused/)
    }
    const del = await app.request('/api/regions/users/keys/a', {
      method: 'DELETE',
      headers: { host: '127.0.0.1:9464', origin: 'http://evil.example' },
    })
    expect(del.status).toBe(403)
  })

  it('does not apply to reads', async () => {
    const { app } = fixture()
    const res = await app.request('/api/regions', {
      headers: { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' },
    })
    expect(res.status).toBe(200)
  })

  it('accepts the origins listed in allowedOrigins', async () => {
    const { app } = fixture({ allowedOrigins: ['http://localhost:5173'] })
    const res = await app.request(
      '/api/regions/users/invalidate',
      invalidate({ host: '127.0.0.1:9464', origin: 'http://localhost:5173' }),
    )
    expect(res.status).toBe(200)
    expect(() => fixture({ allowedOrigins: ['not an origin'] })).toThrow(ValidationError)
  })
})

describe('JSON-only mutations', () => {
  it('answers 415 to a POST that is not application/json', async () => {
    const { app } = fixture()
    const bodies: RequestInit[] = [
      { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"hard":true}' },
      { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'hard=true' },
      { method: 'POST', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x--' },
      { method: 'POST', body: '{"hard":true}' },
    ]
    for (const init of bodies) {
      const res = await app.request('/api/regions/users/invalidate', init)
      expect(res.status).toBe(415)
      expect(await res.json()).toEqual({ error: 'this endpoint accepts only application/json bodies' })
    }
  })

  it('accepts application/json with parameters, and a DELETE without a Content-Type', async () => {
    const { app } = fixture()
    const res = await app.request('/api/regions/users/invalidate', {
      method: 'POST',
      headers: { 'content-type': 'Application/JSON; charset=utf-8' },
      body: '{"hard":true}',
    })
    expect(res.status).toBe(200)
    expect((await app.request('/api/regions/users/keys/a', { method: 'DELETE' })).status).toBe(200)
    expect((await app.request('/api/regions/users/keys/a', { method: 'DELETE', headers: JSON_HEADERS })).status).toBe(
      200,
    )
    const plain = await app.request('/api/regions/users/keys/a', {
      method: 'DELETE',
      headers: { 'content-type': 'text/plain' },
    })
    expect(plain.status).toBe(415)
  })

  it('recognises JSON content types', () => {
    expect(isJsonContentType('application/json')).toBe(true)
    expect(isJsonContentType(' application/json ; charset=utf-8')).toBe(true)
    expect(isJsonContentType('application/jsonx')).toBe(false)
    expect(isJsonContentType('text/json')).toBe(false)
    expect(isJsonContentType(undefined)).toBe(false)
  })
})
