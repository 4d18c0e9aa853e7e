import { MAX_TAG_LENGTH, MAX_TAGS, NO_VALUE } from '@corral/core'
import { describe, expect, it } from 'vitest'
import { fixture, postJson } from '../test-support/helpers.js'

const TOKEN = 'admin-token-for-the-audit-tests'

async function traffic(f: ReturnType<typeof fixture>): Promise<void> {
  const { users } = f
  await users.getOrCreate('u:1', () => 'one')
  await users.getOrCreate('u:1', () => 'one')
  await users.getOrCreate('u:1', () => 'one')
  await users.getOrCreate('u:2', () => 'two')
}

describe('GET /api/regions', () => {
  it('lists every region with its stats', async () => {
    const f = fixture()
    await traffic(f)
    const res = await f.app.request('/api/regions')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('application/json')
    const body = (await res.json()) as { regions: Array<Record<string, unknown>> }
    expect(body.regions.map((r) => r.name)).toEqual(['users', 'eternal'])
    expect(body.regions[0]).toEqual({
      name: 'users',
      backend: 'memory',
      configured: true,
      expirationTime: 60,
      stats: {
        hits: 2,
        l1Hits: 2, // a memory region answers from process memory
        misses: 2,
        stale: 0,
        gets: 4,
        regenerations: 2,
        regenerationErrors: 0,
        lockWaits: 0,
        coalesced: 0,
        coalescedWaited: 0,
        coalescedStale: 0,
        failSafe: 0,
        softTimeouts: 0,
        hardTimeouts: 0,
        circuitOpens: 0,
        invalidations: { hard: 0, soft: 0 },
        backendErrors: 0,
        hitRatio: 0.5,
        l1HitRatio: 0.5,
        regenerationTime: { p50: expect.any(Number), p99: expect.any(Number) },
        circuit: null,
      },
      lastInvalidation: null,
    })
    expect(body.regions[1]).toMatchObject({
      name: 'eternal',
      expirationTime: null,
      stats: { gets: 0, hitRatio: null, regenerationTime: null },
    })
  })

  it('shows a region that is not configured yet', async () => {
    const f = fixture()
    f.registry.createRegion({ name: 'later' })
    const res = await f.app.request('/api/regions/later')
    expect(await res.json()).toMatchObject({ name: 'later', backend: null, configured: false, expirationTime: null })
  })

  it('answers one region by name, and 404 { error } for an unknown one', async () => {
    const f = fixture()
    await traffic(f)
    const one = await f.app.request('/api/regions/users')
    expect(one.status).toBe(200)
    expect(await one.json()).toMatchObject({ name: 'users', stats: { gets: 4 } })
    const missing = await f.app.request('/api/regions/nope')
    expect(missing.status).toBe(404)
    expect(await missing.json()).toEqual({ error: 'unknown region "nope"' })
  })

  it('decodes region names', async () => {
    const f = fixture()
    f.registry.createRegion({ name: 'café / ünïcode' }).configure('memory')
    const res = await f.app.request(`/api/regions/${encodeURIComponent('café / ünïcode')}`)
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ name: 'café / ünïcode' })
  })
})

describe('GET /api/regions/:name/hot-keys', () => {
  it('answers the region hot keys', async () => {
    const f = fixture()
    await traffic(f)
    const res = await f.app.request('/api/regions/users/hot-keys')
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({
      region: 'users',
      windowSeconds: 60,
      keys: [
        { key: 'u:1', count: 3, hits: 2, misses: 1, regenerations: 1 },
        { key: 'u:2', count: 1, hits: 0, misses: 1, regenerations: 1 },
      ],
    })
    const limited = (await (await f.app.request('/api/regions/users/hot-keys?limit=1')).json()) as { keys: unknown[] }
    expect(limited.keys).toHaveLength(1)
  })

  it('accepts limit 1..100 and answers 400 otherwise', async () => {
    const f = fixture()
    for (const limit of ['1', '100']) {
      expect((await f.app.request(`/api/regions/users/hot-keys?limit=${limit}`)).status).toBe(200)
    }
    for (const limit of ['0', '101', '-1', '1.5', 'abc', '', '1e2', '20&limit=30']) {
      const res = await f.app.request(`/api/regions/users/hot-keys?limit=${limit}`)
      expect(res.status, limit).toBe(400)
      expect(((await res.json()) as { error: string }).error).toMatch(/^limit must be an integer from 1 to 100/)
    }
  })

  it('answers 404 for an unknown region', async () => {
    const res = await fixture().app.request('/api/regions/nope/hot-keys')
    expect(res.status).toBe(404)
  })
})

describe('GET /api/stampedes', () => {
  it('lists regenerations that had coalesced callers, newest first', async () => {
    const f = fixture()
    let release: () => void = () => {}
    const gate = new Promise<void>((resolve) => (release = resolve))
    const creator = async () => {
      await gate
      return 'v'
    }
    const callers = Array.from({ length: 5 }, () => f.users.getOrCreate('hot', creator))
    await new Promise((resolve) => setTimeout(resolve, 10))
    release()
    await Promise.all(callers)
    const res = await f.app.request('/api/stampedes')
    expect(res.status).toBe(200)
    const body = (await res.json()) as { stampedes: Array<Record<string, unknown>> }
    expect(body.stampedes).toEqual([
      { region: 'users', key: 'hot', at: expect.any(Number), coalesced: 4, duration: expect.any(Number) },
    ])
    expect(Number.isInteger(body.stampedes[0]?.at)).toBe(true)
  })

  it('accepts limit 1..200 and answers 400 otherwise', async () => {
    const f = fixture()
    expect((await f.app.request('/api/stampedes?limit=200')).status).toBe(200)
    for (const limit of ['0', '201', 'x']) {
      const res = await f.app.request(`/api/stampedes?limit=${limit}`)
      expect(res.status).toBe(400)
      expect(((await res.json()) as { error: string }).error).toMatch(/^limit must be an integer from 1 to 200/)
    }
  })
})

describe('POST /api/regions/:name/invalidate', () => {
  it('hard-invalidates: values become misses, and the invalidation shows in the stats', async () => {
    const f = fixture()
    await f.users.set('k', 'v')
    const before = Date.now()
    const res = await f.app.request('/api/regions/users/invalidate', postJson({ hard: true }))
    expect(res.status).toBe(200)
    const body = (await res.json()) as { region: string; hard: boolean; invalidatedAt: number }
    expect(body).toEqual({ region: 'users', hard: true, invalidatedAt: expect.any(Number) })
    expect(body.invalidatedAt).toBeGreaterThanOrEqual(before - 1)
    expect(body.invalidatedAt).toBeLessThanOrEqual(Date.now())
    expect(await f.users.get('k')).toBe(NO_VALUE)
    const region = (await (await f.app.request('/api/regions/users')).json()) as Record<string, unknown>
    expect(region).toMatchObject({
      stats: { invalidations: { hard: 1, soft: 0 } },
      lastInvalidation: { at: body.invalidatedAt, hard: true, scope: 'region' },
    })
  })

  it('soft-invalidates: values become stale', async () => {
    const f = fixture()
    await f.users.set('k', 'v')
    const res = await f.app.request('/api/regions/users/invalidate', postJson({ hard: false }))
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ region: 'users', hard: false })
    expect(await f.users.get('k')).toBe(NO_VALUE)
    expect(await f.users.get('k', { ignoreExpiration: true })).toBe('v')
    expect(f.users.statsSnapshot().invalidations).toEqual({ hard: 0, soft: 1 })
  })

  it('defaults to hard when "hard" is missing or the body is empty, as region.invalidate() does', async () => {
    const f = fixture()
    expect(await (await f.app.request('/api/regions/users/invalidate', postJson({}))).json()).toMatchObject({
      hard: true,
    })
    expect(await (await f.app.request('/api/regions/users/invalidate', postJson(''))).json()).toMatchObject({
      hard: true,
    })
  })

  it('answers 400 to malformed JSON, non-objects and a non-boolean "hard"', async () => {
    const f = fixture()
    const cases: Array<[string, string]> = [
      ['{"hard":', 'the body is not valid JSON'],
      ['{hard: true}', 'the body is not valid JSON'],
      ['[true]', 'the body must be a JSON object such as {"hard": true}'],
      ['null', 'the body must be a JSON object such as {"hard": true}'],
      ['"hard"', 'the body must be a JSON object such as {"hard": true}'],
      ['{"hard":"false"}', '"hard" must be true or false; got "false"'],
      ['{"hard":0}', '"hard" must be true or false; got 0'],
      ['{"hard":null}', '"hard" must be true or false; got null'],
    ]
    for (const [body, error] of cases) {
      const res = await f.app.request('/api/regions/users/invalidate', postJson(body))
      expect(res.status, body).toBe(400)
      expect(await res.json()).toEqual({ error })
    }
    expect(f.users.statsSnapshot().invalidations).toEqual({ hard: 0, soft: 0 })
  })

  it('answers 409 to a soft invalidation of a region without expiration time', async () => {
    const f = fixture()
    const res = await f.app.request('/api/regions/eternal/invalidate', postJson({ hard: false }))
    expect(res.status).toBe(409)
    expect(await res.json()).toEqual({
      error: 'region "eternal" has no expiration time, so it cannot be soft-invalidated; use {"hard": true}',
    })
    expect((await f.app.request('/api/regions/eternal/invalidate', postJson({ hard: true }))).status).toBe(200)
  })

  it('answers 409 for a region that is not configured, and 404 for an unknown one', async () => {
    const f = fixture()
    f.registry.createRegion({ name: 'later' })
    const later = await f.app.request('/api/regions/later/invalidate', postJson({ hard: true }))
    expect(later.status).toBe(409)
    expect(await later.json()).toEqual({ error: 'region "later" is not configured yet' })
    const unknown = await f.app.request('/api/regions/nope/invalidate', postJson({ hard: true }))
    expect(unknown.status).toBe(404)
    expect(await unknown.json()).toEqual({ error: 'unknown region "nope"' })
  })

  it('answers 413 to a body over the limit', async () => {
    const f = fixture({ bodyLimit: 64 })
    const big = JSON.stringify({ hard: true, padding: 'x'.repeat(100) })
    const res = await f.app.request('/api/regions/users/invalidate', postJson(big))
    expect(res.status).toBe(413)
    expect(await res.json()).toEqual({ error: 'the body is larger than 64 bytes' })
    const declared = await f.app.request('/api/regions/users/invalidate', {
      ...postJson(big),
      headers: { 'content-type': 'application/json', 'content-length': String(big.length) },
    })
    expect(declared.status).toBe(413)
  })

  it('applies the 16 KB default limit', async () => {
    const f = fixture()
    const res = await f.app.request('/api/regions/users/invalidate', postJson({ hard: true, pad: 'x'.repeat(17_000) }))
    expect(res.status).toBe(413)
  })

  it('answers 405 with Allow to other methods', async () => {
    const f = fixture()
    const res = await f.app.request('/api/regions/users/invalidate')
    expect(res.status).toBe(405)
    expect(res.headers.get('allow')).toBe('POST')
    expect(await res.json()).toEqual({ error: 'method GET is not allowed here; use POST' })
  })
})

describe('POST /api/regions/:name/invalidate-tags', () => {
  const PATH = '/api/regions/users/invalidate-tags'

  async function tagged(f: ReturnType<typeof fixture>): Promise<void> {
    await f.users.set('user:5:profile', 'profile', { tags: ['user:5'] })
    await f.users.set('user:5:feed', 'feed', { tags: ['feeds', 'user:5'] })
    await f.users.set('user:6:profile', 'other', { tags: ['user:6'] })
    await f.users.set('untagged', 'plain')
  }

  it('hard-invalidates the values carrying a tag, and only those; the invalidation shows in the stats', async () => {
    const f = fixture()
    await tagged(f)
    const events: unknown[] = []
    f.users.on('invalidate', (event) => void events.push(event))
    const before = Date.now()
    const res = await f.app.request(PATH, postJson({ tags: ['user:5'], hard: true }))
    expect(res.status).toBe(200)
    const body = (await res.json()) as { invalidatedAt: number }
    expect(body).toEqual({ region: 'users', tags: ['user:5'], hard: true, invalidatedAt: expect.any(Number) })
    expect(Number.isInteger(body.invalidatedAt)).toBe(true)
    expect(body.invalidatedAt).toBeGreaterThanOrEqual(before - 1)
    expect(body.invalidatedAt).toBeLessThanOrEqual(Date.now())
    expect(await f.users.get('user:5:profile')).toBe(NO_VALUE)
    expect(await f.users.get('user:5:feed')).toBe(NO_VALUE)
    expect(await f.users.get('user:6:profile')).toBe('other')
    expect(await f.users.get('untagged')).toBe('plain')
    expect(events).toEqual([expect.objectContaining({ region: 'users', hard: true, scope: 'tag', key: 'user:5' })])
    const region = (await (await f.app.request('/api/regions/users')).json()) as Record<string, unknown>
    expect(region).toMatchObject({
      stats: { invalidations: { hard: 1, soft: 0 } },
      lastInvalidation: { at: body.invalidatedAt, hard: true, scope: 'tag' },
    })
  })

  it('takes several tags at once, each once, and defaults to hard when "hard" is missing', async () => {
    const f = fixture()
    await tagged(f)
    const res = await f.app.request(PATH, postJson({ tags: ['user:6', 'feeds', 'user:6'] }))
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ region: 'users', tags: ['user:6', 'feeds'], hard: true })
    expect(await f.users.get('user:6:profile')).toBe(NO_VALUE)
    expect(await f.users.get('user:5:feed')).toBe(NO_VALUE)
    expect(await f.users.get('user:5:profile')).toBe('profile')
    expect(f.users.statsSnapshot().invalidations).toEqual({ hard: 2, soft: 0 })
  })

  it('soft-invalidates: the tagged values become stale', async () => {
    const f = fixture()
    await tagged(f)
    const res = await f.app.request(PATH, postJson({ tags: ['user:5'], hard: false }))
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ region: 'users', tags: ['user:5'], hard: false })
    expect(await f.users.get('user:5:profile')).toBe(NO_VALUE)
    expect(await f.users.get('user:5:profile', { ignoreExpiration: true })).toBe('profile')
    expect(await f.users.get('untagged')).toBe('plain')
    expect(f.users.statsSnapshot().invalidations).toEqual({ hard: 0, soft: 1 })
    expect(f.users.stats.lastInvalidation).toMatchObject({ hard: false, scope: 'tag' })
  })

  it(`accepts ${MAX_TAGS} tags and tags of ${MAX_TAG_LENGTH} characters, in any script`, async () => {
    const f = fixture()
    const many = Array.from({ length: MAX_TAGS }, (_, i) => `t${i}`)
    expect((await f.app.request(PATH, postJson({ tags: many }))).status).toBe(200)
    const odd = ['x'.repeat(MAX_TAG_LENGTH), 'café / ünï 🐄', 'a,b', ' spaced ']
    const res = await f.app.request(PATH, postJson({ tags: odd }))
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ tags: odd })
  })

  it('answers 400 { error } to missing, empty, non-array, non-string, too many or too long tags, and a bad "hard"', async () => {
    const f = fixture()
    const tooMany = JSON.stringify({ tags: Array.from({ length: MAX_TAGS + 1 }, (_, i) => `t${i}`) })
    const tooLong = JSON.stringify({ tags: ['ok', 'x'.repeat(MAX_TAG_LENGTH + 1)] })
    const cases: Array<[string, string]> = [
      ['', '"tags" is required: an array of tags such as {"tags": ["user:42"]}'],
      ['{}', '"tags" is required: an array of tags such as {"tags": ["user:42"]}'],
      ['{"hard":true}', '"tags" is required: an array of tags such as {"tags": ["user:42"]}'],
      ['{"tags":[]}', '"tags" must hold at least one tag'],
      ['{"tags":"user:5"}', '"tags" must be an array of strings; got "user:5"'],
      ['{"tags":null}', '"tags" must be an array of strings; got null'],
      ['{"tags":{"0":"user:5"}}', '"tags" must be an array of strings; got {"0":"user:5"}'],
      ['{"tags":[5]}', 'every tag must be a string; got 5'],
      ['{"tags":["ok",null]}', 'every tag must be a string; got null'],
      ['{"tags":[["nested"]]}', 'every tag must be a string; got ["nested"]'],
      ['{"tags":[""]}', 'tags must not be empty strings'],
      ['{"tags":["ok",""]}', 'tags must not be empty strings'],
      [tooMany, `"tags" holds at most ${MAX_TAGS} tags; got ${MAX_TAGS + 1}`],
      [tooLong, `tags are at most ${MAX_TAG_LENGTH} characters; got one of ${MAX_TAG_LENGTH + 1}`],
      ['{"tags":["user:5"],"hard":"false"}', '"hard" must be true or false; got "false"'],
      ['{"tags":["user:5"],"hard":0}', '"hard" must be true or false; got 0'],
      ['{"tags":["user:5"],"hard":null}', '"hard" must be true or false; got null'],
      ['{"tags":', 'the body is not valid JSON'],
      ['["user:5"]', 'the body must be a JSON object such as {"tags": ["user:42"], "hard": true}'],
    ]
    for (const [body, error] of cases) {
      const res = await f.app.request(PATH, postJson(body))
      expect(res.status, body.slice(0, 80)).toBe(400)
      expect(await res.json(), body.slice(0, 80)).toEqual({ error })
    }
    expect(f.users.statsSnapshot().invalidations).toEqual({ hard: 0, soft: 0 })
  })

  it('answers 409 to a soft invalidation of a region without expiration time, as /invalidate does', async () => {
    const f = fixture()
    const path = '/api/regions/eternal/invalidate-tags'
    const res = await f.app.request(path, postJson({ tags: ['t'], hard: false }))
    expect(res.status).toBe(409)
    expect(await res.json()).toEqual({
      error: 'region "eternal" has no expiration time, so it cannot be soft-invalidated; use {"hard": true}',
    })
    expect(f.eternal.statsSnapshot().invalidations).toEqual({ hard: 0, soft: 0 })
    expect((await f.app.request(path, postJson({ tags: ['t'], hard: true }))).status).toBe(200)
  })

  it('answers 409 for a region that is not configured, and 404 for an unknown one', async () => {
    const f = fixture()
    f.registry.createRegion({ name: 'later' })
    const later = await f.app.request('/api/regions/later/invalidate-tags', postJson({ tags: ['t'] }))
    expect(later.status).toBe(409)
    expect(await later.json()).toEqual({ error: 'region "later" is not configured yet' })
    const unknown = await f.app.request('/api/regions/nope/invalidate-tags', postJson({ tags: ['t'] }))
    expect(unknown.status).toBe(404)
    expect(await unknown.json()).toEqual({ error: 'unknown region "nope"' })
  })

  it('decodes region names', async () => {
    const f = fixture()
    const region = f.registry.createRegion({ name: 'café / ünïcode' }).configure('memory')
    const res = await f.app.request(
      `/api/regions/${encodeURIComponent('café / ünïcode')}/invalidate-tags`,
      postJson({ tags: ['t'] }),
    )
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ region: 'café / ünïcode', tags: ['t'] })
    expect(region.stats.lastInvalidation).toMatchObject({ scope: 'tag' })
  })

  it('needs the admin token when one is set: 401 without it or with a wrong one', async () => {
    const f = fixture({ adminToken: TOKEN })
    await tagged(f)
    const missing = await f.app.request(PATH, postJson({ tags: ['user:5'] }))
    expect(missing.status).toBe(401)
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="corral"')
    expect(await missing.json()).toEqual({ error: 'an admin token is required: send "Authorization: Bearer <token>"' })
    const wrong = await f.app.request(PATH, postJson({ tags: ['user:5'] }, { authorization: 'Bearer wrong' }))
    expect(wrong.status).toBe(401)
    expect(wrong.headers.get('www-authenticate')).toBe('Bearer realm="corral", error="invalid_token"')
    expect(await f.users.get('user:5:profile')).toBe('profile')
    const right = await f.app.request(PATH, postJson({ tags: ['user:5'] }, { authorization: `Bearer ${TOKEN}` }))
    expect(right.status).toBe(200)
    expect(await f.users.get('user:5:profile')).toBe(NO_VALUE)
  })

  it('refuses cross-site requests (403) and, without a token, a foreign Host (403)', async () => {
    const f = fixture()
    await tagged(f)
    const cases: Record<string, string>[] = [
      { host: '127.0.0.1:9464', origin: 'http://evil.example' },
      { host: '127.0.0.1:9464', origin: 'null' },
      { host: '127.0.0.1:9464', 'sec-fetch-site': 'cross-site' },
      { host: '127.0.0.1:9464', 'sec-fetch-site': 'same-site' },
    ]
    for (const headers of cases) {
      const res = await f.app.request(PATH, postJson({ tags: ['user:5'] }, headers))
      expect(res.status, JSON.stringify(headers)).toBe(403)
      expect(((await res.json()) as { error: string }).error).toMatch(/^cross-site request refused/)
    }
    const rebinding = await f.app.request(PATH, postJson({ tags: ['user:5'] }, { host: 'evil.example' }))
    expect(rebinding.status).toBe(403)
    expect(await f.users.get('user:5:profile')).toBe('profile')
    const same = await f.app.request(
      `http://127.0.0.1:9464${PATH}`,
      postJson({ tags: ['user:5'] }, { host: '127.0.0.1:9464', origin: 'http://127.0.0.1:9464' }),
    )
    expect(same.status).toBe(200)
  })

  it('answers 415 to a body that is not application/json', async () => {
    const f = fixture()
    await tagged(f)
    const bodies: RequestInit[] = [
      { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"tags":["user:5"]}' },
      { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'tags=user:5' },
      { method: 'POST', body: '{"tags":["user:5"]}' },
    ]
    for (const init of bodies) {
      const res = await f.app.request(PATH, init)
      expect(res.status).toBe(415)
      expect(await res.json()).toEqual({ error: 'this endpoint accepts only application/json bodies' })
    }
    expect(await f.users.get('user:5:profile')).toBe('profile')
  })

  it('answers 413 to a body over the limit', async () => {
    const f = fixture({ bodyLimit: 64 })
    const res = await f.app.request(PATH, postJson({ tags: ['x'.repeat(100)] }))
    expect(res.status).toBe(413)
    expect(await res.json()).toEqual({ error: 'the body is larger than 64 bytes' })
  })

  it('answers 405 with Allow to other methods', async () => {
    const f = fixture()
    for (const method of ['GET', 'DELETE']) {
      const res = await f.app.request(PATH, { method })
      expect(res.status, method).toBe(405)
      expect(res.headers.get('allow')).toBe('POST')
    }
  })
})

describe('DELETE /api/regions/:name/keys/:key', () => {
  it('deletes the key', async () => {
    const f = fixture()
    await f.users.set('user:1', 'v')
    const res = await f.app.request('/api/regions/users/keys/user:1', { method: 'DELETE' })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ region: 'users', key: 'user:1' })
    expect(await f.users.get('user:1')).toBe(NO_VALUE)
    expect(f.users.stats.lastInvalidation).toMatchObject({ hard: true, scope: 'key' })
  })

  it('decodes percent-encoded keys: slashes, unicode, spaces, %, +, ?, #', async () => {
    const f = fixture()
    const keys = ['a/b/c', 'café ünï 🐄', 'with space', '100%', '%2F literally', 'a+b', 'q?x=1#frag', 'x/../y', '...']
    for (const key of keys) {
      await f.users.set(key, 'v')
      const res = await f.app.request(`/api/regions/users/keys/${encodeURIComponent(key)}`, { method: 'DELETE' })
      expect(res.status, key).toBe(200)
      expect(await res.json()).toEqual({ region: 'users', key })
      expect(await f.users.get(key)).toBe(NO_VALUE)
    }
  })

  it('cannot address the keys "." and "..": URLs resolve dot segments, even percent-encoded', async () => {
    const f = fixture()
    for (const raw of ['..', '%2E%2E', '.']) {
      const res = await f.app.request(`/api/regions/users/keys/${raw}`, { method: 'DELETE' })
      expect(res.status, raw).toBe(404)
    }
  })

  it('takes unencoded slashes as part of the key', async () => {
    const f = fixture()
    const res = await f.app.request('/api/regions/users/keys/a/b', { method: 'DELETE' })
    expect(await res.json()).toEqual({ region: 'users', key: 'a/b' })
  })

  it('answers 400 to a malformed percent-encoding instead of guessing', async () => {
    const f = fixture()
    for (const raw of ['%E0%A4%A', '%zz', 'abc%']) {
      const res = await f.app.request(`/api/regions/users/keys/${raw}`, { method: 'DELETE' })
      expect(res.status, raw).toBe(400)
      expect(await res.json()).toEqual({ error: 'the request path holds a malformed percent-encoding' })
    }
  })

  it('answers 404 for an unknown region or a missing key segment', async () => {
    const f = fixture()
    expect((await f.app.request('/api/regions/nope/keys/a', { method: 'DELETE' })).status).toBe(404)
    const res = await f.app.request('/api/regions/users/keys/', { method: 'DELETE' })
    expect(res.status).toBe(404)
    expect((await res.json()) as object).toHaveProperty('error')
  })
})

describe('the admin audit', () => {
  it('logs who, what and when for every write, and never the token', async () => {
    const f = fixture({ adminToken: TOKEN })
    const auth = { authorization: `Bearer ${TOKEN}` }
    await f.app.request('/api/regions/users/invalidate', postJson({ hard: false }, auth))
    await f.app.request('/api/regions/users/keys/user%3A1', { method: 'DELETE', headers: auth })
    await f.app.request('/api/regions/users/invalidate', postJson({ hard: true }))
    await f.app.request('/api/regions/users/invalidate', postJson({ hard: true }, { authorization: 'Bearer wrong' }))
    await f.app.request(
      '/api/regions/users/invalidate',
      postJson({ hard: true }, { ...auth, origin: 'http://evil.example' }),
    )
    await f.app.request('/api/regions/nope/invalidate', postJson({ hard: true }, auth))
    await f.app.request('/api/regions/users/invalidate', postJson('{', auth))

    const entries = f.logger.entries.filter((e) => e.obj.audit === 'corral.admin')
    expect(entries.map((e) => [e.obj.action, e.obj.outcome, e.obj.status])).toEqual([
      ['invalidate', 'success', 200],
      ['delete_key', 'success', 200],
      ['invalidate', 'unauthorized', 401],
      ['invalidate', 'unauthorized', 401],
      ['invalidate', 'forbidden', 403],
      ['invalidate', 'rejected', 404],
      ['invalidate', 'rejected', 400],
    ])
    const [first, second, third, fourth] = entries
    expect(first?.obj).toEqual({
      audit: 'corral.admin',
      action: 'invalidate',
      outcome: 'success',
      status: 200,
      region: 'users',
      hard: false,
      client: { address: 'unknown', token: expect.stringMatching(/^sha256:[0-9a-f]{12}$/) },
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    })
    expect(first?.msg).toBe('corral admin invalidate users: success (200)')
    expect(second?.obj).toMatchObject({ region: 'users', key: 'user:1' })
    expect(third?.obj.client).toEqual({ address: 'unknown', token: 'missing' })
    expect(fourth?.obj.client).toEqual({ address: 'unknown', token: 'invalid' })
    expect(JSON.stringify(f.logger.entries)).not.toContain(TOKEN)
  })

  it('counts admin actions in corral_admin_actions_total{action, outcome}', async () => {
    const f = fixture()
    await f.app.request('/api/regions/users/invalidate', postJson({ hard: true }))
    await f.app.request('/api/regions/users/invalidate', postJson({ hard: true }))
    await f.app.request('/api/regions/users/keys/a', { method: 'DELETE' })
    await f.app.request('/api/regions/users/invalidate', { method: 'POST', body: 'x' })
    const text = await (await f.app.request('/metrics')).text()
    expect(text).toContain('corral_admin_actions_total{action="invalidate",outcome="success"} 2')
    expect(text).toContain('corral_admin_actions_total{action="delete_key",outcome="success"} 1')
    expect(text).toContain('corral_admin_actions_total{action="invalidate",outcome="rejected"} 1')
    expect(text).toContain('corral_admin_actions_total{action="delete_key",outcome="forbidden"} 0')
  })

  it('logs and counts tag invalidations as invalidate_tags, refused ones included', async () => {
    const f = fixture({ adminToken: TOKEN })
    const auth = { authorization: `Bearer ${TOKEN}` }
    const path = '/api/regions/users/invalidate-tags'
    await f.app.request(path, postJson({ tags: ['user:5', 'feeds'], hard: false }, auth))
    await f.app.request(path, postJson({ tags: ['user:5'] }))
    await f.app.request(path, postJson({ tags: ['user:5'] }, { ...auth, origin: 'http://evil.example' }))
    await f.app.request(path, postJson({ tags: [] }, auth))
    await f.app.request(path, { method: 'POST', headers: auth, body: 'tags=user:5' })
    await f.app.request('/api/regions/eternal/invalidate-tags', postJson({ tags: ['t'], hard: false }, auth))

    const entries = f.logger.entries.filter((e) => e.obj.audit === 'corral.admin')
    expect(entries.map((e) => [e.obj.action, e.obj.outcome, e.obj.status])).toEqual([
      ['invalidate_tags', 'success', 200],
      ['invalidate_tags', 'unauthorized', 401],
      ['invalidate_tags', 'forbidden', 403],
      ['invalidate_tags', 'rejected', 400],
      ['invalidate_tags', 'rejected', 415],
      ['invalidate_tags', 'rejected', 409],
    ])
    expect(entries[0]?.obj).toEqual({
      audit: 'corral.admin',
      action: 'invalidate_tags',
      outcome: 'success',
      status: 200,
      region: 'users',
      tags: ['user:5', 'feeds'],
      hard: false,
      client: { address: 'unknown', token: expect.stringMatching(/^sha256:[0-9a-f]{12}$/) },
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    })
    expect(entries[0]?.msg).toBe('corral admin invalidate_tags users: success (200)')
    expect(entries[5]?.obj).toMatchObject({ region: 'eternal', tags: ['t'], hard: false })
    expect(JSON.stringify(f.logger.entries)).not.toContain(TOKEN)

    const text = await (await f.app.request('/metrics')).text()
    expect(text).toContain('corral_admin_actions_total{action="invalidate_tags",outcome="success"} 1')
    expect(text).toContain('corral_admin_actions_total{action="invalidate_tags",outcome="unauthorized"} 1')
    expect(text).toContain('corral_admin_actions_total{action="invalidate_tags",outcome="forbidden"} 1')
    expect(text).toContain('corral_admin_actions_total{action="invalidate_tags",outcome="rejected"} 3')
    expect(text).toContain('corral_admin_actions_total{action="invalidate_tags",outcome="error"} 0')
    expect(text).toContain('corral_admin_actions_total{action="invalidate",outcome="success"} 0')
  })

  it('does not audit reads', async () => {
    const f = fixture()
    await f.app.request('/api/regions')
    await f.app.request('/api/regions/users/hot-keys')
    expect(f.logger.entries).toEqual([])
  })

  it('survives a logger that throws', async () => {
    const f = fixture({
      logger: {
        info: () => {
          throw new Error('log sink down')
        },
      },
    })
    const res = await f.app.request('/api/regions/users/invalidate', postJson({ hard: true }))
    expect(res.status).toBe(200)
  })
})
