import { describe, expect, it } from 'vitest'
import { SseParser } from './sse'

function parseAll(chunks: string[]) {
  const parser = new SseParser()
  return chunks.flatMap((chunk) => parser.push(chunk))
}

describe('SseParser', () => {
  it('parses named events with JSON data', () => {
    const messages = parseAll(['event: hit\ndata: {"region":"users","key":"u1"}\n\n'])
    expect(messages).toEqual([{ event: 'hit', data: '{"region":"users","key":"u1"}', id: undefined }])
  })

  it('defaults the event name to "message" and joins data lines with LF', () => {
    expect(parseAll(['data: a\ndata: b\n\n'])).toEqual([{ event: 'message', data: 'a\nb', id: undefined }])
  })

  it('handles chunks that split lines, fields and CRLF pairs anywhere', () => {
    const text = 'event: miss\r\ndata: {"region":"r"}\r\n\r\nevent: hit\rdata: x\r\r'
    const whole = parseAll([text])
    for (let i = 1; i < text.length; i++) {
      expect(parseAll([text.slice(0, i), text.slice(i)])).toEqual(whole)
    }
    expect(parseAll(text.split(''))).toEqual(whole)
    expect(whole).toEqual([
      { event: 'miss', data: '{"region":"r"}', id: undefined },
      { event: 'hit', data: 'x', id: undefined },
    ])
  })

  it('counts heartbeat comments without dispatching anything', () => {
    const parser = new SseParser()
    expect(parser.push(': heartbeat\n\n:\n\n')).toEqual([])
    expect(parser.comments).toBe(2)
  })

  it('does not dispatch an event without data lines, and resets the event name after each event', () => {
    expect(parseAll(['event: hit\n\ndata: y\n\n'])).toEqual([{ event: 'message', data: 'y', id: undefined }])
  })

  it('keeps an empty data line as an empty message', () => {
    expect(parseAll(['event: dropped\ndata:\n\n'])).toEqual([{ event: 'dropped', data: '', id: undefined }])
  })

  it('strips exactly one space after the colon and accepts fields without a colon', () => {
    expect(parseAll(['data:  two spaces\ndata\n\n'])).toEqual([
      { event: 'message', data: ' two spaces\n', id: undefined },
    ])
  })

  it('tracks the last event id and the retry field, ignoring unknown fields', () => {
    const parser = new SseParser()
    const messages = parser.push('id: 7\nretry: 2500\nfoo: bar\ndata: a\n\ndata: b\n\nretry: soon\n')
    expect(messages.map((m) => m.id)).toEqual(['7', '7'])
    expect(parser.retry).toBe(2500)
  })

  it('strips a leading byte order mark once', () => {
    expect(parseAll(['', '\uFEFFdata: a\n\n'])).toEqual([{ event: 'message', data: 'a', id: undefined }])
    expect(parseAll(['data: \uFEFFa\n\n'])[0]?.data).toBe('\uFEFFa')
  })

  it('discards an unterminated event when reset for a new connection', () => {
    const parser = new SseParser()
    expect(parser.push('event: hit\ndata: partial')).toEqual([])
    parser.reset()
    expect(parser.push('data: fresh\n\n')).toEqual([{ event: 'message', data: 'fresh', id: undefined }])
  })
})
