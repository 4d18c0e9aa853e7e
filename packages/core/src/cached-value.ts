import { SerializationError } from './errors.js'

/** Returned by reads when there is no usable value. A unique symbol, so `undefined` and `null` stay cacheable. */
export const NO_VALUE: unique symbol = Symbol.for('corral.NO_VALUE')
export type NoValue = typeof NO_VALUE

/** The version of the stored format. A value written in any other format reads as a miss, not as a crash. */
export const FORMAT_VERSION = 1

export interface CachedValueMetadata {
  /** creation time, milliseconds since the epoch */
  readonly ct: number
  /** storage format version */
  readonly v: number
}

/**
 * What a region stores: the payload plus the metadata the dogpile lock needs (when the value was created) and the
 * format version. Like dogpile.cache's `CachedValue`, expiry is decided by the reader from `ct`, so one region can
 * change its expiration time without rewriting what is stored.
 */
export class CachedValue<T = unknown> {
  constructor(
    readonly payload: T,
    readonly metadata: CachedValueMetadata,
  ) {}

  static create<T>(payload: T, createdAt: number): CachedValue<T> {
    return new CachedValue(payload, { ct: createdAt, v: FORMAT_VERSION })
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
 * The byte envelope: `c<version>:<ct>:<u|v>\n<payload bytes>`. A short text header keeps values readable with
 * `redis-cli GET`, costs a dozen bytes, and lets a reader reject foreign or old data before deserializing.
 * `u` marks an `undefined` payload, which JSON cannot carry.
 */
const HEADER_PREFIX = `c${FORMAT_VERSION}:`
const NEWLINE = 0x0a

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
  const header = `${HEADER_PREFIX}${value.metadata.ct}:${kind}\n`
  if (typeof body === 'string') return Buffer.from(header + body, 'utf8')
  return Buffer.concat([Buffer.from(header, 'latin1'), body])
}

/**
 * Decodes bytes written by `encodeCachedValue`. Anything else (another format version, bytes written by some
 * other program, a payload the serializer rejects) is `NO_VALUE`: the caller regenerates instead of crashing.
 */
export function decodeCachedValue(data: Uint8Array, serializer: Serializer): CachedValue | NoValue {
  const end = data.indexOf(NEWLINE)
  if (end < 0 || end > 40) return NO_VALUE
  const header = Buffer.from(data.buffer, data.byteOffset, end).toString('latin1')
  if (!header.startsWith(HEADER_PREFIX)) return NO_VALUE
  const kindAt = header.length - 2
  if (header.charCodeAt(kindAt) !== 0x3a /* ':' */) return NO_VALUE
  const ct = Number(header.slice(HEADER_PREFIX.length, kindAt))
  if (!Number.isFinite(ct)) return NO_VALUE
  const kind = header[kindAt + 1]
  if (kind === 'u') return CachedValue.create(undefined, ct)
  if (kind !== 'v') return NO_VALUE
  try {
    return CachedValue.create(serializer.deserialize(data.subarray(end + 1)), ct)
  } catch {
    return NO_VALUE
  }
}
