import type { Table } from './table.js'

/** What the runner hands every case. */
export interface CaseContext {
  /** URL of the Redis server the runner started (cases that declare `needsRedis` only). */
  redisUrl?: string
  /** Progress lines (stderr), so stdout stays tables only. */
  log(message: string): void
}

export interface CaseResult {
  tables: Table[]
  /** Machine-readable figures for results JSON. */
  data: unknown
}

export interface BenchCase {
  /** Name on the command line: `npm run bench -- hit stampede`. */
  id: string
  title: string
  /** One line: what is measured and why. */
  description: string
  needsRedis: boolean
  run(context: CaseContext): Promise<CaseResult>
}
