import path from 'node:path'
import ts from 'typescript'
import { defaultClientConditions, defaultServerConditions, type Plugin } from 'vite'
import { defineConfig } from 'vitest/config'

/**
 * Vite 8 transforms TypeScript with Oxc, which lowers only legacy (experimental) decorators. Corral's
 * `cached()` is also a TC39 (stage 3) decorator, so modules that apply decorators are lowered by TypeScript
 * itself before Oxc sees them, unless their tsconfig.json turns `experimentalDecorators` on (the NestJS-style
 * tests): Oxc lowers those as legacy decorators, as it reads that tsconfig. Only files that contain a decorator
 * pay for this.
 */
function tc39Decorators(): Plugin {
  const decoratorUse = /^\s*@[A-Za-z_$][\w$.]*(\(|\s*$)/m
  const legacyByConfig = new Map<string, boolean>()
  const usesLegacyDecorators = (file: string): boolean => {
    const configFile = ts.findConfigFile(path.dirname(file), ts.sys.fileExists)
    if (configFile === undefined) return false
    let legacy = legacyByConfig.get(configFile)
    if (legacy === undefined) {
      const parsed = ts.getParsedCommandLineOfConfigFile(
        configFile,
        {},
        { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} },
      )
      legacy = parsed?.options.experimentalDecorators === true
      legacyByConfig.set(configFile, legacy)
    }
    return legacy
  }
  return {
    name: 'corral:tc39-decorators',
    enforce: 'pre',
    transform(code, id) {
      if (!/\.tsx?$/.test(id) || id.includes('node_modules') || !decoratorUse.test(code)) return null
      if (usesLegacyDecorators(id)) return null
      const out = ts.transpileModule(code, {
        fileName: id,
        compilerOptions: {
          target: ts.ScriptTarget.ES2022,
          module: ts.ModuleKind.ESNext,
          experimentalDecorators: false,
          sourceMap: true,
          inlineSources: true,
        },
      })
      return { code: out.outputText, map: out.sourceMapText ?? null }
    },
  }
}

export default defineConfig({
  plugins: [tc39Decorators()],
  resolve: { conditions: ['@corral/source', ...defaultClientConditions] },
  ssr: { resolve: { conditions: ['@corral/source', ...defaultServerConditions.filter((c) => c !== 'module')] } },
  test: {
    include: ['packages/*/src/**/*.test.{ts,tsx}', 'test-support/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
