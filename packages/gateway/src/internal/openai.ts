import type { ChatCompletion, ChatDelta, EasyChatError, Usage } from "@easychat/core"
import type * as Chunk from "effect/Chunk"

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
 * message is core's, which never holds a key or a cookie value.
 */
export const fromEasyChatError = (error: EasyChatError): ApiError => {
  switch (error._tag) {
    case "InvalidRequest":
      return apiError(400, "invalid_request_error", error._tag, error.message, { param: error.field })
    case "HttpStatusError":
      // Only a request fault (400, 422) reaches the caller directly: the upstream says the request is wrong.
      return error.status === 400 || error.status === 422
        ? apiError(error.status, "invalid_request_error", error._tag, error.message)
        : apiError(502, "upstream_error", error._tag, error.message, { headers: noRetry })
    case "Timeout":
      return apiError(504, "timeout", error._tag, error.message, { headers: noRetry })
    case "AllServersFailed":
    case "UpstreamError":
    case "UnexpectedContentType":
    case "NoResponse":
    case "DecodeError":
    case "TransportError":
    case "StreamInterrupted":
      return apiError(502, "upstream_error", error._tag, error.message, { headers: noRetry })
  }
}

export interface ReplyMeta {
  readonly id: string
  /** Unix seconds. */
  readonly created: number
  readonly model: string
}

/** A whole reply as a `chat.completion` object. */
export const completionBody = (meta: ReplyMeta, reply: ChatCompletion): Record<string, unknown> => ({
  id: meta.id,
  object: "chat.completion",
  created: meta.created,
  model: reply.model ?? meta.model,
  choices: [
    {
      index: 0,
      message: { role: "assistant", content: reply.content, refusal: null },
      logprobs: null,
      finish_reason: reply.finishReason ?? "stop"
    }
  ],
  ...(reply.usage === undefined ? {} : { usage: reply.usage })
})

const utf8 = new TextEncoder()
const DONE = utf8.encode("data: [DONE]\n\n")

/**
 * A growing byte buffer. Writing each small piece straight in as UTF-8 costs
 * less than joining a batch into one string and encoding that: the joined
 * string must be flattened first, and mixed text makes it a two-byte string.
 */
class Bytes {
  private buf: Uint8Array
  private at = 0
  constructor(size: number) {
    this.buf = new Uint8Array(size)
  }
  private room(n: number) {
    if (this.at + n <= this.buf.length) return
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.at + n))
    bigger.set(this.buf.subarray(0, this.at))
    this.buf = bigger
  }
  bytes(part: Uint8Array) {
    this.room(part.length)
    this.buf.set(part, this.at)
    this.at += part.length
  }
  /** UTF-8 as `TextEncoder` writes it (a lone surrogate becomes U+FFFD); a JS loop beats a native call on short text. */
  text(s: string) {
    this.room(s.length * 3)
    const buf = this.buf
    let at = this.at
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i)
      if (c < 0x80) {
        buf[at++] = c
        continue
      }
      if (c < 0x800) {
        buf[at++] = 0xc0 | (c >> 6)
        buf[at++] = 0x80 | (c & 0x3f)
        continue
      }
      if (c >= 0xd800 && c < 0xe000) {
        const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0
        if (c < 0xdc00 && next >= 0xdc00 && next < 0xe000) {
          c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00)
          i++
          buf[at++] = 0xf0 | (c >> 18)
          buf[at++] = 0x80 | ((c >> 12) & 0x3f)
          buf[at++] = 0x80 | ((c >> 6) & 0x3f)
          buf[at++] = 0x80 | (c & 0x3f)
          continue
        }
        c = 0xfffd
      }
      buf[at++] = 0xe0 | (c >> 12)
      buf[at++] = 0x80 | ((c >> 6) & 0x3f)
      buf[at++] = 0x80 | (c & 0x3f)
    }
    this.at = at
  }
  done(): Uint8Array {
    return this.buf.subarray(0, this.at)
  }
}

/**
 * Turns batches of deltas into the bytes of `chat.completion.chunk` events.
 * One batch (one network read upstream) becomes one buffer, so that it
 * costs one write downstream; the fixed parts of each event are encoded once.
 */
export const makeChunkEncoder = (meta: ReplyMeta, includeUsage: boolean) => {
  const head = `{"id":${JSON.stringify(meta.id)},"object":"chat.completion.chunk","created":${meta.created},"model":${JSON.stringify(meta.model)}`
  const choice = `data: ${head},"choices":[{"index":0,"delta":`
  const role = utf8.encode(`${choice}{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n`)
  const content = utf8.encode(`${choice}{"content":`)
  // The delta object is closed by what follows, as after a content.
  const empty = utf8.encode(`${choice}{`)
  const finishAt = utf8.encode(`},"logprobs":null,"finish_reason":`)
  const tail = utf8.encode("}]}\n\n")
  const unfinished = utf8.encode(`},"logprobs":null,"finish_reason":null}]}\n\n`)
  let usage: Usage | undefined
  let started = false
  return {
    /** The events of one batch; the first batch opens with the assistant's role, as OpenAI does. */
    deltas: (batch: Chunk.Chunk<ChatDelta>): Uint8Array => {
      // Room for a batch of short deltas at once; it grows for longer ones.
      const out = new Bytes(batch.length * (content.length + unfinished.length + 16) + (started ? 0 : role.length))
      if (!started) {
        started = true
        out.bytes(role)
      }
      for (const delta of batch) {
        if (delta.usage !== undefined) usage = delta.usage
        if (delta.content !== "") {
          out.bytes(content)
          out.text(JSON.stringify(delta.content))
        } else if (delta.finishReason !== undefined) {
          out.bytes(empty)
        } else continue
        if (delta.finishReason === undefined) out.bytes(unfinished)
        else {
          out.bytes(finishAt)
          out.text(JSON.stringify(delta.finishReason))
          out.bytes(tail)
        }
      }
      return out.done()
    },
    /** The usage chunk (when asked for and given) and `[DONE]`. */
    end: (): Uint8Array =>
      includeUsage && usage !== undefined
        ? utf8.encode(`data: ${head},"choices":[],"usage":${JSON.stringify(usage)}}\n\ndata: [DONE]\n\n`)
        : DONE,
    /** A fault after the first delta: an SSE `error` event in OpenAI's error shape; no `[DONE]` follows. */
    error: (error: ApiError): Uint8Array => utf8.encode(`event: error\ndata: ${JSON.stringify(error.body)}\n\n`)
  }
}
