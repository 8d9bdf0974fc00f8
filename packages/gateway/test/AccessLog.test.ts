import * as http from "node:http"
import { EasyChat } from "@easychat/core"
import { MirrorPool } from "@easychat/testkit"
import * as NodeTransport from "@easychat/transport-node"
import { describe, it } from "@effect/vitest"
import type * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { afterEach, expect, vi } from "vitest"
import { Gateway } from "../src/index.js"
import { type Entry, format } from "../src/internal/accessLog.js"
import { postJson, raw, withGateway } from "./fixtures.js"

const KEY = "access-log-test-key-0123456789"
const COOKIE = "session-cookie-value-7f3a9c"
const WRONG = "wrong-key-presented-by-client-42"
const chat = (stream: boolean) => ({ model: "gpt-log", messages: [{ role: "user", content: "Hi" }], stream })

/** The lines the default `Console` prints while `body` runs. */
const captured = async (body: () => Promise<void>): Promise<Array<string>> => {
  const lines: Array<string> = []
  const spy = vi.spyOn(console, "log").mockImplementation((...args: Array<unknown>) => {
    lines.push(args.map(String).join(" "))
  })
  try {
    await body()
  } finally {
    spy.mockRestore()
  }
  return lines
}

/** The access log lines of a run (other output left out), once the last request's line is written. */
const entriesOf = (lines: ReadonlyArray<string>): Array<Entry> =>
  lines.filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as Entry)

const settle = () => new Promise((resolve) => setTimeout(resolve, 50))

afterEach(() => {
  vi.restoreAllMocks()
})

describe("the access log", () => {
  it.live(
    "writes one JSON line per request with its route, model, status, outcome, timings, server, attempts and bytes",
    () =>
      Effect.promise(async () => {
        let urls: ReadonlyArray<string> = []
        const bodies: Array<string> = []
        const lines = await captured(() =>
          withGateway(
            [{ fault: { kind: "status", status: 503 } }, {}],
            { keys: [KEY], accessLog: "json", chat: { strategy: "round-robin" } },
            async ({ gateway, pool }) => {
              urls = pool.urls
              const headers = { authorization: `Bearer ${KEY}`, cookie: `sid=${COOKIE}` }
              // A query may carry anything: it is not logged.
              const whole = await postJson(`${gateway.url}/v1/chat/completions?api-key=${KEY}`, chat(false), headers)
              const streamed = await postJson(`${gateway.url}/v1/chat/completions`, chat(true), headers)
              const refused = await postJson(`${gateway.url}/v1/chat/completions`, chat(false), {
                authorization: `Bearer ${WRONG}`,
                cookie: `sid=${COOKIE}`
              })
              expect([whole.status, streamed.status, refused.status]).toEqual([200, 200, 401])
              bodies.push(whole.text, streamed.text, refused.text)
              await settle()
            }
          )
        )
        for (const line of lines) {
          expect(line).not.toContain(KEY)
          expect(line).not.toContain(COOKIE)
          expect(line).not.toContain(WRONG)
          expect(line.toLowerCase()).not.toMatch(/authorization|cookie|bearer/)
        }
        const entries = entriesOf(lines)
        expect(entries).toHaveLength(3)
        const [whole, streamed, refused] = entries as [Entry, Entry, Entry]
        expect(Object.keys(whole)).toEqual([
          "time",
          "method",
          "path",
          "route",
          "model",
          "status",
          "outcome",
          "durationMs",
          "firstByteMs",
          "server",
          "attempts",
          "bytes"
        ])
        expect(Date.parse(whole.time)).toBeGreaterThan(Date.now() - 60_000)
        // Round-robin: the first request tries the failing mirror, then the other.
        expect(whole).toMatchObject({
          method: "POST",
          path: "/v1/chat/completions",
          route: "default",
          model: "gpt-log",
          status: 200,
          outcome: "ok",
          server: urls[1],
          attempts: 2,
          bytes: Buffer.byteLength(bodies[0]!)
        })
        expect(streamed).toMatchObject({
          route: "default",
          model: "gpt-log",
          status: 200,
          outcome: "ok",
          server: urls[1],
          bytes: Buffer.byteLength(bodies[1]!)
        })
        expect(streamed.attempts).toBeGreaterThanOrEqual(1)
        for (const entry of [whole, streamed]) {
          expect(entry.firstByteMs).toBeGreaterThan(0)
          expect(entry.durationMs).toBeGreaterThanOrEqual(entry.firstByteMs!)
        }
        expect(refused).toMatchObject({
          route: "none",
          model: null,
          status: 401,
          outcome: "client_error",
          server: null,
          attempts: 0,
          bytes: Buffer.byteLength(bodies[2]!)
        })
      })
  )

  it.live("writes key=value lines in text, and nothing when off (the default)", () =>
    Effect.promise(async () => {
      const text = await captured(() =>
        withGateway(1, { accessLog: "text" }, async ({ gateway }) => {
          expect((await postJson(`${gateway.url}/v1/chat/completions`, chat(false))).status).toBe(200)
          expect((await raw(`${gateway.url}/nowhere`)).status).toBe(404)
          await settle()
        })
      )
      const logged = text.filter((line) => line.startsWith("time="))
      expect(logged).toHaveLength(2)
      expect(logged[0]).toMatch(
        /^time=\S+ method=POST path=\/v1\/chat\/completions route=default model=gpt-log status=200 outcome=ok durationMs=[\d.]+ firstByteMs=[\d.]+ server=http:\/\/127\.0\.0\.1:\d+ attempts=1 bytes=\d+$/
      )
      expect(logged[1]).toMatch(/ path=\/nowhere route=none model= status=404 outcome=client_error /)
      const none = await captured(() =>
        withGateway(1, {}, async ({ gateway }) => {
          expect((await postJson(`${gateway.url}/v1/chat/completions`, chat(false))).status).toBe(200)
          await settle()
        })
      )
      expect(none.filter((line) => line.startsWith("time=") || line.startsWith("{"))).toEqual([])
    })
  )

  it.live("goes to the Console of the program that runs the gateway's layer", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const console: Console.Console = {
        ...(yield* Effect.console),
        log: (...args: ReadonlyArray<unknown>) => Effect.sync(() => void lines.push(args.map(String).join(" ")))
      }
      const pool = yield* Effect.promise(() => MirrorPool.start(1))
      yield* Effect.addFinalizer(() => Effect.promise(() => pool.close()))
      let url = ""
      yield* Layer.build(
        Gateway.layer({ port: 0, accessLog: "json", onListen: (at) => (url = at) }).pipe(
          Layer.provide(EasyChat.layer({ servers: pool.urls, defaults: {} })),
          Layer.provide(NodeTransport.layer())
        )
      ).pipe(Effect.withConsole(console))
      const answer = yield* Effect.promise(() => postJson(`${url}/v1/chat/completions`, chat(true)))
      expect(answer.status).toBe(200)
      yield* Effect.promise(settle)
      expect(entriesOf(lines)).toMatchObject([{ path: "/v1/chat/completions", status: 200, outcome: "ok" }])
    }).pipe(Effect.scoped)
  )

  it.live("logs a client that left before its answer as aborted, with status 499", () =>
    Effect.promise(async () => {
      const lines = await captured(() =>
        withGateway([{ headersDelayMs: 300 }], { accessLog: "json" }, async ({ gateway, pool }) => {
          const controller = new AbortController()
          const leaving = fetch(`${gateway.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(chat(false)),
            signal: controller.signal
          }).catch(() => undefined)
          // Gone once the upstream has the request, before it answers.
          while (!pool.servers[0]!.requests.some((r) => r.method === "POST")) {
            await new Promise((resolve) => setTimeout(resolve, 10))
          }
          controller.abort()
          await leaving
          await new Promise((resolve) => setTimeout(resolve, 400))
        })
      )
      expect(entriesOf(lines)).toMatchObject([{ status: 499, outcome: "aborted", route: "default", model: "gpt-log" }])
    })
  )
})

describe("the access log of a stream", () => {
  it.live("logs a client that left in the middle of its stream as aborted, with the 200 it was sent", () =>
    Effect.promise(async () => {
      const lines = await captured(() =>
        withGateway([{ delayMs: 100 }], { accessLog: "json", metrics: "open" }, async ({ gateway }) => {
          await new Promise<void>((resolve, reject) => {
            const request = http.request(`${gateway.url}/v1/chat/completions`, {
              method: "POST",
              headers: { "content-type": "application/json" },
              agent: false
            })
            // Gone once the first delta has come.
            request.on("response", (response) =>
              response.once("data", () => {
                request.destroy()
                resolve()
              })
            )
            request.on("error", () => {})
            request.on("close", () => resolve())
            request.end(JSON.stringify(chat(true)))
            setTimeout(() => reject(new Error("no answer")), 5000)
          })
          await new Promise((resolve) => setTimeout(resolve, 300))
          const metrics = await raw(`${gateway.url}/metrics`)
          expect(metrics.text).toContain(
            'easychat_gateway_requests_total{route="default",status="200",outcome="aborted"} 1'
          )
          expect(metrics.text).toContain('easychat_gateway_streams_open{route="default"} 0')
        })
      )
      const [entry] = entriesOf(lines)
      expect(entry).toMatchObject({ status: 200, outcome: "aborted", route: "default", attempts: 1 })
      expect(entry!.bytes).toBeGreaterThan(0)
    })
  )
})

describe("a client's values in the text log", () => {
  it.live("cannot end a line and forge another, whatever model it asks for", () =>
    Effect.promise(async () => {
      const forged = 'gpt-log\r\ntime=2026-01-01T00:00:00.000Z method=GET path=/admin status=200 "\t\u001b[2J\u0085'
      const text = await captured(() =>
        withGateway(1, { accessLog: "text" }, async ({ gateway }) => {
          await postJson(`${gateway.url}/v1/chat/completions`, { ...chat(false), model: forged })
          await settle()
        })
      )
      const logged = text.filter((line) => line.includes("method="))
      expect(logged).toHaveLength(1)
      expect(logged[0]).toMatch(/^time=\S+ method=POST path=\/v1\/chat\/completions /)
      expect(logged[0]).toContain(
        'model="gpt-log\\r\\ntime=2026-01-01T00:00:00.000Z method=GET path=/admin status=200 \\"\\t\\u001b[2J\\u0085"'
      )
      expect(logged[0]).not.toMatch(/[\p{Cc}]/u)
    })
  )
})

describe("format", () => {
  const entry: Entry = {
    time: "2026-01-01T00:00:00.000Z",
    method: "POST",
    path: "/v1/chat/completions",
    route: "default",
    model: 'a "quoted" model=x',
    status: 200,
    outcome: "ok",
    durationMs: 12.3,
    firstByteMs: null,
    server: "http://127.0.0.1:1",
    attempts: 1,
    bytes: 10
  }
  it("quotes text values that need it and leaves the JSON a single line", () => {
    expect(format(entry, "text")).toBe(
      'time=2026-01-01T00:00:00.000Z method=POST path=/v1/chat/completions route=default model="a \\"quoted\\" model=x" status=200 outcome=ok durationMs=12.3 firstByteMs= server=http://127.0.0.1:1 attempts=1 bytes=10'
    )
    const line = format({ ...entry, model: "two\nlines" }, "json")
    expect(line).not.toContain("\n")
    expect(JSON.parse(line)).toEqual({ ...entry, model: "two\nlines" })
  })

  it("escapes every control character in text and JSON, so that no value can end a line or forge one", () => {
    const hostile = {
      ...entry,
      path: "/v1/x\r\ntime=forged\u0000\u007f",
      model: 'a\\" b\tc\u001b[31m\u0085\u2028\u2029'
    }
    const text = format(hostile, "text")
    expect(text).toBe(
      'time=2026-01-01T00:00:00.000Z method=POST path="/v1/x\\r\\ntime=forged\\u0000\\u007f" route=default model="a\\\\\\" b\\tc\\u001b[31m\\u0085\\u2028\\u2029" status=200 outcome=ok durationMs=12.3 firstByteMs= server=http://127.0.0.1:1 attempts=1 bytes=10'
    )
    // A value with a control character but no space is quoted too.
    expect(format({ ...entry, model: "a\u001bb" }, "text")).toContain('model="a\\u001bb"')
    const json = format(hostile, "json")
    expect(json).not.toMatch(/[\p{Cc}\u2028\u2029]/u)
    expect(JSON.parse(json)).toEqual(hostile)
  })
})
