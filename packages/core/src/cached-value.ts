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
  /** the value's tags, for `region.invalidateTags()` */
  readonly tags?: readonly string[]
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

  static create<T>(payload: T, createdAt: number, tags?: readonly string[]): CachedValue<T> {
    return new CachedValue(
      payload,
      tags === undefined || tags.length === 0
        ? { ct: createdAt, v: FORMAT_VERSION }
        : { ct: createdAt, v: FORMAT_VERSION, tags },
    )
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
 * The byte envelope: `c<version>:<ct>:<u|v>[:<tags as JSON>]\n<payload bytes>`. A short text header keeps values
 * readable with `redis-cli GET`, costs a dozen bytes, and lets a reader reject foreign or old data before
 * deserializing. `u` marks an `undefined` payload, which JSON cannot carry. Tags are a JSON array of strings
 * (JSON never holds a raw newline, so the first newline ends the header).
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
  const tags = value.metadata.tags
  const header = `${HEADER_PREFIX}${value.metadata.ct}:${kind}${tags === undefined ? '' : `:${JSON.stringify(tags)}`}\n`
  if (typeof body === 'string') return Buffer.from(header + body, 'utf8')
  return Buffer.concat([Buffer.from(header, 'utf8'), body])
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
  let tags: string[] | undefined
  if (header.length > ctEnd + 2) {
    if (header[ctEnd + 2] !== ':') return NO_VALUE
    try {
      const parsed: unknown = JSON.parse(header.slice(ctEnd + 3))
      if (!Array.isArray(parsed) || !parsed.every((tag) => typeof tag === 'string')) return NO_VALUE
      tags = parsed as string[]
    } catch {
      return NO_VALUE
    }
  }
  if (kind === 'u') return CachedValue.create(undefined, ct, tags)
  if (kind !== 'v') return NO_VALUE
  try {
    return CachedValue.create(serializer.deserialize(data.subarray(end + 1)), ct, tags)
  } catch {
    return NO_VALUE
  }
}
