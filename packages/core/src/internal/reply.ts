import type { ChatChoice, ChatCompletion, ChatDelta, ToolCall, ToolCallDelta, Usage } from "../Chat.js"
import { DecodeError, UpstreamError } from "../Errors.js"
import type { SseEvent } from "../Sse.js"
import { redact } from "./redact.js"

/** At most this many characters of a server's body travel in an error message. */
export const EXCERPT = 200

/**
 * A short, one-line, redacted excerpt of a server's text. Secrets go before
 * and after whitespace is folded (folding can join a secret), and before
 * the cut (which only removes text).
 */
export const excerpt = (text: string, secrets: ReadonlyArray<string> = []): string => {
  const out = redact(redact(text, secrets).replace(/\s+/g, " ").trim(), secrets)
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

// The usual chunk, `{..., "choices": [{..., "delta": {..., "content": "text", ...}, ...}], ...}`
// with no error, no usage, no finish reason, choice index 0 and only plain values beside, is
// read by one regular expression: about 3× faster than JSON.parse on such a
// chunk, and it builds no objects. So is the usual reasoning chunk, the same
// with `"reasoning_content": "text"` (DeepSeek, vLLM) or `"reasoning": "text"`
// (Ollama, OpenRouter) instead, its content `null` or `""`. The expression
// only matches valid JSON (the grammar of RFC 8259 for strings, numbers and
// whitespace; keys without escapes; each special key at most once), so what
// it returns is what JSON.parse would give; anything else goes to JSON.parse.
// Fields that carry something besides the one text (another text, tool calls,
// a refusal, logprobs, another choice) are special: they may only be `null` here.
const WS = "[ \\t\\n\\r]*"
const CHAR = '[^"\\\\\\x00-\\x1f]'
const STRING = `"${CHAR}*(?:\\\\(?:["\\\\/bfnrt]|u[0-9a-fA-F]{4})${CHAR}*)*"`
const SCALAR = `(?:${STRING}|-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)`
/** A key other than `special`, without escapes, and a scalar value. */
const plain = (special: string) => `(?:(?!"(?:${special})")"${CHAR}*"${WS}:${WS}${SCALAR})`
/** `items` with `special` exactly once among them. */
const around = (item: string, special: string) => `(?:${item}${WS},${WS})*${special}(?:${WS},${WS}${item})*`
/** Keys that must be `null` for the usual chunk (`names` joined by `|`). */
const nullOnly = (names: string) => `"(?:${names})"${WS}:${WS}null`
const KEYS = [
  "content",
  "reasoning_content",
  "reasoning",
  "reasoning_details",
  "refusal",
  "tool_calls",
  "function_call"
]
/** A delta whose one text is `key`'s (captured); every other special key `null`, and a reasoning chunk's content `""` too. */
const textDelta = (key: string) => {
  const others = KEYS.filter((k) => k !== key).join("|")
  const empty = key === "content" ? "" : `|"content"${WS}:${WS}""`
  return `\\{${WS}${around(`(?:${plain(KEYS.join("|"))}|${nullOnly(others)}${empty})`, `"${key}"${WS}:${WS}(${STRING})`)}${WS}\\}`
}
const DELTA = `(?:${textDelta("content")}|${textDelta("reasoning_content")}|${textDelta("reasoning")})`
const CHOICE = `\\{${WS}${around(
  `(?:${plain("delta|finish_reason|index|logprobs")}|${nullOnly("finish_reason|logprobs")}|"index"${WS}:${WS}0)`,
  `"delta"${WS}:${WS}${DELTA}`
)}${WS}\\}`
const USUAL_CHUNK = new RegExp(
  `^${WS}\\{${WS}${around(
    `(?:${plain("choices|error|usage")}|"(?:error|usage)"${WS}:${WS}null)`,
    `"choices"${WS}:${WS}\\[${WS}${CHOICE}${WS}\\]`
  )}${WS}\\}${WS}$`
)
// What any usual chunk holds: its text key with a string value. After a chunk
// that was not usual (a stream of tool-call fragments comes in runs), a chunk
// without it skips the expression, which would fail late, after backtracking
// through every level; in a run of usual chunks the check is not made (it
// costs about half as much as the expression's match).
const TEXT_KEY = new RegExp(`"(?:content|reasoning_content|reasoning)"${WS}:${WS}"`)
let lastWasUsual = true
// Longer chunks go to JSON.parse: the per-call saving no longer matters, and
// the expression's backtracking state grows with the number of escapes.
const USUAL_CHUNK_CHARS = 4096

/** The match of a usual chunk: group 1 its content, or 2 its `reasoning_content`, or 3 its `reasoning`; `null` when not one. */
const matchUsual = (data: string): RegExpExecArray | null => {
  if (data.length > USUAL_CHUNK_CHARS || (!lastWasUsual && !TEXT_KEY.test(data))) return null
  const match = USUAL_CHUNK.exec(data)
  lastWasUsual = match !== null
  return match
}

/** A JSON string literal's value (without JSON.parse when it has no escape). */
const stringOf = (literal: string): string =>
  literal.includes("\\") ? (JSON.parse(literal) as string) : literal.slice(1, -1)

/** The content of a usual text chunk (see USUAL_CHUNK), or `undefined` when `data` is not one. */
export const usualContent = (data: string): string | undefined => {
  const match = matchUsual(data)
  return match === null || match[1] === undefined ? undefined : stringOf(match[1])
}

/** The reasoning of a usual reasoning chunk (see USUAL_CHUNK), or `undefined` when `data` is not one. */
export const usualReasoning = (data: string): string | undefined => {
  const match = matchUsual(data)
  const literal = match?.[2] ?? match?.[3]
  return literal === undefined ? undefined : stringOf(literal)
}

type Chunk = Readonly<Record<string, unknown>>

/**
 * A delta, made by `new` rather than as an object literal. V8 may decide
 * from a literal's allocation site to allocate all its objects in old space
 * (it did in about half of the processes, after a short reply whose deltas
 * were all still queued at a scavenge); each old delta then keeps its young
 * text alive until the next full GC, and a long Effect `Stream` grew by
 * 60–80 MiB. Objects made by `new` are never allocated that way. The chunk
 * is kept as its text and parsed when first read: the usual chunk never is.
 */
export class Delta implements ChatDelta {
  declare reasoning?: string
  declare reasoningDetails?: ReadonlyArray<unknown>
  declare toolCalls?: ReadonlyArray<ToolCallDelta>
  declare functionCall?: { readonly name?: string; readonly arguments?: string }
  declare refusal?: string
  declare logprobs?: unknown
  declare finishReason?: string
  declare usage?: Usage
  readonly choice: number
  readonly content: string
  readonly server: string
  readonly #data: string
  #chunk: Chunk | undefined
  /** Whether the piece carries a field easychat has no name for (`audio`, `annotations`, ...). */
  #other = false
  constructor(choice: number, content: string, server: string, data: string, chunk: Chunk | undefined) {
    this.choice = choice
    this.content = content
    this.server = server
    this.#data = data
    this.#chunk = chunk
  }
  /** The server's chunk object, parsed from its text when first read. */
  get chunk(): Chunk {
    if (this.#chunk === undefined) this.#chunk = JSON.parse(this.#data) as Chunk
    return this.#chunk
  }
  /** The chunk's JSON text, as the server sent it. */
  static text(delta: ChatDelta): string {
    return delta instanceof Delta ? delta.#data : JSON.stringify(delta.chunk)
  }
  static carriesOther(delta: ChatDelta): boolean {
    return delta instanceof Delta && delta.#other
  }
  static markOther(delta: Delta): void {
    delta.#other = true
  }
}
// One delta for the life of the module, so that a full GC between two replies
// does not collect the deltas' hidden class and with it the code optimized for
// it (see the decoder's `resident` in sse.ts, and why it is exported).
/** @internal */
export const resident = new Delta(0, "", "", "{}", undefined)

/**
 * Whether a delta is a piece of the reply: text, reasoning, tool calls, a
 * refusal, logprobs, a finish reason, or a field easychat has no name for.
 * Such a delta is the first token, resets the idle limit and ends failover.
 */
export const isActivity = (d: ChatDelta): boolean =>
  d.content !== "" ||
  d.finishReason !== undefined ||
  d.reasoning !== undefined ||
  d.toolCalls !== undefined ||
  d.refusal !== undefined ||
  d.logprobs !== undefined ||
  d.reasoningDetails !== undefined ||
  Delta.carriesOther(d)

/** A value that says something: not `null`, and not an empty string, array or object. */
const says = (u: unknown): boolean =>
  u !== null &&
  u !== undefined &&
  u !== "" &&
  !(Array.isArray(u) && u.length === 0) &&
  !(typeof u === "object" && !Array.isArray(u) && Object.keys(u as object).length === 0)

/** The fields of a choice and of its delta that `ChatDelta` names (or that carry nothing, as `role`). */
const NAMED_CHOICE = new Set(["index", "delta", "finish_reason", "logprobs"])
const NAMED_DELTA = new Set([
  "role",
  "content",
  "reasoning_content",
  "reasoning",
  "reasoning_details",
  "tool_calls",
  "function_call",
  "refusal"
])
const carriesOther = (fields: Record<string, unknown>, named: ReadonlySet<string>): boolean => {
  for (const key in fields) if (!named.has(key) && says(fields[key])) return true
  return false
}

/** `[DONE]`: the end of the reply. */
export const DONE = "[DONE]"

/**
 * What one SSE event means for the reply: the end, a delta (no wrapper: one
 * object per event is enough), the deltas of a chunk with several choices,
 * or nothing.
 */
export type Step = typeof DONE | Delta | Array<Delta> | undefined

const nonEmpty = (u: unknown): u is string => typeof u === "string" && u !== ""

/** Tool-call fragments as sent; one without an index (some servers) takes its position. */
const fragmentsOf = (calls: ReadonlyArray<unknown>): ReadonlyArray<ToolCallDelta> => {
  for (const call of calls) if (!isObject(call) || !Number.isInteger(call.index)) return calls.map(indexed)
  return calls as ReadonlyArray<ToolCallDelta>
}
const indexed = (call: unknown, position: number): ToolCallDelta =>
  isObject(call) && Number.isInteger(call.index)
    ? (call as unknown as ToolCallDelta)
    : ({ ...(isObject(call) ? call : {}), index: position } as ToolCallDelta)

/** The delta of one choice of a chunk, or `undefined` when it carries nothing. */
const choiceDelta = (server: string, chunk: Chunk, data: string, choice: Record<string, unknown>, position: number) => {
  const delta = isObject(choice.delta) ? choice.delta : undefined
  const index = Number.isInteger(choice.index) ? (choice.index as number) : position
  const out = new Delta(index, typeof delta?.content === "string" ? delta.content : "", server, data, chunk)
  if (delta !== undefined) {
    const reasoning = nonEmpty(delta.reasoning_content) ? delta.reasoning_content : delta.reasoning
    if (nonEmpty(reasoning)) out.reasoning = reasoning
    if (Array.isArray(delta.reasoning_details) && delta.reasoning_details.length > 0) {
      out.reasoningDetails = delta.reasoning_details
    }
    if (Array.isArray(delta.tool_calls) && delta.tool_calls.length > 0) out.toolCalls = fragmentsOf(delta.tool_calls)
    if (isObject(delta.function_call)) {
      out.functionCall = delta.function_call
      out.toolCalls ??= [{ index: 0, function: delta.function_call }]
    }
    if (nonEmpty(delta.refusal)) out.refusal = delta.refusal
  }
  if (choice.logprobs !== undefined && choice.logprobs !== null) out.logprobs = choice.logprobs
  if (typeof choice.finish_reason === "string") out.finishReason = choice.finish_reason
  if (isActivity(out)) return out
  // Only a choice that carries nothing else is looked through for fields without a name.
  if (!carriesOther(choice, NAMED_CHOICE) && (delta === undefined || !carriesOther(delta, NAMED_DELTA)))
    return undefined
  Delta.markOther(out)
  return out
}

/**
 * The deltas of a parsed chunk: one per choice that carries something, the
 * chunk's `usage` on the first of them (or on a delta of its own). With
 * `every`, a chunk that carries nothing still gives one empty delta.
 */
const chunkDeltas = (server: string, chunk: Chunk, data: string, every: boolean): Step => {
  // `null` (Azure, MiniMax, on a usage chunk) is no choices, as an absent key is.
  const choices = chunk.choices === null ? undefined : chunk.choices
  if (choices !== undefined && !Array.isArray(choices)) {
    throw new DecodeError({ reason: "InvalidChunk", detail: "choices must be an array", server })
  }
  let first: Delta | undefined
  let more: Array<Delta> | undefined
  const count = Array.isArray(choices) ? choices.length : 0
  for (let i = 0; i < count; i++) {
    const choice: unknown = choices![i]
    if (!isObject(choice)) {
      throw new DecodeError({ reason: "InvalidChunk", detail: `choices[${i}] must be an object`, server })
    }
    const delta = choiceDelta(server, chunk, data, choice, i)
    if (delta === undefined) continue
    if (first === undefined) first = delta
    else (more ??= [first]).push(delta)
  }
  if (isObject(chunk.usage)) {
    first ??= new Delta(firstIndex(choices), "", server, data, chunk)
    first.usage = chunk.usage as Usage
  }
  if (first === undefined && every) return new Delta(firstIndex(choices), "", server, data, chunk)
  return more ?? first
}
const firstIndex = (choices: unknown): number => {
  const choice: unknown = Array.isArray(choices) ? choices[0] : undefined
  return isObject(choice) && Number.isInteger(choice.index) ? (choice.index as number) : 0
}

/**
 * Turns one SSE event into a step: `[DONE]`, the delta(s) of a chunk, or
 * nothing (a chunk that carries nothing, such as a role-only one; with
 * `every`, an empty delta instead). Throws the typed error for errors sent
 * inside the stream and for chunks that are not JSON objects.
 */
export const stepOf = (server: string, event: SseEvent, secrets: ReadonlyArray<string>, every = false): Step => {
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
  const usual = matchUsual(data)
  if (usual !== null) {
    // An empty text leaves the chunk to JSON.parse: a field beside it may still be a piece of the reply.
    const content = usual[1]
    if (content !== undefined) {
      const text = stringOf(content)
      if (text !== "") return new Delta(0, text, server, data, undefined)
    } else {
      const reasoning = stringOf((usual[2] ?? usual[3])!)
      if (reasoning !== "") {
        const delta = new Delta(0, "", server, data, undefined)
        delta.reasoning = reasoning
        return delta
      }
    }
  }
  const chunk = parseJson(server, data, secrets)
  if (!isObject(chunk)) {
    throw new DecodeError({
      reason: "InvalidChunk",
      detail: `a chunk must be a JSON object: ${excerpt(data, secrets)}`,
      server
    })
  }
  const upstream = upstreamFromBody(server, chunk, secrets)
  if (upstream !== undefined) throw upstream
  return chunkDeltas(server, chunk, data, every)
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
