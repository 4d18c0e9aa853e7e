/**
 * How the file backend's store was chosen: LMDB (`lmdb`), SQLite (`better-sqlite3`, WAL) and plain files (one file
 * per key, written to a temporary file and renamed; an O_EXCL lock file) doing the same work. The figures are in the
 * README ("Why LMDB").
 *
 *   npm install --no-save better-sqlite3@12      # 12: version 13 needs Node 22
 *   node packages/core/src/backends/file/test-support/compare-stores.mjs
 *
 * Measures, per store: a hit (read of a 1 KB value by key), a single write committed on its own, a read-modify-write
 * in one transaction (what a lock or a fenced store is), and 4 processes × 500 read-modify-write increments of one
 * counter (lost updates, wall time). Durability settings as a cache would use them: LMDB without fsync per commit,
 * SQLite WAL with synchronous=NORMAL, files without fsync.
 */
import { fork } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import Database from 'better-sqlite3'
import { open } from 'lmdb'

const VALUE = Buffer.from(`c2:1700000000000:v\n${JSON.stringify({ id: 1, name: 'x'.repeat(1000) })}`)
const KEYS = 10_000
const WRITES = 1000
const INCREMENTS = 500
const PROCESSES = 4

const stores = {
  lmdb(dir) {
    const env = open({ path: path.join(dir, 'lmdb'), maxDbs: 2, noSync: true })
    const db = env.openDB('values', { encoding: 'binary', keyEncoding: 'binary' })
    const key = (k) => Buffer.from(k)
    return {
      get: (k) => db.getBinary(key(k)),
      put: (k, v) => env.transactionSync(() => db.putSync(key(k), v)),
      update: (k, f) => env.transactionSync(() => db.putSync(key(k), f(db.getBinary(key(k))))),
      close: () => env.close(),
    }
  },
  sqlite(dir) {
    const db = new Database(path.join(dir, 'sqlite.db'))
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = NORMAL')
    db.pragma('busy_timeout = 10000')
    db.exec('create table if not exists kv (k text primary key, v blob)')
    const get = db.prepare('select v from kv where k = ?').pluck()
    const put = db.prepare('insert or replace into kv (k, v) values (?, ?)')
    const update = db.transaction((k, f) => put.run(k, f(get.get(k))))
    return {
      get: (k) => get.get(k),
      put: (k, v) => put.run(k, v),
      update: (k, f) => update.immediate(k, f),
      close: () => db.close(),
    }
  },
  files(dir) {
    const file = (k) => path.join(dir, createHash('sha1').update(k).digest('hex'))
    const read = (k) => {
      try {
        return fs.readFileSync(file(k))
      } catch {
        return undefined
      }
    }
    const write = (k, v) => {
      const temporary = `${file(k)}.${process.pid}.tmp`
      fs.writeFileSync(temporary, v)
      fs.renameSync(temporary, file(k))
    }
    return {
      get: read,
      put: write,
      update: (k, f) => {
        const lock = `${file(k)}.lock`
        // No way to wait for a lock file but to try again: spin.
        for (;;) {
          try {
            fs.closeSync(fs.openSync(lock, 'wx'))
            break
          } catch {
            // held
          }
        }
        try {
          write(k, f(read(k)))
        } finally {
          fs.unlinkSync(lock)
        }
      },
      close: () => {},
    }
  },
}

const increment = (bytes) => Buffer.from(String(Number(bytes?.toString() ?? 0) + 1))
const microseconds = (started, n) => (((performance.now() - started) * 1000) / n).toFixed(1)

if (process.argv[2] === 'child') {
  const [, , , name, dir] = process.argv
  const store = stores[name](dir)
  for (let i = 0; i < INCREMENTS; i++) store.update('counter', increment)
  await store.close()
  process.exit(0)
}

const rows = []
for (const name of Object.keys(stores)) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `compare-${name}-`))
  try {
    const store = stores[name](dir)
    let started = performance.now()
    for (let i = 0; i < WRITES; i++) store.put(`k${i}`, VALUE)
    const write = microseconds(started, WRITES)
    started = performance.now()
    for (let i = 0; i < WRITES; i++) store.update(`k${i}`, () => VALUE)
    const update = microseconds(started, WRITES)
    for (let i = WRITES; i < KEYS; i++) store.put(`k${i}`, VALUE)
    let hit = ''
    for (let round = 0; round < 3; round++) {
      started = performance.now()
      for (let i = 0; i < KEYS; i++) store.get(`k${i}`)
      hit = microseconds(started, KEYS) // the last round: warm
    }
    await store.close()

    started = performance.now()
    await Promise.all(
      Array.from(
        { length: PROCESSES },
        () =>
          new Promise((resolve) => fork(new URL(import.meta.url).pathname, ['child', name, dir]).on('exit', resolve)),
      ),
    )
    const wall = (performance.now() - started).toFixed(0)
    const check = stores[name](dir)
    const counted = Number(check.get('counter')?.toString())
    await check.close()
    rows.push({
      store: name,
      'hit µs': hit,
      'write µs': write,
      'read-modify-write µs': update,
      counted: `${counted} of ${PROCESSES * INCREMENTS}`,
      'wall ms (4 processes)': wall,
    })
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
console.table(rows)
