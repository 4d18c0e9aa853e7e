import { ValidationError } from '@corral/core'
import { describe, expect, it } from 'vitest'
import { createExporter } from '../app.js'
import { fleetSettings } from './fleet.js'

describe('the fleet option', () => {
  it('takes a URL, a name and an interval, with defaults', () => {
    expect(fleetSettings({ redis: 'redis://127.0.0.1:6379' })).toEqual({
      redis: 'redis://127.0.0.1:6379',
      name: 'default',
      intervalMs: 5000,
    })
    expect(fleetSettings({ redis: 'rediss://cache:6380/2', name: 'shop-eu', interval: '2s' })).toMatchObject({
      name: 'shop-eu',
      intervalMs: 2000,
    })
  })

  it('fails at configure time with a ValidationError naming what is valid', () => {
    const bad: Array<[unknown, RegExp]> = [
      [undefined, /fleet must be an object/],
      [{ redis: 'http://x' }, /redis:\/\/ or rediss:\/\/ URL/],
      [{ redis: { get() {} } }, /ioredis Redis or Cluster/],
      [{ redis: 'redis://x', name: 'has space' }, /fleet.name must be 1 to 64 letters/],
      [{ redis: 'redis://x', interval: 0 }, /fleet.interval must be from 50ms to 60s/],
      [{ redis: 'redis://x', interval: '2m' }, /fleet.interval must be from 50ms to 60s/],
      [{ redis: 'redis://x', intervall: '2s' }, /unknown fleet option "intervall"; valid: redis, name, interval/],
    ]
    for (const [options, message] of bad) {
      expect(() => fleetSettings(options)).toThrow(ValidationError)
      expect(() => fleetSettings(options)).toThrow(message)
    }
    expect(() => createExporter({ fleet: { redis: 'redis://x', name: '' } })).toThrow(ValidationError)
  })
})
