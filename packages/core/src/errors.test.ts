import { describe, expect, it } from 'vitest'
import {
  BackendError,
  CorralError,
  LockTimeoutError,
  PluginNotFoundError,
  RegionAlreadyConfiguredError,
  RegionNotConfiguredError,
  SerializationError,
  ValidationError,
} from './index.js'

describe('error classes', () => {
  it.each([
    [ValidationError, 'E_VALIDATION'],
    [RegionNotConfiguredError, 'E_REGION_NOT_CONFIGURED'],
    [RegionAlreadyConfiguredError, 'E_REGION_ALREADY_CONFIGURED'],
    [PluginNotFoundError, 'E_PLUGIN_NOT_FOUND'],
    [BackendError, 'E_BACKEND'],
    [LockTimeoutError, 'E_LOCK_TIMEOUT'],
    [SerializationError, 'E_SERIALIZATION'],
  ] as const)('%o carries code %s and extends CorralError and Error', (ErrorClass, code) => {
    const error = new ErrorClass('something went wrong')
    expect(error).toBeInstanceOf(ErrorClass)
    expect(error).toBeInstanceOf(CorralError)
    expect(error).toBeInstanceOf(Error)
    expect(error.code).toBe(code)
    expect(ErrorClass.code).toBe(code)
    expect(error.name).toBe(ErrorClass.name)
    expect(error.message).toBe('something went wrong')
    expect(String(error)).toBe(`${ErrorClass.name}: something went wrong`)
    expect(error.stack).toContain('something went wrong')
  })

  it('every code is distinct, so callers can branch on err.code', () => {
    const codes = [
      ValidationError,
      RegionNotConfiguredError,
      RegionAlreadyConfiguredError,
      PluginNotFoundError,
      BackendError,
      LockTimeoutError,
      SerializationError,
    ].map((ErrorClass) => new ErrorClass('x').code)
    expect(new Set(codes).size).toBe(codes.length)
  })

  it('keeps the lower-level error as cause', () => {
    const cause = new Error('ECONNREFUSED')
    const error = new BackendError('redis is down', { cause })
    expect(error.cause).toBe(cause)
  })

  it('is not mistaken for another Corral error', () => {
    expect(new ValidationError('x')).not.toBeInstanceOf(BackendError)
    expect(new BackendError('x')).not.toBeInstanceOf(ValidationError)
  })
})
