import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type { Limits } from "./limits.js"
import type { Outgoing } from "./outgoing.js"
import { contentTypeOf, isJson, isSuccess, type Responses } from "./response.js"
import type { Sender } from "./send.js"
import type { Settings } from "./settings.js"

/** What one server reports at `GET {apiBase}/models`. */
export interface ServerModels {
  readonly server: string
  readonly models: ReadonlyArray<Readonly<Record<string, unknown>>> | undefined
}

/** Each server's `GET {apiBase}/models` list, asked of all at once; `undefined` for a server without one (or down). */
export const listModels = (
  parts: {
    readonly settings: Settings
    readonly outgoing: Outgoing
    readonly sender: Sender
    readonly responses: Responses
    readonly limits: Limits
  },
  apiBase: string
): Effect.Effect<ReadonlyArray<ServerModels>> => {
  const { settings, outgoing, sender, responses, limits } = parts
  return Effect.forEach(
    settings.servers,
    (server) =>
      Effect.gen(function* () {
        const url = `${server}${apiBase}/models`
        const headers = outgoing.apiHeaders(server, url, yield* Clock.currentTimeMillis)
        delete headers["content-type"]
        headers.accept = "application/json"
        const response = yield* sender.execute(server, HttpClientRequest.get(url, { headers }))
        if (!isSuccess(response.status) || !isJson(contentTypeOf(response))) {
          yield* responses.drain(server, response)
          return { server, models: undefined }
        }
        const read = yield* responses.readText(server, response, settings.maxReplySize)
        const body: unknown = read.truncated
          ? undefined
          : yield* Effect.orElseSucceed(
              Effect.try(() => JSON.parse(read.text)),
              () => undefined
            )
        const data = typeof body === "object" && body !== null ? (body as { data?: unknown }).data : undefined
        return {
          server,
          models: Array.isArray(data)
            ? data.filter((m): m is Record<string, unknown> => typeof m === "object" && m !== null)
            : undefined
        }
      }).pipe(
        // A server that stalls or answers nonsense has no list; the others still answer.
        Effect.timeoutFail({ duration: limits.millis.headers, onTimeout: () => limits.timeoutOf(server, "headers") }),
        Effect.orElseSucceed(() => ({ server, models: undefined }))
      ),
    { concurrency: "unbounded" }
  )
}
