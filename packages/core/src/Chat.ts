/**
 * The shapes of a chat: messages, the request, the whole reply, the stream's
 * deltas, and the validation that turns bad input into `InvalidRequest`
 * before any network call.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { InvalidRequest } from "./Errors.js"
import { roles, usualRequest } from "./internal/request.js"

/** @since 0.1.0 @category models */
export type Role = "system" | "user" | "assistant" | "tool" | "developer" | "function"
/** @since 0.1.0 @category models */
export const Role = Schema.String.pipe(
  Schema.filter((s): s is Role => roles.includes(s), { message: () => `must be one of ${roles.join(", ")}` })
)

/**
 * One message. `content` is text, an array of OpenAI content parts, or null
 * (an assistant message that only carries tool calls). Other OpenAI fields
 * (`name`, `tool_calls`, `tool_call_id`, ...) pass through.
 * @since 0.1.0 @category models
 */
export const Message = Schema.Struct(
  {
    role: Role,
    content: Schema.Union(Schema.String, Schema.Array(Schema.Unknown), Schema.Null).annotations({
      message: () => "must be a string, an array of content parts, or null"
    })
  },
  Schema.Record({ key: Schema.String, value: Schema.Unknown })
)
/** @since 0.1.0 @category models */
export type Message = typeof Message.Type

const range = (min: number, max: number) =>
  Schema.Number.pipe(Schema.between(min, max, { message: () => `must be a number between ${min} and ${max}` }))

/**
 * A chat request: the OpenAI fields easychat knows, any other OpenAI field
 * (`max_tokens`, `stop`, `seed`, `user`, `tools`, ...) passed through to the
 * body, and `activeServer` to pin this call to one server of the pool.
 * @since 0.1.0 @category models
 */
export const ChatRequest = Schema.Struct(
  {
    messages: Schema.Array(Message).pipe(Schema.minItems(1, { message: () => "must hold at least one message" })),
    model: Schema.optional(Schema.String.pipe(Schema.nonEmptyString({ message: () => "must be a non-empty string" }))),
    stream: Schema.optional(Schema.Boolean),
    temperature: Schema.optional(range(0, 2)),
    top_p: Schema.optional(range(0, 1)),
    presence_penalty: Schema.optional(range(-2, 2)),
    frequency_penalty: Schema.optional(range(-2, 2)),
    max_tokens: Schema.optional(
      Schema.Number.pipe(Schema.int(), Schema.positive({ message: () => "must be a positive integer" }))
    ),
    activeServer: Schema.optional(
      Schema.Union(
        Schema.Number.pipe(Schema.int({ message: () => "must be an integer index or a URL" })),
        Schema.String
      )
    )
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
 * A whole reply.
 * @since 0.1.0 @category models
 */
export interface ChatCompletion {
  readonly content: string
  readonly finishReason: string | undefined
  readonly usage: Usage | undefined
  readonly model: string | undefined
  /** The server that answered. */
  readonly server: string
}

/**
 * One piece of a streamed reply. `content` is `""` for chunks that carry only
 * a `finishReason` or `usage`.
 * @since 0.1.0 @category models
 */
export interface ChatDelta {
  readonly content: string
  readonly finishReason?: string
  readonly usage?: Usage
  readonly server: string
}

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
