import { type EasyChat, ServerPool } from "@easychat/core"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { type Format, observe } from "./accessLog.js"
import { clientSecrets, makeKeyCheck, redact } from "./auth.js"
import { makeChatCompletions } from "./chat.js"
import { makeForward } from "./forward.js"
import { annotate, DEFAULT_ROUTE, type Metrics, makeMetrics, scrape } from "./metrics.js"
import { makeModels, makeRouteModels } from "./models.js"
import { type ApiError, apiError } from "./openai.js"
import * as Page from "./page.js"
import { closeUnread, makeLimit, type Resolved, respond, type Settings } from "./request.js"
import { type Router, single } from "./routes.js"

export { checkContinue } from "./request.js"
export type { Settings }

/** The defaults of the settings `Gateway.ts` may leave out. */
export const withDefaults = (settings: Settings): Resolved => ({
  ...settings,
  bodyTimeoutMs: settings.bodyTimeoutMs ?? 30_000,
  allowRouting: settings.allowRouting ?? false,
  hostnames: (settings.hostnames ?? []).map((name) => name.toLowerCase()),
  page: settings.page ?? true
})

const statusOf = (servers: ReadonlyArray<ServerPool.ServerHealth>) => {
  const open = servers.filter((s) => s.state === "open").length
  const closed = servers.filter((s) => s.state === "closed").length
  return closed === servers.length ? "ok" : open === servers.length ? "down" : "degraded"
}

const serverView = (s: ServerPool.ServerHealth) => ({
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
})

const health = Effect.gen(function* () {
  const pool = yield* ServerPool.ServerPool
  const servers = yield* pool.health
  const status = statusOf(servers)
  return HttpServerResponse.unsafeJson(
    { status, servers: servers.map(serverView) },
    { status: status === "down" ? 503 : 200 }
  )
})

/**
 * `/health` of a gateway with routes: every server at the top (a server of
 * several routes once, as its first route sees it), then each route's own
 * view; 503 when every server is down.
 */
const routesHealth = (router: Router<unknown>) =>
  Effect.gen(function* () {
    const table = yield* router.table
    const routes = []
    const all = new Map<string, ServerPool.ServerHealth>()
    for (const route of table.routes) {
      const servers = yield* Context.get(route.context!, ServerPool.ServerPool).health
      for (const s of servers) if (!all.has(s.server)) all.set(s.server, s)
      routes.push({
        name: route.name,
        models: route.models,
        status: statusOf(servers),
        servers: servers.map(serverView)
      })
    }
    const status = statusOf([...all.values()])
    return HttpServerResponse.unsafeJson(
      { status, servers: [...all.values()].map(serverView), routes },
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

/** What the gateway measures, and who may read it. */
export interface Observability {
  readonly metrics: Metrics
  /** `GET /metrics`: behind the keys (`keyed`), without a key (`open`), or not served (`off`). */
  readonly access: "open" | "keyed" | "off"
  readonly accessLog: Format
}

/**
 * The one pool's route; with routes, the handler names the route it picks
 * (`annotate`), and a request that gets none (a model no route serves) has none.
 */
const pooled =
  (configured: boolean) =>
  <A, E, R>(handler: Effect.Effect<A, E, R>) =>
    configured ? handler : Effect.zipRight(annotate({ route: DEFAULT_ROUTE }), handler)

/**
 * The gateway as an `HttpApp`: keys (or, without keys, loopback hosts only)
 * and CORS around the routes, OpenAI-shaped 404 and 405, and a 500 with an
 * OpenAI body, logged, for anything unforeseen; each request measured.
 */
export const make = (
  options: Settings,
  startedAt: number,
  observability: Observability = { metrics: makeMetrics(), access: "keyed", accessLog: "off" },
  routes?: Router<EasyChat.EasyChat | ServerPool.ServerPool>
): HttpApp.Default<never, EasyChat.EasyChat | ServerPool.ServerPool> => {
  const settings = withDefaults(options)
  // Without routes, one pool (the app's) serves every model.
  const pools = routes ?? single(settings.models)
  const models = pools.configured
    ? makeRouteModels(pools, Math.floor(startedAt / 1000))
    : makeModels(settings.models, Math.floor(startedAt / 1000))
  // One limit for every request that goes to the pool, taken once the body is read.
  const limited = makeLimit(settings.maxConcurrent)
  const router = HttpRouter.empty.pipe(
    HttpRouter.post("/v1/chat/completions", pooled(pools.configured)(makeChatCompletions(settings, limited, pools))),
    HttpRouter.post("/v1/*", pooled(pools.configured)(makeForward(settings, limited, pools))),
    HttpRouter.get("/v1/models", models.list),
    HttpRouter.get("/v1/models/*", models.one),
    HttpRouter.get("/health", pools.configured ? routesHealth(pools) : health),
    (routes) =>
      observability.access === "off" ? routes : HttpRouter.get(routes, "/metrics", scrape(observability.metrics)),
    (routes) => (settings.page ? HttpRouter.get(routes, "/", Effect.succeed(Page.response)) : routes)
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
    // The page holds no data: it is served without a key, and asks the user for one.
    if (settings.page && request.method === "GET" && request.url.split("?")[0] === "/") return undefined
    // Metrics the operator opened are read without a key (a scraper that holds none).
    if (observability.access === "open" && request.method === "GET" && request.url.split("?")[0] === "/metrics")
      return undefined
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
  const observed = (app: HttpApp.Default<never, EasyChat.EasyChat | ServerPool.ServerPool>) =>
    observe(app, { metrics: observability.metrics, accessLog: observability.accessLog, keys: settings.keys })
  if (settings.cors.length === 0) return observed(guarded)
  const anyOrigin = settings.cors.includes("*")
  // A preflight carries no key: CORS answers it before the key check.
  const cors = HttpMiddleware.cors({
    allowedOrigins: anyOrigin ? [] : settings.cors,
    allowedMethods: ["GET", "POST", "OPTIONS"],
    exposedHeaders: ["retry-after", "x-easychat-server"],
    maxAge: 600
  })
  // With a list, every answer (preflights included) varies with the request's origin.
  return observed(anyOrigin ? cors(guarded) : Effect.map(cors(guarded), varyOrigin))
}
