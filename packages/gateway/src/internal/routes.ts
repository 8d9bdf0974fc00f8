import { AllServersFailed, EasyChat, ServerPool } from "@easychat/core"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import { type Config as Configuration, InvalidConfig, matches, type Route as RouteConfig } from "../Config.js"
import { annotate, instrument, type Metrics, NO_ROUTE } from "./metrics.js"
import { invalid, type Rejected, reject } from "./request.js"

type Pool = EasyChat.EasyChat | ServerPool.ServerPool

/** A route: the models it serves and the pool that serves them. */
export interface Route {
  readonly name: string
  readonly models: ReadonlyArray<string>
  readonly fallback: string | undefined
  /** Its pool's services; `undefined`: the ones the app runs with (a gateway of one pool). */
  readonly context: Context.Context<Pool> | undefined
  /** What its pool was built from, to tell an unchanged route on reload. */
  readonly source: RouteConfig | undefined
  /** `GET /v1/models` of this route, kept for a minute. */
  listed: { at: number; data: ReadonlyArray<Readonly<Record<string, unknown>>> } | undefined
}

/** The routes in use: a request reads the table once, when it starts. */
export interface Table {
  readonly routes: ReadonlyArray<Route>
  /** The route for a request's `model`: its exact name first, then the first pattern; none: the first route. */
  readonly find: (model: string | undefined) => Route | undefined
  readonly byName: (name: string) => Route | undefined
  readonly config: Configuration | undefined
}

/**
 * Where the handlers find the routes: `configured` (from a configuration:
 * a model no route serves is a 404, `/health` lists the routes) or a single
 * pool, the app's own services.
 */
export interface Router<R> {
  readonly configured: boolean
  readonly table: Effect.Effect<Table>
  /** Runs `effect` with the route's pool. */
  readonly provide: <A, E, R2>(
    route: Route,
    effect: Effect.Effect<A, E, R2>
  ) => Effect.Effect<A, E, R | Exclude<R2, Pool>>
}

/** One pool for every model: the services the app is run with. */
export const single = (models: ReadonlyArray<string>): Router<Pool> => {
  const route: Route = {
    name: "default",
    models,
    fallback: undefined,
    context: undefined,
    source: undefined,
    listed: undefined
  }
  const table: Table = {
    routes: [route],
    find: () => route,
    byName: (name) => (name === route.name ? route : undefined),
    config: undefined
  }
  // The app runs with the pool's services: they stay a requirement of the app, not of the route.
  return { configured: false, table: Effect.succeed(table), provide: (_, effect) => effect as never }
}

const tableOf = (routes: ReadonlyArray<Route>, config: Configuration | undefined): Table => {
  const exact = new Map<string, Route>()
  for (const route of routes) for (const model of route.models) if (!model.includes("*")) exact.set(model, route)
  const byName = new Map(routes.map((r) => [r.name, r]))
  return {
    routes,
    find: (model) =>
      model === undefined
        ? routes[0]
        : (exact.get(model) ?? routes.find((r) => r.models.some((m) => m.includes("*") && matches(m, model)))),
    byName: (name) => byName.get(name),
    config
  }
}

/** Whether two routes build the same pool (keys compared by value, never printed). */
const samePool = (a: RouteConfig, b: RouteConfig): boolean => {
  const secret = (r: Redacted.Redacted<string> | undefined) => (r === undefined ? undefined : Redacted.value(r))
  return (
    JSON.stringify(a.pool) === JSON.stringify(b.pool) &&
    a.pool.serverHeaders === b.pool.serverHeaders &&
    secret(a.apiKey) === secret(b.apiKey) &&
    secret(a.accessCode) === secret(b.accessCode)
  )
}

const poolOf = (route: Route) => Context.get(route.context!, ServerPool.ServerPool)

/**
 * Builds the routes of a configuration. A route whose pool is unchanged
 * (same name, same options and keys) keeps its services whole: breakers,
 * estimates, cookies. A rebuilt pool starts from what the previous routes
 * measured of its servers (the same-named route first, then any other).
 */
export const build = (
  config: Configuration,
  previous: Table | undefined,
  metrics?: Metrics
): Effect.Effect<Table, InvalidConfig, HttpClient.HttpClient> =>
  Effect.gen(function* () {
    const routes: Array<Route> = []
    for (const [i, source] of config.routes.entries()) {
      const before = previous?.byName(source.name)
      let context: Context.Context<Pool>
      if (before?.source !== undefined && before.context !== undefined && samePool(before.source, source)) {
        context = before.context
        if (metrics !== undefined) metrics.pools.set(source.name, poolOf(before))
      } else {
        const seed: Array<ServerPool.ServerHealth> = []
        const seen = new Set<string>()
        const others = previous === undefined ? [] : previous.routes.filter((r) => r !== before)
        for (const route of before === undefined ? others : [before, ...others]) {
          if (route.context === undefined) continue
          for (const health of yield* poolOf(route).health) {
            if (seen.has(health.server)) continue
            seen.add(health.server)
            seed.push(health)
          }
        }
        const options = {
          ...source.pool,
          ...(source.apiKey === undefined ? {} : { apiKey: Redacted.value(source.apiKey) }),
          ...(source.accessCode === undefined ? {} : { accessCode: Redacted.value(source.accessCode) })
        }
        const built = yield* Effect.either(
          Effect.gen(function* () {
            const made = yield* ServerPool.make(options, { seed })
            // Its attempts are counted in the gateway's metrics, under the route's name.
            const pool = metrics === undefined ? made : instrument(made, metrics, source.name)
            const chat = yield* Effect.provideService(EasyChat.make(options), ServerPool.ServerPool, pool)
            return Context.make(ServerPool.ServerPool, pool).pipe(Context.add(EasyChat.EasyChat, chat))
          })
        )
        if (Either.isLeft(built)) {
          return yield* new InvalidConfig({
            ...(config.file === undefined ? {} : { file: config.file }),
            issues: [{ path: `routes[${i}].${built.left.field}`, rule: built.left.rule }]
          })
        }
        context = built.right
      }
      routes.push({
        name: source.name,
        models: source.models,
        fallback: source.fallback,
        context,
        source,
        listed: undefined
      })
    }
    if (metrics !== undefined) {
      // Routes that are gone are no longer reported.
      for (const name of [...metrics.pools.keys()]) if (!routes.some((r) => r.name === name)) metrics.pools.delete(name)
    }
    return tableOf(routes, config)
  })

/** The routes of a configuration, read from `ref` (a reload sets it at once). */
export const configured = (ref: Ref.Ref<Table>): Router<never> => ({
  configured: true,
  table: Ref.get(ref),
  provide: (route, effect) => Effect.provide(effect, route.context!) as never
})

const isAllServersFailed = (error: unknown): error is AllServersFailed =>
  typeof error === "object" && error !== null && (error as { _tag?: unknown })._tag === "AllServersFailed"

/** The body for a fallback route: a model it does not serve becomes its own. */
const bodyFor = (route: Route, body: Record<string, unknown>): Record<string, unknown> => {
  const model = body.model
  if (typeof model !== "string" || route.models.some((m) => matches(m, model))) return body
  const own = route.source?.pool.model
  return own === undefined ? body : { ...body, model: own }
}

/**
 * Runs `run` on `route`; when its whole pool failed (`AllServersFailed`)
 * and it names a fallback route, on that one (and its own fallback, and so
 * on), with a model that route serves. A failure of every one lists the
 * attempts of all of them.
 */
export const withFallback = <R, A, E, R2>(
  router: Router<R>,
  table: Table,
  route: Route,
  body: Record<string, unknown>,
  run: (body: Record<string, unknown>) => Effect.Effect<A, E, R2>
): Effect.Effect<A, E | AllServersFailed, R | Exclude<R2, Pool>> => {
  type Out = Effect.Effect<A, E | AllServersFailed, R | Exclude<R2, Pool>>
  // The usual case (one pool, or a route without fallback) costs nothing more than its own call.
  if (route.fallback === undefined) return router.provide(route, run(body))
  const visited = new Set<string>()
  const go = (
    current: Route,
    input: Record<string, unknown>,
    before: ReadonlyArray<AllServersFailed["attempts"][number]>
  ): Out => {
    visited.add(current.name)
    const next = current.fallback === undefined ? undefined : table.byName(current.fallback)
    const attempt = router.provide(current, run(input))
    if (before.length === 0 && (next === undefined || visited.has(next.name))) return attempt
    return Effect.catchAll(attempt, (error): Out => {
      if (!isAllServersFailed(error)) return Effect.fail(error)
      const attempts = [...before, ...error.attempts]
      if (next === undefined || visited.has(next.name)) return Effect.fail(new AllServersFailed({ attempts }))
      return Effect.zipRight(
        Effect.logWarning(`easychat gateway: route ${current.name} failed on every server; trying ${next.name}`),
        go(next, bodyFor(next, input), attempts)
      )
    })
  }
  return go(route, body, [])
}

/**
 * Picks the route of a request by its body's `model`, names it for the
 * metrics, and runs `handler` with it; a model no route serves is a 404 in
 * OpenAI's shape. The table is read once: a reload during the request does
 * not change its route.
 */
export const routed = <R, A, E, R2>(
  router: Router<R>,
  body: Record<string, unknown>,
  handler: (table: Table, route: Route) => Effect.Effect<A, E, R2>
): Effect.Effect<A, E | Rejected, R2> =>
  Effect.flatMap(router.table, (table): Effect.Effect<A, E | Rejected, R2> => {
    const model = body.model
    if (!router.configured) return handler(table, table.routes[0]!)
    if (model !== undefined && typeof model !== "string") return Effect.fail(invalid("model", "must be a string"))
    const route = table.find(model)
    if (route === undefined) {
      return Effect.zipRight(
        annotate({ route: NO_ROUTE, model }),
        Effect.fail(
          reject(404, "invalid_request_error", "model_not_found", `The model ${model} does not exist`, {
            param: "model"
          })
        )
      )
    }
    return Effect.zipRight(annotate({ route: route.name, model }), handler(table, route))
  })
