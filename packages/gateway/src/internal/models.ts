import { EasyChat } from "@easychat/core"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { matches } from "../Config.js"
import { apiError } from "./openai.js"
import { respond } from "./request.js"
import type { Route, Router } from "./routes.js"

/** How long the servers' lists are kept before they are asked again. */
const TTL_MILLIS = 60_000

const PREFIX = "/v1/models/"

const idOf = (url: string): string => {
  const path = url.split("?")[0]!.slice(PREFIX.length)
  try {
    return decodeURIComponent(path)
  } catch {
    return path
  }
}

type Model = Readonly<Record<string, unknown>>

/**
 * `GET /v1/models`: the models the pool's servers report at their
 * `/models`, merged by id (the first server to name one gives its object);
 * a server without such a list counts as serving the configured `models`.
 * Kept for a minute.
 */
export const makeModels = (configured: ReadonlyArray<string>, created: number) => {
  const own: ReadonlyArray<Model> = configured.map((id) => ({ id, object: "model", created, owned_by: "easychat" }))
  let cached: { readonly at: number; readonly data: ReadonlyArray<Model> } | undefined
  const ask = Effect.map(
    Effect.flatMap(EasyChat.EasyChat, (chat) => chat.models),
    (servers) => {
      const byId = new Map<string, Model>()
      for (const { models } of servers) {
        for (const model of models ?? own) {
          const id = model.id
          if (typeof id === "string" && !byId.has(id)) byId.set(id, model)
        }
      }
      return byId.size > 0 ? [...byId.values()] : own
    }
  )
  const list = Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    if (cached !== undefined && now - cached.at < TTL_MILLIS) return cached.data
    const data = yield* ask
    cached = { at: now, data }
    return data
  })
  return answers(list)
}

const answers = <R>(list: Effect.Effect<ReadonlyArray<Model>, never, R>) => ({
  list: Effect.map(list, (data) => HttpServerResponse.unsafeJson({ object: "list", data })),
  // An id may hold slashes (`openai/gpt-4o`), sent as they are or encoded.
  one: Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.map(list, (data) => {
      const id = idOf(request.url)
      const found = data.find((m) => m.id === id)
      return found !== undefined
        ? HttpServerResponse.unsafeJson(found)
        : respond(
            apiError(404, "invalid_request_error", "model_not_found", `The model ${id} does not exist`, {
              param: "model"
            })
          )
    })
  )
})

/**
 * `GET /v1/models` of a gateway with routes: each route's names (as its
 * servers describe them, when one does), and for its patterns (`qwen*`) the
 * models its servers report that match; a model served by two routes is
 * listed once, as the first serves it. Each route's list is kept for a
 * minute.
 */
export const makeRouteModels = <R>(router: Router<R>, created: number) => {
  const own = (id: string): Model => ({ id, object: "model", created, owned_by: "easychat" })
  const listOf = (route: Route) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      if (route.listed !== undefined && now - route.listed.at < TTL_MILLIS) return route.listed.data
      const servers = yield* router.provide(
        route,
        Effect.flatMap(EasyChat.EasyChat, (chat) => chat.models)
      )
      const reported = new Map<string, Model>()
      for (const { models } of servers) {
        for (const model of models ?? []) {
          if (typeof model.id === "string" && !reported.has(model.id)) reported.set(model.id, model)
        }
      }
      const data: Array<Model> = []
      for (const name of route.models) {
        if (!name.includes("*")) data.push(reported.get(name) ?? own(name))
        else for (const [id, model] of reported) if (matches(name, id)) data.push(model)
      }
      route.listed = { at: now, data }
      return data
    })
  const list = Effect.gen(function* () {
    const table = yield* router.table
    const byId = new Map<unknown, Model>()
    for (const route of table.routes) {
      for (const model of yield* listOf(route)) if (!byId.has(model.id)) byId.set(model.id, model)
    }
    return [...byId.values()]
  })
  return answers(list)
}
