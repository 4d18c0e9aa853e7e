/**
 * The TypeScript examples of the READMEs, as readme.test.ts checks them: every ```ts block is type-checked, and
 * the self-contained ones are run.
 *
 * A block may be preceded by a directive comment (blank lines between are fine):
 *
 *     <!-- example: run redis experimentalDecorators -->
 *
 * - `run`: the block is self-contained (it is type-checked without the names below) and is executed; `redis`,
 *   `memcached`: the servers it needs. Before it runs, the conventional local addresses are pointed at servers
 *   the test started (`redis://127.0.0.1:6379` → a test redis-server, `127.0.0.1:11211` → a test memcached) and a
 *   fixed exporter port at a free one (`port: 9464` → `port: 0`).
 * - `experimentalDecorators`: compiled as a project with legacy decorators (NestJS) is.
 *
 * Blocks that are not self-contained may use the names that readme-context.ts exports (a `users` region, a `db`,
 * ...), as if imported, unless they declare them themselves: the fragments of a guide, checked all the same.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import ts from 'typescript'

export interface Example {
  /** the markdown file, relative to the repository */
  readonly file: string
  /** the line of the block's first code line in that file (1-based) */
  readonly line: number
  readonly code: string
  readonly run: boolean
  readonly servers: ReadonlyArray<'redis' | 'memcached'>
  readonly experimentalDecorators: boolean
}

const DIRECTIVE = /^<!--\s*example:([^>]*)-->\s*$/
const FENCE = /^```(ts|typescript)\s*$/
const KNOWN_WORDS = new Set(['run', 'redis', 'memcached', 'experimentalDecorators'])

export function examplesIn(root: string, file: string): Example[] {
  const lines = readFileSync(path.join(root, file), 'utf8').split('\n')
  const examples: Example[] = []
  let directive: string[] = []
  for (let i = 0; i < lines.length; i++) {
    const text = lines[i]!.trim()
    const words = DIRECTIVE.exec(text)
    if (words) {
      directive = words[1]!.trim().split(/\s+/).filter(Boolean)
      const unknown = directive.filter((word) => !KNOWN_WORDS.has(word))
      if (unknown.length > 0) throw new Error(`${file}:${i + 1}: unknown example directive ${unknown.join(', ')}`)
      continue
    }
    if (text.startsWith('```')) {
      let end = i + 1
      while (end < lines.length && lines[end]!.trim() !== '```') end++
      if (FENCE.test(text)) {
        examples.push({
          file,
          line: i + 2,
          code: lines.slice(i + 1, end).join('\n'),
          run: directive.includes('run'),
          servers: directive.filter((word): word is 'redis' | 'memcached' => word === 'redis' || word === 'memcached'),
          experimentalDecorators: directive.includes('experimentalDecorators'),
        })
      } else if (directive.length > 0) {
        throw new Error(`${file}:${i + 1}: an example directive before a block that is not TypeScript`)
      }
      directive = []
      i = end
      continue
    }
    if (text !== '') directive = []
  }
  return examples
}

/** The names a block declares at its top level (so that the context does not shadow or clash with them). */
export function topLevelNames(code: string): Set<string> {
  const source = ts.createSourceFile('example.ts', code, ts.ScriptTarget.ES2022, true)
  const names = new Set<string>()
  const bind = (name: ts.BindingName) => {
    if (ts.isIdentifier(name)) names.add(name.text)
    else for (const element of name.elements) if (!ts.isOmittedExpression(element)) bind(element.name)
  }
  for (const statement of source.statements) {
    if (ts.isVariableStatement(statement))
      for (const declaration of statement.declarationList.declarations) bind(declaration.name)
    else if (
      (ts.isFunctionDeclaration(statement) ||
        ts.isClassDeclaration(statement) ||
        ts.isInterfaceDeclaration(statement) ||
        ts.isTypeAliasDeclaration(statement) ||
        ts.isEnumDeclaration(statement)) &&
      statement.name
    )
      names.add(statement.name.text)
    else if (ts.isImportDeclaration(statement) && statement.importClause) {
      const clause = statement.importClause
      if (clause.name) names.add(clause.name.text)
      const bindings = clause.namedBindings
      if (bindings && ts.isNamespaceImport(bindings)) names.add(bindings.name.text)
      else if (bindings) for (const element of bindings.elements) names.add(element.name.text)
    }
  }
  return names
}

/** The names a module exports (readme-context.ts's), and whether each is a type only. */
export function exportedNames(file: string): Array<{ name: string; type: boolean }> {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true)
  const names: Array<{ name: string; type: boolean }> = []
  for (const statement of source.statements) {
    const exported = ts.canHaveModifiers(statement)
      ? ts.getModifiers(statement)?.some((modifier) => modifier.kind === ts.SyntaxKind.ExportKeyword)
      : false
    if (!exported) continue
    if (ts.isVariableStatement(statement)) {
      for (const declaration of statement.declarationList.declarations)
        if (ts.isIdentifier(declaration.name)) names.push({ name: declaration.name.text, type: false })
    } else if (
      (ts.isFunctionDeclaration(statement) ||
        ts.isClassDeclaration(statement) ||
        ts.isInterfaceDeclaration(statement) ||
        ts.isTypeAliasDeclaration(statement)) &&
      statement.name
    ) {
      names.push({
        name: statement.name.text,
        type: ts.isInterfaceDeclaration(statement) || ts.isTypeAliasDeclaration(statement),
      })
    }
  }
  return names
}
