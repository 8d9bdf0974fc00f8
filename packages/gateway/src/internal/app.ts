import { type EasyChat, ServerPool } from "@easychat/core"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import { makeKeyCheck } from "./auth.js"
import { makeChatCompletions } from "./chat.js"
import { makeForward } from "./forward.js"
import { makeModels } from "./models.js"
import { apiError } from "./openai.js"
import { makeLimit, respond, type Settings } from "./request.js"

export type { Settings }

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

/** The method a known path takes, for a 405. */
const allowedFor = (path: string): string | undefined =>
  path === "/health" || path === "/v1/models" || path.startsWith("/v1/models/")
    ? "GET"
    : path.startsWith("/v1/")
      ? "POST"
      : undefined

/** The gateway as an `HttpApp`: keys and CORS around the routes, OpenAI-shaped 404 and 405. */
export const make = (
  settings: Settings,
  startedAt: number
): HttpApp.Default<never, EasyChat.EasyChat | ServerPool.ServerPool> => {
  const models = makeModels(settings.models, Math.floor(startedAt / 1000))
  // One limit for every request that goes to the pool.
  const limited = makeLimit(settings.maxConcurrent)
  const router = HttpRouter.empty.pipe(
    HttpRouter.post("/v1/chat/completions", limited(makeChatCompletions(settings))),
    HttpRouter.post("/v1/*", limited(makeForward(settings))),
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
