/**
 * The admin audit trail: every mutating admin request, whatever its outcome, is logged (who, what, when) and
 * counted in `corral_admin_actions_total{action, outcome}`.
 */
import { getConnInfo } from '@hono/node-server/conninfo'
import type { Context, MiddlewareHandler } from 'hono'
import type { AdminAction } from './admin-writes.js'
import type { AuthEnv } from './auth.js'
import type { ExporterMetrics } from './exporter-metrics.js'
import type { ExporterLogger } from './options.js'

export type { AdminAction } from './admin-writes.js'
/** success (2xx), unauthorized (401), forbidden (403), rejected (any other 4xx), error (5xx). */
export type AdminOutcome = 'success' | 'unauthorized' | 'forbidden' | 'rejected' | 'error'

export const ADMIN_OUTCOMES: readonly AdminOutcome[] = ['success', 'unauthorized', 'forbidden', 'rejected', 'error']

export interface AuditVariables {
  /** What the handler did, added to the audit line: `{ hard }`, `{ tags, hard }`, `{ key }`, ... */
  auditDetails: Record<string, unknown> | undefined
}

export type AuditEnv = { Variables: AuditVariables & AuthEnv['Variables'] }

export function outcomeOf(status: number): AdminOutcome {
  if (status < 400) return 'success'
  if (status === 401) return 'unauthorized'
  if (status === 403) return 'forbidden'
  if (status < 500) return 'rejected'
  return 'error'
}

/** The TCP peer's address; undefined outside @hono/node-server (e.g. `app.request()` in tests). */
export function clientAddress(c: Context): string | undefined {
  try {
    return getConnInfo(c).remote.address
  } catch {
    return undefined
  }
}

/** A logger writing one pino-style JSON line per call on stdout. */
export const jsonLineLogger: ExporterLogger = {
  info: (obj, msg) => process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), ...obj, msg })}\n`),
  warn: (obj, msg) => process.stdout.write(`${JSON.stringify({ level: 40, time: Date.now(), ...obj, msg })}\n`),
  error: (obj, msg) => process.stderr.write(`${JSON.stringify({ level: 50, time: Date.now(), ...obj, msg })}\n`),
}

/**
 * Wraps a mutating admin route: after the request (including a 401/403/4xx answered by a guard), logs
 * `{ audit: 'corral.admin', action, outcome, status, region, ...details, client: { address, token }, at }` and
 * counts it. The token is identified by its fingerprint, never written.
 */
export function auditAdminAction(
  action: AdminAction,
  metrics: ExporterMetrics,
  logger: ExporterLogger | undefined,
): MiddlewareHandler<AuditEnv> {
  return async function corralAdminAudit(c, next) {
    const at = new Date()
    c.set('auditDetails', undefined)
    try {
      await next()
    } finally {
      const status = c.res.status
      const outcome = outcomeOf(status)
      metrics.adminActions.inc({ action, outcome })
      if (logger) {
        const tokenState = c.get('tokenState') ?? 'missing'
        const token = tokenState === 'valid' ? c.get('tokenFingerprint') : tokenState
        const region = safeParam(c, 'name')
        const entry: Record<string, unknown> = {
          audit: 'corral.admin',
          action,
          outcome,
          status,
          region,
          ...c.get('auditDetails'),
          client: { address: clientAddress(c) ?? 'unknown', token },
          at: at.toISOString(),
        }
        try {
          logger.info(entry, `corral admin ${action} ${region ?? ''}: ${outcome} (${status})`)
        } catch {
          // a failing logger must not turn a done action into an error
        }
      }
    }
  }
}

function safeParam(c: Context, name: string): string | undefined {
  try {
    return c.req.param(name)
  } catch {
    return undefined
  }
}
