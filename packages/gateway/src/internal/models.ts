import { EasyChat } from "@easychat/core"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { apiError } from "./openai.js"
import { respond } from "./request.js"

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
  return {
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
  }
}
