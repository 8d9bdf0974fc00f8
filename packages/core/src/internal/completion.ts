import type { ChatChoice, ChatCompletion, ToolCall, Usage } from "../Chat.js"
import { DecodeError, type UpstreamError } from "../Errors.js"
import { nonEmpty } from "./delta.js"
import { excerpt, isObject, upstreamFromBody } from "./upstream.js"

/**
 * The deepest a whole reply may nest. V8's `JSON.parse` takes any depth, but
 * `JSON.stringify` (a gateway passing the reply on, a log) overflows its stack
 * at a few thousand levels; a real reply nests a dozen.
 */
export const MAX_REPLY_DEPTH = 256

/** Whether JSON text nests objects and arrays deeper than `limit` (one pass; brackets in strings do not count). */
export const nestsDeeperThan = (text: string, limit: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++
      else if (c === 0x22) inString = false
    } else if (c === 0x22) inString = true
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true
    } else if (c === 0x7d || c === 0x5d) depth--
  }
  return false
}

export const parseJson = (server: string, text: string, secrets: ReadonlyArray<string>): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    throw new DecodeError({ reason: "InvalidJson", detail: `not JSON: ${excerpt(text, secrets)}`, server })
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

/** A whole tool call; the server's other fields (Gemini's `extra_content`, ...) are kept, to be sent back. */
const toolCallOf = (call: unknown): ToolCall => {
  const { index: _, ...c } = isObject(call) ? call : {}
  const fn = isObject(c.function) ? c.function : {}
  return {
    ...c,
    id: typeof c.id === "string" ? c.id : "",
    type: typeof c.type === "string" ? c.type : "function",
    function: {
      ...fn,
      name: typeof fn.name === "string" ? fn.name : "",
      arguments:
        typeof fn.arguments === "string" ? fn.arguments : fn.arguments === undefined ? "" : JSON.stringify(fn.arguments)
    }
  }
}

/** One choice of a whole reply. */
const choiceOf = (choice: unknown, position: number): ChatChoice => {
  const c = isObject(choice) ? choice : {}
  const message = isObject(c.message) ? c.message : {}
  const out: Mutable<ChatChoice> = {
    index: Number.isInteger(c.index) ? (c.index as number) : position,
    content: typeof message.content === "string" ? message.content : "",
    finishReason: typeof c.finish_reason === "string" ? c.finish_reason : undefined
  }
  const reasoning = nonEmpty(message.reasoning_content) ? message.reasoning_content : message.reasoning
  if (nonEmpty(reasoning)) out.reasoning = reasoning
  if (Array.isArray(message.tool_calls) && message.tool_calls.length > 0) {
    out.toolCalls = message.tool_calls.map(toolCallOf)
  }
  if (isObject(message.function_call)) {
    const call = toolCallOf({ function: message.function_call })
    out.functionCall = call.function
    out.toolCalls ??= [call]
  }
  if (nonEmpty(message.refusal)) out.refusal = message.refusal
  if (c.logprobs !== undefined && c.logprobs !== null) out.logprobs = c.logprobs
  return out
}

/**
 * A `chat.completion` body as a `ChatCompletion`: every choice in index
 * order, choice 0's fields on top, the metadata, and the body itself as `raw`.
 */
export const replyOf = (server: string, body: unknown): ChatCompletion => {
  const b = isObject(body) ? body : {}
  const choices = (Array.isArray(b.choices) ? b.choices : []).map(choiceOf).sort((x, y) => x.index - y.index)
  const top = choices.find((c) => c.index === 0) ?? choices[0]
  const { index: _, ...fields } = top ?? { index: 0, content: "", finishReason: undefined }
  const out: Mutable<ChatCompletion> = {
    ...fields,
    choices,
    usage: isObject(b.usage) ? (b.usage as Usage) : undefined,
    model: typeof b.model === "string" ? b.model : undefined,
    raw: body,
    server
  }
  if (typeof b.id === "string") out.id = b.id
  if (typeof b.created === "number") out.created = b.created
  if (typeof b.system_fingerprint === "string") out.systemFingerprint = b.system_fingerprint
  return out
}

/** A whole `chat.completion` reply: the reply, the error it holds, or no choices at all. */
export const completionOf = (
  server: string,
  body: unknown,
  secrets: ReadonlyArray<string>
):
  | { readonly _tag: "Reply"; readonly reply: ChatCompletion }
  | { readonly _tag: "Error"; readonly error: UpstreamError }
  | { readonly _tag: "NoChoices" } => {
  const error = upstreamFromBody(server, body, secrets)
  if (error !== undefined) return { _tag: "Error", error }
  if (!isObject(body) || !Array.isArray(body.choices) || body.choices.length === 0) return { _tag: "NoChoices" }
  return { _tag: "Reply", reply: replyOf(server, body) }
}
