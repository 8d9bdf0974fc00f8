// A minimal msw mirror for core's own tests (core cannot depend on testkit,
// which depends on core). It records what the server received.
import { FetchHttpClient } from "@effect/platform"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { HttpResponse, http } from "msw"
import { EasyChat, type Presets } from "../src/index.js"

export interface Received {
  readonly method: string
  readonly url: string
  readonly headers: Headers
  readonly body: any
}

export const encoder = new TextEncoder()

export const chunk = (content: string | null, extra: Record<string, unknown> = {}) =>
  `data: ${JSON.stringify({
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta: { content }, finish_reason: null }],
    ...extra
  })}\n\n`

export const finish = (reason = "stop", usage?: Record<string, number>) =>
  `data: ${JSON.stringify({
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta: {}, finish_reason: reason }],
    ...(usage ? { usage } : {})
  })}\n\n`

export const DONE = "data: [DONE]\n\n"

/** A body made of exactly these byte pieces, one network read each. */
export const pieces = (parts: ReadonlyArray<string | Uint8Array>, error?: Error) => {
  let i = 0
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const p = parts[i++]
      if (p !== undefined) controller.enqueue(typeof p === "string" ? encoder.encode(p) : p)
      else if (error) {
        // An errored stream drops what is queued: let the reader take the data first, as a socket would.
        await new Promise((resolve) => setTimeout(resolve, 30))
        controller.error(error)
      } else controller.close()
    }
  })
}

export const sse = (parts: ReadonlyArray<string | Uint8Array>, init: ResponseInit = {}) =>
  new HttpResponse(pieces(parts), {
    ...init,
    headers: { "content-type": "text/event-stream", ...(init.headers as Record<string, string> | undefined) }
  })

export const completion = (content: string, extra: Record<string, unknown> = {}) =>
  HttpResponse.json({
    id: "chatcmpl-1",
    object: "chat.completion",
    model: "gpt-3.5-turbo",
    choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
    usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    ...extra
  })

/**
 * Handlers for one mirror at `origin`: `GET /` sets a cookie, the chat path
 * answers with `reply` (default: a short stream or a whole reply).
 */
export const mirror = (
  origin: string,
  log: Array<Received>,
  reply?: (body: any, request: Request) => Response | Promise<Response>,
  cookie = "session=abc123; Path=/; Max-Age=3600; HttpOnly"
) => [
  http.get(`${origin}/`, ({ request }) => {
    log.push({ method: "GET", url: request.url, headers: request.headers, body: undefined })
    return new HttpResponse("<html>mirror</html>", { headers: { "content-type": "text/html", "set-cookie": cookie } })
  }),
  http.post(`${origin}/api/openai/v1/chat/completions`, async ({ request }) => {
    const body: any = await request.json()
    log.push({ method: "POST", url: request.url, headers: request.headers, body })
    if (reply) return reply(body, request)
    return body.stream
      ? sse([
          chunk(null, { choices: [{ index: 0, delta: { role: "assistant" } }] }),
          chunk("Hello"),
          chunk(" world"),
          finish(),
          DONE
        ])
      : completion("Hello world")
  })
]

/** What the client put on the wire, before msw adds cookies of its own store. */
export const outgoing: Array<{ readonly url: string; readonly headers: Headers }> = []

/**
 * msw 2's mocked bodies never settle `reader.cancel()` when they were not
 * read to the end, which would hang every early stop (`[DONE]`, an error
 * mid-stream). Real fetch settles it; this shim gives msw's bodies a cancel
 * that does not wait, so the tests exercise our code, not that quirk.
 */
const settlingFetch: typeof fetch = async (input, init) => {
  outgoing.push({ url: String(input), headers: new Headers(init?.headers) })
  const response = await globalThis.fetch(input, init)
  if (response.body === null) return response
  const reader = response.body.getReader()
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read()
      if (done) controller.close()
      else controller.enqueue(value)
    },
    cancel(reason) {
      void reader.cancel(reason)
    }
  })
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
}

export const fetchLayer = FetchHttpClient.layer.pipe(
  Layer.provide(Layer.succeed(FetchHttpClient.RequestInit, { redirect: "manual", credentials: "omit" })),
  Layer.provide(Layer.succeed(FetchHttpClient.Fetch, settlingFetch))
)

/** Runs `f` with an EasyChat client on the fetch transport. */
export const withChat = <A, E>(
  options: Presets.Options,
  f: (chat: EasyChat.Service) => Effect.Effect<A, E>
): Promise<A> =>
  Effect.runPromise(
    Effect.flatMap(EasyChat.EasyChat, f).pipe(
      Effect.provide(EasyChat.layer(options)),
      Effect.provide(fetchLayer),
      Effect.orDie
    ) as Effect.Effect<A>
  )

/** Runs `f` and returns its failure (or throws if it succeeded). */
export const failureOf = <A, E>(options: Presets.Options, f: (chat: EasyChat.Service) => Effect.Effect<A, E>) =>
  withChat(options, (chat) => Effect.flip(f(chat)))
