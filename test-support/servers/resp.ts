/** A minimal RESP client: readiness checks and cluster/sentinel setup without redis-cli. */
import net from 'node:net'
import type { HostPort } from './ports.js'

export class RespError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'RespError'
  }
}

export type RespValue = string | number | null | RespError | RespValue[]

function parseResp(buf: Buffer, pos: number): { value: RespValue; next: number } | undefined {
  if (pos >= buf.length) return undefined
  const lineEnd = buf.indexOf('\r\n', pos)
  if (lineEnd < 0) return undefined
  const type = String.fromCharCode(buf[pos] ?? 0)
  const line = buf.toString('utf8', pos + 1, lineEnd)
  const afterLine = lineEnd + 2
  switch (type) {
    case '+':
      return { value: line, next: afterLine }
    case '-':
      return { value: new RespError(line), next: afterLine }
    case ':':
      return { value: Number(line), next: afterLine }
    case '$': {
      const len = Number(line)
      if (len < 0) return { value: null, next: afterLine }
      if (buf.length < afterLine + len + 2) return undefined
      return { value: buf.toString('utf8', afterLine, afterLine + len), next: afterLine + len + 2 }
    }
    case '*': {
      const count = Number(line)
      if (count < 0) return { value: null, next: afterLine }
      const items: RespValue[] = []
      let next = afterLine
      for (let i = 0; i < count; i++) {
        const item = parseResp(buf, next)
        if (!item) return undefined
        items.push(item.value)
        next = item.next
      }
      return { value: items, next }
    }
    default:
      throw new Error(`unexpected RESP reply type ${JSON.stringify(type)}`)
  }
}

function encodeCommand(args: ReadonlyArray<string | number>): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const arg of args) {
    const data = Buffer.from(String(arg))
    parts.push(Buffer.from(`$${data.length}\r\n`), data, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

/** Opens a connection, sends `commands` pipelined, returns one reply per command (errors as RespError). */
export function respPipeline(
  target: HostPort,
  commands: ReadonlyArray<ReadonlyArray<string | number>>,
  timeoutMs = 2000,
): Promise<RespValue[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: target.host, port: target.port })
    const replies: RespValue[] = []
    let buf = Buffer.alloc(0)
    let pos = 0
    const fail = (err: Error) => {
      socket.destroy()
      reject(err)
    }
    socket.setTimeout(timeoutMs, () =>
      fail(new Error(`RESP: no reply from ${target.host}:${target.port} in ${timeoutMs} ms`)),
    )
    socket.once('error', fail)
    socket.once('close', () => {
      if (replies.length < commands.length)
        reject(new Error(`RESP: ${target.host}:${target.port} closed the connection`))
    })
    socket.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk])
      try {
        for (;;) {
          const parsed = parseResp(buf, pos)
          if (!parsed) break
          replies.push(parsed.value)
          pos = parsed.next
        }
      } catch (err) {
        fail(err as Error)
        return
      }
      if (replies.length >= commands.length) {
        socket.destroy()
        resolve(replies)
      }
    })
    socket.write(Buffer.concat(commands.map(encodeCommand)))
  })
}

/** Runs one Redis command (after AUTH if a password is given); rejects on an error reply. */
export async function redisCommand(
  target: HostPort,
  args: ReadonlyArray<string | number>,
  opts: { password?: string; timeoutMs?: number } = {},
): Promise<RespValue> {
  const commands = opts.password ? [['AUTH', opts.password], args] : [args]
  const replies = await respPipeline(target, commands, opts.timeoutMs)
  for (const reply of replies) if (reply instanceof RespError) throw reply
  return replies[replies.length - 1] ?? null
}

/** Parses `INFO`/`CLUSTER INFO` text into key → value. */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1).trim()
  }
  return out
}
