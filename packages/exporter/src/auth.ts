/**
 * The admin API's guards: the bearer token, the loopback Host check that stands in for it when no token is set,
 * and the cross-site and content-type checks on mutating requests. Each factory returns a named middleware.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { ValidationError } from '@corral/core'
import type { Context, MiddlewareHandler } from 'hono'

/** What the guards learned about the caller, read by the audit log. */
export type TokenState = 'valid' | 'invalid' | 'missing' | 'none'

export interface AuthVariables {
  /** `valid` (with `tokenFingerprint`), `invalid`, `missing`, or `none` when no admin token is configured. */
  tokenState: TokenState
  tokenFingerprint: string | undefined
}

export type AuthEnv = { Variables: AuthVariables }

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest()

/**
 * A short, stable identifier of a token for logs: `sha256:` and the first 12 hex digits of its SHA-256. It tells
 * which token acted (useful when rotating) without revealing it.
 */
export function tokenFingerprint(token: string): string {
  return `sha256:${sha256(token).toString('hex').slice(0, 12)}`
}

/** The configured token, or undefined; throws ValidationError for a token no HTTP client could send. */
export function resolveAdminToken(
  option: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const token = option ?? env.CORRAL_ADMIN_TOKEN
  if (token === undefined || token === '') return undefined
  if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
    throw new ValidationError(
      'adminToken (or CORRAL_ADMIN_TOKEN) must be printable ASCII without spaces, as it travels in an HTTP header',
    )
  }
  return token
}

/**
 * Requires `Authorization: Bearer <token>` when `token` is set (401 with `WWW-Authenticate: Bearer` otherwise).
 * Compares SHA-256 digests with `timingSafeEqual`: equal lengths whatever the candidate, constant time.
 */
export function adminAuth(token: string | undefined): MiddlewareHandler<AuthEnv> {
  const expected = token === undefined ? undefined : sha256(token)
  const fingerprint = token === undefined ? undefined : tokenFingerprint(token)
  return async function corralAdminAuth(c, next) {
    if (expected === undefined) {
      c.set('tokenState', 'none')
      c.set('tokenFingerprint', undefined)
      return next()
    }
    const header = c.req.header('authorization')
    const match = header === undefined ? null : /^Bearer[ ]+(\S+)[ ]*$/i.exec(header)
    const candidate = match?.[1]
    if (candidate === undefined) {
      c.set('tokenState', 'missing')
      c.header('WWW-Authenticate', 'Bearer realm="corral"')
      return c.json({ error: 'an admin token is required: send "Authorization: Bearer <token>"' }, 401)
    }
    if (!timingSafeEqual(sha256(candidate), expected)) {
      c.set('tokenState', 'invalid')
      c.header('WWW-Authenticate', 'Bearer realm="corral", error="invalid_token"')
      return c.json({ error: 'the admin token is not valid' }, 401)
    }
    c.set('tokenState', 'valid')
    c.set('tokenFingerprint', fingerprint)
    return next()
  }
}

/** The host name of a `Host` header (brackets and port removed, lower case), or undefined if it is malformed. */
export function hostName(host: string | undefined): string | undefined {
  if (host === undefined || host === '') return undefined
  try {
    const name = new URL(`http://${host}`).hostname.toLowerCase()
    return name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name
  } catch {
    return undefined
  }
}

/** `localhost`, `*.localhost`, `127.0.0.0/8`, `::1` and `::ffff:127.x.x.x`. */
export function isLoopbackHostname(name: string): boolean {
  const host = name.toLowerCase().replace(/^\[|\]$/g, '')
  if (host === 'localhost' || host.endsWith('.localhost')) return true
  if (host === '::1' || host === '0:0:0:0:0:0:0:1') return true
  const v4 = host.startsWith('::ffff:') ? host.slice(7) : host
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4)
}

/**
 * Without an admin token the API is only safe on a loopback interface, and only if the browser really meant to
 * talk to a loopback host: a DNS-rebinding page (evil.example resolving to 127.0.0.1) sends `Host: evil.example`.
 * So, when no token is configured, the `Host` header must name a loopback host or one of `allowedHosts` (403).
 */
export function loopbackHostGuard(tokenSet: boolean, allowedHosts: readonly string[] = []): MiddlewareHandler {
  const allowed = new Set(allowedHosts.map((h) => h.toLowerCase()))
  return async function corralLoopbackHost(c, next) {
    if (tokenSet) return next()
    const name = hostName(c.req.header('host') ?? new URL(c.req.url).host)
    if (name !== undefined && (isLoopbackHostname(name) || allowed.has(name))) return next()
    return c.json(
      {
        error:
          'without an admin token the admin API only answers on a loopback host name; set CORRAL_ADMIN_TOKEN (or allowedHosts)',
      },
      403,
    )
  }
}

const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** This request's own origin host (`host[:port]`), from the Host header, else the request URL. */
function ownHost(c: Context): string {
  return (c.req.header('host') ?? new URL(c.req.url).host).toLowerCase()
}

/**
 * Rejects cross-site mutating requests (403): an `Origin` header must name this server (or one of
 * `allowedOrigins`), `Origin: null` is refused, and without an `Origin` a browser's
 * `Sec-Fetch-Site: cross-site | same-site` is refused too. Clients that are not browsers (curl, scripts) send
 * neither header and pass: they need the token anyway when one is set.
 */
export function sameOrigin(allowedOrigins: readonly string[] = []): MiddlewareHandler {
  const allowed = new Set(
    allowedOrigins.map((origin) => {
      try {
        return new URL(origin).origin.toLowerCase()
      } catch {
        throw new ValidationError(`allowedOrigins: "${origin}" is not an origin such as http://localhost:5173`)
      }
    }),
  )
  return async function corralSameOrigin(c, next) {
    if (!MUTATING.has(c.req.method)) return next()
    const origin = c.req.header('origin')
    if (origin !== undefined) {
      let url: URL | undefined
      try {
        url = new URL(origin)
      } catch {
        url = undefined
      }
      const sameHost = url !== undefined && url.host.toLowerCase() === ownHost(c)
      if (url !== undefined && (sameHost || allowed.has(url.origin.toLowerCase()))) return next()
      return c.json({ error: `cross-site request refused (Origin: ${origin.slice(0, 100)})` }, 403)
    }
    const site = c.req.header('sec-fetch-site')?.toLowerCase()
    if (site === 'cross-site' || site === 'same-site') {
      return c.json({ error: `cross-site request refused (Sec-Fetch-Site: ${site})` }, 403)
    }
    return next()
  }
}

/** Whether a Content-Type header names JSON (`application/json`, any parameters). */
export function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false
  const type = header.split(';', 1)[0]?.trim().toLowerCase()
  return type === 'application/json'
}

/**
 * Mutating requests must send JSON (415 otherwise): forms and `text/plain` posts, which a browser sends cross-site
 * without a preflight, never reach a handler. A DELETE reads no body, so it needs no Content-Type; if it declares
 * one, it must be JSON too.
 */
export function requireJson(): MiddlewareHandler {
  return async function corralRequireJson(c, next) {
    if (!MUTATING.has(c.req.method)) return next()
    const type = c.req.header('content-type')
    if (c.req.method === 'DELETE' && type === undefined) return next()
    if (!isJsonContentType(type)) {
      return c.json({ error: 'this endpoint accepts only application/json bodies' }, 415)
    }
    return next()
  }
}
