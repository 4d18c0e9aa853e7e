/**
 * Type-checks TypeScript from a test, with the real compiler: files on disk, or sources held in memory (README
 * examples) that are checked as if they sat at a given path, so their imports resolve as a user's would.
 * Returns the diagnostics as `file:line:col TSnnnn message` lines: a test expects `[]`.
 */
import path from 'node:path'
import ts from 'typescript'

export interface TypecheckOptions {
  /** a tsconfig.json whose compiler options apply (its `files`/`include` do not: `files` below are checked) */
  tsconfig?: string
  /** options that override the tsconfig's */
  compilerOptions?: ts.CompilerOptions
  /** files on disk to check */
  files?: readonly string[]
  /** sources to check, by the absolute path they pretend to have */
  sources?: ReadonlyMap<string, string>
}

function compilerOptionsOf(tsconfig: string, overrides: ts.CompilerOptions = {}): ts.CompilerOptions {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    tsconfig,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'))
      },
    },
  )
  if (parsed === undefined) throw new Error(`cannot read ${tsconfig}`)
  return { ...parsed.options, ...overrides }
}

export function typecheck(options: TypecheckOptions): string[] {
  const compilerOptions: ts.CompilerOptions = {
    ...(options.tsconfig ? compilerOptionsOf(options.tsconfig) : {}),
    ...options.compilerOptions,
    noEmit: true,
    composite: false,
    incremental: false,
    declaration: false,
    declarationMap: false,
  }
  const sources = options.sources ?? new Map<string, string>()
  const host = ts.createCompilerHost(compilerOptions, true)
  const { getSourceFile, fileExists, readFile } = host
  host.fileExists = (file) => sources.has(path.resolve(file)) || fileExists.call(host, file)
  host.readFile = (file) => sources.get(path.resolve(file)) ?? readFile.call(host, file)
  host.getSourceFile = (file, languageVersion, onError, shouldCreate) => {
    const source = sources.get(path.resolve(file))
    return source !== undefined
      ? ts.createSourceFile(file, source, languageVersion, true)
      : getSourceFile.call(host, file, languageVersion, onError, shouldCreate)
  }
  const program = ts.createProgram([...(options.files ?? []), ...sources.keys()], compilerOptions, host)
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n')
    if (diagnostic.file === undefined || diagnostic.start === undefined) return `TS${diagnostic.code} ${message}`
    const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start)
    return `${diagnostic.file.fileName}:${line + 1}:${character + 1} TS${diagnostic.code} ${message}`
  })
}
