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

const DONE = "data: [DONE]\n\n"

/**
 * Turns batches of deltas into the text of `chat.completion.chunk` events.
 * One batch (one network read upstream) becomes one string, so that it
 * costs one write downstream; the fixed part of each event is built once.
 */
export const makeChunkEncoder = (meta: ReplyMeta, includeUsage: boolean) => {
  const head = `{"id":${JSON.stringify(meta.id)},"object":"chat.completion.chunk","created":${meta.created},"model":${JSON.stringify(meta.model)}`
  const choice = `data: ${head},"choices":[{"index":0,"delta":`
  let usage: Usage | undefined
  let started = false
  return {
    /** The events of one batch; the first batch opens with the assistant's role, as OpenAI does. */
    deltas: (batch: Chunk.Chunk<ChatDelta>): string => {
      let out = ""
      if (!started) {
        started = true
        out = `${choice}{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n`
      }
      for (const delta of batch) {
        if (delta.usage !== undefined) usage = delta.usage
        const finish = delta.finishReason === undefined ? "null" : JSON.stringify(delta.finishReason)
        if (delta.content !== "") {
          out += `${choice}{"content":${JSON.stringify(delta.content)}},"logprobs":null,"finish_reason":${finish}}]}\n\n`
        } else if (delta.finishReason !== undefined) {
          out += `${choice}{},"logprobs":null,"finish_reason":${finish}}]}\n\n`
        }
      }
      return out
    },
    /** The usage chunk (when asked for and given) and `[DONE]`. */
    end: (): string =>
      includeUsage && usage !== undefined
        ? `data: ${head},"choices":[],"usage":${JSON.stringify(usage)}}\n\n${DONE}`
        : DONE,
    /** A fault after the first delta: an SSE `error` event in OpenAI's error shape; no `[DONE]` follows. */
    error: (error: ApiError): string => `event: error\ndata: ${JSON.stringify(error.body)}\n\n`
  }
}
