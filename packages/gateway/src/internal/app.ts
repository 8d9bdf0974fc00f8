import { type EasyChat, ServerPool } from "@easychat/core"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import { clientSecrets, makeKeyCheck, redact } from "./auth.js"
import { makeChatCompletions } from "./chat.js"
import { makeForward } from "./forward.js"
import { makeModels } from "./models.js"
import { type ApiError, apiError } from "./openai.js"
import { closeUnread, makeLimit, type Resolved, respond, type Settings } from "./request.js"

export { checkContinue } from "./request.js"
export type { Settings }

/** The defaults of the settings `Gateway.ts` may leave out. */
export const withDefaults = (settings: Settings): Resolved => ({
  ...settings,
  bodyTimeoutMs: settings.bodyTimeoutMs ?? 30_000,
  allowRouting: settings.allowRouting ?? false,
  hostnames: (settings.hostnames ?? []).map((name) => name.toLowerCase())
})

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
        lastError: s.lastError ?? null,
        estimateMs: s.estimateMs === undefined ? null : Math.round(s.estimateMs),
        failureRate: Math.round(s.failureRate * 1000) / 1000,
        weight: s.weight,
        priority: s.priority
      }))
    },
    { status: status === "down" ? 503 : 200 }
  )
})

/** The method a known path takes, for a 405. */
const allowedFor = (path: string): string | undefined =>
  path === "/health" || path === "/v1/models" || path.startsWith("/v1/models/")
    ? "GET"
    : path.startsWith("/v1/")
      ? "POST"
      : undefined

/** Host names that only this machine can send requests to (any port). */
const LOOPBACK = ["127.0.0.1", "localhost", "[::1]"]

/** The name of a `Host` header without its port, lower-case; `undefined` when it is not `name[:port]`. */
const hostName = (host: string): string | undefined => {
  const value = host.toLowerCase()
  const end = value.startsWith("[") ? value.indexOf("]") + 1 : value.indexOf(":")
  if (end === 0) return undefined
  if (end === -1) return value
  return /^(?::\d*)?$/.test(value.slice(end)) ? value.slice(0, end) : undefined
}

const hostRefused = apiError(
  403,
  "invalid_request_error",
  "host_not_allowed",
  "Without keys, the gateway answers only requests addressed to this machine (Host 127.0.0.1, localhost or [::1]) or to its configured hostnames"
)

const internalError = apiError(
  500,
  "server_error",
  "internal_error",
  "The gateway failed to answer this request; its log says why"
)

/**
 * Appends `Origin` to `Vary`: with a list of origins, the answer depends on
 * the request's `Origin` (allowed or not), and a cache must not serve one
 * origin's answer to another. The platform's CORS middleware sets `Vary`
 * only for allowed origins (where it keeps this one), and replaces it with
 * `Access-Control-Request-Headers` on preflights.
 */
const varyOrigin = (response: HttpServerResponse.HttpServerResponse) => {
  const vary = response.headers.vary
  if (vary !== undefined && /(^|,)\s*origin\s*(,|$)/i.test(vary)) return response
  return HttpServerResponse.setHeader(response, "vary", vary === undefined ? "Origin" : `${vary}, Origin`)
}

/**
 * The gateway as an `HttpApp`: keys (or, without keys, loopback hosts only)
 * and CORS around the routes, OpenAI-shaped 404 and 405, and a 500 with an
 * OpenAI body, logged, for anything unforeseen.
 */
export const make = (
  options: Settings,
  startedAt: number
): HttpApp.Default<never, EasyChat.EasyChat | ServerPool.ServerPool> => {
  const settings = withDefaults(options)
  const models = makeModels(settings.models, Math.floor(startedAt / 1000))
  // One limit for every request that goes to the pool, taken once the body is read.
  const limited = makeLimit(settings.maxConcurrent)
  const router = HttpRouter.empty.pipe(
    HttpRouter.post("/v1/chat/completions", makeChatCompletions(settings, limited)),
    HttpRouter.post("/v1/*", makeForward(settings, limited)),
    HttpRouter.get("/v1/models", models.list),
    HttpRouter.get("/v1/models/*", models.one),
    HttpRouter.get("/health", health)
  )
  const routed = Effect.catchTag(router, "RouteNotFound", (error) => {
    const path = error.request.url.split("?")[0]!
    const method = allowedFor(path)
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
  const served = new Set([...LOOPBACK, ...settings.hostnames])
  /** Why a request is refused before routing, if it is. */
  const refusal = (request: HttpServerRequest.HttpServerRequest): ApiError | undefined => {
    if (settings.keys.length === 0) {
      // Without keys, a web page could reach this address with a form post, or read it after DNS rebinding.
      const host = request.headers.host
      const name = host === undefined ? undefined : hostName(host)
      return name !== undefined && served.has(name) ? undefined : hostRefused
    }
    const verdict = check(request.headers.authorization)
    if (verdict === "ok") return undefined
    const message =
      verdict === "missing" ? "Missing API key: send Authorization: Bearer <key>" : "Incorrect API key provided"
    return apiError(401, "invalid_request_error", "invalid_api_key", message, {
      headers: { "www-authenticate": "Bearer" }
    })
  }
  const guarded = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const refused = refusal(request)
    const answer = refused === undefined ? routed : Effect.succeed(respond(refused))
    return answer.pipe(
      // The last resort: a defect (a bug, a limit of the runtime) is still an OpenAI error, and logged.
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause)
          ? Effect.failCause(cause)
          : Effect.as(
              Effect.logError(
                `easychat gateway: ${request.method} ${request.url.split("?")[0]} failed: ${redact(
                  Cause.pretty(cause),
                  clientSecrets(settings.keys, request.headers.authorization)
                )}`
              ).pipe(Effect.annotateLogs({ status: 500, code: "internal_error" })),
              respond(internalError)
            )
      ),
      Effect.map((response) => closeUnread(request, response))
    )
  })
  if (settings.cors.length === 0) return guarded
  const anyOrigin = settings.cors.includes("*")
  // A preflight carries no key: CORS answers it before the key check.
  const cors = HttpMiddleware.cors({
    allowedOrigins: anyOrigin ? [] : settings.cors,
    allowedMethods: ["GET", "POST", "OPTIONS"],
    exposedHeaders: ["retry-after", "x-easychat-server"],
    maxAge: 600
  })
  // With a list, every answer (preflights included) varies with the request's origin.
  return anyOrigin ? cors(guarded) : Effect.map(cors(guarded), varyOrigin)
}
