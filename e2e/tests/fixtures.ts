import { test as base, expect } from '@playwright/test'
import { RegionRegistry, createRegion, type CacheRegion } from '@corral/core'
import { startExporter } from '@corral/exporter'

export interface CacheApp {
  url: string
  registry: RegionRegistry
  users: CacheRegion
  products: CacheRegion
  /** creator runs per key, to prove what regenerated */
  creatorRuns: Map<string, number>
  /** a creator that counts its runs and takes `ms` */
  creator(key: string, ms?: number): () => Promise<string>
}

/**
 * An application with two regions and an exporter serving the built dashboard, started in the test process so
 * that tests drive the cache directly (make keys hot, cause a stampede) and watch the page react.
 */
async function startCacheApp(adminToken?: string) {
  const registry = new RegionRegistry()
  const users = createRegion({ name: 'users', registry }).configure('memory', { expirationTime: 60 })
  const products = createRegion({ name: 'products', registry }).configure('memory', { expirationTime: 300 })
  const creatorRuns = new Map<string, number>()
  const creator =
    (key: string, ms = 0) =>
    async () => {
      creatorRuns.set(key, (creatorRuns.get(key) ?? 0) + 1)
      if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms))
      return `value of ${key}`
    }
  const server = await startExporter({ port: 0, registry, logger: false, ...(adminToken ? { adminToken } : {}) })
  const app: CacheApp = { url: server.url, registry, users, products, creatorRuns, creator }
  return { app, close: () => server.close() }
}

export const test = base.extend<{ app: CacheApp; securedApp: CacheApp & { token: string } }>({
  // eslint-disable-next-line no-empty-pattern -- Playwright reads a fixture's dependencies from this pattern
  app: async ({}, use) => {
    const { app, close } = await startCacheApp()
    await use(app)
    await close()
  },
  // eslint-disable-next-line no-empty-pattern -- as above
  securedApp: async ({}, use) => {
    const token = 'e2e-secret-token-0123456789'
    const { app, close } = await startCacheApp(token)
    await use({ ...app, token })
    await close()
  },
})

export { expect }
