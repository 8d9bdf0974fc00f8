import { IncomingMessage } from "node:http"
import { EasyChat, type EasyChatError } from "@easychat/core"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { clientSecrets } from "./auth.js"
import { sseHeaders } from "./chat.js"
import { apiError, fromEasyChatError, makeChunkEvents } from "./openai.js"
import {
  failed,
  invalid,
  type Limit,
  logged,
  type Resolved,
  readJsonObject,
  respond,
  withoutRouting
} from "./request.js"
import { type Router, routed, withFallback } from "./routes.js"

const isEventStream = (contentType: string) => contentType.toLowerCase().includes("text/event-stream")

/**
 * Any other `POST /v1/*` (`/v1/embeddings`, `/v1/completions`, ...): the
 * JSON body, read before a place is taken among `maxConcurrent`, goes to the
 * same path of the pool's API, with the pool's failover, breakers and key;
 * the answer's status, content type and body come back as the upstream sent
 * them.
 */
export const makeForward = <R>(settings: Resolved, limited: Limit, router: Router<R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const [path = "", query] = request.url.split("?", 2)
    const name = path.slice("/v1".length)
    // `/v1/models` is the gateway's own, read with GET.
    if (name === "/models" || name.startsWith("/models/")) {
      return Effect.succeed(
        respond(
          apiError(405, "invalid_request_error", "method_not_allowed", `Use GET ${path}`, {
            headers: { allow: "GET" }
          })
        )
      )
    }
    const secrets = () => clientSecrets(settings.keys, request.headers.authorization)
    return readJsonObject(request, settings).pipe(
      // The client's query goes on as it came (Azure's `?api-version=`).
      Effect.flatMap((body) =>
        routed(router, body, (table, route) =>
          limited(
            withFallback(router, table, route, withoutRouting(body), (input) =>
              forward(request, query === undefined ? name : `${name}?${query}`, input, secrets)
            )
          )
        )
      ),
      Effect.catchAll((error) => failed(error, secrets()))
    )
  })

const forward = (
  request: HttpServerRequest.HttpServerRequest,
  endpoint: string,
  body: Record<string, unknown>,
  secrets: () => ReadonlyArray<string>
) =>
  Effect.gen(function* () {
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
        Effect.flatMap(logged(fromEasyChatError(error, secrets())), (e) => {
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
  })
