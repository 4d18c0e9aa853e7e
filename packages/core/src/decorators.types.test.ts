/**
 * The decorators' types, checked by the compiler under --strict, in both decorator modes: the TC39 tests (this
 * package's tsconfig) and the NestJS-style tests (legacy decorators, decorators-legacy/tsconfig.json) compile
 * without a cast at the decorator, and `cachedMethod()` is typed from the class and accepts method names only.
 */
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { typecheck } from '../../../test-support/typecheck.js'

const here = path.dirname(fileURLToPath(import.meta.url))

/** Uses `cachedMethod()` rightly twice, then wrongly on lines 14 and 15. */
const CACHED_METHOD_USE = `
import { cachedMethod, createRegion } from '@corral/core'
const users = createRegion()
class UserService {
  count = 0
  @users.cached({ namespace: 'UserService' })
  async find(id: number): Promise<{ id: number }> {
    return { id }
  }
}
const service = new UserService()
const invalidated: Promise<void> = cachedMethod(service, 'find').invalidate(1)
const refreshed: Promise<{ id: number }> = cachedMethod(service, 'find').refresh(1)
cachedMethod(service, 'find').invalidate('1')
cachedMethod(service, 'count')
void [invalidated, refreshed]
`

describe('decorator types (tsc --strict)', () => {
  it.each([
    { mode: 'TC39', tsconfig: '../tsconfig.json', tests: 'decorators.test.ts' },
    { mode: 'legacy', tsconfig: 'decorators-legacy/tsconfig.json', tests: 'decorators-legacy/nest-style.test.ts' },
  ])(
    '$mode decorators: $tests compiles; cachedMethod() is typed',
    ({ mode, tsconfig, tests }) => {
      const use = path.join(here, `decorators-legacy/cached-method-${mode}.ts`)
      const errors = typecheck({
        tsconfig: path.join(here, tsconfig),
        files: [path.join(here, tests)],
        sources: new Map([[use, CACHED_METHOD_USE]]),
      })
      expect(errors.filter((error) => !error.startsWith(use))).toEqual([])
      expect(errors.map((error) => error.slice(use.length).replace(/^:(\d+):\d+ (TS\d+).*$/s, '$1 $2'))).toEqual([
        '14 TS2345', // a string where find takes a number
        '15 TS2345', // count is not a method
      ])
    },
    180_000,
  ) // a program over the package's sources: seconds, more on a loaded machine
})
