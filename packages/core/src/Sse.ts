/**
 * Server-sent events: an incremental decoder of `text/event-stream` bytes,
 * following WHATWG HTML "Interpreting an event stream", as a plain object and
 * as a `Stream` combinator.
 *
 * Beyond the standard: at the end of input an unterminated last event is
 * still dispatched (mirrors often drop the final blank line), each event
 * reports the most recent valid `retry` value, and an event larger than
 * `maxEventSize` fails with `DecodeError` (reason `EventTooLarge`).
 *
 * @since 0.1.0
 */
import type * as Stream from "effect/Stream"
import type { DecodeError } from "./Errors.js"
import * as internal from "./internal/sse.js"

/**
 * One dispatched event.
 *
 * - `event`: the `event` field, `"message"` when the event had none.
 * - `data`: the `data` lines joined with `"\n"`.
 * - `id`: the last event ID, which persists across events; `undefined` until
 *   an `id` field (without NUL) is seen.
 * - `retry`: the most recent valid `retry` field (ASCII digits only), which
 *   persists across events; `undefined` until one is seen.
 *
 * @since 0.1.0
 * @category models
 */
export interface SseEvent {
  readonly event: string
  readonly data: string
  readonly id: string | undefined
  readonly retry: number | undefined
}

/**
 * An incremental decoder: feed it the bytes of one stream as they arrive, in
 * chunks of any size.
 *
 * - `push` returns every event its chunk completed. It throws `DecodeError`
 *   (reason `EventTooLarge`) as soon as an event passes `maxEventSize`, even
 *   in the middle of a line; the decoder then keeps failing.
 * - `end` flushes at the end of input: a pending unterminated line is
 *   interpreted as a line, then a pending event with data is dispatched.
 *
 * @since 0.1.0
 * @category models
 */
export interface Decoder {
  push(chunk: Uint8Array): ReadonlyArray<SseEvent>
  end(): ReadonlyArray<SseEvent>
}

/**
 * Options of a decoder.
 *
 * `maxEventSize` (default 1 MiB): the largest event, in bytes: the UTF-8 bytes
 * of its data values plus those of the line being read.
 *
 * @since 0.1.0
 * @category models
 */
export interface DecoderOptions {
  readonly maxEventSize?: number | undefined
}

/**
 * The default `maxEventSize`: 1 MiB.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultMaxEventSize: number = internal.defaultMaxEventSize

/**
 * Creates a decoder for one stream.
 *
 * @example
 * ```ts
 * import { Sse } from "@easychat/core"
 *
 * const decoder = Sse.makeDecoder()
 * decoder.push(new TextEncoder().encode("data: hel"))   // []
 * decoder.push(new TextEncoder().encode("lo\n\n"))      // [{ event: "message", data: "hello", ... }]
 * decoder.end()                                         // []
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeDecoder: (options?: DecoderOptions) => Decoder = internal.makeDecoder

/**
 * Decodes a stream of bytes into events. Each upstream chunk is decoded in one
 * synchronous batch and its events are emitted as one chunk. An event larger
 * than `maxEventSize` fails the stream with `DecodeError`, after the events
 * before it.
 *
 * @since 0.1.0
 * @category combinators
 */
export const decode: (
  options?: DecoderOptions
) => <E, R>(self: Stream.Stream<Uint8Array, E, R>) => Stream.Stream<SseEvent, E | DecodeError, R> = internal.decode
