import { HttpClient, HttpClientRequest } from "@effect/platform"
import { afterAll, afterEach, assert, beforeAll, describe, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { HttpResponse, http } from "msw"
import { setupServer } from "msw/node"
import * as FetchTransport from "../src/index.js"
import { serve, type TestServer, waitUntil } from "./servers.js"

/** A fetch double that records what it was called with. */
const recordingFetch = () => {
  const calls: Array<{ readonly url: string; readonly init: RequestInit }> = []
  const fetch: typeof globalThis.fetch = async (input, init) => {
    calls.push({ url: String(input), init: init ?? {} })
    return new Response("recorded", { status: 200, headers: { "content-type": "text/plain" } })
  }
  return { calls, fetch }
}

const headersOf = (init: RequestInit) => Object.fromEntries(new Headers(init.headers))

/** The headers sent, less the trace headers Effect's tracer adds outside browsers. */
const untracedHeadersOf = (init: RequestInit) => {
  const { b3: _b3, traceparent: _traceparent, ...rest } = headersOf(init)
  return rest
}

const browserish = {
  "user-agent": "Mozilla/5.0 (easychat)",
  cookie: "session=abc",
  origin: "https://chat.example",
  referer: "https://chat.example/",
  "sec-ch-ua": '"Chromium";v="120"',
  "sec-fetch-mode": "cors",
  "proxy-authorization": "Basic eA==",
  "accept-encoding": "gzip",
  dnt: "1",
  authorization: "Bearer k",
  "x-requested-with": "XMLHttpRequest",
  accept: "text/event-stream"
}

describe("FetchTransport", () => {
  describe("with msw at the fetch boundary", () => {
    const mock = setupServer(
      http.post("https://mirror.test/api/openai/v1/chat/completions", async ({ request }) =>
        HttpResponse.json({
          authorization: request.headers.get("authorization"),
          contentType: request.headers.get("content-type"),
          body: await request.json()
        })
      ),
      http.get(
        "https://mirror.test/",
        () =>
          new HttpResponse(null, {
            status: 302,
            headers: [
              ["location", "/login"],
              ["set-cookie", "session=abc; Path=/"]
            ]
          })
      )
    )
    beforeAll(() => mock.listen({ onUnhandledRequest: "error" }))
    afterEach(() => mock.resetHandlers())
    afterAll(() => mock.close())

    it.effect("POSTs a JSON body with its headers through globalThis.fetch", () =>
      Effect.gen(function* () {
        const response = yield* HttpClient.execute(
          HttpClientRequest.post("https://mirror.test/api/openai/v1/chat/completions").pipe(
            HttpClientRequest.bearerToken("k"),
            HttpClientRequest.bodyUnsafeJson({ messages: [{ role: "user", content: "hi" }] })
          )
        )
        assert.strictEqual(response.status, 200)
        assert.deepStrictEqual(yield* response.json, {
          authorization: "Bearer k",
          contentType: "application/json",
          body: { messages: [{ role: "user", content: "hi" }] }
        })
      }).pipe(Effect.provide(FetchTransport.layer({ browser: false })))
    )

    it.effect("a redirect is returned, not followed, outside browsers", () =>
      Effect.gen(function* () {
        const response = yield* HttpClient.get("https://mirror.test/")
        assert.strictEqual(response.status, 302)
        assert.strictEqual(response.headers.location, "/login")
        assert.deepStrictEqual(Object.keys(response.cookies.cookies), ["session"])
      }).pipe(Effect.provide(FetchTransport.layer({ browser: false })))
    )
  })

  describe("with an injected fetch", () => {
    it.effect("the injected fetch is called with the request", () =>
      Effect.gen(function* () {
        const { calls, fetch } = recordingFetch()
        const response = yield* HttpClient.execute(
          HttpClientRequest.post("https://mirror.test/chat?x=1").pipe(
            HttpClientRequest.setHeader("x-test", "a"),
            HttpClientRequest.bodyText("hello", "text/plain")
          )
        ).pipe(Effect.provide(FetchTransport.layer({ fetch, browser: false })))
        assert.strictEqual(yield* response.text, "recorded")
        assert.strictEqual(calls.length, 1)
        const [call] = calls
        assert.strictEqual(call!.url, "https://mirror.test/chat?x=1")
        assert.strictEqual(call!.init.method, "POST")
        assert.strictEqual(headersOf(call!.init)["x-test"], "a")
        assert.strictEqual(headersOf(call!.init)["content-type"], "text/plain")
        assert.instanceOf(call!.init.signal, AbortSignal)
        assert.strictEqual(new TextDecoder().decode(call!.init.body as Uint8Array), "hello")
      })
    )

    it.effect("requestInit extras pass through; redirect is manual outside browsers", () =>
      Effect.gen(function* () {
        const { calls, fetch } = recordingFetch()
        yield* HttpClient.get("https://mirror.test/", { headers: { "x-test": "request" } }).pipe(
          Effect.provide(
            FetchTransport.layer({
              fetch,
              browser: false,
              requestInit: {
                cache: "no-store",
                mode: "cors",
                keepalive: true,
                referrerPolicy: "no-referrer",
                headers: { "x-default": "d", "x-test": "overridden" }
              }
            })
          )
        )
        const init = calls[0]!.init
        assert.strictEqual(init.redirect, "manual")
        assert.strictEqual(init.cache, "no-store")
        assert.strictEqual(init.mode, "cors")
        assert.strictEqual(init.keepalive, true)
        assert.strictEqual(init.referrerPolicy, "no-referrer")
        assert.isUndefined(init.credentials)
        assert.strictEqual(headersOf(init)["x-default"], "d")
        assert.strictEqual(headersOf(init)["x-test"], "request")
      })
    )

    it.effect("requestInit may override the redirect default", () =>
      Effect.gen(function* () {
        const { calls, fetch } = recordingFetch()
        yield* HttpClient.get("https://mirror.test/").pipe(
          Effect.provide(FetchTransport.layer({ fetch, browser: false, requestInit: { redirect: "error" } }))
        )
        assert.strictEqual(calls[0]!.init.redirect, "error")
      })
    )

    it.effect("outside browsers every header is sent", () =>
      Effect.gen(function* () {
        const { calls, fetch } = recordingFetch()
        yield* HttpClient.get("https://mirror.test/", { headers: browserish }).pipe(
          Effect.provide(FetchTransport.layer({ fetch, browser: false }))
        )
        assert.deepStrictEqual(untracedHeadersOf(calls[0]!.init), browserish)
      })
    )

    it.effect("in a browser, forbidden headers are dropped and cookies come from the browser", () =>
      Effect.gen(function* () {
        const { calls, fetch } = recordingFetch()
        yield* HttpClient.post("https://mirror.test/chat", { headers: browserish }).pipe(
          Effect.provide(
            FetchTransport.layer({ fetch, browser: true, requestInit: { headers: { cookie: "x=1", "x-app": "a" } } })
          )
        )
        const init = calls[0]!.init
        assert.deepStrictEqual(headersOf(init), {
          authorization: "Bearer k",
          "x-requested-with": "XMLHttpRequest",
          accept: "text/event-stream",
          "x-app": "a"
        })
        assert.strictEqual(init.credentials, "include")
        assert.isUndefined(init.redirect, "the browser follows redirects")
      })
    )

    it.effect("a browser is detected by its document", () =>
      Effect.gen(function* () {
        const { calls, fetch } = recordingFetch()
        yield* Effect.acquireRelease(
          Effect.sync(() => ((globalThis as any).document = {})),
          () => Effect.sync(() => delete (globalThis as any).document)
        )
        const layer = FetchTransport.layer({ fetch })
        yield* Effect.sync(() => delete (globalThis as any).document)
        yield* HttpClient.get("https://mirror.test/", { headers: { cookie: "a=1", "x-ok": "1" } }).pipe(
          Effect.provide(layer)
        )
        assert.deepStrictEqual(headersOf(calls[0]!.init), { "x-ok": "1" })
        assert.strictEqual(calls[0]!.init.credentials, "include")
      }).pipe(Effect.scoped)
    )

    it.effect("Node is not taken for a browser", () =>
      Effect.gen(function* () {
        const { calls, fetch } = recordingFetch()
        yield* HttpClient.get("https://mirror.test/").pipe(Effect.provide(FetchTransport.layer({ fetch })))
        assert.strictEqual(calls[0]!.init.redirect, "manual")
      })
    )
  })

  describe("with a real server", () => {
    it.scopedLive("a redirect is returned with its Set-Cookie and Location, not followed", () =>
      Effect.gen(function* () {
        const server = yield* serve((req, res) => {
          if (req.url === "/") {
            res.writeHead(302, { location: "/landing", "set-cookie": ["session=abc; Path=/", "theme=dark; Path=/"] })
            res.end()
          } else {
            res.end("landed")
          }
        })
        const response = yield* HttpClient.get(`${server.url}/`)
        assert.strictEqual(response.status, 302)
        assert.strictEqual(response.headers.location, "/landing")
        assert.deepStrictEqual(Object.keys(response.cookies.cookies).sort(), ["session", "theme"])
        assert.deepStrictEqual(
          server.requests.map((r) => r.url),
          ["/"]
        )
      }).pipe(Effect.provide(FetchTransport.layer()))
    )

    it.scopedLive("in browser mode the redirect is followed by fetch", () =>
      Effect.gen(function* () {
        const server = yield* serve((req, res) => {
          if (req.url === "/") res.writeHead(302, { location: "/landing" }).end()
          else res.end("landed")
        })
        const response = yield* HttpClient.get(`${server.url}/`)
        assert.strictEqual(response.status, 200)
        assert.strictEqual(yield* response.text, "landed")
      }).pipe(Effect.provide(FetchTransport.layer({ browser: true })))
    )

    it.scopedLive("a streaming body arrives whole and in order", () =>
      Effect.gen(function* () {
        const pieces = Array.from({ length: 200 }, (_, i) => `data: {"n":${i}}\n\n`)
        const server = yield* serve((_req, res) => {
          res.writeHead(200, { "content-type": "text/event-stream" })
          let i = 0
          const next = () => {
            if (i === pieces.length) return res.end()
            res.write(pieces[i++])
            if (i % 20 === 0) setTimeout(next, 2)
            else next()
          }
          next()
        })
        const response = yield* HttpClient.get(`${server.url}/stream`)
        assert.strictEqual(response.headers["content-type"], "text/event-stream")
        const received = yield* response.stream.pipe(Stream.decodeText(), Stream.mkString)
        assert.strictEqual(received, pieces.join(""))
      }).pipe(Effect.provide(FetchTransport.layer()))
    )

    describe("interruption", () => {
      const endless = serve((_req, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" })
        res.write("data: first\n\n")
        // never ends: only the client can close this response
      })
      const closedPromptly = (server: TestServer) =>
        waitUntil("the request's socket closed", () => server.requests[0]!.socket.closed, "1 second")

      it.scopedLive("ending a response stream early closes the connection", () =>
        Effect.gen(function* () {
          const server = yield* endless
          const response = yield* HttpClient.get(server.url)
          const first = yield* response.stream.pipe(Stream.take(1), Stream.runCollect)
          assert.strictEqual(first.length, 1)
          yield* closedPromptly(server)
        }).pipe(Effect.provide(FetchTransport.layer()))
      )

      it.scopedLive("interrupting the fiber reading a response stream closes the connection", () =>
        Effect.gen(function* () {
          const server = yield* endless
          const started = yield* Deferred.make<void>()
          const fiber = yield* HttpClient.get(server.url).pipe(
            Effect.flatMap((response) =>
              response.stream.pipe(Stream.runForEach(() => Deferred.succeed(started, undefined)))
            ),
            Effect.fork
          )
          yield* Deferred.await(started)
          assert.isFalse(server.requests[0]!.socket.closed)
          yield* Fiber.interrupt(fiber)
          yield* closedPromptly(server)
        }).pipe(Effect.provide(FetchTransport.layer()))
      )

      it.scopedLive("interrupting while waiting for headers aborts the fetch", () =>
        Effect.gen(function* () {
          const server = yield* serve(() => {
            // never answers
          })
          const fiber = yield* Effect.fork(HttpClient.get(server.url))
          yield* waitUntil("request received", () => server.requests.length === 1)
          yield* Fiber.interrupt(fiber)
          yield* closedPromptly(server)
        }).pipe(Effect.provide(FetchTransport.layer()))
      )
    })
  })
})
