import type { ChatDelta, Usage } from "../Chat.js"
import { DecodeError, UpstreamError } from "../Errors.js"
import type { SseEvent } from "../Sse.js"

/** At most this many characters of a server's body travel in an error message. */
export const EXCERPT = 200

export const excerpt = (text: string, secrets: ReadonlyArray<string> = []): string => {
  let out = text.replace(/\s+/g, " ").trim()
  for (const secret of secrets) if (secret.length > 0) out = out.split(secret).join("[redacted]")
  return out.length > EXCERPT ? `${out.slice(0, EXCERPT)}…` : out
}

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * The server's own words in an error body: OpenAI's `error.message`,
 * NextChat's `msg`, or a plain `message` / `error` string.
 */
export const serverMessage = (body: unknown): string | undefined => {
  if (!isObject(body)) return undefined
  const error = body.error
  if (isObject(error) && typeof error.message === "string") return error.message
  if (typeof body.msg === "string") return body.msg
  if (typeof body.message === "string") return body.message
  if (typeof error === "string") return error
  return undefined
}

const codeOf = (body: unknown): string | undefined => {
  if (!isObject(body)) return undefined
  const error = body.error
  if (isObject(error) && (typeof error.code === "string" || typeof error.type === "string")) {
    return String(error.code ?? error.type)
  }
  return undefined
}

/**
 * A real NextChat whose own upstream is down answers 200 with a JSON string
 * holding a markdown-fenced error (`"```json\n{\"cause\": {...}}\n```"`).
 */
export const upstreamFromString = (server: string, text: string, secrets: ReadonlyArray<string>): UpstreamError => {
  const unfenced = text
    .trim()
    .replace(/^```[a-z]*\s*/i, "")
    .replace(/\s*```$/, "")
  try {
    const inner: unknown = JSON.parse(unfenced)
    if (isObject(inner)) {
      const cause = isObject(inner.cause) ? inner.cause : inner
      const code = typeof cause.code === "string" ? cause.code : undefined
      const message = serverMessage(inner) ?? (typeof cause.message === "string" ? cause.message : undefined)
      const syscall = typeof cause.syscall === "string" ? `${cause.syscall} ` : ""
      const detail = message ?? (code !== undefined ? `the mirror's upstream failed: ${syscall}${code}` : unfenced)
      return new UpstreamError({ server, detail: excerpt(detail, secrets), ...(code ? { code } : {}) })
    }
  } catch {
    // Not JSON inside the fence: the text itself is the message.
  }
  return new UpstreamError({ server, detail: excerpt(unfenced, secrets) })
}

/** An `{"error": ...}` body, or `undefined` when the body is not an error. */
export const upstreamFromBody = (
  server: string,
  body: unknown,
  secrets: ReadonlyArray<string>
): UpstreamError | undefined => {
  if (typeof body === "string") return upstreamFromString(server, body, secrets)
  if (!isObject(body) || body.error === undefined || body.error === null || body.error === false) return undefined
  const code = codeOf(body)
  const detail = excerpt(serverMessage(body) ?? JSON.stringify(body.error), secrets)
  return new UpstreamError({ server, detail, ...(code ? { code } : {}) })
}

export const parseJson = (server: string, text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    throw new DecodeError({ reason: "InvalidJson", detail: `not JSON: ${excerpt(text)}`, server })
  }
}

// The usual chunk, `{..., "choices": [{..., "delta": {..., "content": "text", ...}, ...}], ...}`
// with no error, no usage, no finish reason and only plain values beside, is
// read by one regular expression: about 3× faster than JSON.parse on such a
// chunk, and it builds no objects. The expression only matches valid JSON
// (the grammar of RFC 8259 for strings, numbers and whitespace; keys without
// escapes; each special key at most once), so what it returns is what
// JSON.parse would give; anything else goes to JSON.parse.
const WS = "[ \\t\\n\\r]*"
const CHAR = '[^"\\\\\\x00-\\x1f]'
const STRING = `"${CHAR}*(?:\\\\(?:["\\\\/bfnrt]|u[0-9a-fA-F]{4})${CHAR}*)*"`
const SCALAR = `(?:${STRING}|-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)`
/** A key other than `special`, without escapes, and a scalar value. */
const plain = (special: string) => `(?:(?!"(?:${special})")"${CHAR}*"${WS}:${WS}${SCALAR})`
/** `items` with `special` exactly once among them. */
const around = (item: string, special: string) => `(?:${item}${WS},${WS})*${special}(?:${WS},${WS}${item})*`
const DELTA = `\\{${WS}${around(plain("content"), `"content"${WS}:${WS}(${STRING})`)}${WS}\\}`
const CHOICE = `\\{${WS}${around(`(?:${plain("delta|finish_reason")}|"finish_reason"${WS}:${WS}null)`, `"delta"${WS}:${WS}${DELTA}`)}${WS}\\}`
const USUAL_CHUNK = new RegExp(
  `^${WS}\\{${WS}${around(
    `(?:${plain("choices|error|usage")}|"(?:error|usage)"${WS}:${WS}null)`,
    `"choices"${WS}:${WS}\\[${WS}${CHOICE}${WS}\\]`
  )}${WS}\\}${WS}$`
)
// Longer chunks go to JSON.parse: the per-call saving no longer matters, and
// the expression's backtracking state grows with the number of escapes.
const USUAL_CHUNK_CHARS = 4096

/** The content of a usual chunk (see USUAL_CHUNK), or `undefined` when `data` is not one. */
export const usualContent = (data: string): string | undefined => {
  if (data.length > USUAL_CHUNK_CHARS) return undefined
  const match = USUAL_CHUNK.exec(data)
  if (match === null) return undefined
  const text = match[1]!
  return text.includes("\\") ? (JSON.parse(text) as string) : text.slice(1, -1)
}

/**
 * A delta, made by a constructor rather than an object literal. V8 may decide
 * from a literal's allocation site to allocate all its objects in old space
 * (it did in about half of the processes, after a short reply whose deltas
 * were all still queued at a scavenge); each old delta then keeps its young
 * text alive until the next full GC, and a long Effect `Stream` grew by
 * 60–80 MiB. Objects made by `new` are never allocated that way. The
 * prototype is `Object.prototype`: a delta stays a plain object to its users
 * (`toStrictEqual`, `isPlainObject`, what `console.log` prints).
 */
const Delta = function (this: { content: string; server: string }, content: string, server: string) {
  this.content = content
  this.server = server
} as unknown as new (
  content: string,
  server: string
) => { readonly content: string; readonly server: string; finishReason?: string; usage?: Usage }
Delta.prototype = Object.prototype
// One delta for the life of the module, so that a full GC between two replies
// does not collect the deltas' hidden class and with it the code optimized for
// it (see the decoder's `resident` in sse.ts, and why it is exported).
/** @internal */
export const resident = new Delta("", "")

/** `[DONE]`: the end of the reply. */
export const DONE = "[DONE]"

/** What one SSE event means for the reply: the end, a delta (no wrapper: one object per event is enough), or nothing. */
export type Step = typeof DONE | ChatDelta | undefined

/**
 * Turns one SSE event into a step: `[DONE]`, a delta with text, finish reason
 * or usage, or nothing (role-only and null-content chunks carry no text).
 * Throws the typed error for errors sent inside the stream and for chunks
 * that are not JSON objects.
 */
export const stepOf = (server: string, event: SseEvent, secrets: ReadonlyArray<string>): Step => {
  const data = event.data
  if (data === "[DONE]") return DONE
  if (event.event === "error") {
    let body: unknown = data
    try {
      body = JSON.parse(data)
    } catch {
      // A plain-text error event.
    }
    throw (
      upstreamFromBody(server, isObject(body) && body.error === undefined ? { error: body } : body, secrets) ??
      new UpstreamError({ server, detail: excerpt(data, secrets) })
    )
  }
  const usual = usualContent(data)
  if (usual !== undefined) return usual === "" ? undefined : new Delta(usual, server)
  const chunk = parseJson(server, data)
  if (!isObject(chunk)) {
    throw new DecodeError({ reason: "InvalidChunk", detail: `a chunk must be a JSON object: ${excerpt(data)}`, server })
  }
  const upstream = upstreamFromBody(server, chunk, secrets)
  if (upstream !== undefined) throw upstream
  const choices = chunk.choices
  const usage = isObject(chunk.usage) ? (chunk.usage as Usage) : undefined
  if (choices !== undefined && !Array.isArray(choices)) {
    throw new DecodeError({ reason: "InvalidChunk", detail: "choices must be an array", server })
  }
  const choice: unknown = choices?.[0]
  const delta = isObject(choice) && isObject(choice.delta) ? choice.delta : undefined
  const content = typeof delta?.content === "string" ? delta.content : ""
  const finishReason = isObject(choice) && typeof choice.finish_reason === "string" ? choice.finish_reason : undefined
  if (content === "" && finishReason === undefined && usage === undefined) return undefined
  const out = new Delta(content, server)
  if (finishReason !== undefined) out.finishReason = finishReason
  if (usage !== undefined) out.usage = usage
  return out
}

/** The content of a whole `chat.completion` reply. */
export const completionOf = (
  server: string,
  body: unknown,
  secrets: ReadonlyArray<string>
):
  | {
      readonly _tag: "Reply"
      content: string
      finishReason: string | undefined
      usage: Usage | undefined
      model: string | undefined
    }
  | { readonly _tag: "Error"; error: UpstreamError }
  | { readonly _tag: "NoChoices" } => {
  const error = upstreamFromBody(server, body, secrets)
  if (error !== undefined) return { _tag: "Error", error }
  if (!isObject(body) || !Array.isArray(body.choices) || body.choices.length === 0) return { _tag: "NoChoices" }
  const choice: unknown = body.choices[0]
  const message = isObject(choice) && isObject(choice.message) ? choice.message : undefined
  return {
    _tag: "Reply",
    content: typeof message?.content === "string" ? message.content : "",
    finishReason: isObject(choice) && typeof choice.finish_reason === "string" ? choice.finish_reason : undefined,
    usage: isObject(body.usage) ? (body.usage as Usage) : undefined,
    model: typeof body.model === "string" ? body.model : undefined
  }
}
