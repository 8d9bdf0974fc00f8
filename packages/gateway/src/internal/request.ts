import { IncomingMessage } from "node:http"
import type { EasyChatError } from "@easychat/core"
import * as HttpServerError from "@effect/platform/HttpServerError"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { annotate } from "./metrics.js"
import { type ApiError, apiError, fromEasyChatError } from "./openai.js"

/** The checked options the app is built from; `app.ts` gives the optional ones their defaults. */
export interface Settings {
  readonly keys: ReadonlyArray<string>
  readonly cors: ReadonlyArray<string>
  readonly maxBodyBytes: number
  readonly maxConcurrent: number
  readonly models: ReadonlyArray<string>
  /** How long a client may take to send a request body, in milliseconds (default 30 000); over it: 408. */
  readonly bodyTimeoutMs?: number
  /** Whether a client may choose the server (`activeServer` in its body); default false: such fields are dropped. */
  readonly allowRouting?: boolean
  /** Host names served without keys besides the loopback ones, lower-case (default none). */
  readonly hostnames?: ReadonlyArray<string>
  /** Whether `GET /` serves the chat page (default true). */
  readonly page?: boolean
}

/** The settings as the handlers read them, every default applied. */
export type Resolved = Required<Settings>

/** A request the gateway answers with an error before (or instead of) calling the pool. */
export class Rejected extends Data.TaggedError("Rejected")<{ readonly error: ApiError }> {}

export const reject = (...args: Parameters<typeof apiError>) => new Rejected({ error: apiError(...args) })

export const respond = (error: ApiError): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson(error.body, {
    status: error.status,
    ...(error.headers ? { headers: error.headers } : {})
  })

/** Logs what the operator should see (the pool's failures); a client's own mistakes are not worth a line. */
export const logged = (error: ApiError) =>
  error.status >= 500
    ? Effect.as(
        Effect.logWarning(`easychat gateway: ${error.body.error.message}`).pipe(
          Effect.annotateLogs({ status: error.status, code: error.body.error.code ?? "" })
        ),
        error
      )
    : Effect.succeed(error)

export const isObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Serves at most `max` requests to the pool at once; over it: 429 with
 * `Retry-After`. A place is held in the request's scope, which lasts until
 * the last byte of the response is written.
 */
export const makeLimit = (max: number): Limit => {
  let active = 0
  const admit = Effect.acquireRelease(
    Effect.sync(() => {
      if (active >= max) return false
      active++
      return true
    }),
    (admitted) =>
      admitted
        ? Effect.sync(() => {
            active--
          })
        : Effect.void
  )
  const busy = respond(
    apiError(
      429,
      "rate_limit_error",
      "too_many_concurrent_requests",
      `The gateway is already serving ${max} requests; retry shortly`,
      { headers: { "retry-after": "1" } }
    )
  )
  return (handler) => Effect.flatMap(admit, (admitted) => (admitted ? handler : Effect.succeed(busy)))
}

/** A handler run within the limit of `makeLimit`, or answered 429. */
export type Limit = <E, R>(
  handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
) => Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | Scope.Scope>

const decoder = new TextDecoder("utf-8", { fatal: true })

const join = (parts: ReadonlyArray<Uint8Array>, size: number): Uint8Array => {
  const bytes = new Uint8Array(size)
  let offset = 0
  for (const part of parts) {
    bytes.set(part, offset)
    offset += part.length
  }
  return bytes
}

/** How a read stops early; built only when needed (an error captures a stack trace). */
interface Refusals {
  readonly tooLarge: () => Rejected
  readonly tooSlow: () => Rejected
  /** The bytes of bodies being read, all requests together, and the one refusal past their budget. */
  readonly held: Held
  readonly busy: () => Rejected
}

/**
 * Bodies are read before a slot is taken, so the bytes they hold are bounded
 * apart: all bodies being read together hold at most `BODY_BUDGET_SLOTS ×
 * maxConcurrent × maxBodyBytes` (128 MiB with the defaults); a body that
 * would pass it is refused with a 503. Slow senders hold little, so they
 * never use it up.
 */
const BODY_BUDGET_SLOTS = 2
interface Held {
  used: number
  readonly max: number
}
const budgets = new WeakMap<Resolved, Held>()
const heldOf = (settings: Resolved): Held => {
  let held = budgets.get(settings)
  if (held === undefined) {
    held = { used: 0, max: BODY_BUDGET_SLOTS * settings.maxConcurrent * settings.maxBodyBytes }
    budgets.set(settings, held)
  }
  return held
}

/** The body as a `Stream`, for servers other than Node's. */
const readStream = (request: HttpServerRequest.HttpServerRequest, max: number, timeoutMs: number, refuse: Refusals) =>
  Effect.gen(function* () {
    const parts: Array<Uint8Array> = []
    let size = 0
    yield* Effect.ensuring(
      Stream.runForEachChunk(request.stream, (chunk) => {
        for (const part of chunk) {
          size += part.length
          refuse.held.used += part.length
          if (size <= max) parts.push(part)
        }
        return size > max ? refuse.tooLarge() : refuse.held.used > refuse.held.max ? refuse.busy() : Effect.void
      }),
      Effect.sync(() => {
        refuse.held.used -= size
      })
    )
    return join(parts, size)
  }).pipe(Effect.timeoutFail({ duration: Duration.millis(timeoutMs), onTimeout: refuse.tooSlow }))

/**
 * Requests whose client sent `Expect: 100-continue` and waits for it: the
 * `100 Continue` goes out only when the body is about to be read, so that a
 * request refused before (key, host, content type, declared size) never
 * makes its client send the body.
 */
const awaitingContinue = new WeakSet<IncomingMessage>()

/**
 * Node's `checkContinue` listener for the gateway's `http.Server`
 * (`server.on("checkContinue", checkContinue)`): without one, Node answers
 * `100 Continue` before any handler runs. It hands the request to the
 * server's handlers as any other, the `100 Continue` still unsent.
 */
export function checkContinue(
  this: { emit: (event: "request", request: IncomingMessage, response: unknown) => boolean },
  request: IncomingMessage,
  response: unknown
): void {
  awaitingContinue.add(request)
  this.emit("request", request, response)
}

/**
 * The body straight from Node's request (setting up the body `Stream` costs
 * more than reading a small body). On a refusal it stops reading at once and
 * pauses the request, without destroying it: the answer still has to go
 * out, and its `Connection: close` (see `closeUnread`) ends the socket.
 */
const readNode = (
  request: HttpServerRequest.HttpServerRequest,
  source: IncomingMessage,
  max: number,
  timeoutMs: number,
  refuse: Refusals
) =>
  Effect.async<Uint8Array, Rejected | HttpServerError.RequestError>((resume) => {
    if (!source.readable) return resume(Effect.succeed(new Uint8Array(0)))
    const parts: Array<Uint8Array> = []
    let size = 0
    const stop = () => {
      clearTimeout(deadline)
      refuse.held.used -= size
      size = 0
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
    }
    const refused = (error: Rejected) => {
      stop()
      source.pause()
      resume(Effect.fail(error))
    }
    const onData = (part: Buffer) => {
      size += part.length
      refuse.held.used += part.length
      if (size > max) refused(refuse.tooLarge())
      else if (refuse.held.used > refuse.held.max) refused(refuse.busy())
      else parts.push(part)
    }
    const onEnd = () => {
      const body = join(parts, size)
      stop()
      resume(Effect.succeed(body))
    }
    const onError = (cause: unknown) => {
      stop()
      resume(Effect.fail(new HttpServerError.RequestError({ request, reason: "Decode", cause })))
    }
    const deadline = setTimeout(() => refused(refuse.tooSlow()), timeoutMs)
    source.on("data", onData)
    source.on("end", onEnd)
    source.on("error", onError)
    if (awaitingContinue.delete(source)) NodeHttpServerRequest.toServerResponse(request).writeContinue()
    return Effect.sync(() => {
      stop()
      if (!source.closed) source.destroy()
    })
  })

/**
 * Reads at most `maxBodyBytes` within `bodyTimeoutMs`: a declared length
 * over the limit is refused before reading anything, a body that grows over
 * it or comes too slowly as soon as it does.
 */
const readBody = (request: HttpServerRequest.HttpServerRequest, settings: Resolved) => {
  const max = settings.maxBodyBytes
  const timeoutMs = settings.bodyTimeoutMs
  const refuse: Refusals = {
    tooLarge: () =>
      reject(413, "invalid_request_error", "request_too_large", `The request body is larger than ${max} bytes`),
    tooSlow: () =>
      reject(408, "invalid_request_error", "request_timeout", `The request body did not arrive within ${timeoutMs} ms`),
    held: heldOf(settings),
    busy: () =>
      reject(
        503,
        "server_error",
        "too_many_request_bodies",
        "The gateway is reading too many request bodies; retry shortly",
        {
          headers: { "retry-after": "1" }
        }
      )
  }
  const declared = Number(request.headers["content-length"])
  if (Number.isFinite(declared) && declared > max) return Effect.fail(refuse.tooLarge())
  return request.source instanceof IncomingMessage
    ? readNode(request, request.source, max, timeoutMs, refuse)
    : readStream(request, max, timeoutMs, refuse)
}

/**
 * Whether part of a request's body may still be on its way. A request
 * without a body (no `Content-Length` above 0, no `Transfer-Encoding`) has
 * nothing unread, though Node marks it `complete` only after its handler
 * began: a GET answered at once is not unread.
 */
const hasUnread = (source: IncomingMessage): boolean => {
  if (source.complete) return false
  if (source.headers["transfer-encoding"] !== undefined) return true
  const length = source.headers["content-length"]
  return length !== undefined && Number(length) > 0
}

/**
 * A response sent before the request's body has fully arrived closes the
 * connection (Node ends the socket once the response is written): keeping
 * it open would make Node read and drop the rest of the body, however large,
 * to reach the next request.
 */
export const closeUnread = (
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
): HttpServerResponse.HttpServerResponse =>
  request.source instanceof IncomingMessage && hasUnread(request.source)
    ? HttpServerResponse.setHeader(response, "connection", "close")
    : response

/** Deeper JSON is refused before it is parsed: core's handling of a body recurses through it. */
export const MAX_JSON_DEPTH = 64

/** Whether JSON text nests arrays and objects deeper than `limit`: one pass over the bytes, no recursion. */
const nestsDeeperThan = (bytes: Uint8Array, limit: number): boolean => {
  let depth = 0
  let inString = false
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!
    if (inString) {
      // A backslash escapes the next byte; bytes of multi-byte characters are never ASCII.
      if (byte === 0x5c) i++
      else if (byte === 0x22) inString = false
    } else if (byte === 0x22) inString = true
    else if (byte === 0x7b || byte === 0x5b) {
      if (++depth > limit) return true
    } else if (byte === 0x7d || byte === 0x5d) depth--
  }
  return false
}

/** `application/json`, with or without parameters (`; charset=utf-8`), in any case. */
const isJson = (contentType: string | undefined): boolean => {
  if (contentType === undefined) return false
  const end = contentType.indexOf(";")
  return (end === -1 ? contentType : contentType.slice(0, end)).trim().toLowerCase() === "application/json"
}

export const invalid = (param: string, message: string) =>
  reject(400, "invalid_request_error", "InvalidRequest", `Invalid request: ${param} ${message}`, { param })

/**
 * The request's body as a JSON object: sent as `application/json` (a web
 * page can post other types to any address without asking), read within the
 * size and time limits, nested at most `MAX_JSON_DEPTH` levels.
 */
export const readJsonObject = (
  request: HttpServerRequest.HttpServerRequest,
  settings: Resolved
): Effect.Effect<Record<string, unknown>, Rejected | HttpServerError.RequestError> => {
  if (!isJson(request.headers["content-type"])) {
    return Effect.fail(
      reject(
        415,
        "invalid_request_error",
        "unsupported_media_type",
        "Send the request body as JSON, with Content-Type: application/json"
      )
    )
  }
  return Effect.flatMap(readBody(request, settings), (bytes) => {
    if (nestsDeeperThan(bytes, MAX_JSON_DEPTH)) {
      return Effect.fail(
        reject(
          400,
          "invalid_request_error",
          "json_too_deep",
          `The request body nests JSON deeper than ${MAX_JSON_DEPTH} levels`
        )
      )
    }
    let body: unknown
    try {
      body = JSON.parse(decoder.decode(bytes))
    } catch (error) {
      return Effect.fail(
        reject(
          400,
          "invalid_request_error",
          "invalid_json",
          error instanceof SyntaxError ? "The request body is not valid JSON" : "The request body is not UTF-8"
        )
      )
    }
    // The model asked for, for the metrics and the access log.
    return isObject(body)
      ? Effect.as(annotate({ model: body.model }), body)
      : Effect.fail(invalid("request", "must be a JSON object"))
  })
}

/** The body fields core reads to choose a server: a client's choice would override the operator's pin. */
const ROUTING_FIELDS = ["activeServer", "active_server"] as const

/** The body without the fields that choose a server, unless the operator lets clients choose. */
export const routable = (body: Record<string, unknown>, settings: Resolved): Record<string, unknown> =>
  settings.allowRouting ? body : withoutRouting(body)

/**
 * The body without routing fields. Forwarded endpoints are always routed by
 * the operator's options: core reads no routing field of theirs, so it would
 * only travel upstream.
 */
export const withoutRouting = (body: Record<string, unknown>): Record<string, unknown> => {
  if (!ROUTING_FIELDS.some((field) => Object.hasOwn(body, field))) return body
  const copy = { ...body }
  for (const field of ROUTING_FIELDS) delete copy[field]
  return copy
}

/**
 * The answer to a failure before the response started: OpenAI's error body
 * (the client's `secrets` masked in it), logged when it is the pool's.
 */
export const failed = (
  error: Rejected | HttpServerError.RequestError | EasyChatError,
  secrets: ReadonlyArray<string>
) =>
  Effect.map(
    logged(
      error._tag === "Rejected"
        ? error.error
        : error._tag === "RequestError"
          ? apiError(400, "invalid_request_error", "invalid_body", "The request body could not be read")
          : fromEasyChatError(error, secrets)
    ),
    respond
  )
