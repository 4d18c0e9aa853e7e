/** Messages between the benchmark and its worker processes (cross-process cases). */

export interface SetupMessage {
  type: 'setup'
  /** id in REDIS_ADAPTERS */
  adapter: string
  url: string
  keyPrefix: string
  ttlMs: number
  creatorMs: number
}

export interface RunMessage {
  type: 'run'
  key: string
  callers: number
  /** Monotonic time (nowMs) at which every worker fires its callers, so the processes hit the key together. */
  startAt: number
}

export type ParentMessage = SetupMessage | RunMessage | { type: 'teardown' }

export interface RunResult {
  type: 'result'
  pid: number
  /** creator runs in this process */
  creatorCalls: number
  /** nowMs() when this process's library reported the created value stored (Corral's `regenerate` event) */
  storedAt: number[]
  /** nowMs() when each caller got its answer (fulfilled callers only) */
  answeredAt: number[]
  errors: string[]
  startedAt: number
}

export type WorkerMessage = { type: 'ready' } | { type: 'closed' } | { type: 'failed'; message: string } | RunResult
