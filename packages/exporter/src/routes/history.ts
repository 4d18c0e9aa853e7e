/**
 * `GET /api/history` (this process) and `GET /api/fleet/history` (the fleet): the server's ring of samples, so the
 * charts are full when the page opens. `range` (a duration such as `5m`, `15m`, `1h`; default: everything kept)
 * and `since` (epoch ms: only newer samples, for a client that polls) narrow the answer.
 */
import { parseDuration } from '@corral/core'
import { Hono } from 'hono'
import type { Context } from 'hono'
import type { HistoryJson } from '../api-types.js'
import type { History } from '../history.js'
import { httpError, type ExporterEnv } from '../http.js'

/** Reads `range` and `since` and answers from `history`. */
export function historyAnswer(c: Context<ExporterEnv>, history: History): HistoryJson {
  const range = single(c.req.queries('range'), 'range')
  const since = single(c.req.queries('since'), 'since')
  let rangeMs: number | undefined
  if (range !== undefined) {
    let seconds: number
    try {
      seconds = parseDuration(/^\d+(\.\d+)?$/.test(range) ? Number(range) : range, 'range')
    } catch {
      throw httpError(400, `range must be a duration such as 5m, 15m or 1h; got "${range.slice(0, 50)}"`)
    }
    if (!(seconds > 0)) throw httpError(400, 'range must be greater than zero')
    rangeMs = seconds * 1000
  }
  let sinceMs: number | undefined
  if (since !== undefined) {
    if (!/^\d{1,15}$/.test(since)) throw httpError(400, `since must be epoch milliseconds; got "${since.slice(0, 50)}"`)
    sinceMs = Number(since)
  }
  return history.query(rangeMs, sinceMs)
}

function single(values: string[] | undefined, name: string): string | undefined {
  if (values === undefined || values.length === 0) return undefined
  if (values.length > 1) throw httpError(400, `${name} may be given once`)
  return values[0]
}

export function historyRoutes(history: History | undefined): Hono<ExporterEnv> {
  const app = new Hono<ExporterEnv>()
  app.get('/history', (c) => {
    if (history === undefined) throw httpError(404, 'history is off: the exporter was created with { history: false }')
    return c.json(historyAnswer(c, history) satisfies HistoryJson)
  })
  return app
}
