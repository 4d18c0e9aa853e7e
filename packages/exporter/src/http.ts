/** Small HTTP helpers shared by the routes and the server: errors, security headers, parameters. */
import { Hono, type MiddlewareHandler } from 'hono'
import { HTTPException } from 'hono/http-exception'
import { secureHeaders } from 'hono/secure-headers'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import type { AuditEnv } from './audit.js'

/** The Hono environment of the exporter's app. */
export type ExporterEnv = AuditEnv

/** The Content-Security-Policy of every answer: the dashboard's own scripts, styles and API only. */
export const CONTENT_SECURITY_POLICY = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  fontSrc: ["'self'"],
  connectSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
}

/** The security headers of every answer (nosniff, frame denial, referrer policy, CSP, cross-origin isolation). */
export function securityHeaders(): MiddlewareHandler {
  return secureHeaders({
    contentSecurityPolicy: CONTENT_SECURITY_POLICY,
    // HSTS belongs to the TLS-terminating proxy, if any; on plain http it would only confuse.
    strictTransportSecurity: false,
    xFrameOptions: 'DENY',
  })
}

/**
 * The headers `securityHeaders()` gives an answer, as names and values: for the answers the server writes itself,
 * to requests that never reach the app (a malformed Host, a request line node cannot parse).
 */
export async function securityHeaderValues(): Promise<Record<string, string>> {
  const probe = new Hono()
  probe.use('*', securityHeaders())
  probe.get('/', (c) => c.body(null, 204))
  return Object.fromEntries((await probe.request('/')).headers)
}

/**
 * Whether a request failed because its client went away (it closed the connection while sending its body): not
 * an internal error, and nobody is left to answer.
 */
export function isClientAbort(error: unknown, request: Request): boolean {
  if (request.signal.aborted) return true
  const code = (error as { code?: unknown } | null)?.code
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE'
}

/** A client mistake: answered as `status` with `{ error: message }` by the app's error handler. */
export function httpError(status: ContentfulStatusCode, message: string): HTTPException {
  return new HTTPException(status, { message })
}

/**
 * An integer query parameter within [min, max], `fallback` when absent; anything else (`abc`, `1.5`, `0`, `-3`,
 * `1e3`, a repeated parameter) is a 400.
 */
export function intParam(
  values: string[] | undefined,
  name: string,
  { min, max, fallback }: { min: number; max: number; fallback: number },
): number {
  if (values === undefined || values.length === 0) return fallback
  const text = values[0] ?? ''
  if (values.length > 1 || !/^\d{1,9}$/.test(text) || Number(text) < min || Number(text) > max) {
    throw httpError(400, `${name} must be an integer from ${min} to ${max}; got "${values.join(',').slice(0, 50)}"`)
  }
  return Number(text)
}

/** The raw (still percent-encoded) path of a request URL. */
export function rawPath(url: string): string {
  const start = url.indexOf('/', url.indexOf('://') + 3)
  if (start < 0) return '/'
  const end = url.slice(start).search(/[?#]/)
  return end < 0 ? url.slice(start) : url.slice(start, start + end)
}

/** 400 when the request path holds a malformed percent-escape (`%E0%A4%A`), instead of guessing a key. */
export const wellFormedPath: MiddlewareHandler = async function corralWellFormedPath(c, next) {
  try {
    decodeURIComponent(rawPath(c.req.url))
  } catch {
    throw httpError(400, 'the request path holds a malformed percent-encoding')
  }
  return next()
}

/** The string `code` of a Corral error (any copy of core), else undefined. */
export function corralCode(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as { code?: unknown }).code : undefined
  return typeof code === 'string' && code.startsWith('E_') ? code : undefined
}
