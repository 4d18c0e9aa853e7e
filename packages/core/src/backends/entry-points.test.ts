/**
 * The client libraries of the Redis and memcached backends are optional peers: the main entry point of
 * `@corral/core` must neither load them at runtime nor name them in its types (a TypeScript user without
 * `@types/memjs` would otherwise get TS2307 from our .d.ts files with `skipLibCheck: false`). The backends that need
 * them have entry points of their own: `@corral/core/redis` and `@corral/core/memcached`.
 */
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import ts from 'typescript'
import { beforeAll, describe, expect, it } from 'vitest'

const PACKAGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const ROOT = path.resolve(PACKAGE, '../..')

/** The declaration files `tsc -b` writes to dist/, emitted in memory from the package's own tsconfig.json. */
function emitDeclarations(): Map<string, string> {
  const configFile = path.join(PACKAGE, 'tsconfig.json')
  const config = ts.getParsedCommandLineOfConfigFile(
    configFile,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'))
      },
    },
  )!
  const options = { ...config.options, composite: false, incremental: false, declarationMap: false }
  const program = ts.createProgram({ rootNames: config.fileNames, options })
  const outDir = config.options.outDir!
  const files = new Map<string, string>()
  const result = program.emit(
    undefined,
    (fileName, text) => files.set(path.relative(outDir, fileName).split(path.sep).join('/'), text),
    undefined,
    true,
  )
  const errors = result.diagnostics.filter((d) => d.category === ts.DiagnosticCategory.Error)
  if (errors.length > 0) throw new Error(ts.formatDiagnostics(errors, ts.createCompilerHost(options)))
  return files
}

/** Every module specifier a declaration file imports or references (comments left out). */
function specifiers(text: string): string[] {
  const source = ts.createSourceFile('x.d.ts', text, ts.ScriptTarget.ES2022, true)
  const found = [
    ...source.referencedFiles.map((ref) => ref.fileName),
    ...source.typeReferenceDirectives.map((ref) => ref.fileName),
  ]
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier)
      found.push((node.moduleSpecifier as ts.StringLiteral).text)
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument))
      found.push((node.argument.literal as ts.StringLiteral).text)
    else if (ts.isExternalModuleReference(node)) found.push((node.expression as ts.StringLiteral).text)
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

/** The packages the declaration graph of `entry` (a path in dist/, e.g. 'index.d.ts') reaches. */
function packagesReached(declarations: Map<string, string>, entry: string): Set<string> {
  const packages = new Set<string>()
  const seen = new Set<string>()
  const queue = [entry]
  while (queue.length > 0) {
    const file = queue.pop()!
    if (seen.has(file)) continue
    seen.add(file)
    const text = declarations.get(file)
    if (text === undefined) throw new Error(`${file} was not emitted (reached from ${entry})`)
    for (const specifier of specifiers(text)) {
      if (specifier.startsWith('.')) {
        queue.push(path.posix.join(path.posix.dirname(file), specifier.replace(/\.js$/, '.d.ts')))
      } else {
        const parts = specifier.split('/')
        packages.add(specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!)
      }
    }
  }
  return packages
}

describe('entry points', () => {
  let declarations: Map<string, string>

  beforeAll(() => {
    declarations = emitDeclarations()
  }, 120_000)

  it("the main entry's declaration files never name ioredis or memjs; the backends' own entry points do", () => {
    const main = packagesReached(declarations, 'index.d.ts')
    expect([...main]).not.toContain('ioredis')
    expect([...main]).not.toContain('memjs')
    expect([...main]).not.toContain('lmdb')
    // The walk does find them where they belong (so their absence above means something).
    expect([...packagesReached(declarations, 'backends/redis/index.d.ts')]).toContain('ioredis')
    expect([...packagesReached(declarations, 'backends/memcached/index.d.ts')]).toContain('memjs')
    // The test suites need neither client library either.
    const testing = packagesReached(declarations, 'testing/index.d.ts')
    expect([...testing]).not.toContain('ioredis')
    expect([...testing]).not.toContain('memjs')
    expect([...testing]).not.toContain('lmdb')
  })

  it("package.json's exports lead to those files, with the @corral/source condition for this repository", async () => {
    const pkg = JSON.parse(await readFile(path.join(PACKAGE, 'package.json'), 'utf8')) as { exports: unknown }
    const exports = pkg.exports as Record<string, Record<string, string>>
    expect(Object.keys(exports)).toEqual(['.', './redis', './memcached', './file', './testing'])
    for (const [subpath, conditions] of Object.entries(exports)) {
      expect(Object.keys(conditions), subpath).toEqual(['@corral/source', 'types', 'default'])
      const types = conditions.types!.replace(/^\.\/dist\//, '')
      expect(declarations.has(types), `${subpath} → ${conditions.types}`).toBe(true)
      expect(conditions.default).toBe(conditions.types!.replace(/\.d\.ts$/, '.js'))
      expect(conditions['@corral/source']).toBe(
        conditions.types!.replace(/^\.\/dist\//, './src/').replace(/\.d\.ts$/, '.ts'),
      )
    }
  })

  it('importing @corral/core does not load ioredis or memjs', async () => {
    const run = promisify(execFile)
    const script = `
      import { createRequire } from 'node:module'
      const core = await import('@corral/core')
      const loaded = Object.keys(createRequire(import.meta.url).cache)
      console.log(JSON.stringify({ backends: core.registeredBackends(), ioredis: loaded.some((f) => f.includes('/ioredis/')), memjs: loaded.some((f) => f.includes('/memjs/')), lmdb: loaded.some((f) => f.includes('/lmdb/')) }))
    `
    const { stdout } = await run(
      process.execPath,
      ['--conditions=@corral/source', '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: ROOT },
    )
    expect(JSON.parse(stdout.trim())).toEqual({
      backends: expect.arrayContaining(['memory', 'null', 'redis', 'memcached', 'file']),
      ioredis: false,
      memjs: false,
      lmdb: false,
    })
  })

  it('@corral/core/redis and @corral/core/memcached load their client library only when a backend is created', async () => {
    const run = promisify(execFile)
    const script = `
      import { createRequire } from 'node:module'
      const cache = createRequire(import.meta.url).cache
      const loaded = (name) => Object.keys(cache).some((f) => f.includes('/' + name + '/'))
      const { RedisBackend } = await import('@corral/core/redis')
      const { MemcachedBackend } = await import('@corral/core/memcached')
      const before = { ioredis: loaded('ioredis'), memjs: loaded('memjs') }
      const redis = new RedisBackend({ port: 1, commandTimeout: 0.05 })
      const memcached = new MemcachedBackend({ servers: '127.0.0.1:1' })
      const after = { ioredis: loaded('ioredis'), memjs: loaded('memjs') }
      await Promise.all([redis.close(), memcached.close()])
      console.log(JSON.stringify({ before, after }))
    `
    const { stdout } = await run(
      process.execPath,
      ['--conditions=@corral/source', '--import', 'tsx', '--input-type=module', '-e', script],
      { cwd: ROOT },
    )
    expect(JSON.parse(stdout.trim())).toEqual({
      before: { ioredis: false, memjs: false },
      after: { ioredis: true, memjs: true },
    })
  })
})
