/**
 * Every error Corral throws on purpose is a `CorralError` with a stable string `code`, so callers can branch on
 * `err.code` (or `instanceof`) instead of parsing messages. Errors wrapping a lower-level failure keep it as
 * `cause`.
 */
export class CorralError extends Error {
  static readonly code: string = 'E_CORRAL'
  readonly code: string

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = (new.target as typeof CorralError).code
  }
}

/** Wrong options or arguments: raised at configure/call time, before anything is read or written. */
export class ValidationError extends CorralError {
  static override readonly code = 'E_VALIDATION'
}

/** A region was used before `configure()` gave it a backend. */
export class RegionNotConfiguredError extends CorralError {
  static override readonly code = 'E_REGION_NOT_CONFIGURED'
}

/** `configure()` called on a region that already has a backend (pass `replaceExistingBackend: true`). */
export class RegionAlreadyConfiguredError extends CorralError {
  static override readonly code = 'E_REGION_ALREADY_CONFIGURED'
}

/** A backend name that no `registerBackend()` call registered. */
export class PluginNotFoundError extends CorralError {
  static override readonly code = 'E_PLUGIN_NOT_FOUND'
}

/** The cache server failed or is unreachable. `cause` is the client library's error. */
export class BackendError extends CorralError {
  static override readonly code = 'E_BACKEND'
}

/** A caller waited longer than the lock timeout for another caller's regeneration. */
export class LockTimeoutError extends CorralError {
  static override readonly code = 'E_LOCK_TIMEOUT'
}

/** A value the serializer cannot encode. Nothing was stored and the creation lock was released. */
export class SerializationError extends CorralError {
  static override readonly code = 'E_SERIALIZATION'
}

/**
 * A creator ran past its `hardTimeout` (or, without one, past the lock timeout): its caller and every caller
 * waiting for it get this error, unless fail-safe has a value to serve. The creator's `signal` is aborted with it.
 */
export class CreatorTimeoutError extends CorralError {
  static override readonly code = 'E_CREATOR_TIMEOUT'
}
