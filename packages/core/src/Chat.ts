/**
 * The shapes of a chat: messages, the request, the whole reply, the stream's
 * deltas, and the validation that turns bad input into `InvalidRequest`
 * before any network call.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { InvalidRequest } from "./Errors.js"
import { makeAccumulator } from "./internal/accumulate.js"
import { Delta } from "./internal/delta.js"
import { type Rule, requestRules, roles, usualRequest } from "./internal/request.js"

/** @since 0.1.0 @category models */
export type Role = "system" | "user" | "assistant" | "tool" | "developer" | "function"
/** @since 0.1.0 @category models */
export const Role = Schema.String.pipe(
  Schema.filter((s): s is Role => roles.includes(s), { message: () => `must be one of ${roles.join(", ")}` })
)

/**
 * One message. `content` is text, an array of OpenAI content parts, or null
 * (an assistant message that only carries tool calls); an assistant message
 * with `tool_calls` or `function_call` may leave `content` out. Other OpenAI
 * fields (`name`, `tool_calls`, `tool_call_id`, ...) pass through.
 * @since 0.1.0 @category models
 */
export const Message = Schema.Struct(
  {
    role: Role,
    content: Schema.optional(
      Schema.Union(Schema.String, Schema.Array(Schema.Unknown), Schema.Null).annotations({
        message: () => "must be a string, an array of content parts, or null"
      })
    )
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
).pipe(
  Schema.filter(
    (m) =>
      Object.hasOwn(m, "content") ||
      (m.role === "assistant" && (m.tool_calls != null || m.function_call != null)) || {
        path: ["content"],
        message: "is required (only an assistant message with tool_calls or function_call may leave it out)"
      }
  )
)
/** @since 0.1.0 @category models */
export type Message = typeof Message.Type

const range = (min: number, max: number) =>
  Schema.Number.pipe(Schema.between(min, max, { message: () => `must be a number between ${min} and ${max}` }))

// The schema of each kind of rule, with its error's words; the table of rules is `requestRules`.
const schemaOf = {
  text: () => Schema.String.pipe(Schema.nonEmptyString({ message: () => "must be a non-empty string" })),
  flag: () => Schema.Boolean,
  range: (rule: Extract<Rule, { kind: "range" }>) => Schema.NullOr(range(rule.min, rule.max)),
  count: () => Schema.Number.pipe(Schema.int(), Schema.positive({ message: () => "must be a positive integer" })),
  server: () =>
    Schema.Union(Schema.Number.pipe(Schema.int({ message: () => "must be an integer index or a URL" })), Schema.String)
}

type Rules = typeof requestRules
const optionalFields = Object.fromEntries(
  Object.entries(requestRules as Readonly<Record<string, Rule>>).map(([name, rule]) => [
    name,
    Schema.optional(schemaOf[rule.kind](rule as never))
  ])
) as { readonly [K in keyof Rules]: Schema.optional<ReturnType<(typeof schemaOf)[Rules[K]["kind"]]>> }

/**
 * A chat request: the OpenAI fields easychat knows, any other OpenAI field
 * (`max_tokens`, `stop`, `seed`, `user`, `tools`, ...) passed through to the
 * body, and `activeServer` to pin this call to one server of the pool. A
 * field set to `null` that the preset has a default for (`defaults`, e.g.
 * the EasyChat preset's `temperature`) is left out of the body.
 * @since 0.1.0 @category models
 */
export const ChatRequest = Schema.Struct(
  {
    messages: Schema.Array(Message).pipe(Schema.minItems(1, { message: () => "must hold at least one message" })),
    ...optionalFields
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)
/** @since 0.1.0 @category models */
export type ChatRequest = typeof ChatRequest.Type
/** @since 0.1.0 @category models */
export type ChatRequestInput = typeof ChatRequest.Encoded

/**
 * Token counts as the server reported them (OpenAI's field names).
 * @since 0.1.0 @category models
 */
export interface Usage {
  readonly prompt_tokens?: number
  readonly completion_tokens?: number
  readonly total_tokens?: number
  readonly [key: string]: unknown
}

/**
 * A fragment of a tool call, exactly as the server streamed it: the first
 * fragment of a call usually brings `id`, `type` and `function.name`, the
 * following ones pieces of `function.arguments`. Fragments of one call share
 * its `index`; a server that sends none (Gemini) gets the fragment's place in
 * its chunk, and the reducer tells its calls apart by `id`.
 * @since 0.2.0 @category models
 */
export interface ToolCallDelta {
  readonly index: number
  readonly id?: string
  readonly type?: string
  readonly function?: { readonly name?: string; readonly arguments?: string }
}

/**
 * A whole tool call. A legacy `function_call` has no id: its `id` is `""`.
 * @since 0.2.0 @category models
 */
export interface ToolCall {
  readonly id: string
  readonly type: string
  readonly function: { readonly name: string; readonly arguments: string; readonly [key: string]: unknown }
  /** The server's other fields (Gemini's `extra_content`), kept so that the call can be sent back whole. */
  readonly [key: string]: unknown
}

/**
 * One choice of a whole reply. `reasoning` is the server's
 * `reasoning_content` (DeepSeek, vLLM) or `reasoning` (Ollama, OpenRouter);
 * `functionCall` is the legacy `function_call` as sent (it is also the call
 * of `toolCalls`).
 * @since 0.2.0 @category models
 */
export interface ChatChoice {
  readonly index: number
  readonly content: string
  readonly reasoning?: string
  readonly toolCalls?: ReadonlyArray<ToolCall>
  readonly functionCall?: { readonly name: string; readonly arguments: string }
  readonly refusal?: string
  readonly logprobs?: unknown
  readonly finishReason: string | undefined
}

/**
 * A whole reply. The top-level `content`, `reasoning`, `toolCalls`,
 * `refusal`, `logprobs` and `finishReason` are those of choice 0; `choices`
 * holds every choice, in index order; `raw` is the server's parsed body
 * untouched (for a reply assembled from a stream, the `chat.completion`
 * object its chunks add up to).
 * @since 0.1.0 @category models
 */
export interface ChatCompletion extends Omit<ChatChoice, "index"> {
  readonly choices: ReadonlyArray<ChatChoice>
  readonly usage: Usage | undefined
  readonly model: string | undefined
  readonly id?: string
  /** Unix seconds, as the server sent it. */
  readonly created?: number
  readonly systemFingerprint?: string
  readonly raw: unknown
  /** The server that answered. */
  readonly server: string
}

/**
 * One piece of a streamed reply, for one choice (`choice`, 0 when the server
 * names none): a chunk with two choices gives two deltas. `content` is `""`
 * when the piece carries something else: `reasoning`, tool-call fragments,
 * a `refusal`, `logprobs`, a `finishReason`, `usage`, or only fields
 * easychat has no name for (`audio`, `annotations`: read them in `chunk`). `chunk` is the
 * server's chunk object, untouched (shared by the deltas of one chunk); it
 * is parsed when first read, so it is not an own property: spreading or
 * `JSON.stringify` leaves it out.
 * @since 0.1.0 @category models
 */
export interface ChatDelta {
  readonly choice: number
  readonly content: string
  readonly reasoning?: string
  /** OpenRouter's `reasoning_details`, as sent. */
  readonly reasoningDetails?: ReadonlyArray<unknown>
  readonly toolCalls?: ReadonlyArray<ToolCallDelta>
  /** The legacy `function_call` fragment as sent (also the tool call of index 0 in `toolCalls`). */
  readonly functionCall?: { readonly name?: string; readonly arguments?: string }
  readonly refusal?: string
  readonly logprobs?: unknown
  readonly finishReason?: string
  readonly usage?: Usage
  readonly chunk: Readonly<Record<string, unknown>>
  readonly server: string
  /**
   * Set only on the first delta of a continuation (`continueAfterCut`): the
   * server whose stream was cut, and how many deltas and characters of the
   * call had reached the caller before it. The deltas from here on are
   * another generation, by `server`, asked to go on from that text.
   */
  readonly continuedFrom?: ContinuedFrom
}

/**
 * Where a continued reply was cut: see `ChatDelta.continuedFrom`.
 * @since 0.4.0 @category models
 */
export interface ContinuedFrom {
  readonly server: string
  readonly deltas: number
  readonly characters: number
}

/**
 * Options of one streamed call.
 * @since 0.2.0 @category models
 */
export interface StreamOptions {
  /**
   * Also a delta for each chunk that carries nothing (a role-only chunk, an
   * empty content): for proxies that forward every chunk as it came. Such
   * deltas are held back until the call's first delta that carries
   * something, so that an attempt that fails over leaves nothing behind.
   */
  readonly everyChunk?: boolean
}

/**
 * The JSON text of a delta's chunk exactly as the server sent it (for a
 * delta easychat made; `JSON.stringify(delta.chunk)` for any other).
 * @since 0.2.0 @category getters
 */
export const chunkText = (delta: ChatDelta): string => Delta.text(delta)

/**
 * Folds deltas into the reply they add up to, as `complete` returns it:
 * text, reasoning and refusal joined per choice, tool-call fragments joined
 * by index into whole calls, logprobs joined, the chunks' other fields kept
 * (`raw` is the `chat.completion` object the chunks add up to). Feed it the
 * deltas of one call, in order: `add` each, `get` at any time.
 *
 * @example
 * const reply = Chat.accumulator()
 * for await (const delta of client.streamDeltas({ messages })) reply.add(delta)
 * reply.get().toolCalls
 * @since 0.2.0 @category reducers
 */
export const accumulator: () => Accumulator = makeAccumulator

/** @since 0.2.0 @category reducers */
export interface Accumulator {
  readonly add: (delta: ChatDelta) => void
  readonly get: () => ChatCompletion
}

/**
 * The reply that a call's deltas add up to (see `accumulator`).
 * @since 0.2.0 @category reducers
 */
export const accumulate = (deltas: Iterable<ChatDelta>): ChatCompletion => {
  const reply = makeAccumulator()
  for (const delta of deltas) reply.add(delta)
  return reply.get()
}

/**
 * Runs a stream of deltas (`chat.stream(...)`) to its end and returns the
 * reply they add up to: the same `ChatCompletion` as `complete`.
 * @since 0.2.0 @category reducers
 */
export const collect = <E, R>(deltas: Stream.Stream<ChatDelta, E, R>): Effect.Effect<ChatCompletion, E, R> =>
  Effect.suspend(() => {
    const reply = makeAccumulator()
    // An eager loop per batch: `runFold` recursed per element and overflowed on long batches.
    return Effect.as(
      Stream.runForEachChunk(deltas, (batch) => {
        for (const delta of batch) reply.add(delta)
        return Effect.void
      }),
      reply
    ).pipe(Effect.map((r) => r.get()))
  })

/**
 * Checks a request against the documented rules. The error names the field
 * (`messages.0.role`) and the rule it broke.
 * @since 0.1.0 @category validation
 */
export const validate = (input: unknown): Either.Either<ChatRequest, InvalidRequest> => {
  const usual = usualRequest(input)
  return usual !== undefined ? Either.right(usual) : Either.mapLeft(decode(input), describeIssue)
}

const describeIssue = (error: ParseResult.ParseError): InvalidRequest => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  const field = issue === undefined || issue.path.length === 0 ? "request" : issue.path.join(".")
  return new InvalidRequest({ field, rule: ruleOf(issue) })
}

/** Every request the usual one's check (`internal/request.ts`) leaves to Schema. */
const decode = Schema.decodeUnknownEither(ChatRequest, { errors: "first", onExcessProperty: "preserve" })

const ruleOf = (issue: ParseResult.ArrayFormatterIssue | undefined): string => {
  if (issue === undefined) return "is invalid"
  if (issue._tag === "Missing") return "is required"
  if (issue.path.length === 0) return "must be an object"
  return issue.message.startsWith("Expected") ? `has the wrong type: ${issue.message}` : issue.message
}
