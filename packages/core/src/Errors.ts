/**
 * The typed errors of easychat. Every error carries the server it concerns
 * (when there is one) and a `message` a person can act on. No error ever holds
 * a bearer key or a cookie value.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { redact as internalRedact } from "./internal/redact.js"

/** @since 0.1.0 @category models */
export const Phase = Schema.Literal("headers", "firstToken", "idle", "total")
/** @since 0.1.0 @category models */
export type Phase = typeof Phase.Type

/** @since 0.1.0 @category models */
export const DecodeReason = Schema.Literal("InvalidJson", "InvalidChunk", "EventTooLarge")
/** @since 0.1.0 @category models */
export type DecodeReason = typeof DecodeReason.Type

const on = (server: string | undefined) => (server === undefined ? "" : ` (${server})`)

/**
 * The request broke a documented rule; it never reached the network.
 * @since 0.1.0 @category errors
 */
export class InvalidRequest extends Schema.TaggedError<InvalidRequest>("@easychat/core/InvalidRequest")(
  "InvalidRequest",
  { field: Schema.String, rule: Schema.String }
) {
  override get message(): string {
    return `Invalid request: ${this.field} ${this.rule}`
  }
}

/**
 * The server answered with a status outside 2xx.
 * @since 0.1.0 @category errors
 */
export class HttpStatusError extends Schema.TaggedError<HttpStatusError>("@easychat/core/HttpStatusError")(
  "HttpStatusError",
  {
    server: Schema.String,
    status: Schema.Number,
    statusText: Schema.String,
    /** A short excerpt of the body, or the server's own error text when it has one. */
    body: Schema.String,
    /** Seconds from a `Retry-After` header, when the server sent one. */
    retryAfter: Schema.optional(Schema.Number)
  }
) {
  override get message(): string {
    const text = this.statusText ? ` ${this.statusText}` : ""
    const body = this.body ? `: ${this.body}` : ""
    const retry = this.retryAfter === undefined ? "" : ` (retry after ${this.retryAfter}s)`
    return `HTTP ${this.status}${text} from ${this.server}${body}${retry}`
  }
}

/**
 * A 2xx answer whose content type does not fit the request (an HTML page from
 * Cloudflare or a proxy, plain text, ...).
 * @since 0.1.0 @category errors
 */
export class UnexpectedContentType extends Schema.TaggedError<UnexpectedContentType>(
  "@easychat/core/UnexpectedContentType"
)("UnexpectedContentType", {
  server: Schema.String,
  contentType: Schema.String,
  expected: Schema.String,
  body: Schema.String
}) {
  override get message(): string {
    const got = this.contentType || "no content type"
    const body = this.body ? `: ${this.body}` : ""
    return `Expected ${this.expected} from ${this.server}, got ${got}${body}`
  }
}

/**
 * A well-formed reply without any choice in it.
 * @since 0.1.0 @category errors
 */
export class NoResponse extends Schema.TaggedError<NoResponse>("@easychat/core/NoResponse")("NoResponse", {
  server: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `No response from ${this.server}: ${this.detail}`
  }
}

/**
 * The server (or the mirror's own upstream) reported an error in its body or
 * inside the stream.
 * @since 0.1.0 @category errors
 */
export class UpstreamError extends Schema.TaggedError<UpstreamError>("@easychat/core/UpstreamError")("UpstreamError", {
  server: Schema.String,
  detail: Schema.String,
  code: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const code = this.code === undefined ? "" : ` [${this.code}]`
    return `Upstream error from ${this.server}${code}: ${this.detail}`
  }
}

/**
 * Bytes that cannot be decoded: invalid JSON, a chunk of the wrong shape, or
 * an SSE event larger than `maxEventSize`.
 * @since 0.1.0 @category errors
 */
export class DecodeError extends Schema.TaggedError<DecodeError>("@easychat/core/DecodeError")("DecodeError", {
  reason: DecodeReason,
  detail: Schema.String,
  server: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return `Cannot decode the reply${on(this.server)}: ${this.reason}: ${this.detail}`
  }
}

/**
 * The connection failed: refused, reset, DNS, TLS, proxy.
 * @since 0.1.0 @category errors
 */
export class TransportError extends Schema.TaggedError<TransportError>("@easychat/core/TransportError")(
  "TransportError",
  { server: Schema.String, detail: Schema.String }
) {
  override get message(): string {
    return `Cannot reach ${this.server}: ${this.detail}`
  }
}

/**
 * A phase took longer than its limit.
 * @since 0.1.0 @category errors
 */
export class Timeout extends Schema.TaggedError<Timeout>("@easychat/core/Timeout")("Timeout", {
  server: Schema.String,
  phase: Phase,
  millis: Schema.Number
}) {
  override get message(): string {
    const what: Record<Phase, string> = {
      headers: "waiting for the response headers",
      firstToken: "waiting for the first token",
      idle: "waiting for the next chunk",
      total: "for the whole request"
    }
    return `Timed out after ${this.millis} ms ${what[this.phase]} from ${this.server}`
  }
}

/**
 * The stream ended before the reply was complete, after some deltas had
 * already been delivered (those are never lost).
 * @since 0.1.0 @category errors
 */
export class StreamInterrupted extends Schema.TaggedError<StreamInterrupted>("@easychat/core/StreamInterrupted")(
  "StreamInterrupted",
  { server: Schema.String, deltas: Schema.Number, characters: Schema.Number, detail: Schema.String }
) {
  override get message(): string {
    // No delta: a forwarded answer (`forward`) cut after its status, which has no deltas to count.
    return this.deltas === 0 && this.characters === 0
      ? `The answer from ${this.server} was cut before its end: ${this.detail}`
      : `The stream from ${this.server} was interrupted after ${this.deltas} deltas (${this.characters} characters): ${this.detail}`
  }
}

/**
 * One failed attempt of a call.
 * @since 0.1.0 @category models
 */
export const AttemptError = Schema.Union(
  InvalidRequest,
  HttpStatusError,
  UnexpectedContentType,
  NoResponse,
  UpstreamError,
  DecodeError,
  TransportError,
  Timeout,
  StreamInterrupted
)
/** @since 0.1.0 @category models */
export type AttemptError = typeof AttemptError.Type

/**
 * Whether an error says the request itself is wrong (`InvalidRequest`, or an
 * upstream's 400 or 422): it says nothing about the server, and would fail on
 * any server, so it ends a call at once and never counts against a circuit.
 * @since 0.3.0 @category predicates
 */
export const isRequestFault = (error: EasyChatError): boolean =>
  error._tag === "InvalidRequest" ||
  (error._tag === "HttpStatusError" && (error.status === 400 || error.status === 422))

/** @since 0.1.0 @category models */
export const Attempt = Schema.Struct({ server: Schema.String, error: AttemptError })
/** @since 0.1.0 @category models */
export type Attempt = typeof Attempt.Type

/**
 * Every attempt of a call failed; one entry per attempt, in order.
 * @since 0.1.0 @category errors
 */
export class AllServersFailed extends Schema.TaggedError<AllServersFailed>("@easychat/core/AllServersFailed")(
  "AllServersFailed",
  { attempts: Schema.Array(Attempt) }
) {
  override get message(): string {
    if (this.attempts.length === 0) return "No server was tried: the circuit of every server the call may use is open"
    const lines = this.attempts.map((a, i) => `  ${i + 1}. ${a.server}: ${a.error._tag}: ${a.error.message}`)
    return `All ${this.attempts.length} attempts failed:\n${lines.join("\n")}`
  }
}

/**
 * The union of every error easychat fails with.
 * @since 0.1.0 @category models
 */
export type EasyChatError = AttemptError | AllServersFailed

/** @since 0.1.0 @category refinements */
export const isEasyChatError = (u: unknown): u is EasyChatError =>
  typeof u === "object" &&
  u !== null &&
  "_tag" in u &&
  typeof (u as { _tag: unknown })._tag === "string" &&
  tags.has((u as { _tag: string })._tag)

const tags = new Set([
  "InvalidRequest",
  "HttpStatusError",
  "UnexpectedContentType",
  "NoResponse",
  "UpstreamError",
  "DecodeError",
  "TransportError",
  "Timeout",
  "StreamInterrupted",
  "AllServersFailed"
])

/**
 * `text` without any of `secrets`, whatever surrounds them: each occurrence
 * becomes `[redacted]` (the longest secret first, again until none is left).
 * The one function easychat masks keys, access codes and cookie values with,
 * in every message, excerpt and log line.
 * @since 0.2.0 @category utils
 */
export const redact: (text: string, secrets: ReadonlyArray<string>) => string = internalRedact
