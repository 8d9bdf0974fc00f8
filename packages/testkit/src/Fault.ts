/**
 * The faults a test mirror can inject, shared by `MirrorServer` (node:http)
 * and the msw handlers (`@easychat/testkit/msw`).
 *
 * Faults are of four sorts:
 * - connection faults: `refuse`, `reset-before-headers`, `stall-before-headers`;
 * - whole-response faults: `status`, `html-200`, `json-string-error`, `access-code`,
 *   `wrong-content-type-stream`;
 * - stream faults (only for `stream: true` requests; a non-stream request answers
 *   normally): `stall-mid-stream`, `close-mid-stream`, `malformed-json`, `event-error`,
 *   `error-chunk`, `invalid-utf8`, `oversize-event`, `no-trailing-blank-line`, `no-done`,
 *   `no-done-no-finish`;
 * - encoding: `gzip`.
 *
 * `afterDeltas` counts content deltas (the first, role-only chunk is not one), and
 * defaults to 1: the client has already received text, so it must not fail over.
 * Use `afterDeltas: 0` for a fault before the first token. A value larger than
 * the number of deltas places the fault after the last delta, before the
 * `finish_reason` chunk.
 *
 * @since 0.1.0
 */
import type { RecordedRequest } from "./Mirror.js"

/**
 * @since 0.1.0
 * @category models
 */
export type Fault =
  /**
   * Nothing is listening. Set as the server's fault (`setFault` or the `fault`
   * option, not inside a list or function) it closes the listener so connections
   * are refused (`ECONNREFUSED`) until the fault is cleared; the port is kept and
   * re-used. Chosen for one request (from a list or function) the accepted socket
   * is destroyed at once, like `reset-before-headers`. In msw: a network error.
   */
  | { readonly kind: "refuse" }
  /** The request is read, then the socket is destroyed without any answer. In msw: a network error. */
  | { readonly kind: "reset-before-headers" }
  /** The request is read and never answered, until the client or `close()` closes the socket. */
  | { readonly kind: "stall-before-headers" }
  /**
   * Any status. `body` as an object is sent as JSON, as a string as `text/plain`
   * (unless `headers` sets a content type). Default body: an OpenAI-style
   * `{"error": {"message": "Mirror test fault: HTTP <status>", "type": "mirror_fault"}}`.
   */
  | {
      readonly kind: "status"
      readonly status: number
      readonly body?: string | object
      readonly headers?: Readonly<Record<string, string>>
    }
  /** Status 200, `text/html`: a Cloudflare-like challenge page (or `body`). */
  | { readonly kind: "html-200"; readonly body?: string }
  /**
   * Status 200, `application/json`, whose body is a JSON *string*: a markdown-fenced
   * error, as real NextChat answers when its own upstream is down
   * (`nextChatUpstreamDown` below, or `text` instead).
   */
  | { readonly kind: "json-string-error"; readonly text?: string }
  /** NextChat's 401 `{"error": true, "msg": "empty access code"}` (or `msg`). */
  | { readonly kind: "access-code"; readonly msg?: string }
  /** A stream request answered with a whole `application/json` `chat.completion`. */
  | { readonly kind: "wrong-content-type-stream" }
  /** After `afterDeltas` deltas, stop writing but keep the socket open. */
  | { readonly kind: "stall-mid-stream"; readonly afterDeltas?: number }
  /** After `afterDeltas` deltas, destroy the socket (msw: the body stream errors). */
  | { readonly kind: "close-mid-stream"; readonly afterDeltas?: number }
  /** After `afterDeltas` deltas, send `data: {not json`, then carry on normally. */
  | { readonly kind: "malformed-json"; readonly afterDeltas?: number }
  /** After `afterDeltas` deltas, send `event: error` with `data: {"message": ...}`, then end the body. */
  | { readonly kind: "event-error"; readonly afterDeltas?: number; readonly message?: string }
  /** After `afterDeltas` deltas, send a chunk `{"error": {"message", "type"}}`, then end the body. */
  | { readonly kind: "error-chunk"; readonly afterDeltas?: number; readonly message?: string; readonly type?: string }
  /**
   * After `afterDeltas` deltas, send an extra delta whose content is `bad` 0xff 0xfe `bytes`
   * (two bytes that are not UTF-8; a lenient decoder gives `bad\uFFFD\uFFFDbytes`), then carry on.
   */
  | { readonly kind: "invalid-utf8"; readonly afterDeltas?: number }
  /** After `afterDeltas` deltas, send one extra delta whose event is larger than `size` bytes (default 2 MiB). */
  | { readonly kind: "oversize-event"; readonly afterDeltas?: number; readonly size?: number }
  /** A normal stream whose last event, `data: [DONE]`, has no line end at all before EOF. */
  | { readonly kind: "no-trailing-blank-line" }
  /** The `finish_reason` chunk (and usage), then EOF without `data: [DONE]`. */
  | { readonly kind: "no-done" }
  /** EOF after `afterDeltas` deltas (default: all of them) with neither `finish_reason` nor `[DONE]`: a cut stream. */
  | { readonly kind: "no-done-no-finish"; readonly afterDeltas?: number }
  /**
   * The body (stream or JSON) is gzip-encoded with `Content-Encoding: gzip` when the
   * request's `Accept-Encoding` allows gzip; otherwise the answer is plain.
   */
  | { readonly kind: "gzip" }

/**
 * @since 0.1.0
 * @category models
 */
export type FaultKind = Fault["kind"]

/**
 * Every fault kind, and whether it takes `afterDeltas`: for tools that name
 * faults in text (the `easychat serve --fault` option). A `Record` so that a
 * new kind cannot be left out.
 *
 * @since 0.1.0
 * @category constants
 */
export const takesAfterDeltas: Readonly<Record<FaultKind, boolean>> = {
  refuse: false,
  "reset-before-headers": false,
  "stall-before-headers": false,
  status: false,
  "html-200": false,
  "json-string-error": false,
  "access-code": false,
  "wrong-content-type-stream": false,
  "stall-mid-stream": true,
  "close-mid-stream": true,
  "malformed-json": true,
  "event-error": true,
  "error-chunk": true,
  "invalid-utf8": true,
  "oversize-event": true,
  "no-trailing-blank-line": false,
  "no-done": false,
  "no-done-no-finish": true,
  gzip: false
}

/**
 * Every fault kind, in the order `Fault` lists them.
 *
 * @since 0.1.0
 * @category constants
 */
export const kinds: ReadonlyArray<FaultKind> = Object.keys(takesAfterDeltas) as Array<FaultKind>

/**
 * Which fault (if any) a request gets:
 * - one `Fault`: every request;
 * - a list: consumed one entry per request (`undefined` answers normally), then normal answers;
 * - a function of the request and its 0-based index among the requests this plan governs.
 *
 * @since 0.1.0
 * @category models
 */
export type FaultPlan =
  | Fault
  | ReadonlyArray<Fault | undefined>
  | ((request: RecordedRequest, index: number) => Fault | undefined)

/**
 * The markdown-fenced error that real NextChat returns, as a JSON string, when
 * its upstream refuses connections.
 *
 * @since 0.1.0
 * @category constants
 */
export const nextChatUpstreamDown =
  '```json\n{\n  "cause": {\n    "errno": -111,\n    "code": "ECONNREFUSED",\n    "syscall": "connect"\n  }\n}\n```'
