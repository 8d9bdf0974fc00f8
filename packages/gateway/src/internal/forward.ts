import { IncomingMessage } from "node:http"
import { EasyChat, type EasyChatError } from "@easychat/core"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { sseHeaders } from "./chat.js"
import { apiError, fromEasyChatError, makeChunkEvents } from "./openai.js"
import { failed, invalid, logged, readJsonObject, respond, type Settings } from "./request.js"

const isEventStream = (contentType: string) => contentType.toLowerCase().includes("text/event-stream")

/**
 * Any other `POST /v1/*` (`/v1/embeddings`, `/v1/completions`, ...): the
 * JSON body goes to the same path of the pool's API, with the pool's
 * failover, breakers and key; the answer's status, content type and body
 * come back as the upstream sent them.
 */
export const makeForward = (settings: Settings) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const path = request.url.split("?")[0]!
    const endpoint = path.slice("/v1".length)
    // `/v1/models` is the gateway's own, read with GET.
    if (endpoint === "/models" || endpoint.startsWith("/models/")) {
      return respond(
        apiError(405, "invalid_request_error", "method_not_allowed", `Use GET ${path}`, { headers: { allow: "GET" } })
      )
    }
    const body = yield* readJsonObject(request, settings.maxBodyBytes)
    const stream = body.stream ?? false
    if (typeof stream !== "boolean") return yield* invalid("stream", "must be a boolean")
    const chat = yield* EasyChat.EasyChat
    const answer = yield* chat.forward({ endpoint, body, stream })
    // Once the status is sent, a failure can only end the body: an SSE error event for a stream,
    // a cut connection for anything else (a body that just ended would pass for a whole one).
    const sse = isEventStream(answer.contentType)
    const events = makeChunkEvents()
    const cut = (error: EasyChatError) =>
      Stream.fromEffect(
        Effect.flatMap(logged(fromEasyChatError(error)), (e) => {
          if (sse) return Effect.succeed(events.error(e))
          if (request.source instanceof IncomingMessage) NodeHttpServerRequest.toServerResponse(request).destroy()
          return Effect.fail(error)
        })
      )
    return HttpServerResponse.stream(Stream.catchAll(answer.body, cut), {
      status: answer.status,
      contentType: answer.contentType,
      headers: sse ? sseHeaders(answer.server) : { "x-easychat-server": answer.server }
    })
  }).pipe(Effect.catchAll(failed))
