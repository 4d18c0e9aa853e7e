/**
 * Corral's benchmarks: `npm run bench` (all cases) or `npm run bench -- hit stampede` (a subset).
 *
 * Prints one Markdown table per case on stdout (progress goes to stderr) and writes the figures as JSON:
 * `results/latest.json` for a full run (tracked in git), `results/<cases>.json` for a subset (ignored).
 * Starts and stops its own redis-server on a free loopback port when a selected case needs one.
 * Slow figures never fail the run: the exit code is non-zero only when something crashes.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { startRedis, type RedisServer } from '../test-support/servers.ts'
import { crossProcessCase } from './cases/cross-process.js'
import { expiryCase } from './cases/expiry.js'
import { fileCase } from './cases/file.js'
import { hitPathCase } from './cases/hit-path.js'
import { hotKeysCase } from './cases/hot-keys.js'
import { memcachedCostCase } from './cases/memcached-cost.js'
import { memoryCase } from './cases/memory.js'
import { redisCostCase } from './cases/redis-cost.js'
import { stampedeCase } from './cases/stampede.js'
import { tierCase } from './cases/tier.js'
import { MEMORY_ADAPTERS, REDIS_ADAPTERS } from './lib/adapters.js'
import type { BenchCase, CaseResult } from './lib/case.js'
import { corralEntryPoint, gitCommit, machineInfo, packageVersion, type MachineInfo } from './lib/environment.js'
import { renderTable, type Table } from './lib/table.js'

const CASES: readonly BenchCase[] = [
  hitPathCase,
  stampedeCase,
  expiryCase,
  crossProcessCase,
  redisCostCase,
  tierCase,
  memcachedCostCase,
  memoryCase,
  hotKeysCase,
  fileCase,
]

const benchDir = path.dirname(fileURLToPath(import.meta.url))
const log = (message: string) => process.stderr.write(`${message}\n`)

function selectCases(args: readonly string[]): BenchCase[] {
  if (args.length === 0) return [...CASES]
  const unknown = args.filter((arg) => !CASES.some((c) => c.id === arg))
  if (unknown.length > 0) {
    log(`unknown case(s): ${unknown.join(', ')}. Cases: ${CASES.map((c) => c.id).join(', ')}`)
    process.exit(2)
  }
  return CASES.filter((c) => args.includes(c.id))
}

function versionsTable(machine: MachineInfo): { table: Table; versions: Record<string, string> } {
  const packages = [...new Set([...MEMORY_ADAPTERS, ...REDIS_ADAPTERS].map((a) => a.packageName))].filter(
    (name) => name !== 'node',
  )
  packages.push('@keyv/redis', 'keyv', 'ioredis')
  const versions = Object.fromEntries(packages.map((name) => [name, packageVersion(name)]))
  return {
    versions,
    table: {
      title: 'Measured on',
      header: ['what', 'version'],
      rows: [
        ['node', `${machine.node} (V8 ${machine.v8})`],
        ['cpu', `${machine.cpuModel}, ${machine.cores} cores, ${machine.totalMemoryMb} MB`],
        ['load average at start', machine.loadAverage.join(', ')],
        ['redis-server', machine.redisServer ?? 'not installed'],
        ...Object.entries(versions).map(([name, version]) => [
          name,
          name === '@corral/core' ? `${version} (${corralEntryPoint()})` : version,
        ]),
      ],
    },
  }
}

async function main(): Promise<void> {
  const selected = selectCases(process.argv.slice(2))
  const started = performance.now()
  const machine = machineInfo()
  const { table: versions, versions: versionMap } = versionsTable(machine)
  console.log(renderTable(versions))

  let redis: RedisServer | undefined
  if (selected.some((c) => c.needsRedis)) {
    redis = await startRedis()
    log(`redis-server started at ${redis.url}`)
  }

  const results: Record<string, CaseResult & { title: string; description: string; seconds: number }> = {}
  try {
    for (const benchCase of selected) {
      log(`\n== ${benchCase.title}`)
      const caseStarted = performance.now()
      const result = await benchCase.run({ redisUrl: redis?.url, log })
      const seconds = (performance.now() - caseStarted) / 1000
      results[benchCase.id] = { title: benchCase.title, description: benchCase.description, seconds, ...result }
      const description = benchCase.description[0]!.toUpperCase() + benchCase.description.slice(1)
      console.log(`\n## ${benchCase.title}\n\n${description}.\n`)
      console.log(result.tables.map(renderTable).join('\n\n'))
      log(`(${benchCase.id}: ${seconds.toFixed(1)} s)`)
    }
  } finally {
    await redis?.stop()
  }

  const totalSeconds = (performance.now() - started) / 1000
  const full = selected.length === CASES.length
  const outFile = path.join(benchDir, 'results', full ? 'latest.json' : `${selected.map((c) => c.id).join('-')}.json`)
  mkdirSync(path.dirname(outFile), { recursive: true })
  const report = {
    generatedAt: new Date().toISOString(),
    command: full ? 'npm run bench' : `npm run bench -- ${selected.map((c) => c.id).join(' ')}`,
    commit: gitCommit(),
    machine,
    corralEntryPoint: corralEntryPoint(),
    versions: versionMap,
    totalSeconds,
    cases: results,
  }
  // Six significant digits are plenty for benchmark figures and keep the tracked file readable.
  const rounded = (_key: string, value: unknown) =>
    typeof value === 'number' && !Number.isInteger(value) ? Number(value.toPrecision(6)) : value
  writeFileSync(outFile, `${JSON.stringify(report, rounded, 2)}\n`)
  log(`\nwrote ${path.relative(process.cwd(), outFile)} — total ${totalSeconds.toFixed(1)} s`)
}

main().then(
  // Peers' clients (Redis connections, timers) may keep the event loop alive after their close().
  () => process.exit(0),
  (error: unknown) => {
    log(error instanceof Error ? (error.stack ?? error.message) : String(error))
    process.exit(1)
  },
)
