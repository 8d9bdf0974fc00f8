import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { HttpResponse } from "msw"
import { setupServer } from "msw/node"
import { afterAll, afterEach, beforeAll } from "vitest"
import { EasyChat, Presets } from "../src/index.js"
import { fetchLayer, mirror, type Received } from "./fixtures.js"

const server = setupServer()
beforeAll(() => server.listen({ onUnhandledRequest: "error" }))
afterEach(() => server.resetHandlers())
afterAll(() => server.close())

const A = "http://obs-a.test"
const B = "http://obs-b.test"
const KEY = "sk-very-secret-key-123"
const COOKIE = "cookie-secret-456"

/** Runs a failing-over call and captures every span and debug log line. */
const observe = async (call: (chat: EasyChat.Service) => Effect.Effect<unknown, unknown>) => {
  const spans: Array<Tracer.Span> = []
  const logs: Array<{ message: unknown; annotations: Record<string, unknown>; level: string }> = []
  const program = Effect.gen(function* () {
    const base = yield* Effect.tracer
    const recording = Tracer.make({
      span: (...args) => {
        const span = base.span(...args)
        spans.push(span)
        return span
      },
      context: base.context
    })
    const logger = Logger.make(({ message, annotations, logLevel }) => {
      logs.push({ message, annotations: Object.fromEntries(annotations), level: logLevel.label })
    })
    const chat = yield* EasyChat.EasyChat
    yield* Effect.either(call(chat)).pipe(
      Effect.withTracer(recording),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.Debug)
    )
  })
  await Effect.runPromise(
    program.pipe(
      Effect.provide(EasyChat.layer({ ...Presets.easyChat, servers: [A, B], strategy: "round-robin", apiKey: KEY })),
      Effect.provide(fetchLayer),
      Effect.orDie
    )
  )
  return { spans, logs }
}

const attrs = (span: Tracer.Span) => Object.fromEntries((span as any).attributes as Map<string, unknown>)

describe("observability", () => {
  it("a span per call and per attempt, with server, attempt number, status and outcome; a debug line per failover", async () => {
    const received: Array<Received> = []
    server.use(
      ...mirror(A, received, () => new HttpResponse("busy", { status: 503 }), `sid=${COOKIE}; Path=/`),
      ...mirror(B, received, undefined, `sid=${COOKIE}; Path=/`)
    )
    const { spans, logs } = await observe((chat) => chat.complete({ messages: [{ role: "user", content: "x" }] }))
    const names = spans.map((s) => s.name)
    expect(names).toContain("easychat.complete")
    const attempts = spans.filter((s) => s.name === "easychat.attempt").map(attrs)
    expect(attempts).toEqual([
      expect.objectContaining({
        "easychat.server": A,
        "easychat.attempt": 1,
        "easychat.outcome": "HttpStatusError",
        "http.response.status_code": 503
      }),
      expect.objectContaining({
        "easychat.server": B,
        "easychat.attempt": 2,
        "easychat.outcome": "ok",
        "http.response.status_code": 200
      })
    ])
    // No `http.client` span of @effect/platform's per request, and no trace headers sent to the mirrors.
    expect(names.filter((name) => name.startsWith("http.client"))).toEqual([])
    expect(received.map((r) => r.method)).toEqual(["GET", "POST", "GET", "POST"])
    for (const r of received) {
      expect(r.headers.has("traceparent")).toBe(false)
      expect(r.headers.has("b3")).toBe(false)
    }
    const failovers = logs.filter((l) => l.level === "DEBUG")
    expect(failovers).toHaveLength(1)
    expect(failovers[0]!.annotations).toMatchObject({ server: A, attempt: 1, error: "HttpStatusError" })
  })

  it("streams get the same spans", async () => {
    server.use(...mirror(A, [], () => HttpResponse.error()), ...mirror(B, []))
    const { spans, logs } = await observe((chat) =>
      Stream.runDrain(chat.stream({ messages: [{ role: "user", content: "x" }] }))
    )
    expect(spans.map((s) => s.name)).toContain("easychat.stream")
    // One line for the failover; the failed request's own fiber logs nothing of its own.
    expect(logs.map((l) => [l.level, l.annotations.error])).toEqual([["DEBUG", "TransportError"]])
    expect(spans.filter((s) => s.name === "easychat.attempt").map((s) => attrs(s)["easychat.outcome"])).toEqual([
      "TransportError",
      "ok"
    ])
  })

  it("no secret reaches a span attribute or a log line", async () => {
    server.use(
      ...mirror(
        A,
        [],
        (_b, request) => new HttpResponse(`no: ${request.headers.get("authorization")}`, { status: 401 }),
        `sid=${COOKIE}; Path=/`
      ),
      ...mirror(B, [], undefined, `sid=${COOKIE}; Path=/`)
    )
    const { spans, logs } = await observe((chat) => chat.complete({ messages: [{ role: "user", content: "x" }] }))
    const everything = JSON.stringify([spans.map((s) => [s.name, attrs(s)]), logs])
    expect(everything).toContain("HTTP 401")
    expect(everything).not.toContain(KEY)
    expect(everything).not.toContain(COOKIE)
  })
})
