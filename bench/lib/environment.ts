/** What the figures were measured on: machine, runtime, and the exact version of every library. */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export interface MachineInfo {
  node: string
  v8: string
  platform: string
  cpuModel: string
  cores: number
  totalMemoryMb: number
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine skews the figures */
  loadAverage: number[]
  redisServer: string | undefined
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus()
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: os.availableParallelism?.() ?? cpus.length,
    totalMemoryMb: Math.round(os.totalmem() / 1024 / 1024),
    loadAverage: os.loadavg().map((load) => +load.toFixed(2)),
    redisServer: redisServerVersion(),
  }
}

function redisServerVersion(): string | undefined {
  try {
    const text = execFileSync('redis-server', ['--version'], { encoding: 'utf8' })
    return /v=([\d.]+)/.exec(text)?.[1]
  } catch {
    return undefined
  }
}

/**
 * The installed version of `name`, as this workspace resolves it (the one the benchmark actually imports).
 * Walks up from the resolved entry point, because many packages do not export their package.json.
 */
export function packageVersion(name: string): string {
  let resolved: string
  try {
    resolved = fileURLToPath(import.meta.resolve(name))
  } catch {
    return 'not installed'
  }
  for (let dir = path.dirname(resolved); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json')
    if (!existsSync(file)) continue
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string }
    if (pkg.name === name) return pkg.version ?? 'unknown'
  }
  return 'unknown'
}

/** Where `@corral/core` resolves from: the benchmark must measure the compiled library (dist), not sources. */
export function corralEntryPoint(): string {
  try {
    return path.relative(process.cwd(), fileURLToPath(import.meta.resolve('@corral/core')))
  } catch {
    return 'unresolved'
  }
}

export function gitCommit(): string | undefined {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' }).trim()
    return dirty ? `${commit} (with uncommitted changes)` : commit
  } catch {
    return undefined
  }
}
