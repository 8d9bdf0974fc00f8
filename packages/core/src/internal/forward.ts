import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import { type EasyChatError, InvalidRequest, StreamInterrupted } from "../Errors.js"
import type { Attempt, Attempts } from "./attempt.js"
import type { Limits } from "./limits.js"
import type { Outgoing } from "./outgoing.js"
import { single } from "./reader.js"
import { contentTypeOf, isEventStream, isJson, type Responses } from "./response.js"
import { describe } from "./send.js"

/** A request to another endpoint of the API, relative to its base (`/embeddings`). */
export interface ForwardRequest {
  readonly endpoint: string
  readonly body: unknown
  readonly stream?: boolean
}

/** The checked answer of a forwarded request, its body still to be read. */
export interface Forwarded {
  readonly server: string
  readonly status: number
  readonly contentType: string
  readonly body: Stream.Stream<Uint8Array, EasyChatError>
}

/** A path of the API, and the caller's query (Azure's `?api-version=`) as it came. */
export const checkEndpoint = (request: ForwardRequest): Either.Either<ForwardRequest, InvalidRequest> =>
  /^\/[A-Za-z0-9/_.-]*(\?[\x21-\x7e]*)?$/.test(request.endpoint) && !request.endpoint.includes("..")
    ? Either.right(request)
    : Either.left(
        new InvalidRequest({ field: "endpoint", rule: "must be a path such as /embeddings, with an optional query" })
      )

/**
 * One attempt of a forwarded request: the same cookies, headers and checks
 * as a chat attempt until the answer's status and content type, then its
 * body as it comes, each gap bounded by the idle timeout.
 */
export const forwardAttempt =
  (
    parts: {
      readonly attempts: Attempts
      readonly outgoing: Outgoing
      readonly responses: Responses
      readonly limits: Limits
    },
    apiBase: string,
    request: ForwardRequest
  ): Attempt<Forwarded> =>
  (context) =>
    Effect.gen(function* () {
      const { attempts, outgoing, responses, limits } = parts
      const { server, clock, start } = context
      const url = `${server}${apiBase}${request.endpoint}`
      const stream = request.stream === true
      const response = yield* attempts.exchange(context, (now) => {
        const headers = outgoing.apiHeaders(server, url, now)
        headers.accept = stream ? "text/event-stream" : "application/json"
        return HttpClientRequest.post(url, { headers }).pipe(
          HttpClientRequest.bodyText(JSON.stringify(request.body), "application/json")
        )
      })
      const latency = clock.unsafeCurrentTimeMillis() - start
      const contentType = contentTypeOf(response)
      const secrets = outgoing.secretsOf(server)
      if (stream ? !isEventStream(contentType) : !isJson(contentType)) {
        if (stream && isJson(contentType)) return yield* responses.jsonInsteadOfStream(server, response, secrets)
        return yield* responses.unexpected(server, response, stream ? "text/event-stream" : "application/json", secrets)
      }
      const body = response.stream.pipe(
        Stream.mapError(
          (e): EasyChatError => new StreamInterrupted({ server, deltas: 0, characters: 0, detail: describe(e) })
        ),
        Stream.timeoutFail(() => limits.timeoutOf(server, "idle"), limits.millis.idle)
      )
      return { reader: single({ server, status: response.status, contentType, body }), latency }
    })
