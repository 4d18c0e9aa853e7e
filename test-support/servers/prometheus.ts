/** A Prometheus server scraping given targets, and promtool's exposition check. */
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import { requireBinary } from './binaries.js'
import { LOOPBACK, type HostPort } from './ports.js'
import { makeTempDir, removeDir, startOnFreePort, trackChild, untrackChild, waitFor } from './processes.js'

export interface PromSample {
  metric: Record<string, string>
  /** Parsed sample value (NaN / ±Infinity included). */
  value: number
  /** Evaluation timestamp in seconds. */
  timestamp: number
}

export interface PromTarget {
  scrapeUrl: string
  health: string
  lastError: string
}

export interface PrometheusServer extends HostPort {
  /** http://127.0.0.1:port */
  readonly url: string
  readonly pid: number
  /** Instant query; returns the result vector (a scalar result becomes one sample without labels). */
  query(promql: string): Promise<PromSample[]>
  /**
   * Polls query() until `predicate` holds (default: non-empty result; timeout 20 s); returns the last
   * result. Note: Prometheus 2.42 applies new scrape targets on a fixed 5 s tick, so the first sample
   * of a freshly started server shows up ~5.3 s after start.
   */
  waitForQuery(
    promql: string,
    predicate?: (result: PromSample[]) => boolean,
    opts?: { timeoutMs?: number },
  ): Promise<PromSample[]>
  /** Active scrape targets with their health and last error. */
  targets(): Promise<PromTarget[]>
  stop(): Promise<void>
  logs(): Promise<string>
}

export interface StartPrometheusOptions {
  /** 'host:port' targets to scrape. */
  scrapeTargets: string[]
  /** Scrape (and evaluation) interval, default '1s'. */
  scrapeInterval?: string
  /** Default '/metrics'. */
  metricsPath?: string
  /** Default 'corral'. */
  jobName?: string
  /** More command-line flags, e.g. `['--enable-feature=exemplar-storage']`. */
  extraArgs?: string[]
  startTimeoutMs?: number
}

function httpGet(url: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no response in ${timeoutMs} ms`)))
    req.on('error', reject)
  })
}

function promNumber(text: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY
  if (text === '-Inf') return Number.NEGATIVE_INFINITY
  return Number(text) // 'NaN' -> NaN
}

/** Starts prometheus scraping `scrapeTargets`; resolves once /-/ready answers 200. */
export async function startPrometheus(opts: StartPrometheusOptions): Promise<PrometheusServer> {
  const bin = await requireBinary('prometheus')
  const dir = await makeTempDir('prometheus')
  try {
    const interval = opts.scrapeInterval ?? '1s'
    const configFile = path.join(dir, 'prometheus.yml')
    // JSON is valid YAML, and needs no escaping rules of our own.
    const config = {
      global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
      scrape_configs: [
        {
          job_name: opts.jobName ?? 'corral',
          scrape_interval: interval,
          scrape_timeout: interval,
          metrics_path: opts.metricsPath ?? '/metrics',
          static_configs: [{ targets: opts.scrapeTargets }],
        },
      ],
    }
    await writeFile(configFile, `${JSON.stringify(config, null, 2)}\n`)
    const server = await startOnFreePort(() => ({
      what: 'prometheus',
      bin,
      args: (port) => [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=${LOOPBACK}:${port}`,
        ...(opts.extraArgs ?? []),
      ],
      probe: async (port) => (await httpGet(`http://${LOOPBACK}:${port}/-/ready`, 1000)).status === 200,
      dir,
      ownsDir: true,
      startTimeoutMs: opts.startTimeoutMs ?? 20_000,
      stopSignal: 'SIGTERM',
      stopGraceMs: 5000,
    }))
    const url = `http://${server.host}:${server.port}`

    const query = async (promql: string): Promise<PromSample[]> => {
      const res = await httpGet(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`, 5000)
      let json: {
        status?: string
        error?: string
        data?: { resultType?: string; result?: unknown }
      }
      try {
        json = JSON.parse(res.body) as typeof json
      } catch {
        throw new Error(`prometheus query ${promql}: HTTP ${res.status}: ${res.body.slice(0, 500)}`)
      }
      if (json.status !== 'success' || !json.data) {
        throw new Error(`prometheus query ${promql} failed: ${json.error ?? res.body.slice(0, 500)}`)
      }
      const { resultType, result } = json.data
      if (resultType === 'vector') {
        return (result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((s) => ({
          metric: s.metric,
          value: promNumber(s.value[1]),
          timestamp: s.value[0],
        }))
      }
      if (resultType === 'scalar') {
        const [ts, v] = result as [number, string]
        return [{ metric: {}, value: promNumber(v), timestamp: ts }]
      }
      throw new Error(`prometheus query ${promql}: unsupported result type ${resultType}`)
    }

    const targets = async (): Promise<PromTarget[]> => {
      const res = await httpGet(`${url}/api/v1/targets`, 5000)
      const json = JSON.parse(res.body) as { data?: { activeTargets?: PromTarget[] } }
      return (json.data?.activeTargets ?? []).map(({ scrapeUrl, health, lastError }) => ({
        scrapeUrl,
        health,
        lastError,
      }))
    }

    return {
      host: server.host,
      port: server.port,
      url,
      get pid() {
        return server.pid
      },
      query,
      async waitForQuery(promql, predicate = (r) => r.length > 0, waitOpts = {}) {
        let last: PromSample[] = []
        await waitFor(
          `prometheus query ${promql}`,
          async () => {
            last = await query(promql)
            return predicate(last)
          },
          waitOpts.timeoutMs ?? 20_000,
          async () => `last result: ${JSON.stringify(last)}; targets: ${JSON.stringify(await targets())}`,
        )
        return last
      },
      targets,
      stop: () => server.stop(),
      logs: () => server.logs(),
    }
  } catch (err) {
    await removeDir(dir)
    throw err
  }
}

/** Pipes an exposition into `promtool check metrics`. ok is true only for exit code 0 (no lint problems). */
export async function promtoolCheckMetrics(
  text: string,
  opts: { timeoutMs?: number } = {},
): Promise<{ ok: boolean; output: string; exitCode: number | null }> {
  const bin = await requireBinary('promtool')
  const child = spawn(bin, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
  trackChild(child)
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stdin.on('error', () => {}) // promtool may exit before reading everything
  child.stdin.end(text)
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 10_000)
  try {
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject)
      child.once('close', (code) => resolve(code))
    })
    return { ok: exitCode === 0, output: output.trim(), exitCode }
  } finally {
    clearTimeout(timer)
    untrackChild(child)
  }
}
