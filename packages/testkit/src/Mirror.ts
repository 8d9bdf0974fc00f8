/**
 * What a NextChat-style mirror does, shared by `MirrorServer` (a real node:http
 * server) and the msw handlers (`@easychat/testkit/msw`): its options, the
 * requests it records, its default reply and small builders of SSE bytes.
 *
 * @since 0.1.0
 */
import type { FaultPlan } from "./Fault.js"
import type { Fixture } from "./Fixtures.js"
import * as reply from "./internal/reply.js"

/**
 * A request as the mirror received it.
 *
 * @since 0.1.0
 * @category models
 */
export interface RecordedRequest {
  /** 0-based position among all the requests this mirror received. */
  readonly index: number
  readonly method: string
  /** Path and query, e.g. `/api/openai/v1/chat/completions`. */
  readonly path: string
  /** The absolute URL. */
  readonly url: string
  /** Lower-case names; a repeated header is joined with `", "` (cookies with `"; "`). */
  readonly headers: Readonly<Record<string, string>>
  /** Every header line as sent (node:http keeps the client's case and repeats; msw cannot). */
  readonly rawHeaders: ReadonlyArray<readonly [name: string, value: string]>
  /** The `Cookie` header parsed into name → value. */
  readonly cookies: Readonly<Record<string, string>>
  /** The body as UTF-8 text (`""` when there is none). */
  readonly rawBody: string
  /** The body parsed as JSON, or `undefined` when it is empty or not JSON. */
  readonly body: unknown
  /** `Date.now()` when the request arrived. */
  readonly time: number
}

/**
 * How the answer to a request ended.
 *
 * @since 0.1.0
 * @category models
 */
export interface ResponseClosed {
  /** `Date.now()` when the response finished, or when it was cut (connection closed, body cancelled). */
  readonly at: number
  /** Whether the whole response was delivered; `false` when it was cut first. */
  readonly finished: boolean
}

/**
 * A time in milliseconds, fixed or drawn per request: a number; a log-normal
 * distribution given by its median and 99th percentile (`{ median: 50, p99:
 * 400 }`); or a list to draw from uniformly (`[40, 50, 60, 900]`).
 *
 * @since 0.4.0
 * @category models
 */
export type Millis = number | { readonly median: number; readonly p99: number } | ReadonlyArray<number>

/**
 * How the mirror behaves. Every field is optional.
 *
 * @since 0.1.0
 * @category models
 */
export interface MirrorOptions {
  /**
   * The reply text, or a function of the request. Default: `defaultReply`,
   * `"Echo: <last user message>\nThis reply comes from the easychat test mirror."`.
   */
  readonly reply?: string | ((request: RecordedRequest) => string)
  /**
   * Characters (code points) per content delta. Default 4, about one token.
   * With `fixtureSplit: "bytes"`: bytes per write of a fixture's stream.
   */
  readonly chunkSize?: number
  /**
   * An exact number of content deltas: the reply's pieces repeat cyclically to
   * fill them (e.g. `deltas: 20000` for benchmarks). The whole (non-stream) reply
   * is the same text, the concatenation of the deltas.
   */
  readonly deltas?: number
  /**
   * Usage numbers: `"on-request"` (default) puts them in every JSON reply and,
   * in a stream, as a last chunk (`choices: []`) only when the request asks with
   * `stream_options: { include_usage: true }`; `"always"` also in every stream;
   * `"never"` nowhere.
   */
  readonly usage?: "on-request" | "always" | "never"
  /** The model answered when the request names none. Default `"gpt-3.5-turbo"`. */
  readonly model?: string
  /** Milliseconds to wait between two writes of a stream (not before the first). Default 0. */
  readonly delayMs?: number
  /** SSE events per write (per socket write, or per enqueued chunk in msw). Default 1. */
  readonly batch?: number
  /** Milliseconds to wait before answering a chat completion (status and headers). Default 0. */
  readonly headersDelayMs?: number
  /**
   * `Set-Cookie` values of the final `GET /` answer. Default: one
   * `session=<random hex>; Path=/; Max-Age=3600; HttpOnly`, random per mirror.
   */
  readonly cookies?: ReadonlyArray<string>
  /**
   * `GET /` first answers `302` to `location` (default `/welcome`) with its own
   * cookies (default `visit=<random hex>; Path=/; HttpOnly`); `GET <location>`
   * then answers 200 with `cookies`. Clients must keep the cookies of both hops.
   */
  readonly redirect?: boolean | { readonly location?: string; readonly cookies?: ReadonlyArray<string> }
  /** Chat completions answer 403 unless the request carries every cookie `GET /` (and its redirect) set. */
  readonly requireCookies?: boolean
  /**
   * Require `Authorization: Bearer nk-<accessCode>`. As in NextChat, a missing
   * code answers 401 `{"error": true, "msg": "empty access code"}`, a wrong one
   * `"wrong access code"`, and a bearer key without `nk-` (the user's own
   * upstream key) is accepted.
   */
  readonly accessCode?: string
  /**
   * Answer CORS preflights (`OPTIONS`, 204) and add `Access-Control-Allow-Origin`
   * (the request's `Origin`, or `origin`), `-Credentials: true`, `-Headers`,
   * `-Methods` and `-Expose-Headers: Retry-After` to every answer.
   */
  readonly cors?: boolean | { readonly origin?: string }
  /**
   * Answer chat completions with a recorded reply instead of the generated one
   * (see `Fixtures`): its `stream` text for a `stream: true` request
   * (`text/event-stream; charset=utf-8`), else its `whole` text
   * (`application/json`), byte for byte. `reply`, `chunkSize`, `deltas`, `usage`
   * and `model` then do not apply; faults, access code, cookies, `batch`,
   * `delayMs` and `headersDelayMs` do. Stream faults count the fixture's SSE
   * events (comments included) as their `afterDeltas`. A function picks the
   * fixture per request (e.g. `Fixtures.toolLoop`).
   */
  readonly fixture?: Fixture | ((request: RecordedRequest) => Fixture)
  /**
   * How a fixture's stream is written: `"events"` (default), one SSE event per
   * write (`batch` events with `batch`); `"bytes"`, `chunkSize` bytes per write
   * (default 4), cut through lines and multi-byte characters, to test decoders.
   */
  readonly fixtureSplit?: "events" | "bytes"
  /**
   * The time to first delta of a chat completion, drawn per request (see
   * `Millis`): a stream sends its headers and role chunk at once and its
   * first content delta this long after (a fixture's stream: its first
   * event); a whole reply is answered this long after `headersDelayMs`.
   * Default 0.
   */
  readonly firstDeltaMs?: Millis
  /**
   * The chance (0 to 1) that a chat completion stalls before its first delta:
   * a stream sends its headers and role chunk, then nothing (as
   * `stall-mid-stream` with `afterDeltas: 0`); a whole reply never answers
   * (as `stall-before-headers`). Drawn per request; default 0.
   */
  readonly stallChance?: number
  /**
   * The chance (0 to 1) that a stream is cut (the socket destroyed, as
   * `close-mid-stream`) after a random number of content deltas, at least
   * one and fewer than all (after the only one when there is one). Whole
   * replies are not cut. Drawn per request after `stallChance`; default 0.
   */
  readonly cutChance?: number
  /**
   * The source of every draw of `firstDeltaMs`, `stallChance` and
   * `cutChance`, uniform in [0, 1): seed one for repeatable runs. Default
   * `Math.random`.
   */
  readonly random?: () => number
  /**
   * Faults of chat-completion requests (see `Fault`). A request that the plan
   * gives a fault is neither stalled nor cut by chance.
   */
  readonly fault?: FaultPlan
  /**
   * Faults of the cookie pages (`GET /` and the redirect target). Connection and
   * whole-response faults apply; stream faults are ignored.
   */
  readonly cookieFault?: FaultPlan
}

/**
 * The reply used when `reply` is not set:
 * `"Echo: " + <text of the last user message> + "\n" + "This reply comes from the easychat test mirror."`.
 * The text of a message is its `content` string, or the concatenated `text` of
 * its content parts; with no user message it is empty.
 *
 * @since 0.1.0
 * @category constructors
 */
export const defaultReply: (request: RecordedRequest) => string = reply.defaultReply

/**
 * The fixed sentence of `defaultReply`.
 *
 * @since 0.1.0
 * @category constants
 */
export const defaultSentence: string = reply.defaultSentence

/**
 * Splits a reply into the content deltas the mirror streams (see `chunkSize`
 * and `deltas` in `MirrorOptions`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const splitReply = (text: string, options?: { readonly chunkSize?: number; readonly deltas?: number }) =>
  reply.splitReply(text, options?.chunkSize ?? 4, options?.deltas)

/**
 * A `chat.completion.chunk` object carrying `content` as its delta (or another
 * delta object, e.g. `{ role: "assistant" }`), as the mirror streams it.
 *
 * @since 0.1.0
 * @category constructors
 */
export const chunk = (
  content: string | Record<string, unknown>,
  options?: {
    readonly finishReason?: string | null
    readonly id?: string
    readonly created?: number
    readonly model?: string
  }
): Record<string, unknown> =>
  reply.chunkObject(
    {
      id: options?.id ?? reply.defaultMeta.id,
      created: options?.created ?? reply.defaultMeta.created,
      model: options?.model ?? reply.defaultMeta.model
    },
    typeof content === "string" ? { content } : content,
    options?.finishReason ?? null
  )

/**
 * An SSE event: `data` as a string is sent as is, anything else as JSON; each
 * line of the data gets its own `data:` line.
 *
 * @since 0.1.0
 * @category models
 */
export interface SseEventInit {
  readonly event?: string
  readonly id?: string
  readonly data: unknown
}

/**
 * The text of SSE events, each ended by a blank line. A string is one event's
 * data (`"[DONE]"` gives `data: [DONE]\n\n`). Encode with `TextEncoder` for bytes.
 *
 * @example
 * sse([chunk("Hel"), chunk("lo"), "[DONE]"])
 *
 * @since 0.1.0
 * @category constructors
 */
export const sse = (events: ReadonlyArray<SseEventInit | string | Record<string, unknown>>): string =>
  events
    .map((e) => reply.sseEvent(typeof e === "string" ? e : "data" in e ? (e as SseEventInit) : { data: e }))
    .join("")
