// Each request measured from its arrival to the end of its answer: the request metrics, and one access log
// line. The line goes to Effect's `Console` service: an access log is a record per request for a log shipper,
// kept apart from diagnostics (which go through Effect's logger, whose envelope would wrap a JSON line in
// another); `Console` prints it as it is, and a program routes it with `Effect.withConsole` or a layer.

import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Console from "effect/Console"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Stream from "effect/Stream"
import { clientSecrets, redact } from "./auth.js"
import { CurrentExchange, type Exchange, type Metrics, NO_ROUTE, type Outcome } from "./metrics.js"

/** How the access log is written: one JSON object a line, `key=value` pairs, or not at all. */
export type Format = "json" | "text" | "off"

/** One line of the access log. Never a header: no key, no cookie, no authorization. */
export interface Entry {
  /** When the request arrived (ISO 8601, UTC). */
  readonly time: string
  readonly method: string
  /** The path, without its query (a query may carry anything). */
  readonly path: string
  readonly route: string
  /** The `model` the body asked for. */
  readonly model: string | null
  readonly status: number
  readonly outcome: Outcome
  /** Milliseconds from its arrival to the end of its answer. */
  readonly durationMs: number
  /** Milliseconds from its arrival until the status was ready (a chat stream: its first delta). */
  readonly firstByteMs: number | null
  /** The upstream server that answered (`x-easychat-server`). */
  readonly server: string | null
  /** Upstream attempts begun for it (failovers and hedges included). */
  readonly attempts: number
  /** Bytes of the answer's body handed to the socket. */
  readonly bytes: number
}

const round = (ms: number) => Math.round(ms * 10) / 10

/** A character as a `\uXXXX` escape (valid in a JSON string and read back by logfmt parsers). */
const unicodeEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`

/**
 * A logfmt value: bare when it is a plain word, else quoted with `\`, `"` and every control character
 * escaped (C0 and C1, DEL, and the line and paragraph separators): a client that chooses its model or path
 * cannot end the line and forge another; nothing for `null`.
 */
const logfmt = (value: unknown): string => {
  if (value === null) return ""
  const text = String(value)
  return /^[^\s"=\\\p{Cc}]+$/u.test(text)
    ? text
    : `"${text.replace(/[\\"\p{Cc}\u2028\u2029]/gu, (c) =>
        c === "\\"
          ? "\\\\"
          : c === '"'
            ? '\\"'
            : c === "\n"
              ? "\\n"
              : c === "\r"
                ? "\\r"
                : c === "\t"
                  ? "\\t"
                  : unicodeEscape(c)
      )}"`
}

/**
 * The line of an entry in a format. JSON escapes `"`, `\` and C0 itself; C1, DEL and the line and paragraph
 * separators, which it leaves as they are and some readers take for line ends, are escaped too.
 */
export const format = (entry: Entry, as: Exclude<Format, "off">): string =>
  as === "json"
    ? JSON.stringify(entry).replace(/[\u007f-\u009f\u2028\u2029]/g, unicodeEscape)
    : Object.entries(entry)
        .map(([key, value]) => `${key}=${logfmt(value)}`)
        .join(" ")

const EVENT_ERROR = Buffer.from("event: error\n")

/** Whether a piece of an event stream is the gateway's error event (a stream that ended in a fault). */
const isErrorEvent = (bytes: Uint8Array) =>
  bytes.length >= EVENT_ERROR.length &&
  Buffer.from(bytes.buffer, bytes.byteOffset, EVENT_ERROR.length).equals(EVENT_ERROR)

const isEventStream = (contentType: string | undefined) =>
  contentType?.toLowerCase().includes("text/event-stream") === true

const outcomeOf = (status: number): Outcome => (status >= 500 ? "error" : status >= 400 ? "client_error" : "ok")

/** A client that left before its answer began: nginx's "client closed request". */
const CLIENT_CLOSED = 499

export interface Observed {
  readonly metrics: Metrics
  readonly accessLog: Format
  readonly keys: ReadonlyArray<string>
}

/**
 * The app, each request measured: its route and model (as the handlers
 * note them), status, outcome, time to its status, duration, bytes and
 * attempts go to the metrics and, unless it is off, to the access log. A
 * streamed body is measured to its end: the outcome is `cut` when it ends
 * with an error (an SSE `error` event, a forwarded body that broke) and
 * `aborted` when its client left.
 */
export const observe = <E, R>(app: HttpApp.Default<E, R>, observed: Observed): HttpApp.Default<E, R> =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const { metrics, accessLog } = observed
    const arrived = Date.now()
    const start = performance.now()
    const exchange: Exchange = { route: NO_ROUTE, model: undefined, attempts: 0, failed: undefined }
    let ended = false
    const end = (status: number, outcome: Outcome, bytes: number, firstByteMs: number | undefined, server?: string) =>
      Effect.suspend(() => {
        if (ended) return Effect.void
        ended = true
        const durationMs = performance.now() - start
        const route = exchange.route
        metrics.requests.inc({ route, status: String(status), outcome })
        metrics.duration.observe({ route }, durationMs / 1000)
        if (accessLog === "off") return Effect.void
        const secrets = clientSecrets(observed.keys, request.headers.authorization)
        const entry: Entry = {
          time: new Date(arrived).toISOString(),
          method: request.method,
          path: redact(request.url.split("?")[0]!, secrets),
          route,
          model: exchange.model === undefined ? null : redact(exchange.model, secrets),
          status,
          outcome,
          durationMs: round(durationMs),
          firstByteMs: firstByteMs === undefined ? null : round(firstByteMs),
          server: server ?? null,
          attempts: exchange.attempts,
          bytes
        }
        return Console.log(format(entry, accessLog))
      })
    // In the request's fiber for the rest of its life: its answer's body (a continuation's attempts begin
    // there) is read after the app has returned, out of reach of a `provideService` around it.
    return Effect.zipRight(FiberRef.update(FiberRef.currentContext, Context.add(CurrentExchange, exchange)), app).pipe(
      // A client that left before its answer began, or (never with the gateway's own app) a failure.
      Effect.onExit((exit) =>
        Exit.isSuccess(exit)
          ? Effect.void
          : Exit.isInterrupted(exit)
            ? end(CLIENT_CLOSED, "aborted", 0, undefined)
            : end(500, "error", 0, undefined)
      ),
      Effect.flatMap((response) => {
        const firstByteMs = performance.now() - start
        const server = response.headers["x-easychat-server"]
        const body = response.body
        if (body._tag !== "Stream") {
          const bytes =
            body._tag === "Uint8Array" ? body.body.length : body._tag === "Raw" ? (body.contentLength ?? 0) : 0
          return Effect.as(end(response.status, outcomeOf(response.status), bytes, firstByteMs, server), response)
        }
        const sse = isEventStream(body.contentType)
        const route = exchange.route
        let bytes = 0
        let firstSent = false
        let erred = false
        let open = false
        // The body as it was, each of its chunks counted on the way and measured once it ends: a map and a
        // finalizer cost next to nothing per step (a scope or a pull of their own would).
        const measured = Stream.mapChunks(body.stream, (chunk) => {
          if (!open && sse) {
            open = true
            metrics.streamsOpen.add({ route }, 1)
          }
          for (const piece of chunk) {
            bytes += piece.length
            erred = sse && isErrorEvent(piece)
          }
          if (!firstSent && bytes > 0) {
            firstSent = true
            if (sse) metrics.firstDelta.observe({ route }, (performance.now() - start) / 1000)
          }
          return chunk
        }).pipe(
          Stream.ensuringWith((exit) =>
            Effect.suspend(() => {
              if (open) metrics.streamsOpen.add({ route }, -1)
              const outcome: Outcome = Exit.isInterrupted(exit)
                ? "aborted"
                : Exit.isFailure(exit) || erred
                  ? "cut"
                  : outcomeOf(response.status)
              return end(response.status, outcome, bytes, firstByteMs, server)
            })
          )
        )
        return Effect.succeed(
          HttpServerResponse.setBody(response, HttpBody.stream(measured, body.contentType, body.contentLength))
        )
      })
    )
  })
