import type { ChatDelta, ContinuedFrom, ToolCallDelta, Usage } from "../Chat.js"

export type Chunk = Readonly<Record<string, unknown>>

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
  /** Set on a continuation's first delta only (a `declare`d field: no other delta carries it). */
  declare continuedFrom?: ContinuedFrom
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

export const nonEmpty = (u: unknown): u is string => typeof u === "string" && u !== ""

/** A value that says something: not `null`, and not an empty string, array or object. */
export const says = (u: unknown): boolean =>
  u !== null &&
  u !== undefined &&
  u !== "" &&
  !(Array.isArray(u) && u.length === 0) &&
  !(typeof u === "object" && !Array.isArray(u) && Object.keys(u as object).length === 0)

/** The fields of a choice and of its delta that `ChatDelta` names (or that carry nothing, as `role`). */
export const NAMED_CHOICE = new Set(["index", "delta", "finish_reason", "logprobs"])
export const NAMED_DELTA = new Set([
  "role",
  "content",
  "reasoning_content",
  "reasoning",
  "reasoning_details",
  "tool_calls",
  "function_call",
  "refusal"
])
export const carriesOther = (fields: Record<string, unknown>, named: ReadonlySet<string>): boolean => {
  for (const key in fields) if (!named.has(key) && says(fields[key])) return true
  return false
}
