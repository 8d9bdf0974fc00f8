import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { isForbiddenHeader } from "./browser.js"

/** What this package keeps of each response it made: the web body, and how to abort its fetch. @internal */
export interface Made {
  readonly response: HttpClientResponse.HttpClientResponse
  readonly body: ReadableStream<Uint8Array> | null
  readonly abort: () => void
}

/**
 * What this package made behind each response its clients returned. `HttpClient.make` hands the caller a wrapper
 * of the response it was given (the wrapper aborts the request when its body is interrupted), so the caller's
 * response is not the one made here.
 */
const made = new WeakMap<HttpClientResponse.HttpClientResponse, Made>()

/** What this package made behind `response`, when one of its clients made it. @internal */
export const madeOf = (response: HttpClientResponse.HttpClientResponse): Made | undefined => made.get(response)

/**
 * The reason every cancelled body's fetch is aborted with, made once: a fresh `AbortError` captures the stack it
 * is made on, which stays in memory as long as the aborted signal does.
 */
const CANCELLED = new DOMException("easychat: the body was cancelled", "AbortError")

/** @internal */
export interface ClientOptions {
  /** Called when set; otherwise `globalThis.fetch`, looked up at each request. */
  readonly fetch: typeof globalThis.fetch | undefined
  readonly requestInit: RequestInit
  /** Drops the request headers that browsers forbid scripts to set. */
  readonly browser: boolean
}

const withoutForbidden = (headers: Headers.Headers): Headers.Headers => {
  const out: Record<string, string> = {}
  for (const name in headers) if (!isForbiddenHeader(name)) out[name] = headers[name]!
  return Headers.unsafeFromRecord(out)
}

type Location = { readonly origin?: string; readonly pathname?: string; readonly href?: string }

const locationOf = (): Location | undefined => (globalThis as { location?: Location }).location

/**
 * Whether `HttpClient.make` would resolve every URL against a base that is not a URL. It resolves each request's
 * URL, absolute ones too, against `location.origin + location.pathname` wherever a `location` exists; where the
 * origin is opaque (a Deno worker loaded from a file: `location.origin` is the string "null") that base is
 * "null/path/worker.js", and `new URL` throws for every request.
 */
const opaqueBase = (): boolean => {
  const location = locationOf()
  if (location?.origin === undefined || location.pathname === undefined) return false
  try {
    new URL(location.origin + location.pathname)
    return false
  } catch {
    return true
  }
}

/**
 * The request's URL as `HttpClient.make` builds it (query parameters appended, hash set), except that an absolute
 * URL stands alone and a relative one is resolved against `location.href`, as `fetch` itself does.
 */
const urlOf = (request: HttpClientRequest.HttpClientRequest): URL => {
  const url = new URL(request.url, locationOf()?.href)
  for (const [key, value] of request.urlParams) if (value !== undefined) url.searchParams.append(key, value)
  if (request.hash._tag === "Some") url.hash = request.hash.value
  return url
}

/**
 * `HttpClient` over `fetch`, as `@effect/platform`'s `FetchHttpClient` does it: a `FetchHttpClient.Fetch` or
 * `FetchHttpClient.RequestInit` in the caller's context wins over the options. Interruption aborts the fetch
 * through `HttpClient.make`'s signal.
 *
 * @internal
 */
export const make = (options: ClientOptions): HttpClient.HttpClient => {
  // The caller's response is linked to the one made here through the fiber that ran both `HttpClient.make`'s
  // request and the `transformResponse` below: nothing else is shared between them.
  const pending = new WeakMap<Fiber.RuntimeFiber<any, any>, Made>()

  const send = (
    request: HttpClientRequest.HttpClientRequest,
    url: URL,
    signal: AbortSignal,
    fiber: Fiber.RuntimeFiber<any, any>,
    body: BodyInit | undefined
  ) => {
    const context = fiber.currentContext.unsafeMap
    const fetch: typeof globalThis.fetch = context.get(FetchHttpClient.Fetch.key) ?? options.fetch ?? globalThis.fetch
    const init: RequestInit = context.get(FetchHttpClient.RequestInit.key) ?? options.requestInit
    let headers = init.headers ? Headers.merge(Headers.fromInput(init.headers), request.headers) : request.headers
    if (headers["content-length"] !== undefined) headers = Headers.remove(headers, "content-length")
    if (options.browser) headers = withoutForbidden(headers)
    // A controller of our own, so that cancelling a body aborts its fetch; `HttpClient.make`'s signal (interruption,
    // a collected response) aborts it too.
    const controller = new AbortController()
    if (signal.aborted) controller.abort(signal.reason)
    else signal.addEventListener("abort", () => controller.abort(signal.reason), { once: true })
    return Effect.tryPromise({
      try: () =>
        fetch(url, {
          ...init,
          method: request.method,
          headers,
          body: body ?? null,
          ...(request.body._tag === "Stream" ? { duplex: "half" } : {}),
          signal: controller.signal
        } as RequestInit),
      catch: (cause) => new HttpClientError.RequestError({ request, reason: "Transport", cause })
    }).pipe(
      Effect.map((web) => {
        const response = HttpClientResponse.fromWeb(request, web)
        const own: Made = { response, body: web.body, abort: () => controller.abort(CANCELLED) }
        made.set(response, own)
        pending.set(fiber, own)
        return response
      })
    )
  }

  const dispatch = (
    request: HttpClientRequest.HttpClientRequest,
    url: URL,
    signal: AbortSignal,
    fiber: Fiber.RuntimeFiber<any, any>
  ) => {
    const body = request.body
    switch (body._tag) {
      case "Raw":
      case "Uint8Array":
        return send(request, url, signal, fiber, body.body as BodyInit)
      case "FormData":
        return send(request, url, signal, fiber, body.formData)
      case "Stream":
        return Effect.flatMap(Stream.toReadableStreamEffect(body.stream), (stream) =>
          send(request, url, signal, fiber, stream)
        )
      case "Empty":
        return send(request, url, signal, fiber, undefined)
    }
  }

  const platform = HttpClient.make(dispatch)
  // Where `HttpClient.make` cannot build a URL at all (an opaque origin), the request is sent without it: this
  // builds the URL and aborts the fetch on interruption; `HttpClient.make`'s tracing span and trace headers, and
  // `HttpClient.withScope`, are not available there.
  const client: HttpClient.HttpClient = HttpClient.makeWith(
    Effect.flatMap((request: HttpClientRequest.HttpClientRequest) =>
      opaqueBase()
        ? Effect.withFiberRuntime<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError>((fiber) => {
            let url: URL
            try {
              url = urlOf(request)
            } catch (cause) {
              return Effect.fail(new HttpClientError.RequestError({ request, reason: "InvalidUrl", cause }))
            }
            const controller = new AbortController()
            return Effect.onInterrupt(dispatch(request, url, controller.signal, fiber), () =>
              Effect.sync(() => controller.abort())
            )
          })
        : platform.execute(request)
    ),
    Effect.succeed as HttpClient.HttpClient.Preprocess<never, never>
  )

  return HttpClient.transformResponse(client, (effect) =>
    Effect.withFiberRuntime((fiber) =>
      Effect.map(effect, (response) => {
        const own = pending.get(fiber)
        if (own !== undefined) {
          pending.delete(fiber)
          if (own.response !== response) made.set(response, own)
        }
        return response
      })
    )
  )
}
