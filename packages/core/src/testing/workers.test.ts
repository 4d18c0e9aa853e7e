import { afterEach, describe, expect, it } from 'vitest'
import { Worker, WorkerError } from './workers.js'

describe('multi-process workers', () => {
  const started: Worker[] = []

  afterEach(async () => {
    await Promise.all(started.splice(0).map((worker) => worker.stop()))
  })

  it('a worker imports its setup module first, so a backend registered there can be configured by name', async () => {
    const configure = (worker: Worker) =>
      worker.call('configure', { region: 'r', backend: 'registered-by-setup', arguments: {}, expirationTime: 30 })

    const plain = await Worker.start()
    started.push(plain)
    const error = await configure(plain).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(WorkerError)
    expect((error as WorkerError).code).toBe('E_PLUGIN_NOT_FOUND')

    const setUp = await Worker.start(new URL('./test-support/register-backend.ts', import.meta.url))
    started.push(setUp)
    await configure(setUp)
    const made = await setUp.call<{ value: { label: string; pid: number }; runs: number }>('getOrCreate', {
      region: 'r',
      key: 'k',
      creatorMs: 0,
      label: 'made in the worker',
    })
    expect(made.runs).toBe(1)
    expect(made.value).toMatchObject({ label: 'made in the worker', pid: setUp.pid })
    expect(setUp.unhandled).toEqual([])
  })
})
