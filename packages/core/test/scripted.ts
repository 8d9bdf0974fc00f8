// A scripted in-memory transport for the driver's tests: each server answers
// its requests, in order, from a list of replies; every piece of time (the
// headers' wait, the gaps between body pieces) is slept on the Effect clock,
// so that under `it.effect` a `TestClock.adjust` drives it and a timeout rule
// is tested in milliseconds. No sockets.
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** One read of a body: its text, released after `delay` (from the piece before it, or the headers) and `when`. */
export type Piece =
  | string
  | { readonly data: string; readonly delay?: Duration.DurationInput; readonly when?: Effect.Effect<void> }

/** What a server answers one request with. */
export interface Reply {
  readonly status?: number
  /** `content-type` and any other header; `set-cookie` lines go in `cookies`. */
  readonly headers?: Readonly<Record<string, string>>
  readonly cookies?: ReadonlyArray<string>
  /** Waited before the status and headers arrive; `"forever"`: they never do. */
  readonly wait?: Duration.DurationInput | "forever"
  readonly body?: ReadonlyArray<Piece>
  /** After the pieces, the body closes (default), never ends (`stall`), or its connection fails (`cut`). */
  readonly ending?: "close" | "stall" | "cut"
}

/** The connection is refused: no response at all. */
export const refused = "refused" as const

/** Each server's replies (by origin), taken in the order its requests arrive, `GET /` included. */
export type Script = Readonly<Record<string, ReadonlyArray<Reply | typeof refused>>>

/** A request the transport got, and what became of its answer. */
export interface Exchange {
  readonly server: string
  readonly method: string
  readonly url: string
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
  /** The client gave up before the response's headers (the request's signal was aborted). */
  aborted: boolean
  /** The client stopped the body before its end (the stream was cancelled, or the request aborted). */
  cancelled: boolean
  /** The pieces of the body the client has read. */
  read: number
}

export interface Scripted {
  readonly layer: Layer.Layer<HttpClient.HttpClient>
  /** Every request, in the order it arrived. */
  readonly exchanges: ReadonlyArray<Exchange>
  /** `"METHOD server path"` of each request, in order: what the transport was asked. */
  readonly asked: () => ReadonlyArray<string>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** A body whose pieces a fiber on the Effect clock releases; each read takes the next one released. */
const bodyOf = (reply: Reply, exchange: Exchange) => {
  type Item = Uint8Array | "close" | "cut"
  const ready: Array<Item> = []
  let give: (() => void) | undefined
  let over = false
  const push = (item: Item) => {
    ready.push(item)
    give?.()
  }
  const release = Effect.gen(function* () {
    for (const piece of reply.body ?? []) {
      if (typeof piece !== "string") {
        if (piece.delay !== undefined) yield* Effect.sleep(piece.delay)
        if (piece.when !== undefined) yield* piece.when
      }
      if (over) return
      push(encoder.encode(typeof piece === "string" ? piece : piece.data))
    }
    if (reply.ending !== "stall") push(reply.ending ?? "close")
  })
  // Pulled only when the client reads (high-water mark 0): a cut never drops a piece the client has not read.
  const stream = new ReadableStream<Uint8Array>(
    {
      pull: (controller) =>
        new Promise<void>((resolve) => {
          give = () => {
            give = undefined
            const item = ready.shift()!
            if (item === "close" || item === "cut") over = true
            if (item === "close") controller.close()
            else if (item === "cut") controller.error(new Error("socket hang up"))
            else {
              exchange.read++
              controller.enqueue(item)
            }
            resolve()
          }
          if (ready.length > 0) give()
        }),
      cancel: () => {
        if (!over) exchange.cancelled = true
        over = true
      }
    },
    { highWaterMark: 0 }
  )
  const stopped = () => {
    if (!over) exchange.cancelled = true
    over = true
  }
  return { stream, release, stopped }
}

/** A transport that answers from `script` and records each request. */
export const make = (script: Script): Scripted => {
  const exchanges: Array<Exchange> = []
  const taken = new Map<string, number>()
  const layer = Layer.scoped(
    HttpClient.HttpClient,
    Effect.map(Effect.scope, (scope) =>
      HttpClient.make((request, url, signal) =>
        Effect.suspend(() => {
          const server = url.origin
          const exchange: Exchange = {
            server,
            method: request.method,
            url: url.href,
            path: url.pathname,
            headers: { ...request.headers },
            body: request.body._tag === "Uint8Array" ? decoder.decode(request.body.body) : "",
            aborted: false,
            cancelled: false,
            read: 0
          }
          exchanges.push(exchange)
          const n = taken.get(server) ?? 0
          taken.set(server, n + 1)
          const reply = script[server]?.[n]
          if (reply === undefined) {
            return Effect.dieMessage(
              `scripted: ${server} has no reply for its request ${n + 1} (${request.method} ${url.pathname})`
            )
          }
          if (reply === refused) {
            return Effect.fail(
              new HttpClientError.RequestError({
                request,
                reason: "Transport",
                cause: new Error("connect ECONNREFUSED")
              })
            )
          }
          let responded = false
          const body = bodyOf(reply, exchange)
          signal.addEventListener("abort", () => (responded ? body.stopped() : (exchange.aborted = true)))
          const wait =
            reply.wait === undefined ? Effect.void : reply.wait === "forever" ? Effect.never : Effect.sleep(reply.wait)
          return Effect.zipRight(
            wait,
            Effect.suspend(() => {
              responded = true
              const headers = new Headers(reply.headers)
              for (const cookie of reply.cookies ?? []) headers.append("set-cookie", cookie)
              const response = new Response(body.stream, { status: reply.status ?? 200, headers })
              return Effect.as(Effect.forkIn(body.release, scope), HttpClientResponse.fromWeb(request, response))
            })
          )
        })
      )
    )
  )
  return {
    layer,
    exchanges,
    asked: () => exchanges.map((e) => `${e.method} ${e.server} ${e.path}`)
  }
}

/**
 * Lets what the client set off without waiting reach the script: a body's
 * cancel travels through web streams and a fiber's interruption, a few ticks
 * after the call has ended.
 */
export const settled: Effect.Effect<void> = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, 0)))

/** An event stream of these pieces. */
export const sse = (body: ReadonlyArray<Piece>, rest: Omit<Reply, "body"> = {}): Reply => ({
  ...rest,
  headers: { "content-type": "text/event-stream", ...rest.headers },
  body
})

/** A JSON body. */
export const json = (value: unknown, rest: Omit<Reply, "body"> = {}): Reply => ({
  ...rest,
  headers: { "content-type": "application/json", ...rest.headers },
  body: [JSON.stringify(value)]
})

/** A plain status with a short text body. */
export const status = (code: number, text = "", rest: Omit<Reply, "body" | "status"> = {}): Reply => ({
  ...rest,
  status: code,
  headers: { "content-type": "text/plain", ...rest.headers },
  body: text === "" ? [] : [text]
})

/** A mirror's page, whose `GET /` sets a session cookie. */
export const page = (cookie = "session=abc123; Path=/; Max-Age=3600; HttpOnly"): Reply => ({
  headers: { "content-type": "text/html" },
  cookies: [cookie],
  body: ["<html>mirror</html>"]
})
