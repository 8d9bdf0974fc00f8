import { HttpClient, HttpClientRequest } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { Agent, EnvHttpProxyAgent, ProxyAgent } from "undici"
import * as NodeTransport from "../src/index.js"
import { dispatcherOptions } from "../src/internal/dispatcher.js"
import { proxy, selfSignedCertificate, serve, serveTls, type TestServer, waitUntil } from "./servers.js"

const echo = serve((req, res) => {
  let body = ""
  req.setEncoding("utf8")
  req.on("data", (piece) => (body += piece))
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json", "x-reply": "yes" })
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }))
  })
})

const text = (request: HttpClientRequest.HttpClientRequest) =>
  Effect.flatMap(HttpClient.execute(request), (response) => response.text)

describe("NodeTransport", () => {
  it.scopedLive("GET round-trip with headers", () =>
    Effect.gen(function* () {
      const server = yield* echo
      const response = yield* HttpClient.get(`${server.url}/echo?x=1`, { headers: { "x-test": "a" } })
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers["x-reply"], "yes")
      const body = (yield* response.json) as any
      assert.strictEqual(body.method, "GET")
      assert.strictEqual(body.url, "/echo?x=1")
      assert.strictEqual(body.headers["x-test"], "a")
      assert.strictEqual(body.body, "")
    }).pipe(Effect.provide(NodeTransport.layer()))
  )

  it.scopedLive("POST round-trip with a JSON body", () =>
    Effect.gen(function* () {
      const server = yield* echo
      const request = HttpClientRequest.post(`${server.url}/chat`).pipe(
        HttpClientRequest.setHeader("authorization", "Bearer k"),
        HttpClientRequest.bodyUnsafeJson({ messages: [{ role: "user", content: "héllo" }] })
      )
      const body = JSON.parse(yield* text(request))
      assert.strictEqual(body.method, "POST")
      assert.strictEqual(body.headers["content-type"], "application/json")
      assert.strictEqual(body.headers.authorization, "Bearer k")
      assert.deepStrictEqual(JSON.parse(body.body), { messages: [{ role: "user", content: "héllo" }] })
    }).pipe(Effect.provide(NodeTransport.layer()))
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
      const chunks = yield* response.stream.pipe(Stream.runCollect)
      const decoder = new TextDecoder()
      let received = ""
      for (const chunk of chunks) received += decoder.decode(chunk, { stream: true })
      assert.strictEqual(received, pieces.join(""))
      assert.isAbove(chunks.length, 1)
    }).pipe(Effect.provide(NodeTransport.layer()))
  )

  it.scopedLive("a large body arrives in undici's reads, not re-chunked", () =>
    Effect.gen(function* () {
      const size = 4 * 1024 * 1024
      const server = yield* serve((_req, res) => {
        res.writeHead(200, { "content-type": "application/octet-stream" })
        res.end(Buffer.alloc(size, 97))
      })
      const response = yield* HttpClient.get(server.url)
      const chunks = yield* response.stream.pipe(Stream.runCollect)
      let total = 0
      let largest = 0
      for (const chunk of chunks) {
        total += chunk.length
        largest = Math.max(largest, chunk.length)
      }
      assert.strictEqual(total, size)
      assert.isAtLeast(largest, 32 * 1024)
    }).pipe(Effect.provide(NodeTransport.layer()))
  )

  it.scopedLive("keep-alive reuses one socket across requests", () =>
    Effect.gen(function* () {
      const server = yield* echo
      // undici waits one event-loop turn (setImmediate) after a response before it reuses the socket; a request
      // sent within that turn opens a second one
      yield* text(HttpClientRequest.get(`${server.url}/one`))
      yield* Effect.sleep("5 millis")
      yield* text(HttpClientRequest.post(`${server.url}/two`).pipe(HttpClientRequest.bodyText("x")))
      yield* Effect.sleep("5 millis")
      yield* text(HttpClientRequest.get(`${server.url}/three`))
      assert.strictEqual(server.requests.length, 3)
      assert.strictEqual(server.connections(), 1)
    }).pipe(Effect.provide(NodeTransport.layer()))
  )

  it.scopedLive("connections caps the sockets per origin", () =>
    Effect.gen(function* () {
      const server = yield* serve((_req, res) => setTimeout(() => res.end("ok"), 20))
      const results = yield* Effect.all(
        Array.from({ length: 4 }, () => text(HttpClientRequest.get(server.url))),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(results, ["ok", "ok", "ok", "ok"])
      assert.strictEqual(server.connections(), 1)
    }).pipe(Effect.provide(NodeTransport.layer({ connections: 1 })))
  )

  it.scopedLive("a redirect is returned, not followed, with its cookies and Location", () =>
    Effect.gen(function* () {
      const server = yield* serve((req, res) => {
        if (req.url === "/") {
          res.writeHead(302, {
            location: "/landing",
            "set-cookie": ["session=abc; Path=/; HttpOnly", "theme=dark; Path=/"]
          })
          res.end()
        } else {
          res.end("landed")
        }
      })
      const response = yield* HttpClient.get(`${server.url}/`)
      assert.strictEqual(response.status, 302)
      assert.strictEqual(response.headers.location, "/landing")
      assert.deepStrictEqual(Object.keys(response.cookies.cookies).sort(), ["session", "theme"])
      assert.strictEqual(yield* response.text, "")
      assert.deepStrictEqual(
        server.requests.map((r) => r.url),
        ["/"]
      )
    }).pipe(Effect.provide(NodeTransport.layer()))
  )

  describe("interruption", () => {
    // The socket that carried the request closes at once. undici 7 then opens a spare connection for the aborted
    // request and closes it within milliseconds (nodejs/undici#5845): nothing may stay open.
    const closedPromptly = (server: TestServer) =>
      Effect.gen(function* () {
        const socket = server.requests[0]!.socket
        yield* waitUntil("the request's socket closed", () => socket.closed, "1 second")
        yield* waitUntil("no socket left open", () => server.closed() === server.connections(), "1 second")
      })

    const endless = serve((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" })
      res.write("data: first\n\n")
      // never ends: only the client can close this response
    })

    it.scopedLive("ending a response stream early closes the socket", () =>
      Effect.gen(function* () {
        const server = yield* endless
        const response = yield* HttpClient.get(server.url)
        const first = yield* response.stream.pipe(Stream.take(1), Stream.runCollect)
        assert.strictEqual(first.length, 1)
        yield* closedPromptly(server)
      }).pipe(Effect.provide(NodeTransport.layer()))
    )

    it.scopedLive("interrupting the fiber reading a response stream closes the socket", () =>
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
        assert.strictEqual(server.closed(), 0)
        yield* Fiber.interrupt(fiber)
        yield* closedPromptly(server)
      }).pipe(Effect.provide(NodeTransport.layer()))
    )

    it.scopedLive("interrupting while waiting for headers closes the socket", () =>
      Effect.gen(function* () {
        const server = yield* serve(() => {
          // never answers
        })
        const fiber = yield* Effect.fork(HttpClient.get(server.url))
        yield* waitUntil("request received", () => server.requests.length === 1)
        yield* Fiber.interrupt(fiber)
        yield* closedPromptly(server)
      }).pipe(Effect.provide(NodeTransport.layer()))
    )
  })

  it.scopedLive("closing the layer's scope closes pooled connections", () =>
    Effect.gen(function* () {
      const server = yield* echo
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(NodeTransport.layer(), scope)
      const client = Context.get(context, HttpClient.HttpClient)
      yield* Effect.flatMap(client.get(server.url), (response) => response.text)
      yield* Effect.sleep("20 millis")
      assert.strictEqual(server.connections(), 1)
      assert.strictEqual(server.closed(), 0, "the idle socket stays in the pool")
      yield* Scope.close(scope, Exit.void)
      yield* waitUntil("pooled socket closed", () => server.closed() === 1, "1 second")
    })
  )

  describe("proxy", () => {
    it.scopedLive("an explicit proxy URL relays http:// targets as absolute-URI requests", () =>
      Effect.gen(function* () {
        const target = yield* echo
        const relay = yield* proxy
        const body = JSON.parse(
          yield* text(HttpClientRequest.get(`${target.url}/via?q=1`)).pipe(
            Effect.provide(NodeTransport.layer({ proxy: `http://user:p%40ss@127.0.0.1:${relay.port}` }))
          )
        )
        assert.strictEqual(body.url, "/via?q=1")
        assert.strictEqual(relay.seen.length, 1)
        assert.strictEqual(relay.seen[0]!.method, "GET")
        assert.strictEqual(relay.seen[0]!.target, `${target.url}/via?q=1`)
        assert.strictEqual(
          relay.seen[0]!.headers["proxy-authorization"],
          `Basic ${Buffer.from("user:p@ss").toString("base64")}`
        )
        assert.isUndefined(body.headers["proxy-authorization"])
      })
    )

    it.scopedLive('proxy: "env" reads HTTP_PROXY when built and honours NO_PROXY', () =>
      Effect.gen(function* () {
        const direct = yield* echo
        const proxied = yield* echo
        const relay = yield* proxy
        yield* setEnv({
          HTTP_PROXY: relay.url,
          http_proxy: undefined,
          HTTPS_PROXY: undefined,
          https_proxy: undefined,
          NO_PROXY: `127.0.0.1:${direct.port}`,
          no_proxy: undefined
        })
        yield* Effect.gen(function* () {
          yield* text(HttpClientRequest.get(`${direct.url}/direct`))
          yield* text(HttpClientRequest.get(`${proxied.url}/proxied`))
        }).pipe(Effect.provide(NodeTransport.layer({ proxy: "env" })))
        assert.deepStrictEqual(
          relay.seen.map((r) => r.target),
          [`${proxied.url}/proxied`]
        )
        assert.strictEqual(direct.requests.length, 1)
        assert.strictEqual(proxied.requests.length, 1)
      })
    )

    it.scopedLive('proxy: "env" does not see HTTP_PROXY set after the layer was built', () =>
      Effect.gen(function* () {
        const target = yield* echo
        const relay = yield* proxy
        yield* setEnv({ HTTP_PROXY: undefined, http_proxy: undefined, NO_PROXY: undefined, no_proxy: undefined })
        yield* Effect.gen(function* () {
          yield* setEnv({ HTTP_PROXY: relay.url })
          yield* text(HttpClientRequest.get(target.url))
        }).pipe(Effect.provide(NodeTransport.layer({ proxy: "env" })))
        assert.strictEqual(relay.seen.length, 0)
        assert.strictEqual(target.requests.length, 1)
      })
    )

    it("an invalid proxy URL is a defect that does not echo the URL", () => {
      assert.throws(
        () => Effect.runSync(Effect.scoped(NodeTransport.makeDispatcher({ proxy: "not a url :secret@" }))),
        /neither "env" nor a valid URL/
      )
      assert.throws(
        () => Effect.runSync(Effect.scoped(NodeTransport.makeDispatcher({ proxy: "ftp://u:secret@host" }))),
        /unsupported proxy protocol "ftp:"/
      )
    })
  })

  describe("dispatcher", () => {
    it.scoped("options choose the dispatcher", () =>
      Effect.gen(function* () {
        assert.instanceOf(yield* NodeTransport.makeDispatcher(), Agent)
        assert.instanceOf(yield* NodeTransport.makeDispatcher({ proxy: "http://127.0.0.1:3128" }), ProxyAgent)
        assert.instanceOf(yield* NodeTransport.makeDispatcher({ proxy: "env" }), EnvHttpProxyAgent)
      })
    )

    it.scoped("the dispatcher is destroyed when its scope closes", () =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const dispatcher = yield* Scope.extend(NodeTransport.makeDispatcher(), scope)
        assert.isFalse((dispatcher as Agent).destroyed)
        yield* Scope.close(scope, Exit.void)
        assert.isTrue((dispatcher as Agent).destroyed)
      })
    )

    it("options map onto undici's, TLS settings reaching the origin and the proxy", () => {
      const options = dispatcherOptions({
        connections: 8,
        keepAliveTimeout: 10_000,
        connectTimeout: 2_000,
        ca: "PEM",
        rejectUnauthorized: false
      })
      const tls = { timeout: 2_000, ca: "PEM", rejectUnauthorized: false }
      assert.deepStrictEqual(options, {
        connections: 8,
        keepAliveTimeout: 10_000,
        connect: tls,
        requestTls: tls,
        proxyTls: tls,
        proxyTunnel: false
      })
      assert.deepStrictEqual(dispatcherOptions({}), {
        connect: {},
        requestTls: {},
        proxyTls: {},
        proxyTunnel: false
      })
    })
  })

  describe("TLS", () => {
    const certificate = selfSignedCertificate()
    // Without openssl there is no certificate to serve: the options are still covered by the mapping test above.
    const tls = it.scopedLive.skipIf(certificate === undefined)
    const hello = (_req: unknown, res: import("node:http").ServerResponse) => res.end("secure hello")

    tls("a self-signed certificate is refused by default", () =>
      Effect.gen(function* () {
        const server = yield* serveTls(certificate!, hello)
        const error = yield* text(HttpClientRequest.get(server.url)).pipe(
          Effect.flip,
          Effect.provide(NodeTransport.layer())
        )
        assert.strictEqual(error._tag, "RequestError")
        assert.strictEqual((error as any).reason, "Transport")
      })
    )

    tls("ca trusts a private certificate authority", () =>
      Effect.gen(function* () {
        const server = yield* serveTls(certificate!, hello)
        const body = yield* text(HttpClientRequest.get(server.url)).pipe(
          Effect.provide(NodeTransport.layer({ ca: certificate!.cert }))
        )
        assert.strictEqual(body, "secure hello")
      })
    )

    tls("rejectUnauthorized: false accepts any certificate", () =>
      Effect.gen(function* () {
        const server = yield* serveTls(certificate!, hello)
        const body = yield* text(HttpClientRequest.get(server.url)).pipe(
          Effect.provide(NodeTransport.layer({ rejectUnauthorized: false }))
        )
        assert.strictEqual(body, "secure hello")
      })
    )

    tls("https:// targets go through a CONNECT tunnel, with ca applied to the origin", () =>
      Effect.gen(function* () {
        const server = yield* serveTls(certificate!, hello)
        const relay = yield* proxy
        const body = yield* text(HttpClientRequest.get(`${server.url}/secret`)).pipe(
          Effect.provide(NodeTransport.layer({ proxy: relay.url, ca: certificate!.cert }))
        )
        assert.strictEqual(body, "secure hello")
        assert.deepStrictEqual(
          relay.seen.map((r) => `${r.method} ${r.target}`),
          [`CONNECT 127.0.0.1:${server.port}`]
        )
        assert.deepStrictEqual(
          server.requests.map((r) => r.url),
          ["/secret"]
        )
      })
    )
  })
})

/** Sets (or, with undefined, deletes) environment variables, restoring them when the scope closes. */
const setEnv = (vars: Record<string, string | undefined>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const saved: Record<string, string | undefined> = {}
      for (const [name, value] of Object.entries(vars)) {
        saved[name] = process.env[name]
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
      return saved
    }),
    (saved) =>
      Effect.sync(() => {
        for (const [name, value] of Object.entries(saved)) {
          if (value === undefined) delete process.env[name]
          else process.env[name] = value
        }
      })
  )
