import { SerializationError } from './errors.js'

/** Returned by reads when there is no usable value. A unique symbol, so `undefined` and `null` stay cacheable. */
export const NO_VALUE: unique symbol = Symbol.for('corral.NO_VALUE')
export type NoValue = typeof NO_VALUE

/** What a store kept in this process answers on the hit path when it holds no fresh value (`getFreshSync`). */
export const NOT_FRESH: unique symbol = Symbol('corral.NOT_FRESH')

/**
 * The version of the stored format. A value written in any other format reads as a miss, not as a crash.
 * 2: the header's fourth field is an object of extensions (tags, expiry jitter, fail-safe trust), see below.
 */
export const FORMAT_VERSION = 2

/** The rarely-set parts of a stored value, kept out of the common case so an entry stays one small object. */
export interface ValueExtensions {
  /** the value's tags, for `region.invalidateTags()` */
  readonly tags?: readonly string[]
  /** milliseconds added to the value's expiration time (`expirationJitter`), so keys written together do not expire together */
  readonly jitterMs?: number
  /**
   * epoch milliseconds until which the value is served as fresh although it expired: a fail-safe value kept after
   * its creator failed, trusted for `failSafe.throttle` so a failing source is not hammered. Its creation time is
   * kept, so `maxStaleAge` still counts from it.
   */
  readonly trustedUntil?: number
}

/** The creation-time metadata of a value, as `metadata` presents it. */
export interface CachedValueMetadata {
  /** creation time, milliseconds since the epoch */
  readonly ct: number
  /** storage format version */
  readonly v: number
  /** the value's tags, for `region.invalidateTags()` */
  readonly tags?: readonly string[]
}

/**
 * What a region stores: the payload and its creation time, plus rare extensions (tags, expiry jitter, fail-safe
 * trust). Like dogpile.cache's `CachedValue`, expiry is decided by the reader from `ct`, so one region can change
 * its expiration time without rewriting what is stored. One object per entry: the memory backend and the
 * in-process tier keep these as they are.
 */
export class CachedValue<T = unknown> {
  /** creation time, milliseconds since the epoch; `NaN` for a value of another format version (never usable) */
  readonly ct: number
  readonly ext: ValueExtensions | undefined

  /**
   * `new CachedValue(payload, ct, ext?)`; `new CachedValue(payload, { ct, v, tags })` is the earlier form (a proxy
   * that rebuilds a value from `value.metadata`). A `v` other than `FORMAT_VERSION` makes a value no read accepts.
   */
  constructor(
    readonly payload: T,
    created: number | { readonly ct: number; readonly v?: number; readonly tags?: readonly string[] },
    ext?: ValueExtensions,
  ) {
    if (typeof created === 'number') {
      this.ct = created
      this.ext = ext
    } else {
      this.ct = created.v === undefined || created.v === FORMAT_VERSION ? created.ct : Number.NaN
      this.ext = created.tags === undefined || created.tags.length === 0 ? ext : { ...ext, tags: created.tags }
    }
  }

  static create<T>(payload: T, createdAt: number, tags?: readonly string[]): CachedValue<T> {
    return new CachedValue(payload, createdAt, tags === undefined || tags.length === 0 ? undefined : { tags })
  }

  /** The value's tags, if any. */
  get tags(): readonly string[] | undefined {
    return this.ext?.tags
  }

  /** `{ ct, v, tags? }`, as earlier versions exposed it. */
  get metadata(): CachedValueMetadata {
    const tags = this.ext?.tags
    return tags === undefined ? { ct: this.ct, v: FORMAT_VERSION } : { ct: this.ct, v: FORMAT_VERSION, tags }
  }

  /** The same value with other extensions (`undefined` fields removed). */
  withExtensions(ext: ValueExtensions): CachedValue<T> {
    const merged: { -readonly [K in keyof ValueExtensions]: ValueExtensions[K] } = { ...this.ext, ...ext }
    for (const name of Object.keys(merged) as Array<keyof ValueExtensions>) {
      if (merged[name] === undefined) delete merged[name]
    }
    return new CachedValue(this.payload, this.ct, Object.keys(merged).length === 0 ? undefined : merged)
  }
}

/** Turns payloads into bytes (or text) and back, for backends that store bytes. */
export interface Serializer {
  serialize(value: unknown): string | Uint8Array
  deserialize(data: Uint8Array): unknown
}

/** JSON, the default. `undefined` payloads are handled by the envelope, not by JSON. */
export const jsonSerializer: Serializer = {
  serialize: (value) => JSON.stringify(value),
  deserialize: (data) => JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')),
}

/*
 * The byte envelope: `c<version>:<ct>:<u|v>[:<extensions as JSON>]\n<payload bytes>`. A short text header keeps
 * values readable with `redis-cli GET`, costs a dozen bytes, and lets a reader reject foreign or old data before
 * deserializing; scripts that run on the server (Redis Lua) read `ct` from the same prefix. `u` marks an
 * `undefined` payload, which JSON cannot carry. Extensions are a JSON object `{"t":[tags],"j":jitterMs,"f":
 * trustedUntil}` with only the fields set (JSON never holds a raw newline, so the first newline ends the header).
 */
const HEADER_PREFIX = `c${FORMAT_VERSION}:`
const NEWLINE = 0x0a
/** Far above any valid header (64 tags of 256 characters), so garbage is rejected without scanning it all. */
const MAX_HEADER_BYTES = 64 * 1024

/** Encodes a value with its metadata. Throws `SerializationError` when the serializer cannot encode the payload. */
export function encodeCachedValue(value: CachedValue, serializer: Serializer): Buffer {
  let body: string | Uint8Array
  let kind = 'v'
  if (value.payload === undefined) {
    body = ''
    kind = 'u'
  } else {
    try {
      body = serializer.serialize(value.payload)
    } catch (error) {
      throw new SerializationError(`cannot serialize the value: ${(error as Error).message ?? error}`, { cause: error })
    }
    if (typeof body !== 'string' && !(body instanceof Uint8Array)) {
      throw new SerializationError(
        `the serializer returned ${body === undefined ? 'undefined' : typeof body} instead of a string or Uint8Array (values such as functions cannot be cached)`,
      )
    }
  }
  const header = `${HEADER_PREFIX}${value.ct}:${kind}${encodeExtensions(value.ext)}\n`
  if (typeof body === 'string') return Buffer.from(header + body, 'utf8')
  return Buffer.concat([Buffer.from(header, 'utf8'), body])
}

function encodeExtensions(ext: ValueExtensions | undefined): string {
  if (ext === undefined) return ''
  const wire: { t?: readonly string[]; j?: number; f?: number } = {}
  if (ext.tags !== undefined && ext.tags.length > 0) wire.t = ext.tags
  if (ext.jitterMs !== undefined && ext.jitterMs > 0) wire.j = ext.jitterMs
  if (ext.trustedUntil !== undefined) wire.f = ext.trustedUntil
  return wire.t === undefined && wire.j === undefined && wire.f === undefined ? '' : `:${JSON.stringify(wire)}`
}

/** The extensions of a header, or `null` when they are malformed (the value then reads as a miss). */
function decodeExtensions(text: string): ValueExtensions | null {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return null
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null
  const { t, j, f } = parsed as { t?: unknown; j?: unknown; f?: unknown }
  const ext: { -readonly [K in keyof ValueExtensions]: ValueExtensions[K] } = {}
  if (t !== undefined) {
    if (!Array.isArray(t) || !t.every((tag) => typeof tag === 'string')) return null
    ext.tags = t as string[]
  }
  if (j !== undefined) {
    if (typeof j !== 'number' || !Number.isFinite(j) || j < 0) return null
    ext.jitterMs = j
  }
  if (f !== undefined) {
    if (typeof f !== 'number' || !Number.isFinite(f)) return null
    ext.trustedUntil = f
  }
  return ext
}

const HEADER_PREFIX_BYTES = Buffer.from(HEADER_PREFIX, 'latin1')
/** far more digits than any creation time has: a longer field is not a header */
const MAX_CT_CHARS = 32

/**
 * The creation time in the header of bytes written by `encodeCachedValue` (`c<version>:<ct>:...`), read without
 * decoding the value (for the backends' fenced writes); `undefined` for bytes that are not a value of this format.
 */
export function storedCreationTime(data: Uint8Array): number | undefined {
  const prefix = HEADER_PREFIX_BYTES.length
  if (data.length <= prefix || Buffer.compare(data.subarray(0, prefix), HEADER_PREFIX_BYTES) !== 0) return undefined
  const end = data.indexOf(0x3a /* ':' */, prefix)
  if (end <= prefix || end > prefix + MAX_CT_CHARS) return undefined
  const ct = Number(Buffer.from(data.buffer, data.byteOffset + prefix, end - prefix).toString('latin1'))
  return Number.isFinite(ct) ? ct : undefined
}

/**
 * Decodes bytes written by `encodeCachedValue`. Anything else (another format version, bytes written by some
 * other program, a payload the serializer rejects) is `NO_VALUE`: the caller regenerates instead of crashing.
 */
export function decodeCachedValue(data: Uint8Array, serializer: Serializer): CachedValue | NoValue {
  const end = data.subarray(0, MAX_HEADER_BYTES).indexOf(NEWLINE)
  if (end < 0) return NO_VALUE
  const header = Buffer.from(data.buffer, data.byteOffset, end).toString('utf8')
  if (!header.startsWith(HEADER_PREFIX)) return NO_VALUE
  const ctEnd = header.indexOf(':', HEADER_PREFIX.length)
  if (ctEnd <= HEADER_PREFIX.length) return NO_VALUE
  const ct = Number(header.slice(HEADER_PREFIX.length, ctEnd))
  if (!Number.isFinite(ct)) return NO_VALUE
  const kind = header[ctEnd + 1]
  let ext: ValueExtensions | undefined
  if (header.length > ctEnd + 2) {
    if (header[ctEnd + 2] !== ':') return NO_VALUE
    const decoded = decodeExtensions(header.slice(ctEnd + 3))
    if (decoded === null) return NO_VALUE
    if (Object.keys(decoded).length > 0) ext = decoded
  }
  if (kind === 'u') return new CachedValue(undefined, ct, ext)
  if (kind !== 'v') return NO_VALUE
  try {
    return new CachedValue(serializer.deserialize(data.subarray(end + 1)), ct, ext)
  } catch {
    return NO_VALUE
  }
}
