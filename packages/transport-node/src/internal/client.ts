import type * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import type { Dispatcher } from "undici"
import { UndiciResponse } from "./response.js"

/**
 * The response this package made behind each response its clients returned. `HttpClient.make` hands the caller a
 * wrapper of the response it was given (the wrapper aborts the request when its body is interrupted), so the
 * caller's response is not ours.
 */
const made = new WeakMap<HttpClientResponse.HttpClientResponse, UndiciResponse>()

/** The undici response behind `response`, when a client of this package made it. @internal */
export const undiciResponseOf = (response: HttpClientResponse.HttpClientResponse): UndiciResponse | undefined =>
  response instanceof UndiciResponse ? response : made.get(response)

type RequestBody = Exclude<Dispatcher.DispatchOptions["body"], undefined>

const bodyOf = (body: Exclude<HttpBody.HttpBody, HttpBody.Stream>): RequestBody => {
  switch (body._tag) {
    case "Empty":
      return null
    case "Uint8Array":
    case "Raw":
      return body.body as Uint8Array
    case "FormData":
      return body.formData as unknown as RequestBody
  }
}

/**
 * `HttpClient` over an undici dispatcher. Redirects are not followed (no interceptor is installed); interruption
 * aborts the request through `HttpClient.make`'s signal, which closes its socket.
 *
 * @internal
 */
export const make = (dispatcher: Dispatcher): HttpClient.HttpClient => {
  // The caller's response is linked to ours through the fiber that ran both `HttpClient.make`'s request and the
  // `transformResponse` below: nothing else is shared between them.
  const pending = new WeakMap<Fiber.RuntimeFiber<any, any>, UndiciResponse>()

  const send = (
    request: HttpClientRequest.HttpClientRequest,
    url: URL,
    signal: AbortSignal,
    fiber: Fiber.RuntimeFiber<any, any>,
    body: RequestBody
  ) => {
    // `NodeHttpClient.UndiciRequestOptions` still applies: one map lookup, not a context merge.
    const options = fiber.currentContext.unsafeMap.get(NodeHttpClient.UndiciRequestOptions.key) as
      | Partial<Dispatcher.RequestOptions>
      | undefined
    return Effect.map(
      Effect.tryPromise({
        try: () =>
          dispatcher.request({
            ...options,
            signal,
            method: request.method,
            headers: request.headers,
            origin: url.origin,
            path: url.pathname + url.search + url.hash,
            body,
            // Core applies its own timeouts (headers, first token, idle, total); an hour is the net for other callers.
            headersTimeout: 60 * 60 * 1000,
            bodyTimeout: 0
          }),
        catch: (cause) => new HttpClientError.RequestError({ request, reason: "Transport", cause })
      }),
      (data) => {
        const response = new UndiciResponse(request, data)
        pending.set(fiber, response)
        return response
      }
    )
  }

  const client = HttpClient.make((request, url, signal, fiber) => {
    const body = request.body
    if (body._tag !== "Stream") return send(request, url, signal, fiber, bodyOf(body))
    return Effect.flatMap(NodeStream.toReadable(body.stream), (readable) => send(request, url, signal, fiber, readable))
  })

  return HttpClient.transformResponse(client, (effect) =>
    Effect.withFiberRuntime((fiber) =>
      Effect.map(effect, (response) => {
        const own = pending.get(fiber)
        if (own !== undefined) {
          pending.delete(fiber)
          if (own !== response) made.set(response, own)
        }
        return response
      })
    )
  )
}
