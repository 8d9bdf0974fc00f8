import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as BodyReader from "../BodyReader.js"
import { type AttemptError, HttpStatusError, TransportError, UnexpectedContentType } from "../Errors.js"
import type { Limits } from "./limits.js"
import { describe } from "./send.js"
import { excerpt, serverMessage, upstreamFromBody } from "./upstream.js"

/** The reason phrases of the statuses a mirror answers with. */
export const REASONS: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  409: "Conflict",
  413: "Payload Too Large",
  422: "Unprocessable Entity",
  425: "Too Early",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout"
}

export const contentTypeOf = (response: HttpClientResponse.HttpClientResponse) =>
  (response.headers["content-type"] ?? "").toLowerCase()
export const isJson = (contentType: string) => contentType.includes("application/json") || contentType.includes("+json")
export const isEventStream = (contentType: string) => contentType.includes("text/event-stream")
export const isSuccess = (status: number) => status >= 200 && status < 300

/** Seconds from a `Retry-After` header: delta-seconds or an HTTP date. */
export const retryAfterOf = (value: string | undefined, now: number): number | undefined => {
  if (value === undefined) return undefined
  if (/^\s*\d+\s*$/.test(value)) return Number(value)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000))
}

/** An error page only feeds a short excerpt: 64 KiB is plenty. */
const ERROR_BODY_LIMIT = 64 * 1024

/** At most `limit` bytes of a body as text, and whether there was more. */
export interface Read {
  readonly text: string
  readonly bytes: number
  readonly truncated: boolean
}

/** Reads, checks and drops response bodies, each within a bound a hostile server cannot stretch. */
export interface Responses {
  /**
   * Reads and drops a body we do not need, so that its connection is reused:
   * at most `DRAIN_BYTES` for at most `DRAIN_MILLIS` (the rule a finished
   * stream's rest follows too), then the connection is closed instead.
   */
  readonly drain: (server: string, response: HttpClientResponse.HttpClientResponse) => Effect.Effect<void>
  /** At most `limit` bytes of a body as text; reading stops (and the connection is released) past it. */
  readonly readText: (
    server: string,
    response: HttpClientResponse.HttpClientResponse,
    limit: number
  ) => Effect.Effect<Read, TransportError>
  /** The error a status outside 2xx is: the server's own message when it sent one, redacted. */
  readonly statusError: (
    server: string,
    response: HttpClientResponse.HttpClientResponse,
    secrets: ReadonlyArray<string>
  ) => Effect.Effect<HttpStatusError>
  /** Fails with the content type that was not `expected`, and an excerpt of the body. */
  readonly unexpected: (
    server: string,
    response: HttpClientResponse.HttpClientResponse,
    expected: string,
    secrets: ReadonlyArray<string>
  ) => Effect.Effect<never, AttemptError>
  /** A JSON answer to a stream request: its error body, or the wrong content type. */
  readonly jsonInsteadOfStream: (
    server: string,
    response: HttpClientResponse.HttpClientResponse,
    secrets: ReadonlyArray<string>
  ) => Effect.Effect<never, AttemptError>
}

export const makeResponses = (limits: Limits, reader: BodyReader.Service): Responses => {
  const drain = (_server: string, response: HttpClientResponse.HttpClientResponse) =>
    Effect.suspend(() => {
      let bytes = 0
      let over = false
      let wake: (() => void) | undefined
      let body: BodyReader.Body | undefined
      const finish = () => {
        over = true
        wake?.()
      }
      const sink: BodyReader.Sink = {
        chunk: (piece) => {
          if ((bytes += piece.length) <= BodyReader.DRAIN_BYTES) return
          body?.cancel()
          finish()
        },
        end: finish,
        fail: finish
      }
      return Effect.flatMap(reader.open(response, sink), (opened) => {
        body = opened
        if (bytes > BodyReader.DRAIN_BYTES) opened.cancel()
        return Effect.async<void>((resume) => {
          if (over) return resume(Effect.void)
          wake = () => resume(Effect.void)
          // Past the time bound (or when the caller gives up) the connection is closed.
          return Effect.sync(opened.cancel)
        })
      })
    }).pipe(Effect.timeout(Duration.millis(BodyReader.DRAIN_MILLIS)), Effect.ignore)

  const readText = (server: string, response: HttpClientResponse.HttpClientResponse, limit: number) =>
    Effect.suspend(() => {
      const decoder = new TextDecoder()
      return Stream.runFoldWhile(
        response.stream,
        { text: "", bytes: 0, truncated: false },
        (state) => !state.truncated,
        (state, bytes) => {
          const room = limit - state.bytes
          const piece = bytes.length > room ? bytes.subarray(0, room) : bytes
          return {
            text: state.text + decoder.decode(piece, { stream: true }),
            bytes: state.bytes + bytes.length,
            truncated: bytes.length > room
          }
        }
      ).pipe(
        Effect.map((state) => (state.truncated ? state : { ...state, text: state.text + decoder.decode() })),
        Effect.mapError((e) => new TransportError({ server, detail: describe(e) }))
      )
    })

  const readErrorBody = (server: string, response: HttpClientResponse.HttpClientResponse) =>
    Effect.orElseSucceed(
      limits.headers(
        server,
        Effect.map(readText(server, response, ERROR_BODY_LIMIT), (r) => r.text)
      ),
      () => ""
    )

  const wrongType = (
    server: string,
    response: HttpClientResponse.HttpClientResponse,
    expected: string,
    text: string,
    secrets: ReadonlyArray<string>
  ) =>
    new UnexpectedContentType({
      server,
      contentType: contentTypeOf(response),
      expected,
      body: excerpt(text, secrets)
    })

  return {
    drain,
    readText,
    statusError: (server, response, secrets) =>
      Effect.gen(function* () {
        const text = yield* readErrorBody(server, response)
        let body = excerpt(text, secrets)
        try {
          body = excerpt(serverMessage(JSON.parse(text)) ?? body, secrets)
        } catch {
          // Not JSON: the excerpt of the text stays.
        }
        const retryAfter = retryAfterOf(response.headers["retry-after"], yield* Clock.currentTimeMillis)
        return new HttpStatusError({
          server,
          status: response.status,
          statusText: REASONS[response.status] ?? "",
          body,
          ...(retryAfter === undefined ? {} : { retryAfter })
        })
      }),
    unexpected: (server, response, expected, secrets) =>
      Effect.flatMap(readErrorBody(server, response), (text) =>
        Effect.fail(wrongType(server, response, expected, text, secrets))
      ),
    jsonInsteadOfStream: (server, response, secrets) =>
      Effect.flatMap(readErrorBody(server, response), (text) => {
        let body: unknown
        try {
          body = JSON.parse(text)
        } catch {
          body = undefined
        }
        const error = body === undefined ? undefined : upstreamFromBody(server, body, secrets)
        return Effect.fail(error ?? wrongType(server, response, "text/event-stream", text, secrets))
      })
  }
}
