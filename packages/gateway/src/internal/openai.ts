import { Chat, type ChatDelta, type EasyChatError, Errors } from "@easychat/core"
import type * as Chunk from "effect/Chunk"
import { redact } from "./auth.js"

/** OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`. */
export interface ErrorBody {
  readonly error: {
    readonly message: string
    readonly type: string
    readonly param: string | null
    readonly code: string | null
  }
}

/** An error the gateway answers with: an HTTP status and OpenAI's error body. */
export interface ApiError {
  readonly status: number
  readonly body: ErrorBody
  readonly headers?: Readonly<Record<string, string>>
}

export const apiError = (
  status: number,
  type: string,
  code: string | null,
  message: string,
  extra: { readonly param?: string; readonly headers?: Readonly<Record<string, string>> } = {}
): ApiError => ({
  status,
  body: { error: { message, type, param: extra.param ?? null, code } },
  ...(extra.headers === undefined ? {} : { headers: extra.headers })
})

// The pool already failed over: a client retrying at once would only repeat that work.
const noRetry = { "x-should-retry": "false" }

/**
 * The status and body for an easychat error. `code` is the error's tag; the
 * message is core's, which never holds the pool's keys or cookie values, with
 * `secrets` (the client's, which core does not know) masked.
 */
export const fromEasyChatError = (error: EasyChatError, secrets: ReadonlyArray<string> = []): ApiError => {
  const message = redact(error.message, secrets)
  switch (error._tag) {
    case "InvalidRequest":
      return apiError(400, "invalid_request_error", error._tag, message, { param: error.field })
    case "HttpStatusError":
      // Only a request fault reaches the caller with its status: the upstream says the request is wrong.
      return Errors.isRequestFault(error)
        ? apiError(error.status, "invalid_request_error", error._tag, message)
        : apiError(502, "upstream_error", error._tag, message, { headers: noRetry })
    case "Timeout":
      return apiError(504, "timeout", error._tag, message, { headers: noRetry })
    case "AllServersFailed":
    case "UpstreamError":
    case "UnexpectedContentType":
    case "NoResponse":
    case "DecodeError":
    case "TransportError":
    case "StreamInterrupted":
      return apiError(502, "upstream_error", error._tag, message, { headers: noRetry })
  }
}

const DONE = Buffer.from("data: [DONE]\n\n")

// A batch's events are encoded here, then copied out at their exact length: one pass over the text
// (`Buffer.from` of a string measures its UTF-8 length twice, then writes it), about 30% less per batch.
const encoder = new TextEncoder()
let scratch: Buffer | undefined
const SCRATCH_BYTES = 128 * 1024

/** `text` as UTF-8, in a buffer of its own. */
const utf8 = (text: string): Uint8Array => {
  scratch ??= Buffer.allocUnsafeSlow(SCRATCH_BYTES)
  const { read, written } = encoder.encodeInto(text, scratch)
  // Larger than the scratch buffer (a read of a very large chunk): encoded on its own.
  return read === text.length ? Buffer.from(scratch.subarray(0, written)) : Buffer.from(text, "utf8")
}

/**
 * Re-frames the upstream's chunks as SSE: `data: <chunk>`, the chunk's text
 * exactly as the upstream sent it, once per chunk (the deltas of a chunk with
 * several choices share it). One batch (one network read upstream) becomes
 * one buffer, so that it costs one write downstream.
 */
export const makeChunkEvents = () => {
  let previous: ChatDelta | undefined
  let previousText = ""
  return {
    /** The events of one batch of deltas (`everyChunk`: every chunk gave at least one). */
    deltas: (batch: Chunk.Chunk<ChatDelta>): Uint8Array => {
      // One string, encoded once: for chunks of a few hundred characters the native
      // encoder beats writing each piece (a JS loop, or a native call per piece).
      let events = ""
      for (const delta of batch) {
        const text = Chat.chunkText(delta)
        // Consecutive deltas of one chunk share its text and its object; two chunks with
        // the same text (the same token twice) are told apart by their objects.
        if (previous !== undefined && text === previousText && delta.chunk === previous.chunk) continue
        previous = delta
        previousText = text
        // A chunk the upstream spread over several `data:` lines comes joined by "\n": it goes back the same way.
        events += `data: ${text.includes("\n") ? text.replaceAll("\n", "\ndata: ") : text}\n\n`
      }
      return utf8(events)
    },
    end: (): Uint8Array => DONE,
    /** A fault after the first delta: an SSE `error` event in OpenAI's error shape; no `[DONE]` follows. */
    error: (error: ApiError): Uint8Array => Buffer.from(`event: error\ndata: ${JSON.stringify(error.body)}\n\n`)
  }
}
