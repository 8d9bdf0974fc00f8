import * as http from "node:http"
import { EasyChat } from "@easychat/core"
import { MirrorPool } from "@easychat/testkit"
import * as NodeTransport from "@easychat/transport-node"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Tracer from "effect/Tracer"
import { Gateway } from "../src/index.js"
import { chatRequests, expectedReply, messages, postJson, raw, sseEvents } from "./fixtures.js"

const withPool = <A, E, R>(body: (pool: MirrorPool.MirrorPool) => Effect.Effect<A, E, R>) =>
  Effect.acquireUseRelease(
    Effect.promise(() => MirrorPool.start(1)),
    body,
    (pool) => Effect.promise(() => pool.close())
  )

const chatFor = (pool: MirrorPool.MirrorPool) =>
  EasyChat.layer({ servers: pool.urls }).pipe(Layer.provide(NodeTransport.layer()))

describe("Gateway.layer", () => {
  it.live("serves until its scope closes and reports its URL to onListen", () =>
    withPool((pool) =>
      Effect.gen(function* () {
        let url = ""
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* Layer.build(
              Gateway.layer({ port: 0, onListen: (at) => (url = at) }).pipe(Layer.provide(chatFor(pool)))
            )
            expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
            const reply = yield* Effect.promise(() => postJson(`${url}/v1/chat/completions`, { messages }))
            expect(reply.status).toBe(200)
            expect(JSON.parse(reply.text).choices[0].message.content).toBe(expectedReply)
          })
        )
        const after = yield* Effect.promise(() =>
          raw(`${url}/health`).then(String, (e: NodeJS.ErrnoException) => e.code)
        )
        expect(after).toBe("ECONNREFUSED")
      })
    )
  )

  it.live("fails with ServeError when the port is taken, and InvalidRequest on bad options", () =>
    withPool((pool) =>
      Effect.gen(function* () {
        const busy = http.createServer()
        yield* Effect.acquireRelease(
          Effect.async<void>((resume) => {
            busy.listen(0, "127.0.0.1", () => resume(Effect.void))
          }),
          () =>
            Effect.sync(() => {
              busy.close()
            })
        )
        const port = (busy.address() as { port: number }).port
        const taken = yield* Effect.exit(
          Layer.build(Gateway.layer({ port }).pipe(Layer.provide(chatFor(pool)))).pipe(Effect.scoped)
        )
        expect(Exit.isFailure(taken) && taken.cause._tag === "Fail" && taken.cause.error._tag).toBe("ServeError")

        for (const [options, field] of [
          [{ port: 70000 }, "port"],
          [{ maxBodyBytes: 0 }, "maxBodyBytes"],
          [{ maxConcurrent: 1.5 }, "maxConcurrent"],
          [{ models: [] }, "models"],
          [{ keys: [""] }, "keys"]
        ] as const) {
          const exit = yield* Effect.exit(
            Layer.build(Gateway.layer(options).pipe(Layer.provide(chatFor(pool)))).pipe(Effect.scoped)
          )
          expect(exit).toMatchObject({
            _tag: "Failure",
            cause: { _tag: "Fail", error: { _tag: "InvalidRequest", field } }
          })
        }
      })
    ).pipe(Effect.scoped)
  )
})

describe("Gateway.layer under a tracer", () => {
  it.live("gives each request the platform's server span, with core's spans under it", () =>
    withPool((pool) =>
      Effect.gen(function* () {
        const spans: Array<Tracer.Span> = []
        const base = yield* Effect.tracer
        const recording = Tracer.make({
          span: (...args) => {
            const span = base.span(...args)
            spans.push(span)
            return span
          },
          context: base.context
        })
        let url = ""
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* Layer.build(
              Gateway.layer({ port: 0, onListen: (at) => (url = at) }).pipe(
                Layer.provide(chatFor(pool)),
                Layer.provide(Layer.setTracer(recording))
              )
            )
            const reply = yield* Effect.promise(() => postJson(`${url}/v1/chat/completions`, { messages }))
            expect(reply.status).toBe(200)
          })
        )
        const server = spans.find((s) => s.name === "http.server POST")
        expect(server).toBeDefined()
        const attributes = Object.fromEntries((server as any).attributes as Map<string, unknown>)
        expect(attributes).toMatchObject({ "http.route": "/v1/chat/completions", "http.response.status_code": 200 })
        const call = spans.find((s) => s.name === "easychat.complete")
        expect(call?.parent._tag === "Some" && call.parent.value.spanId).toBe(server!.spanId)
      })
    )
  )
})

describe("Gateway.make", () => {
  it.live("mounts in an app's own router, under a prefix, next to its own routes", () =>
    withPool((pool) =>
      Effect.gen(function* () {
        const gateway = yield* Gateway.make({ models: ["house-model"], keys: ["kkkkkkkkkkkkkkkk"] })
        const app = HttpRouter.empty.pipe(
          HttpRouter.get("/", HttpServerResponse.text("home")),
          HttpRouter.mountApp("/ai", gateway)
        )
        const server = http.createServer()
        yield* Layer.build(
          HttpServer.serve(app).pipe(
            Layer.provide(NodeHttpServer.layerServer(() => server, { port: 0, host: "127.0.0.1" })),
            Layer.provide(chatFor(pool))
          )
        )
        const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
        expect((yield* Effect.promise(() => raw(`${base}/`))).text).toBe("home")
        const models = yield* Effect.promise(() =>
          raw(`${base}/ai/v1/models`, { headers: { authorization: "Bearer kkkkkkkkkkkkkkkk" } })
        )
        expect(JSON.parse(models.text).data.map((m: { id: string }) => m.id)).toEqual(["house-model"])
        const reply = yield* Effect.promise(() =>
          postJson(
            `${base}/ai/v1/chat/completions`,
            { messages, stream: true },
            { authorization: "Bearer kkkkkkkkkkkkkkkk" }
          )
        )
        expect(reply.headers["content-type"]).toBe("text/event-stream; charset=utf-8")
        expect(reply.text.endsWith("data: [DONE]\n\n")).toBe(true)
        expect(chatRequests(pool.servers[0]!)).toHaveLength(1)
      })
    ).pipe(Effect.scoped)
  )
})

describe("Gateway.make on a web handler", () => {
  it.live("reads bodies and streams replies on a runtime other than Node's", () =>
    withPool((pool) =>
      Effect.gen(function* () {
        // Not a loopback host: served with a key.
        const gateway = yield* Gateway.make({ maxBodyBytes: 2048, keys: ["kkkkkkkkkkkkkkkk"] })
        const web = HttpApp.toWebHandlerLayer(gateway, chatFor(pool))
        const post = (body: string) =>
          Effect.promise(() =>
            web.handler(
              new Request("http://gateway.test/v1/chat/completions", {
                method: "POST",
                headers: { authorization: "Bearer kkkkkkkkkkkkkkkk", "content-type": "application/json" },
                body
              })
            )
          )
        const reply = yield* post(JSON.stringify({ messages, stream: true }))
        expect(reply.headers.get("content-type")).toBe("text/event-stream; charset=utf-8")
        const text = yield* Effect.promise(() => reply.text())
        const deltas = sseEvents(text)
          .filter((e) => e.data !== "[DONE]")
          .map((e) => JSON.parse(e.data).choices[0].delta.content ?? "")
        expect(deltas.join("")).toBe(expectedReply)
        expect(text.endsWith("data: [DONE]\n\n")).toBe(true)
        const big = yield* post(JSON.stringify({ messages: [{ role: "user", content: "x".repeat(4096) }] }))
        expect(big.status).toBe(413)
        expect((yield* Effect.promise(() => big.json())).error.code).toBe("request_too_large")
        yield* Effect.promise(() => web.dispose())
      })
    )
  )
})

describe("Gateway.errorOf", () => {
  it("maps easychat errors to OpenAI statuses and bodies", async () => {
    const { AllServersFailed, InvalidRequest, Timeout, UpstreamError } = await import("@easychat/core")
    const server = "http://mirror.test"
    expect(Gateway.errorOf(new InvalidRequest({ field: "messages", rule: "is required" }))).toEqual({
      status: 400,
      body: {
        error: {
          message: "Invalid request: messages is required",
          type: "invalid_request_error",
          param: "messages",
          code: "InvalidRequest"
        }
      }
    })
    expect(Gateway.errorOf(new Timeout({ server, phase: "headers", millis: 5 })).status).toBe(504)
    expect(Gateway.errorOf(new UpstreamError({ server, detail: "down" })).status).toBe(502)
    const all = Gateway.errorOf(
      new AllServersFailed({ attempts: [{ server, error: new UpstreamError({ server, detail: "down" }) }] })
    )
    expect(all.status).toBe(502)
    expect(all.body.error).toMatchObject({ type: "upstream_error", code: "AllServersFailed" })
    expect(all.body.error.message).toContain(`1. ${server}: UpstreamError`)
  })
})
