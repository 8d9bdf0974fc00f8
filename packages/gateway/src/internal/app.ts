import { IncomingMessage } from "node:http"
import { type ChatDelta, type ChatRequestInput, EasyChat, type EasyChatError, ServerPool } from "@easychat/core"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { makeKeyCheck } from "./auth.js"
import {
  type ApiError,
  apiError,
  completionBody,
  fromEasyChatError,
  makeChunkEncoder,
  type ReplyMeta
} from "./openai.js"

/** The checked options the app is built from. */
export interface Settings {
  readonly keys: ReadonlyArray<string>
  readonly cors: ReadonlyArray<string>
  readonly maxBodyBytes: number
  readonly maxConcurrent: number
  readonly models: ReadonlyArray<string>
}

/** A request the gateway answers with an error before (or instead of) calling the pool. */
class Rejected extends Data.TaggedError("Rejected")<{ readonly error: ApiError }> {}

const reject = (...args: Parameters<typeof apiError>) => new Rejected({ error: apiError(...args) })

const respond = (error: ApiError): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.unsafeJson(error.body, {
    status: error.status,
    ...(error.headers ? { headers: error.headers } : {})
  })

/** Logs what the operator should see (the pool's failures); a client's own mistakes are not worth a line. */
const logged = (error: ApiError) =>
  error.status >= 500
    ? Effect.as(
        Effect.logWarning(`easychat gateway: ${error.body.error.message}`).pipe(
          Effect.annotateLogs({ status: error.status, code: error.body.error.code ?? "" })
        ),
        error
      )
    : Effect.succeed(error)

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

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

/** What one chat request asks for, and the request core receives. */
interface ChatCall {
  readonly request: ChatRequestInput
  readonly stream: boolean
  readonly includeUsage: boolean
  readonly model: string
}

const invalid = (param: string, message: string) =>
  reject(400, "invalid_request_error", "InvalidRequest", `Invalid request: ${param} ${message}`, { param })

const toCall = (text: string, defaultModel: string): Effect.Effect<ChatCall, Rejected> =>
  Effect.gen(function* () {
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      return yield* reject(400, "invalid_request_error", "invalid_json", "The request body is not valid JSON")
    }
    if (!isObject(body)) return yield* invalid("request", "must be a JSON object")
    const { stream = false, stream_options, n, ...request } = body
    if (typeof stream !== "boolean") return yield* invalid("stream", "must be a boolean")
    if (stream_options !== undefined && stream_options !== null && !isObject(stream_options)) {
      return yield* invalid("stream_options", "must be an object")
    }
    // Core reads the first choice only: more than one would be silently dropped.
    if (n !== undefined && n !== null && n !== 1)
      return yield* invalid("n", "must be 1: the gateway returns one choice")
    const includeUsage = stream && isObject(stream_options) && stream_options.include_usage === true
    // Only the usage request travels on, so that an upstream able to count tokens does.
    if (includeUsage) request.stream_options = { include_usage: true }
    const model = typeof request.model === "string" && request.model !== "" ? request.model : defaultModel
    // Core validates the rest (messages, ranges, ...) and answers InvalidRequest.
    return { request: request as ChatRequestInput, stream, includeUsage, model }
  })

/** Waits for Node's next tick, where it writes what a response corked. */
const nextTick = Effect.async<void>((resume) => {
  process.nextTick(() => resume(Effect.void))
})

const sseHeaders = (server: string | undefined) => ({
  "cache-control": "no-cache",
  // Proxies such as nginx must not hold deltas back.
  "x-accel-buffering": "no",
  ...(server === undefined ? {} : { "x-easychat-server": server })
})

const makeChatCompletions = (settings: Settings) => {
  let active = 0
  // Held in the request's scope, which lasts until the last byte of the response is written.
  const admit = Effect.acquireRelease(
    Effect.sync(() => {
      if (active >= settings.maxConcurrent) return false
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
  const busy = apiError(
    429,
    "rate_limit_error",
    "too_many_concurrent_requests",
    `The gateway is already serving ${settings.maxConcurrent} requests; retry shortly`,
    { headers: { "retry-after": "1" } }
  )

  return Effect.gen(function* () {
    if (!(yield* admit)) return respond(busy)
    const request = yield* HttpServerRequest.HttpServerRequest
    const bytes = yield* readBody(request, settings.maxBodyBytes)
    const text = yield* Effect.try({
      try: () => decoder.decode(bytes),
      catch: () =>
        new Rejected({ error: apiError(400, "invalid_request_error", "invalid_json", "The request body is not UTF-8") })
    })
    const call = yield* toCall(text, settings.models[0]!)
    const chat = yield* EasyChat.EasyChat
    const meta: ReplyMeta = {
      id: `chatcmpl-${crypto.randomUUID().replace(/-/g, "")}`,
      created: Math.floor((yield* Clock.currentTimeMillis) / 1000),
      model: call.model
    }
    if (!call.stream) {
      const reply = yield* chat.complete(call.request)
      return HttpServerResponse.unsafeJson(completionBody(meta, reply), {
        headers: { "x-easychat-server": reply.server }
      })
    }
    const pull = yield* Stream.toPull(chat.stream(call.request))
    // Until the first delta the pool may still fail over, and a failure still has an honest HTTP status.
    let first = Chunk.empty<ChatDelta>()
    let ended = false
    while (Chunk.isEmpty(first) && !ended) {
      const next = yield* Effect.either(pull)
      if (next._tag === "Right") first = next.right
      else if (Option.isNone(next.left)) ended = true
      else return yield* Effect.fail(next.left.value)
    }
    const chunks = makeChunkEncoder(meta, call.includeUsage)
    // One `Stream` step per upstream read, and a single layer (operators cost per step): the first batch,
    // each read, then `[DONE]` or, the status being sent, an error event in place of a silent end.
    let opening: Uint8Array | undefined = chunks.deltas(first)
    let flushed = false
    let over = false
    const finish = (error: Option.Option<EasyChatError>) => {
      over = true
      return Option.isNone(error)
        ? Effect.succeed(Chunk.of(chunks.end()))
        : Effect.map(logged(fromEasyChatError(error.value)), (e) => Chunk.of(chunks.error(e)))
    }
    const step = Effect.suspend((): Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<never>> => {
      if (opening !== undefined) {
        const out = opening
        opening = undefined
        return Effect.succeed(Chunk.of(out))
      }
      if (!flushed) {
        flushed = true
        // Node sends what was written at the next tick, and this fiber would go on first through every
        // delta already read, to the end: let the first delta leave now (the client's time to first token).
        return Effect.zipRight(nextTick, step)
      }
      if (over) return Effect.fail(Option.none())
      if (ended) return finish(Option.none())
      return Effect.matchEffect(pull, {
        onSuccess: (batch) => {
          const out = chunks.deltas(batch)
          return Effect.succeed(out.length === 0 ? Chunk.empty<Uint8Array>() : Chunk.of(out))
        },
        onFailure: finish
      })
    })
    const body = Stream.repeatEffectChunkOption(step)
    const server = Option.getOrUndefined(Option.map(Chunk.head(first), (d) => d.server))
    return HttpServerResponse.stream(body, {
      contentType: "text/event-stream; charset=utf-8",
      headers: sseHeaders(server)
    })
  }).pipe(
    Effect.catchAll((error: Rejected | EasyChatError | HttpServerError.RequestError) => {
      const api =
        error._tag === "Rejected"
          ? error.error
          : error._tag === "RequestError"
            ? apiError(400, "invalid_request_error", "invalid_body", "The request body could not be read")
            : fromEasyChatError(error)
      return Effect.map(logged(api), respond)
    })
  )
}

const makeModels = (models: ReadonlyArray<string>, created: number) => {
  const objects = models.map((id) => ({ id, object: "model", created, owned_by: "easychat" }))
  const list = { object: "list", data: objects }
  return {
    list: Effect.succeed(HttpServerResponse.unsafeJson(list)),
    one: Effect.map(HttpRouter.params, (params) => {
      const found = objects.find((m) => m.id === params.model)
      return found !== undefined
        ? HttpServerResponse.unsafeJson(found)
        : respond(
            apiError(404, "invalid_request_error", "model_not_found", `The model ${params.model} does not exist`, {
              param: "model"
            })
          )
    })
  }
}

const health = Effect.gen(function* () {
  const pool = yield* ServerPool.ServerPool
  const servers = yield* pool.health
  const open = servers.filter((s) => s.state === "open").length
  const closed = servers.filter((s) => s.state === "closed").length
  const status = closed === servers.length ? "ok" : open === servers.length ? "down" : "degraded"
  return HttpServerResponse.unsafeJson(
    {
      status,
      servers: servers.map((s) => ({
        server: s.server,
        state: s.state,
        failures: s.failures,
        lastLatencyMs: s.lastLatencyMs ?? null,
        openUntil: s.openUntil ?? null,
        lastError: s.lastError ?? null
      }))
    },
    { status: status === "down" ? 503 : 200 }
  )
})

const allowed: Readonly<Record<string, string>> = {
  "/v1/chat/completions": "POST",
  "/v1/models": "GET",
  "/health": "GET"
}

/** The gateway as an `HttpApp`: keys and CORS around the routes, OpenAI-shaped 404 and 405. */
export const make = (
  settings: Settings,
  startedAt: number
): HttpApp.Default<never, EasyChat.EasyChat | ServerPool.ServerPool> => {
  const models = makeModels(settings.models, Math.floor(startedAt / 1000))
  const router = HttpRouter.empty.pipe(
    HttpRouter.post("/v1/chat/completions", makeChatCompletions(settings)),
    HttpRouter.get("/v1/models", models.list),
    HttpRouter.get("/v1/models/:model", models.one),
    HttpRouter.get("/health", health)
  )
  const routed = Effect.catchTag(router, "RouteNotFound", (error) => {
    const path = error.request.url.split("?")[0]!
    const method = allowed[path]
    return Effect.succeed(
      method !== undefined
        ? respond(
            apiError(405, "invalid_request_error", "method_not_allowed", `Use ${method} ${path}`, {
              headers: { allow: method }
            })
          )
        : respond(apiError(404, "invalid_request_error", "unknown_url", `Unknown URL: ${error.request.method} ${path}`))
    )
  })
  const check = makeKeyCheck(settings.keys)
  const guarded =
    settings.keys.length === 0
      ? routed
      : Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const verdict = check(request.headers.authorization)
          if (verdict === "ok") return routed
          const message =
            verdict === "missing" ? "Missing API key: send Authorization: Bearer <key>" : "Incorrect API key provided"
          return Effect.succeed(
            respond(
              apiError(401, "invalid_request_error", "invalid_api_key", message, {
                headers: { "www-authenticate": "Bearer" }
              })
            )
          )
        })
  if (settings.cors.length === 0) return guarded
  // A preflight carries no key: CORS answers it before the key check.
  return HttpMiddleware.cors({
    allowedOrigins: settings.cors.includes("*") ? [] : settings.cors,
    allowedMethods: ["GET", "POST", "OPTIONS"],
    exposedHeaders: ["retry-after", "x-easychat-server"],
    maxAge: 600
  })(guarded)
}
