import { SpanKind, context, type Attributes, type Tracer } from '@opentelemetry/api'
import type { CacheBackend } from '../backends/api.js'
import { endWithError } from './span-errors.js'

/**
 * The server a backend talks to, in OpenTelemetry's database semantic conventions: `db.system.name`, and
 * `server.address` / `server.port` / `db.namespace` when the backend talks to one server it can name.
 */
interface BackendPeer {
  readonly system: string
  readonly address?: string
  readonly port?: number
  readonly namespace?: string
}

/** What a Redis (ioredis) or memcached (memjs) client tells of its server; read as their own instrumentations do. */
interface ClientShapes {
  options?: { host?: unknown; port?: unknown; db?: unknown; sentinels?: unknown; path?: unknown }
  isCluster?: unknown
  servers?: ReadonlyArray<{ host?: unknown; port?: unknown }>
}

const peers = new WeakMap<CacheBackend, BackendPeer | null>()

/**
 * The peer of `backend` (through proxies), or `null` for an in-process backend (one with a synchronous read:
 * memory, null), whose calls are no round trips and get no CLIENT span. Computed once per backend.
 */
function backendPeer(backend: CacheBackend): BackendPeer | null {
  let peer = peers.get(backend)
  if (peer === undefined) {
    peer = describePeer(backend)
    peers.set(backend, peer)
  }
  return peer
}

function describePeer(outer: CacheBackend): BackendPeer | null {
  let backend = outer
  for (let depth = 0; depth < 32; depth++) {
    const inner = (backend as { proxied?: unknown }).proxied
    if (inner === null || typeof inner !== 'object') break
    backend = inner as CacheBackend
  }
  if (backend.getSync !== undefined) return null
  const client = (backend as { client?: ClientShapes }).client
  const system = backend.name
  if (client === null || typeof client !== 'object') return { system }
  // memjs `Client`: named only when there is one server (a key's server is the client's choice)
  const servers = client.servers
  if (Array.isArray(servers)) {
    if (servers.length !== 1) return { system }
    const [server] = servers as Array<{ host?: unknown; port?: unknown }>
    const port = Number(server?.port)
    return {
      system,
      ...(typeof server?.host === 'string' ? { address: server.host } : {}),
      ...(Number.isInteger(port) && port > 0 ? { port } : {}),
    }
  }
  // ioredis `Redis`: one server, unless it finds its master through sentinels (then the server can change)
  const options = client.options
  if (options && client.isCluster !== true && options.sentinels == null) {
    const peer: { system: string; address?: string; port?: number; namespace?: string } = { system }
    if (typeof options.path === 'string') peer.address = options.path
    else if (typeof options.host === 'string') peer.address = options.host
    if (typeof options.port === 'number' && typeof options.path !== 'string') peer.port = options.port
    if (typeof options.db === 'number') peer.namespace = String(options.db)
    return peer
  }
  return { system }
}

/**
 * CLIENT spans around a region's backend round trips (`telemetry: { backendSpans: true }`), with the database
 * semantic conventions: `db.system.name`, `db.operation.name` (Corral's backend operation: `get`, `getMulti`,
 * `set`, `setMulti`, `delete`, `deleteMulti`, `invalidate`, ...), `db.operation.batch.size` for operations on
 * several keys, `server.address`, `server.port`, `db.namespace` (Redis's database index), `error.type` on
 * failure, `corral.region`, and `corral.store_key` (the key as sent, unless `recordKeys` is false). In-process
 * backends get none.
 */
export class BackendSpans {
  constructor(
    private readonly tracer: Tracer,
    private readonly region: string,
    private readonly recordKeys: boolean,
  ) {}

  async around<T>(
    backend: CacheBackend,
    operation: string,
    keys: string | readonly string[] | undefined,
    run: () => Promise<T>,
  ): Promise<T> {
    const peer = backendPeer(backend)
    if (peer === null) return run()
    const attributes: Attributes = {
      'db.system.name': peer.system,
      'db.operation.name': operation,
      'corral.region': this.region,
    }
    if (peer.address !== undefined) attributes['server.address'] = peer.address
    if (peer.port !== undefined) attributes['server.port'] = peer.port
    if (peer.namespace !== undefined) attributes['db.namespace'] = peer.namespace
    if (typeof keys === 'string') {
      if (this.recordKeys) attributes['corral.store_key'] = keys
    } else if (keys !== undefined && keys.length > 1) {
      attributes['db.operation.batch.size'] = keys.length
    }
    // The semantic conventions' name: `{operation} {target}`, the target being the server when it is known.
    const name =
      peer.address === undefined
        ? operation
        : `${operation} ${peer.port === undefined ? peer.address : `${peer.address}:${peer.port}`}`
    const span = this.tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes }, context.active())
    try {
      const result = await run()
      span.end()
      return result
    } catch (error) {
      span.setAttribute('error.type', errorType(error))
      endWithError(span, error)
      throw error
    }
  }
}

/** `error.type`: the error's code when it has one (`ECONNREFUSED`), else its class name. */
function errorType(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code === 'string' && code !== '') return code
  return error instanceof Error ? error.constructor.name : '_OTHER'
}
