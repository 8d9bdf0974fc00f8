import { IncomingMessage } from "node:http"
import type { EasyChatError } from "@easychat/core"
import * as HttpServerError from "@effect/platform/HttpServerError"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type ApiError, apiError, fromEasyChatError } from "./openai.js"

/** The checked options the app is built from. */
export interface Settings {
  readonly keys: ReadonlyArray<string>
  readonly cors: ReadonlyArray<string>
  readonly maxBodyBytes: number
  readonly maxConcurrent: number
  readonly models: ReadonlyArray<string>
}

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
export const makeLimit = (max: number) => {
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
  return <E, R>(
    handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | Scope.Scope> =>
    Effect.flatMap(admit, (admitted) => (admitted ? handler : Effect.succeed(busy)))
}

const decoder = new TextDecoder("utf-8", { fatal: true })

// A body over the limit is still read to its end (and dropped) up to this much more, so that the client,
// still sending, gets its 413; stopping at once would destroy the socket under it. Beyond that: a reset.
const DISCARD_LIMIT = 16 * 1024 * 1024

const join = (parts: ReadonlyArray<Uint8Array>, size: number): Uint8Array => {
  const bytes = new Uint8Array(size)
  let offset = 0
  for (const part of parts) {
    bytes.set(part, offset)
    offset += part.length
  }
  return bytes
}

/** The body as a `Stream`, for servers other than Node's. */
const readStream = (request: HttpServerRequest.HttpServerRequest, max: number, tooLarge: () => Rejected) =>
  Effect.gen(function* () {
    const parts: Array<Uint8Array> = []
    let size = 0
    yield* Stream.runForEachChunk(request.stream, (chunk) => {
      for (const part of chunk) {
        size += part.length
        if (size <= max) parts.push(part)
      }
      return size > max + DISCARD_LIMIT ? tooLarge() : Effect.void
    })
    if (size > max) return yield* tooLarge()
    return join(parts, size)
  })

/**
 * The same read straight from Node's request: setting up the body `Stream`
 * costs more than reading a small body. Like that stream, it destroys the
 * request (and so resets the socket) when it stops before the end.
 */
const readNode = (
  request: HttpServerRequest.HttpServerRequest,
  source: IncomingMessage,
  max: number,
  tooLarge: () => Rejected
) =>
  Effect.async<Uint8Array, Rejected | HttpServerError.RequestError>((resume) => {
    if (!source.readable) return resume(Effect.succeed(new Uint8Array(0)))
    const parts: Array<Uint8Array> = []
    let size = 0
    const stop = () => {
      source.off("data", onData)
      source.off("end", onEnd)
      source.off("error", onError)
    }
    const onData = (part: Buffer) => {
      size += part.length
      if (size <= max) parts.push(part)
      else if (size > max + DISCARD_LIMIT) {
        stop()
        source.destroy()
        resume(Effect.fail(tooLarge()))
      }
    }
    const onEnd = () => {
      stop()
      resume(size > max ? Effect.fail(tooLarge()) : Effect.succeed(join(parts, size)))
    }
    const onError = (cause: unknown) => {
      stop()
      resume(Effect.fail(new HttpServerError.RequestError({ request, reason: "Decode", cause })))
    }
    source.on("data", onData)
    source.on("end", onEnd)
    source.on("error", onError)
    return Effect.sync(() => {
      stop()
      if (!source.closed) source.destroy()
    })
  })

/** Reads at most `max` bytes: a declared length over it is refused before reading anything. */
const readBody = (request: HttpServerRequest.HttpServerRequest, max: number) => {
  // Built only when needed: an error captures a stack trace, which costs more than reading a small body.
  const tooLarge = () =>
    reject(413, "invalid_request_error", "request_too_large", `The request body is larger than ${max} bytes`)
  const declared = Number(request.headers["content-length"])
  if (Number.isFinite(declared) && declared > max) return Effect.fail(tooLarge())
  return request.source instanceof IncomingMessage
    ? readNode(request, request.source, max, tooLarge)
    : readStream(request, max, tooLarge)
}

export const invalid = (param: string, message: string) =>
  reject(400, "invalid_request_error", "InvalidRequest", `Invalid request: ${param} ${message}`, { param })

/** The request's body as a JSON object, read within `max` bytes. */
export const readJsonObject = (
  request: HttpServerRequest.HttpServerRequest,
  max: number
): Effect.Effect<Record<string, unknown>, Rejected | HttpServerError.RequestError> =>
  Effect.flatMap(readBody(request, max), (bytes) => {
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
    return isObject(body) ? Effect.succeed(body) : Effect.fail(invalid("request", "must be a JSON object"))
  })

/** The answer to a failure before the response started: OpenAI's error body, logged when it is the pool's. */
export const failed = (error: Rejected | HttpServerError.RequestError | EasyChatError) =>
  Effect.map(
    logged(
      error._tag === "Rejected"
        ? error.error
        : error._tag === "RequestError"
          ? apiError(400, "invalid_request_error", "invalid_body", "The request body could not be read")
          : fromEasyChatError(error)
    ),
    respond
  )
