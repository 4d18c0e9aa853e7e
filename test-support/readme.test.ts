/**
 * The READMEs' TypeScript examples, so that they cannot rot: every ```ts block of README.md and of each package's
 * README is type-checked under --strict (as a user's project would check it: through the packages' exports), and
 * the self-contained ones (`<!-- example: run -->`) are run, against real servers where they need them. See
 * readme-examples.ts for the directives.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { examplesIn, exportedNames, topLevelNames, type Example } from './readme-examples.js'
import { startMemcached, startRedis, type MemcachedServer, type RedisServer } from './servers.js'
import { typecheck } from './typecheck.js'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const contextFile = path.join(root, 'test-support/readme-context.ts')
const MARKDOWN = ['README.md', ...readdirSync(path.join(root, 'packages')).map((name) => `packages/${name}/README.md`)]
const examples = MARKDOWN.flatMap((file) => examplesIn(root, file))
const where = (example: Example) => `${example.file}:${example.line}`

/** Where a block pretends to live while it is checked: beside this test, so that imports resolve as a user's. */
const virtualPath = (example: Example) =>
  path.join(root, 'test-support', `readme-example-${example.file.replace(/\W+/g, '-')}-${example.line}.ts`)

/**
 * A block as a module. Fragments get the context's names they do not declare, imported on their first line (so
 * that line numbers stay those of the README).
 */
function prelude(example: Example): string {
  if (example.run) return ''
  const declared = topLevelNames(example.code)
  const assumed = exportedNames(contextFile)
    .filter(({ name }) => !declared.has(name))
    .map(({ name, type }) => (type ? `type ${name}` : name))
  return assumed.length > 0 ? `import { ${assumed.join(', ')} } from './readme-context.js'; ` : ''
}

const asModule = (example: Example) => `${prelude(example)}${example.code}\nexport {}\n`

/** Type-checks `batch`; returns each error as `README.md:line:col TSnnnn message`. */
function check(batch: readonly Example[], experimentalDecorators: boolean): string[] {
  if (batch.length === 0) return []
  const byPath = new Map(batch.map((example) => [virtualPath(example), example]))
  const errors = typecheck({
    tsconfig: path.join(root, 'test-support/tsconfig.json'),
    compilerOptions: {
      experimentalDecorators,
      emitDecoratorMetadata: experimentalDecorators,
      types: ['node'],
    },
    sources: new Map([...byPath].map(([file, example]) => [file, asModule(example)])),
  })
  return errors
    .filter((error) => [...byPath.keys()].some((file) => error.startsWith(`${file}:`)))
    .map((error) => {
      const [, file, line, column, message] = /^(.*?):(\d+):(\d+) (.*)$/s.exec(error)!
      const example = byPath.get(file!)!
      const shift = line === '1' ? prelude(example).length : 0
      return `${example.file}:${example.line + Number(line) - 1}:${Number(column) - shift} ${message}`
    })
}

/** A program over the packages' sources takes a few seconds, many more on a loaded machine. */
const COMPILE_TIMEOUT = 180_000

describe('README examples', () => {
  it('finds the examples (a README without them would pass vacuously)', () => {
    expect(examples.filter((example) => example.file === 'README.md').length).toBeGreaterThan(10)
    expect(examples.filter((example) => example.run).length).toBeGreaterThan(2)
  })

  it(
    'type-check under --strict, with TC39 decorators',
    () => {
      expect(
        check(
          examples.filter((example) => !example.experimentalDecorators),
          false,
        ),
      ).toEqual([])
    },
    COMPILE_TIMEOUT,
  )

  it(
    'type-check under --strict, with legacy decorators where they say so',
    () => {
      const legacy = examples.filter((example) => example.experimentalDecorators)
      expect(legacy.length).toBeGreaterThan(0)
      expect(check(legacy, true)).toEqual([])
    },
    COMPILE_TIMEOUT,
  )
})

describe('self-contained README examples run', () => {
  let redis: RedisServer | undefined
  let memcached: MemcachedServer | undefined
  let dir: string

  beforeAll(async () => {
    const needs = new Set(examples.flatMap((example) => (example.run ? example.servers : [])))
    ;[redis, memcached] = await Promise.all([
      needs.has('redis') ? startRedis() : undefined,
      needs.has('memcached') ? startMemcached() : undefined,
    ])
    // inside the repository, so that `@corral/core` resolves to the workspace's packages
    dir = mkdtempSync(path.join(root, 'test-support', '.readme-run-'))
    writeFileSync(
      path.join(dir, 'tsconfig.legacy.json'),
      JSON.stringify({
        compilerOptions: { experimentalDecorators: true, emitDecoratorMetadata: true, target: 'ES2022' },
      }),
    )
  })
  afterAll(async () => {
    await Promise.all([redis?.stop(), memcached?.stop()])
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  it.each(examples.filter((example) => example.run).map((example) => [where(example), example] as const))(
    '%s',
    async (_where, example) => {
      let code = example.code.replaceAll('port: 9464', 'port: 0')
      if (redis) code = code.replaceAll('redis://127.0.0.1:6379', `redis://127.0.0.1:${redis.port}`)
      if (memcached) code = code.replaceAll('127.0.0.1:11211', memcached.servers)
      const file = path.join(dir, `${path.basename(virtualPath(example))}`)
      writeFileSync(file, `${code}\nexport {}\n`)
      const { status, output } = await runNode(
        file,
        example.experimentalDecorators ? path.join(dir, 'tsconfig.legacy.json') : undefined,
      )
      expect(status, output).toBe(0)
    },
    30_000,
  )
})

/** Runs a TypeScript file with tsx, against the packages' sources; resolves with its exit status and output. */
function runNode(file: string, tsconfig: string | undefined): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--conditions=@corral/source', file], {
      cwd: root,
      env: { ...process.env, ...(tsconfig ? { TSX_TSCONFIG_PATH: tsconfig } : {}) },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => (output += chunk))
    child.stderr.on('data', (chunk: Buffer) => (output += chunk))
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000)
    child.on('error', reject)
    child.on('close', (status) => {
      clearTimeout(timer)
      resolve({ status, output })
    })
  })
}
