#!/usr/bin/env node
/**
 * The packages as a user gets them: `npm run test:consumer` (CI runs it after the tests).
 *
 * 1. Builds, then `npm publish --dry-run` and `npm pack` for each package: every tarball holds README.md, LICENSE,
 *    package.json and dist/ (with types), src/ only as what the source maps point to, nothing else (no tests, test
 *    helpers, tsconfig, build info); every `exports` target is in it; the publishing fields are set.
 * 2. Installs the three tarballs into an empty project (with ioredis 6 from the registry, memjs's types not
 *    installed), compiles a program that uses the public API with `tsc --strict` and `skipLibCheck: false`, and
 *    a NestJS-style one with legacy decorators.
 * 3. Runs them: as ESM, through `require()`, and with legacy decorators; against a real redis-server; the
 *    installed exporter serves the installed dashboard.
 *
 * Prints `consumer: N passed, 0 failed` at the end; exits non-zero on the first failure, leaving the project in
 * its temporary directory for a look.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const fixtures = path.join(root, 'scripts/consumer')
const PACKAGES = ['core', 'exporter', 'dashboard']
let passed = 0

async function step(name, run) {
  const started = Date.now()
  process.stdout.write(`- ${name} ... `)
  try {
    await run()
  } catch (error) {
    process.stdout.write('FAILED\n')
    console.error(error instanceof Error ? (error.stack ?? error.message) : error)
    console.log(`consumer: ${passed} passed, 1 failed`)
    process.exit(1)
  }
  passed++
  process.stdout.write(`ok (${((Date.now() - started) / 1000).toFixed(1)} s)\n`)
}

function run(command, args, options = {}) {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options })
  } catch (error) {
    throw new Error(`${command} ${args.join(' ')} failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`)
  }
}

function assert(condition, message) {
  if (!condition) throw new Error(message)
}

const work = mkdtempSync(path.join(os.tmpdir(), 'corral-consumer-'))
const tarballs = path.join(work, 'tarballs')
const project = path.join(work, 'project')
mkdirSync(tarballs)
mkdirSync(project)
console.log(`Corral consumer test in ${work}`)

await step('build the packages from scratch (no stale output from an earlier build in the tarballs)', () => {
  for (const name of PACKAGES) {
    rmSync(path.join(root, 'packages', name, 'dist'), { recursive: true, force: true })
    rmSync(path.join(root, 'packages', name, 'tsconfig.tsbuildinfo'), { force: true })
  }
  run('npm', ['run', 'build'], { cwd: root })
})

// ------------------------------------------------------------------ 1. the tarballs

const packed = {}
for (const name of PACKAGES) {
  await step(`npm publish --dry-run @corral/${name}: README, LICENSE, dist and types, nothing unused`, () => {
    const dir = path.join(root, 'packages', name)
    const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'))
    const report = JSON.parse(run('npm', ['publish', '--dry-run', '--json'], { cwd: dir }))[manifest.name]
    checkManifest(manifest)
    checkFiles(manifest, report.files.map((file) => file.path).sort(), dir)
    const [pack] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', tarballs], { cwd: dir }))
    packed[name] = path.join(tarballs, pack.filename)
  })
}

function checkManifest(manifest) {
  const where = manifest.name
  assert(!manifest.private, `${where} is private`)
  assert(manifest.license === 'MIT', `${where}: license`)
  assert(/^git\+https:\/\/.+\.git$/.test(manifest.repository?.url ?? ''), `${where}: repository.url`)
  assert(manifest.repository?.directory === `packages/${where.split('/')[1]}`, `${where}: repository.directory`)
  assert(manifest.publishConfig?.access === 'public', `${where}: publishConfig.access must be public (scoped)`)
  assert('sideEffects' in manifest, `${where}: sideEffects`)
  for (const field of ['dependencies', 'peerDependencies']) {
    for (const [dependency, range] of Object.entries(manifest[field] ?? {})) {
      assert(range !== '*' && range !== 'latest', `${where}: ${field}.${dependency} must name versions`)
    }
  }
}

function checkFiles(manifest, files, dir) {
  const where = manifest.name
  for (const required of ['README.md', 'LICENSE', 'package.json'])
    assert(files.includes(required), `${where}: no ${required}`)
  const junk = files.filter(
    (file) =>
      !['README.md', 'LICENSE', 'package.json'].includes(file) &&
      !(file.startsWith('dist/') || file.startsWith('src/')),
  )
  assert(junk.length === 0, `${where}: unexpected files ${junk.join(', ')}`)
  const unwanted = files.filter((file) =>
    /(^|\/)(test-support|__tests__)\/|\.test\.[cm]?[jt]sx?$|\.test\.d\.ts$|(^|\/)tsconfig[^/]*\.json$|\.tsbuildinfo$/.test(
      file,
    ),
  )
  assert(unwanted.length === 0, `${where}: tests or build files shipped: ${unwanted.join(', ')}`)
  // src/ ships only as what the shipped source maps point to
  const mapped = new Set()
  for (const file of files.filter((candidate) => candidate.endsWith('.map'))) {
    const map = JSON.parse(readFileSync(path.join(dir, file), 'utf8'))
    for (const source of map.sources ?? [])
      mapped.add(path.posix.normalize(path.posix.join(path.posix.dirname(file), source)))
  }
  const unmapped = files.filter((file) => file.startsWith('src/') && !mapped.has(file))
  assert(unmapped.length === 0, `${where}: sources no map points to: ${unmapped.join(', ')}`)
  const missing = [...mapped].filter((file) => !files.includes(file))
  assert(missing.length === 0, `${where}: maps point to sources not shipped (stale output?): ${missing.join(', ')}`)
  // every export target is shipped, and every runtime entry has its types
  for (const [subpath, target] of Object.entries(manifest.exports ?? {})) {
    const targets = typeof target === 'string' ? { default: target } : target
    for (const [condition, file] of Object.entries(targets)) {
      if (condition === '@corral/source') continue
      assert(
        files.includes(path.posix.normalize(file)),
        `${where}: exports["${subpath}"].${condition} ${file} not shipped`,
      )
    }
    if (subpath !== './package.json')
      assert(targets.types !== undefined, `${where}: exports["${subpath}"] has no types`)
  }
  for (const bin of Object.values(manifest.bin ?? {}))
    assert(files.includes(path.posix.normalize(bin)), `${where}: bin ${bin} not shipped`)
  if (manifest.name === '@corral/dashboard')
    assert(files.includes('dist/index.html'), `${where}: the built dashboard (dist/index.html) is not shipped`)
}

// ------------------------------------------------------------------ 2. install and compile

await step('install the tarballs into an empty project (ioredis 6, no @types/memjs)', () => {
  writeFileSync(
    path.join(project, 'package.json'),
    JSON.stringify({ name: 'corral-consumer', private: true, type: 'module' }, null, 2),
  )
  for (const file of ['consumer.ts', 'consumer-cjs.cts', 'legacy.ts', 'tsconfig.json', 'tsconfig.legacy.json'])
    writeFileSync(path.join(project, file), readFileSync(path.join(fixtures, file), 'utf8'))
  run(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      packed.core,
      packed.exporter,
      packed.dashboard,
      'ioredis@^6.0.0',
      'typescript@~5.9.3',
      '@types/node@^20.19.0',
    ],
    { cwd: project },
  )
  assert(!existsSync(path.join(project, 'node_modules/@types/memjs')), '@types/memjs was installed')
  assert(!existsSync(path.join(project, 'node_modules/memjs')), 'memjs was installed')
  const installed = (name) =>
    JSON.parse(readFileSync(path.join(project, 'node_modules', name, 'package.json'), 'utf8')).version
  assert(installed('ioredis').startsWith('6.'), `ioredis ${installed('ioredis')} installed, not 6`)
  assert(installed('@opentelemetry/api'), 'the @opentelemetry/api peer was not installed')
  // one copy of core, shared by the exporter (a peer dependency)
  assert(!existsSync(path.join(project, 'node_modules/@corral/exporter/node_modules/@corral/core')), 'two cores')
})

await step('tsc --strict, skipLibCheck: false: the public API (ESM and CommonJS, TC39 decorators)', () =>
  run(path.join(project, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: project }),
)

await step('tsc --strict, skipLibCheck: false: legacy decorators (experimentalDecorators, NestJS style)', () =>
  run(path.join(project, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.legacy.json'], { cwd: project }),
)

// ------------------------------------------------------------------ 3. run

const redis = await startRedis()
try {
  const env = { ...process.env, CORRAL_REDIS_URL: `redis://127.0.0.1:${redis.port}` }
  await step('run as ESM: regions, the lock, decorators, channels, Redis, the exporter serving the dashboard', () =>
    run(process.execPath, ['out/consumer.js'], { cwd: project, env }),
  )
  await step('run through require()', () => run(process.execPath, ['out/consumer-cjs.cjs'], { cwd: project, env }))
  await step('run with legacy decorators', () => run(process.execPath, ['out-legacy/legacy.js'], { cwd: project, env }))
} finally {
  redis.stop()
}

rmSync(work, { recursive: true, force: true })
console.log(`consumer: ${passed} passed, 0 failed`)

/** A throwaway redis-server on a free loopback port. */
async function startRedis() {
  const port = await new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
    server.on('error', reject)
  })
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  )
  child.on('error', (error) => {
    console.error(`cannot start redis-server (apt-get install -y redis-server): ${error.message}`)
    process.exit(1)
  })
  const stop = () => child.kill('SIGKILL')
  process.on('exit', stop)
  for (let attempt = 0; attempt < 100; attempt++) {
    const pong = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
      socket.on('data', (data) => {
        socket.destroy()
        resolve(data.toString().startsWith('+PONG'))
      })
      socket.on('error', () => resolve(false))
    })
    if (pong) return { port, stop }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error('redis-server did not answer')
}
