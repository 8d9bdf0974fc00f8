import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Stream from "effect/Stream"
import { DecodeError } from "../Errors.js"
import type * as Sse from "../Sse.js"

const LF = 10
const CR = 13
const SPACE = 32
const COLON = 58

const EMPTY_EVENTS: ReadonlyArray<Sse.SseEvent> = Object.freeze([])
const NO_BYTES = new Uint8Array(0)

/** @internal */
export const defaultMaxEventSize = 1024 * 1024

// A pending line longer than this keeps its buffer only while it is pending.
const KEEP_BUFFER_BYTES = 64 * 1024
// Below this many bytes, the complete lines of a chunk are appended to the
// pending line and decoded together: one TextDecoder call instead of two.
const MERGE_BYTES = 1024
// Shorter copies are faster as a loop than through a subarray.
const COPY_LOOP_BYTES = 16
// From this size on, a text is decoded by the decoder that suits the last one.
const WIDE_BYTES = 768
// Large texts are decoded in pieces of about this size.
const PIECE_BYTES = 8192
// A pending line this long is decoded as it arrives, in pieces.
const LONG_LINE_BYTES = 64 * 1024

/**
 * The UTF-8 length of `text[from, to)`. Text that came out of a TextDecoder has
 * no lone surrogates, so each half of a pair counts 2 bytes.
 */
const utf8Length = (text: string, from: number, to: number): number => {
  let bytes = to - from
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if (c >= 0x80) bytes += c >= 0x800 && (c < 0xd800 || c > 0xdfff) ? 2 : 1
  }
  return bytes
}

/** Whether `text[from, to)` is a non-empty run of ASCII digits. */
const isDigits = (text: string, from: number, to: number): boolean => {
  if (from === to) return false
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i)
    if (c < 48 || c > 57) return false
  }
  return true
}

/**
 * The value start of a `data` line at `text[s, e)`, or -1 when the line is
 * another field. A `data` line without a colon has an empty value.
 */
const dataValueStart = (text: string, s: number, e: number): number => {
  if (!text.startsWith("data", s)) return -1
  if (s + 4 === e) return e
  if (text.charCodeAt(s + 4) !== COLON) return -1
  return text.charCodeAt(s + 5) === SPACE && s + 5 < e ? s + 6 : s + 5
}

/**
 * An incremental decoder of `text/event-stream` bytes (WHATWG HTML,
 * "Interpreting an event stream").
 *
 * Bytes are only scanned for line ends; the complete lines of a chunk are
 * decoded with one TextDecoder call (per 8 KiB or so) and split as a string
 * (native `indexOf` is far faster than a byte loop). Line ends are ASCII and
 * never part of a multi-byte character, so decoding whole lines is the same
 * as decoding the whole stream, invalid bytes included. Only the bytes of the
 * trailing, unterminated line are kept between chunks, in a buffer that grows
 * geometrically (a line past 64 KiB is decoded as it arrives instead), so the
 * work is linear in the input whatever the chunking.
 *
 * The size of an event is the UTF-8 bytes of its data values so far plus the
 * bytes of the current line (an invalid byte counts as its U+FFFD, which is
 * never less), checked at every line end and at every chunk end: whether a
 * stream fails does not depend on how it is split, only when.
 *
 * @internal
 */
export class Decoder implements Sse.Decoder {
  // Not a streaming decoder: Node's TextDecoder only takes its fast path
  // (fastest on ASCII) when `stream` is never used. The BOM is handled once,
  // by hand.
  private readonly utf8 = new TextDecoder("utf-8", { ignoreBOM: true })
  // A streaming decoder, faster than the fast path on large non-ASCII input
  // in Node. It only sees text that ends with a line end, so it never holds
  // bytes between calls.
  private readonly wideUtf8 = new TextDecoder("utf-8", { ignoreBOM: true })
  // The last large text decoded was not ASCII.
  private wide = false
  private readonly maxEventSize: number

  // The bytes of the unterminated trailing line.
  private buf: Uint8Array = NO_BYTES
  private len = 0
  // A long unterminated line is decoded as it arrives: its text so far, in
  // pieces, and the bytes they came from. Decoding it as one block would
  // make one large flat string (slow to allocate); its data value is built
  // as a rope of the pieces instead.
  private pieces: Array<string> | undefined = undefined
  private piecesBytes = 0
  // Decodes those pieces; holds the bytes of a character split between them.
  private lineUtf8: TextDecoder | undefined = undefined
  // Before the first 3 bytes are known: a leading BOM may still be arriving.
  private atStart = true
  // The previous chunk ended with CR: a LF that starts this one ends nothing.
  private skipLF = false

  // The event being built.
  private data = ""
  private hasData = false
  private type = ""
  // UTF-8 bytes of the data values of the event being built.
  private dataBytes = 0
  // Where, in the text being split, the event being built got its first
  // data line (0 when it began before that text); -1 when it has none.
  private mark = -1

  // Both persist across events. WHATWG keeps the last event ID and sets the
  // reconnection time from `retry`; we report the most recent valid `retry`
  // on every event that follows it, as we do the last event ID.
  private lastId: string | undefined = undefined
  private retry: number | undefined = undefined

  private out: Array<Sse.SseEvent> | undefined = undefined
  private failure: DecodeError | undefined = undefined

  constructor(options?: { readonly maxEventSize?: number | undefined }) {
    this.maxEventSize = options?.maxEventSize ?? defaultMaxEventSize
  }

  push(chunk: Uint8Array): ReadonlyArray<Sse.SseEvent> {
    this.pushInto(chunk)
    return this.take()
  }

  end(): ReadonlyArray<Sse.SseEvent> {
    this.endInto()
    return this.take()
  }

  /** The events completed since the last call; on a failure, those before it. */
  take(): ReadonlyArray<Sse.SseEvent> {
    const out = this.out
    if (out === undefined) return EMPTY_EVENTS
    this.out = undefined
    return out
  }

  /** Decodes a chunk, keeping its events for `take`. */
  pushInto(chunk: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure
    const n = chunk.length
    if (n === 0) return
    let start = 0
    if (this.atStart) {
      start = this.skipBom(chunk)
      if (start < 0) return
    }
    if (this.skipLF) {
      this.skipLF = false
      if (chunk[start] === LF) start++
    }
    let last = n - 1
    while (last >= start) {
      const b = chunk[last]!
      if (b === LF || b === CR) break
      last--
    }
    if (last < start) {
      this.keep(chunk, start, n)
      return
    }
    if (this.pieces !== undefined) {
      let first = start
      let b = chunk[first]!
      while (b !== LF && b !== CR) b = chunk[++first]!
      this.takeLongLine(chunk.subarray(start, first))
      start = first + 1
      if (b === CR && start <= last && chunk[start] === LF) start++
    } else if (this.len > 0) {
      if (last + 1 - start <= MERGE_BYTES) {
        this.append(chunk, start, last + 1)
        this.takeLine()
        start = last + 1
      } else {
        // Finish the pending line alone rather than copy a large chunk, with
        // the blank lines after it: its event is then usually dispatched.
        let first = start
        let b = chunk[first]!
        while (b !== LF && b !== CR) b = chunk[++first]!
        while (first < last && ((b = chunk[first + 1]!) === LF || b === CR)) first++
        this.append(chunk, start, first + 1)
        this.takeLine()
        start = first + 1
      }
    }
    if (start <= last) this.region(chunk, start, last + 1)
    if (last === n - 1) this.skipLF = chunk[last] === CR
    else this.keep(chunk, last + 1, n)
  }

  /** Ends the input: the pending line is a line, the pending event is dispatched. */
  endInto(): void {
    if (this.failure !== undefined) throw this.failure
    if (this.pieces !== undefined) {
      this.takeLongLine(NO_BYTES)
    } else if (this.len > 0) {
      const text = this.utf8.decode(this.buf.subarray(0, this.len)) + "\n"
      this.release()
      this.split(text, -1)
    }
    this.dispatch()
    this.atStart = true
    this.skipLF = false
  }

  /**
   * Drops one leading BOM, even split across chunks. Returns where the chunk's
   * input starts, or -1 when all of it may still be a BOM (it is then kept).
   */
  private skipBom(chunk: Uint8Array): number {
    let k = this.len
    let i = 0
    while (k < 3 && i < chunk.length && chunk[i] === BOM[k]) {
      k++
      i++
    }
    if (k === 3) {
      this.atStart = false
      this.len = 0
      return i
    }
    if (i === chunk.length) {
      this.append(chunk, 0, i)
      return -1
    }
    // Not a BOM: the bytes kept so far are ordinary input.
    this.atStart = false
    return 0
  }

  /**
   * Decodes and interprets `chunk[from, to)`, which ends with a line end, in
   * pieces of about PIECE_BYTES cut after a line end: each piece is decoded by
   * the decoder that suited the last one, so that the ASCII stretches of a
   * stream take the fast path even when the rest of it does not.
   */
  private region(chunk: Uint8Array, from: number, to: number): void {
    while (to - from >= 2 * PIECE_BYTES) {
      let cut = from + PIECE_BYTES
      let b = chunk[cut - 1]!
      while (b !== LF && b !== CR && cut > from + 1) b = chunk[--cut - 1]!
      if (b !== LF && b !== CR) break
      // Never between the CR and the LF of a CRLF.
      if (b === CR && chunk[cut] === LF) cut++
      this.split(this.decode(chunk.subarray(from, cut)), cut - from)
      from = cut
    }
    this.split(this.decode(chunk.subarray(from, to)), to - from)
  }

  private decode(bytes: Uint8Array): string {
    if (bytes.length < WIDE_BYTES) return this.utf8.decode(bytes)
    const text = this.wide ? this.wideUtf8.decode(bytes, STREAM) : this.utf8.decode(bytes)
    this.wide = text.length !== bytes.length
    return text
  }

  /** Decodes the pending bytes, which end with a line end, and splits them. */
  private takeLine(): void {
    const bytes = this.len
    const text = this.decode(this.buf.subarray(0, bytes))
    this.release()
    this.split(text, bytes)
  }

  private release(): void {
    this.len = 0
    if (this.buf.length > KEEP_BUFFER_BYTES) this.buf = NO_BYTES
  }

  private append(chunk: Uint8Array, from: number, to: number): void {
    const need = this.len + (to - from)
    if (need > this.buf.length) {
      const grown = new Uint8Array(Math.max(need, this.buf.length * 2, 256))
      grown.set(this.buf.subarray(0, this.len))
      this.buf = grown
    }
    if (to - from < COPY_LOOP_BYTES) {
      const buf = this.buf
      let j = this.len
      for (let i = from; i < to; i++) buf[j++] = chunk[i]!
    } else {
      this.buf.set(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to), this.len)
    }
    this.len = need
  }

  /** Keeps the bytes of an unterminated line, failing before it grows too large. */
  private keep(chunk: Uint8Array, from: number, to: number): void {
    if (this.dataBytes + this.piecesBytes + this.len + (to - from) > this.maxEventSize) this.fail()
    if (this.len === 0 && to - from >= LONG_LINE_BYTES) {
      this.piece(chunk.subarray(from, to))
      return
    }
    this.append(chunk, from, to)
    if (this.len >= LONG_LINE_BYTES) {
      this.piece(this.buf.subarray(0, this.len))
      this.release()
    }
  }

  /** Decodes the next piece of a long line; the first holds its field name. */
  private piece(bytes: Uint8Array): void {
    this.lineUtf8 ??= new TextDecoder("utf-8", { ignoreBOM: true })
    const text = this.lineUtf8.decode(bytes, STREAM)
    if (this.pieces === undefined) this.pieces = [text]
    else this.pieces.push(text)
    this.piecesBytes += bytes.length
  }

  /** Interprets a long line: its pieces, the pending bytes, then `rest`, its last bytes. */
  private takeLongLine(rest: Uint8Array): void {
    const pieces = this.pieces!
    let last = rest
    if (this.len > 0) {
      this.append(rest, 0, rest.length)
      last = this.buf.subarray(0, this.len)
    }
    // Without `stream`: the line ends here, a split character is invalid.
    pieces.push(this.lineUtf8!.decode(last))
    const bytes = this.piecesBytes + last.length
    this.release()
    this.pieces = undefined
    this.piecesBytes = 0
    const head = pieces[0]!
    if (!head.startsWith("data:")) {
      // Rare: the line is made flat and read like any other.
      this.split(pieces.join("") + "\n", -1)
      return
    }
    // Valid UTF-8 decodes to as many UTF-8 bytes as it came from.
    let lineBytes = bytes
    if (pieces.some((piece) => piece.includes("\uFFFD"))) {
      lineBytes = 0
      for (const piece of pieces) lineBytes += utf8Length(piece, 0, piece.length)
    }
    if (this.dataBytes + lineBytes > this.maxEventSize) this.fail()
    const v = head.charCodeAt(5) === SPACE ? 6 : 5
    let value = head.slice(v)
    for (let i = 1; i < pieces.length; i++) value += pieces[i]!
    if (this.hasData) {
      this.data = this.data + "\n" + value
    } else {
      this.data = value
      this.hasData = true
    }
    this.dataBytes += lineBytes - v
  }

  private fail(): never {
    this.failure = new DecodeError({
      reason: "EventTooLarge",
      detail: `an event is larger than maxEventSize (${this.maxEventSize} bytes)`
    })
    this.buf = NO_BYTES
    this.len = 0
    this.pieces = undefined
    this.data = ""
    throw this.failure
  }

  /**
   * Splits text that ends with a line end into lines and interprets them.
   * `bytes` is the size of the input it came from, or -1 to check every line.
   */
  private split(text: string, bytes: number): void {
    // Without a line in it that could pass the limit, sizes are only counted
    // once, at the end, for the event still open (a byte decodes to at most
    // 3 UTF-8 bytes).
    const checkSize = bytes < 0 || this.dataBytes + 3 * bytes > this.maxEventSize
    this.mark = this.hasData ? 0 : -1
    const length = text.length
    let p = 0
    let cr = text.indexOf("\r")
    if (cr === -1) {
      // LF only, the usual case: `data:` lines inline.
      while (p < length) {
        const e = text.indexOf("\n", p)
        if (e === p) {
          this.dispatch()
        } else if (
          !checkSize &&
          text.charCodeAt(p) === 100 &&
          text.charCodeAt(p + 4) === COLON &&
          text.charCodeAt(p + 1) === 97 &&
          text.charCodeAt(p + 2) === 116 &&
          text.charCodeAt(p + 3) === 97
        ) {
          const value = text.slice(text.charCodeAt(p + 5) === SPACE ? p + 6 : p + 5, e)
          if (this.hasData) {
            this.data = this.data + "\n" + value
          } else if (text.charCodeAt(e + 1) === LF) {
            // One `data` line and a blank line: the usual event, sent at once.
            this.emit(value)
            this.type = ""
            p = e + 2
            continue
          } else {
            this.data = value
            this.hasData = true
            this.mark = p
          }
        } else if (checkSize || text.charCodeAt(p) !== COLON) {
          this.line(text, p, e, checkSize)
        }
        p = e + 1
      }
    } else {
      let lf = text.indexOf("\n")
      while (p < length) {
        if (cr !== -1 && cr < p) cr = text.indexOf("\r", p)
        if (lf !== -1 && lf < p) lf = text.indexOf("\n", p)
        const e = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf)
        if (e === p) this.dispatch()
        else if (checkSize || text.charCodeAt(p) !== COLON) this.line(text, p, e, checkSize)
        p = e + 1
        if (e === cr && lf === p) p++
      }
    }
    if (!checkSize && this.hasData) this.dataBytes += this.dataBytesFrom(text, this.mark)
  }

  /** Interprets the non-empty line `text[s, e)`; a comment only has its size checked. */
  private line(text: string, s: number, e: number, checkSize: boolean): void {
    let lineBytes = 0
    if (checkSize) {
      lineBytes = utf8Length(text, s, e)
      if (this.dataBytes + lineBytes > this.maxEventSize) this.fail()
    }
    let colon = s
    while (colon < e && text.charCodeAt(colon) !== COLON) colon++
    let v = colon
    if (colon < e) {
      v = colon + 1
      if (v < e && text.charCodeAt(v) === SPACE) v++
    }
    switch (colon - s) {
      case 4: {
        if (!text.startsWith("data", s)) return
        const value = text.slice(v, e)
        if (this.hasData) {
          this.data = this.data + "\n" + value
        } else {
          this.data = value
          this.hasData = true
          this.mark = s
        }
        if (checkSize) this.dataBytes += lineBytes - (v - s)
        return
      }
      case 5: {
        if (text.startsWith("event", s)) this.type = text.slice(v, e)
        else if (text.startsWith("retry", s) && isDigits(text, v, e)) this.retry = Number(text.slice(v, e))
        return
      }
      case 2: {
        if (!text.startsWith("id", s)) return
        const value = text.slice(v, e)
        if (!value.includes("\0")) this.lastId = value
        return
      }
    }
  }

  /** UTF-8 bytes of the data values in the lines of `text` from `from` on. */
  private dataBytesFrom(text: string, from: number): number {
    let total = 0
    let p = from
    const length = text.length
    while (p < length) {
      let e = p
      let c = text.charCodeAt(e)
      while (c !== LF && c !== CR) c = text.charCodeAt(++e)
      const v = dataValueStart(text, p, e)
      if (v >= 0) total += utf8Length(text, v, e)
      p = e + 1
      if (c === CR && text.charCodeAt(p) === LF) p++
    }
    return total
  }

  private dispatch(): void {
    if (this.hasData) {
      this.emit(this.data)
      this.data = ""
      this.hasData = false
    }
    this.type = ""
    this.dataBytes = 0
    this.mark = -1
  }

  private emit(data: string): void {
    const event: Sse.SseEvent = {
      event: this.type === "" ? "message" : this.type,
      data,
      id: this.lastId,
      retry: this.retry
    }
    if (this.out === undefined) this.out = [event]
    else this.out.push(event)
  }
}

const BOM = [0xef, 0xbb, 0xbf]
const STREAM = { stream: true }

/** @internal */
export const makeDecoder = (options?: { readonly maxEventSize?: number | undefined }): Sse.Decoder =>
  new Decoder(options)

/** @internal */
export const decode =
  (options?: { readonly maxEventSize?: number | undefined }) =>
  <E, R>(self: Stream.Stream<Uint8Array, E, R>): Stream.Stream<Sse.SseEvent, E | DecodeError, R> =>
    // A decoder per run: the stream may be run more than once.
    Stream.pipeThroughChannel(
      self,
      Channel.suspend(() => decodeChannel<E>(new Decoder(options)))
    )

const decodeChannel = <E>(
  decoder: Decoder
): Channel.Channel<Chunk.Chunk<Sse.SseEvent>, Chunk.Chunk<Uint8Array>, E | DecodeError, E, unknown, unknown> => {
  const loop: Channel.Channel<
    Chunk.Chunk<Sse.SseEvent>,
    Chunk.Chunk<Uint8Array>,
    E | DecodeError,
    E,
    unknown,
    unknown
  > = Channel.readWith({
    // One synchronous batch per upstream read: its events leave as one Chunk.
    onInput: (input: Chunk.Chunk<Uint8Array>) => {
      try {
        for (const bytes of input) decoder.pushInto(bytes)
      } catch (error) {
        return failAfter(decoder, error)
      }
      const events = decoder.take()
      return events.length === 0 ? loop : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(events)), loop)
    },
    onFailure: (error: E) => Channel.fail(error),
    onDone: () => {
      try {
        decoder.endInto()
      } catch (error) {
        return failAfter(decoder, error)
      }
      const events = decoder.take()
      return events.length === 0 ? Channel.void : Channel.write(Chunk.unsafeFromArray(events))
    }
  })
  return loop
}

// The events completed before the failure are delivered first.
const failAfter = (decoder: Decoder, error: unknown) => {
  if (!(error instanceof DecodeError)) throw error
  const events = decoder.take()
  return events.length === 0
    ? Channel.fail(error)
    : Channel.zipRight(Channel.write(Chunk.unsafeFromArray(events)), Channel.fail(error))
}
