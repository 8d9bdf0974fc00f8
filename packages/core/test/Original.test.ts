// Each fault of the original gpt4free EasyChat provider, as its own test.
// (No proxy: see transport-node's proxy tests; sessions never closed: see the
// facade test below and the transport conformance suite.)
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import { HttpResponse, http } from "msw"
import { setupServer } from "msw/node"
import { afterAll, afterEach, beforeAll } from "vitest"
import { Client, EasyChat, Presets } from "../src/index.js"
import {
  chunk,
  DONE,
  failureOf,
  fetchLayer,
  finish,
  mirror,
  outgoing,
  pieces,
  type Received,
  sse,
  withChat
} from "./fixtures.js"

const server = setupServer()
beforeAll(() => server.listen({ onUnhandledRequest: "error" }))
afterEach(() => server.resetHandlers())
afterAll(() => server.close())

const messages = [{ role: "user" as const, content: "Hi" }]
const A = "https://chat10.fastgpt.me"
const B = "https://chat9.fastgpt.me"
const text = (chat: EasyChat.Service, stream = true) =>
  Effect.map(Stream.runCollect(chat.createCompletion({ model: "gpt-3.5-turbo", messages, stream })), (c) =>
    Chunk.toReadonlyArray(c).join("")
  )

describe("what the original got wrong", () => {
  it("random.randint(0, 5) never picked the seventh mirror: every mirror of the preset is used", async () => {
    const logs = Presets.easyChatServers.map(() => [] as Array<Received>)
    server.use(...Presets.easyChatServers.flatMap((origin, i) => mirror(origin, logs[i]!)))
    await Effect.runPromise(
      Effect.flatMap(EasyChat.EasyChat, (chat) => Effect.repeatN(chat.complete({ messages }), 69)).pipe(
        Effect.provide(EasyChat.layer(Presets.easyChat)),
        Effect.provide(fetchLayer),
        Effect.withRandom(Random.make("seventh")),
        Effect.orDie
      )
    )
    const posts = logs.map((log) => log.filter((r) => r.method === "POST").length)
    expect(posts.every((n) => n > 0)).toBe(true)
    expect(posts[6]).toBeGreaterThan(0)
  })

  it("active_server was an unchecked index (IndexError): out of range is InvalidRequest, no request sent", async () => {
    const log: Array<Received> = []
    server.use(...mirror(A, log))
    const error = await failureOf(Presets.easyChat, (chat) =>
      Stream.runDrain(chat.createCompletion({ model: "gpt-3.5-turbo", messages, stream: true, active_server: 7 }))
    )
    expect(error).toMatchObject({ _tag: "InvalidRequest", field: "activeServer" })
    expect(error.message).toContain("must be an index from 0 to 6")
    expect(log).toHaveLength(0)
  })

  it("no failover: a dead mirror is skipped and the next one answers", async () => {
    server.use(...mirror(A, [], () => HttpResponse.error()), ...mirror(B, []))
    const reply = await withChat({ ...Presets.easyChat, servers: [A, B], strategy: "round-robin" }, (chat) =>
      chat.complete({ messages })
    )
    expect(reply).toMatchObject({ content: "Hello world", server: B })
  })

  it("no timeout: a mirror that stops sending mid-stream ends with Timeout(idle)", async () => {
    server.use(
      ...mirror(
        A,
        [],
        () =>
          new HttpResponse(
            new ReadableStream({
              start(c) {
                c.enqueue(new TextEncoder().encode(chunk("first")))
              }
            }),
            { headers: { "content-type": "text/event-stream" } }
          )
      )
    )
    const seen: Array<string> = []
    const error = await failureOf({ ...Presets.easyChat, servers: [A], timeouts: { idle: 100 } }, (chat) =>
      Stream.runForEach(chat.stream({ messages }), (d) => Effect.sync(() => seen.push(d.content)))
    )
    expect(seen).toEqual(["first"])
    expect(error).toMatchObject({ _tag: "Timeout", phase: "idle", millis: 100, server: A })
  })

  it("a session was never closed: breaking out of a stream aborts its request", async () => {
    let aborted = false
    server.use(
      ...mirror(A, [], (_body, request) => {
        request.signal.addEventListener("abort", () => {
          aborted = true
        })
        return new HttpResponse(
          new ReadableStream({
            start(c) {
              c.enqueue(new TextEncoder().encode(chunk("one") + chunk("two")))
            }
          }),
          { headers: { "content-type": "text/event-stream" } }
        )
      })
    )
    const client = Client.make({ ...Presets.easyChat, servers: [A] }, fetchLayer)
    const got: Array<string> = []
    for await (const piece of client.stream({ messages })) {
      got.push(piece)
      break
    }
    await client.close()
    expect(got).toEqual(["one"])
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(aborted).toBe(true)
  })

  it("the cookie GET's answer was ignored: its cookies are sent, and cookieInit required fails over on an error", async () => {
    const log: Array<Received> = []
    server.use(...mirror(A, log))
    outgoing.length = 0
    await withChat({ ...Presets.easyChat, servers: [A] }, (chat) => chat.complete({ messages }))
    expect(outgoing.at(-1)?.headers.get("cookie")).toBe("session=abc123")

    // Now GET / answers 500.
    server.use(http.get(`${A}/`, () => new HttpResponse("maintenance", { status: 500 })))
    const error: any = await failureOf(
      { ...Presets.easyChat, servers: [A], cookieInit: "required", maxAttempts: 1 },
      (chat) => chat.complete({ messages })
    )
    expect(error.attempts[0].error).toMatchObject({ _tag: "HttpStatusError", status: 500, server: A })
  })

  it("x-requested-with was sent twice: it is sent once", async () => {
    server.use(...mirror(A, []))
    outgoing.length = 0
    await withChat({ ...Presets.easyChat, servers: [A] }, (chat) => chat.complete({ messages }))
    expect(outgoing.at(-1)?.headers.get("x-requested-with")).toBe("XMLHttpRequest")
  })

  it("literal quotes wrapped header values: user-agent has none, client hints use their own syntax", async () => {
    server.use(...mirror(A, []))
    outgoing.length = 0
    await withChat({ ...Presets.easyChat, servers: [A] }, (chat) => chat.complete({ messages }))
    const headers = outgoing.at(-1)!.headers
    expect(headers.get("user-agent")).toMatch(/^Mozilla\/5\.0 [^"]+$/)
    expect(headers.get("sec-ch-ua-platform")).toBe('"Windows"')
    // A structured list of quoted brands with versions, not one quoted string.
    expect(headers.get("sec-ch-ua")).toMatch(/^"[^"]+";v="\d+"(, "[^"]+";v="\d+")*$/)
    expect(headers.get("authority")).toBeNull()
  })

  it("stream lines were filtered on the bytes `content`: other lines still count, comments are ignored", async () => {
    server.use(...mirror(A, [], () => sse([": keep-alive, content follows\n\n", chunk("x"), finish("length"), DONE])))
    const deltas = await withChat({ ...Presets.easyChat, servers: [A] }, (chat) =>
      Effect.map(Stream.runCollect(chat.stream({ messages })), Chunk.toReadonlyArray)
    )
    expect(deltas.map((d) => [d.content, d.finishReason])).toEqual([
      ["x", undefined],
      ["", "length"]
    ])
  })

  it("lines were split on every `data:`: text containing `data:` arrives whole", async () => {
    const tricky = 'see data: {"a":1}\n\ndata: [DONE] inside'
    server.use(...mirror(A, [], () => sse([chunk(tricky), finish(), DONE])))
    expect(await withChat({ ...Presets.easyChat, servers: [A] }, (chat) => text(chat))).toBe(tricky)
  })

  it("an event split across two network chunks was lost: any split arrives whole", async () => {
    const body = chunk("Grüße, 世界 🌍") + chunk("!") + finish() + DONE
    const bytes = new TextEncoder().encode(body)
    for (const size of [1, 3, 7, 64]) {
      const parts: Array<Uint8Array> = []
      for (let i = 0; i < bytes.length; i += size) parts.push(bytes.slice(i, i + size))
      server.use(
        ...mirror(A, [], () => new HttpResponse(pieces(parts), { headers: { "content-type": "text/event-stream" } }))
      )
      expect(await withChat({ ...Presets.easyChat, servers: [A] }, (chat) => text(chat))).toBe("Grüße, 世界 🌍!")
    }
  })

  it("delta.content of null was yielded: null content yields nothing", async () => {
    server.use(...mirror(A, [], () => sse([chunk(null), chunk("a"), chunk(null), finish(), DONE])))
    const pieces = await withChat({ ...Presets.easyChat, servers: [A] }, (chat) =>
      Effect.map(
        Stream.runCollect(chat.createCompletion({ model: "gpt-3.5-turbo", messages, stream: true })),
        Chunk.toReadonlyArray
      )
    )
    expect(pieces).toEqual(["a"])
  })

  it("errors sent inside the stream were ignored: they fail with UpstreamError", async () => {
    server.use(...mirror(A, [], () => sse([chunk("a"), 'event: error\ndata: {"message":"quota"}\n\n'])))
    const error = await failureOf({ ...Presets.easyChat, servers: [A] }, (chat) => text(chat))
    expect(error).toMatchObject({ _tag: "UpstreamError", detail: "quota" })
  })

  it("an HTML page crashed the JSON parser in the non-stream path: it is UnexpectedContentType", async () => {
    server.use(...mirror(A, [], () => HttpResponse.html("<!doctype html><title>Attention Required!</title>")))
    const error: any = await failureOf({ ...Presets.easyChat, servers: [A], maxAttempts: 1 }, (chat) =>
      text(chat, false)
    )
    expect(error.attempts[0].error).toMatchObject({ _tag: "UnexpectedContentType", contentType: "text/html" })
  })
})
