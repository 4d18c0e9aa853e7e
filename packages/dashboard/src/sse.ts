/**
 * An incremental parser for the `text/event-stream` format (WHATWG HTML, "Server-sent events", 9.2.6).
 *
 * EventSource cannot send an Authorization header, so the dashboard reads the stream with `fetch` and feeds
 * the decoded text here, chunk by chunk. Chunks may split lines (and a CRLF pair) anywhere.
 */

export interface SseMessage {
  /** The `event:` field, `'message'` when the event had none. */
  event: string
  /** The `data:` lines joined with `\n`. */
  data: string
  /** The last event ID seen on the stream, if any. */
  id: string | undefined
}

export class SseParser {
  /** The reconnection time the server asked for with a `retry:` field, in milliseconds. */
  retry: number | undefined
  /** The number of comment lines (`: ...`, typically heartbeats) seen so far. */
  comments = 0

  #buffer = ''
  #started = false
  #skipLeadingLF = false
  #eventType = ''
  #data: string[] = []
  #lastEventId: string | undefined

  /** Feeds decoded text; returns the messages completed by it, in order. */
  push(chunk: string): SseMessage[] {
    let text = chunk
    if (!this.#started) {
      if (text.length === 0) return []
      this.#started = true
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
    }
    if (this.#skipLeadingLF && text.length > 0) {
      if (text.charCodeAt(0) === 10) text = text.slice(1)
      this.#skipLeadingLF = false
    }
    const buffer = this.#buffer + text
    const messages: SseMessage[] = []
    let start = 0
    for (let i = 0; i < buffer.length; i++) {
      const c = buffer.charCodeAt(i)
      if (c !== 10 && c !== 13) continue
      const line = buffer.slice(start, i)
      if (c === 13) {
        if (i + 1 < buffer.length) {
          if (buffer.charCodeAt(i + 1) === 10) i++
        } else {
          // A CR at the very end: if the next chunk starts with LF, it belongs to this line ending.
          this.#skipLeadingLF = true
        }
      }
      start = i + 1
      this.#line(line, messages)
    }
    this.#buffer = buffer.slice(start)
    return messages
  }

  /** Resets the parser for a new connection; an event left incomplete at the end of a stream is discarded. */
  reset(): void {
    this.#buffer = ''
    this.#started = false
    this.#skipLeadingLF = false
    this.#eventType = ''
    this.#data = []
  }

  #line(line: string, out: SseMessage[]): void {
    if (line === '') {
      if (this.#data.length > 0) {
        out.push({ event: this.#eventType || 'message', data: this.#data.join('\n'), id: this.#lastEventId })
      }
      this.#eventType = ''
      this.#data = []
      return
    }
    if (line.charCodeAt(0) === 58 /* : */) {
      this.comments++
      return
    }
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    switch (field) {
      case 'event':
        this.#eventType = value
        break
      case 'data':
        this.#data.push(value)
        break
      case 'id':
        if (!value.includes('\0')) this.#lastEventId = value
        break
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value)
        break
      default:
      // Unknown fields are ignored, as the specification requires.
    }
  }
}
