/**
 * `npm start` with CORRAL_DEMO_FILE: two demo processes on one directory, no server. At each restock slot both send
 * their callers for the same new key of the `catalog` region at the same moment; the file backend's lock lets one
 * process regenerate it, once, and the other process's callers wait for that value.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import type { HotKeysJson, StampedesJson } from '../api-types.js'
import { RESTOCK_CALLERS, RESTOCK_EVERY_MS, restockKey } from './file-mode.js'

const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = path.resolve(HERE, '../../../..')
const directory = mkdtempSync(path.join(os.tmpdir(), 'corral-demo-file-'))
afterAll(() => rmSync(directory, { recursive: true, force: true }))

function startDemo(): {
  child: ChildProcess
  url: Promise<string>
  output: () => string
  exited: Promise<number | null>
} {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CORRAL_DEMO_FILE: directory,
    CORRAL_DEMO_RATE: '100',
    PORT: '0',
    CORRAL_ADMIN_TOKEN: '',
  }
  delete env.NODE_OPTIONS
  delete env.REDIS_URL
  const child = spawn(
    process.execPath,
    ['--conditions=@corral/source', '--import', 'tsx', path.join(HERE, 'main.ts')],
    {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let output = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const url = new Promise<string>((resolve, reject) => {
    const look = setInterval(() => {
      const found = /dashboard {2}(http:\S+)\//.exec(output)?.[1]
      if (found) {
        clearInterval(look)
        resolve(found)
      }
    }, 50)
    void exited.then((code) => {
      clearInterval(look)
      reject(new Error(`the demo exited (${code}):\n${output}`))
    })
  })
  return { child, url, output: () => output, exited }
}

/** What one demo process shows of a restock key: how often it was asked for, and its regeneration, if it ran one. */
async function restockSeen(
  url: string,
  key: string,
): Promise<{ calls?: number; stampedes: StampedesJson['stampedes'] }> {
  const hot = (await (await fetch(`${url}/api/regions/catalog/hot-keys?limit=100`)).json()) as HotKeysJson
  const { stampedes } = (await (await fetch(`${url}/api/stampedes?limit=100`)).json()) as StampedesJson
  return { calls: hot.keys.find((k) => k.key === key)?.count, stampedes: stampedes.filter((s) => s.key === key) }
}

describe('the demo on the file backend', () => {
  it(
    'two processes on one directory: a restock stampede across them runs its creator once',
    { timeout: 60_000 },
    async () => {
      const demos = [startDemo(), startDemo()]
      try {
        const urls = await Promise.all(demos.map((demo) => demo.url))
        for (const demo of demos) expect(demo.output()).toContain('catalog')
        // The next slot that starts once both run (with a margin for a slow start).
        const slot = restockKey(Date.now() + RESTOCK_EVERY_MS)
        const deadline = Date.now() + 2 * RESTOCK_EVERY_MS + 5000
        let seen = await Promise.all(urls.map((url) => restockSeen(url, slot)))
        while (!seen.every((s) => s.calls === RESTOCK_CALLERS) || !seen.some((s) => s.stampedes.length > 0)) {
          if (Date.now() > deadline) throw new Error(`slot ${slot} not seen: ${JSON.stringify(seen)}`)
          await new Promise((resolve) => setTimeout(resolve, 200))
          seen = await Promise.all(urls.map((url) => restockSeen(url, slot)))
        }
        // Long enough for a second regeneration to show, if there were one.
        await new Promise((resolve) => setTimeout(resolve, 1000))
        seen = await Promise.all(urls.map((url) => restockSeen(url, slot)))
        // Both processes asked for the key with all their callers. One regenerated it, once, for its own waiting
        // callers; the other regenerated nothing: its callers got that value through the file backend's lock.
        expect(seen.map((s) => s.calls)).toEqual([RESTOCK_CALLERS, RESTOCK_CALLERS])
        expect(seen.map((s) => s.stampedes.length).sort()).toEqual([0, 1])
        expect(seen.flatMap((s) => s.stampedes)[0]!.coalesced).toBe(RESTOCK_CALLERS - 1)
      } finally {
        for (const demo of demos) demo.child.kill('SIGTERM')
      }
      for (const demo of demos) expect(await demo.exited, demo.output().slice(-2000)).toBe(0)
    },
  )
})
