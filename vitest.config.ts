import ts from 'typescript'
import { defaultClientConditions, defaultServerConditions, type Plugin } from 'vite'
import { defineConfig } from 'vitest/config'

/**
 * Vite 8 transforms TypeScript with Oxc, which lowers only legacy (experimental) decorators. Corral's
 * `cached()` is a TC39 (stage 3) decorator, so modules that apply decorators are lowered by TypeScript
 * itself before Oxc sees them. Only files that contain a decorator pay for this.
 */
function tc39Decorators(): Plugin {
  const decoratorUse = /^\s*@[A-Za-z_$][\w$.]*(\(|\s*$)/m
  return {
    name: 'corral:tc39-decorators',
    enforce: 'pre',
    transform(code, id) {
      if (!/\.tsx?$/.test(id) || id.includes('node_modules') || !decoratorUse.test(code)) return null
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
