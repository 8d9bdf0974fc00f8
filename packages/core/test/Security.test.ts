// Hostile servers and hostile input: cookies stay where they belong, headers
// cannot be injected, and oversized bodies end with a typed error without
// growing memory. Runs over an in-memory HttpClient that records requests.
import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { EasyChat, type Presets } from "../src/index.js"

interface Seen {
  readonly method: string
  readonly url: string
  readonly headers: Record<string, string>
}

const completion = JSON.stringify({
  choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }]
})

/** An HttpClient answering from `route`; every request it sees is recorded. */
const memory = (seen: Array<Seen>, route: (request: HttpClientRequest.HttpClientRequest) => Response) =>
  Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request) =>
      Effect.sync(() => {
        seen.push({ method: request.method, url: request.url, headers: { ...request.headers } })
        return HttpClientResponse.fromWeb(request, route(request))
      })
    )
  )

const call = (options: Presets.Options, layer: Layer.Layer<HttpClient.HttpClient>, stream = false) =>
  Effect.runPromise(
    Effect.flatMap(EasyChat.EasyChat, (chat) =>
      Effect.either(
        stream
          ? Stream.runDrain(chat.stream({ messages: [{ role: "user", content: "x" }] }))
          : chat.complete({ messages: [{ role: "user", content: "x" }] })
      )
    ).pipe(Effect.provide(EasyChat.layer(options)), Effect.provide(layer), Effect.orDie)
  )

const json = (body: string, init: ResponseInit = {}) =>
  new Response(body, { ...init, headers: { "content-type": "application/json", ...(init.headers ?? {}) } })

describe("cookies", () => {
  const withSecureCookie = (server: string) => {
    const seen: Array<Seen> = []
    const layer = memory(seen, (request) =>
      request.method === "GET"
        ? new Response("home", {
            headers: [
              ["set-cookie", "plain=1; Path=/"],
              ["set-cookie", "secret=2; Path=/; Secure"]
            ]
          })
        : json(completion)
    )
    return { seen, run: () => call({ servers: [server] }, layer) }
  }

  it("a Secure cookie is not sent over plain http to a non-loopback host", async () => {
    const { seen, run } = withSecureCookie("http://mirror.example")
    await run()
    expect(seen[1]!.headers.cookie).toBe("plain=1")
  })

  it("a Secure cookie is sent over https, and to loopback (a secure context)", async () => {
    for (const server of ["https://mirror.example", "http://127.0.0.1:9"]) {
      const { seen, run } = withSecureCookie(server)
      await run()
      expect(seen[1]!.headers.cookie).toBe("plain=1; secret=2")
    }
  })

  it("a Set-Cookie for another domain is refused", async () => {
    const seen: Array<Seen> = []
    const layer = memory(seen, (request) =>
      request.method === "GET"
        ? new Response("home", { headers: [["set-cookie", "evil=1; Domain=attacker.example; Path=/"]] })
        : json(completion)
    )
    await call({ servers: ["https://mirror.example"] }, layer)
    expect(seen[1]!.headers.cookie).toBeUndefined()
  })

  it("a redirect of GET / to another origin is not followed: it gets neither cookies nor Authorization", async () => {
    const seen: Array<Seen> = []
    const layer = memory(seen, (request) => {
      if (request.url === "https://mirror.example/") {
        return new Response(null, {
          status: 302,
          headers: [
            ["location", "https://attacker.example/steal"],
            ["set-cookie", "sid=abc; Path=/"]
          ]
        })
      }
      return json(completion)
    })
    const result = await call({ servers: ["https://mirror.example"], apiKey: "sk-never-leaves" }, layer)
    expect(result._tag).toBe("Right")
    expect(seen.map((s) => new URL(s.url).host)).toEqual(["mirror.example", "mirror.example"])
    expect(seen.some((s) => s.url.includes("attacker"))).toBe(false)
  })
})

describe("header injection", () => {
  const layer = memory([], () => json(completion))
  for (const [name, headers] of [
    ["CR in a value", { "x-custom": "a\rb" }],
    ["LF in a value", { "x-custom": "a\nInjected: yes" }],
    ["NUL in a value", { "x-custom": "a\0b" }],
    ["CRLF in a name", { "x-a\r\nInjected": "yes" }],
    ["a space in a name", { "x a": "yes" }]
  ] as const) {
    it(`${name} is InvalidRequest before any request`, async () => {
      const seen: Array<Seen> = []
      const error = await Effect.runPromise(
        Effect.flip(Layer.build(EasyChat.layer({ servers: ["http://a.test"], headers })).pipe(Effect.scoped)).pipe(
          Effect.provide(memory(seen, () => json(completion)))
        )
      )
      expect(error).toMatchObject({ _tag: "InvalidRequest" })
      expect(error.field.startsWith("headers.")).toBe(true)
      expect(seen).toHaveLength(0)
    })
  }

  it("an API key with CR or LF is InvalidRequest, and the error does not echo it", async () => {
    const error = await Effect.runPromise(
      Effect.flip(
        Layer.build(EasyChat.layer({ servers: ["http://a.test"], apiKey: "sk-abc\r\nX: y" })).pipe(Effect.scoped)
      ).pipe(Effect.provide(layer))
    )
    expect(error).toMatchObject({ _tag: "InvalidRequest", field: "apiKey.authorization" })
    expect(error.message).not.toContain("sk-abc")
  })
})

describe("limits", () => {
  /** A body of `total` bytes produced lazily, counting what was actually pulled. */
  const endless = (total: number, piece: Uint8Array, counter: { pulled: number }) =>
    new ReadableStream<Uint8Array>({
      pull(controller) {
        if (counter.pulled >= total) return controller.close()
        counter.pulled += piece.length
        controller.enqueue(piece)
      }
    })

  it("an oversized JSON reply ends with DecodeError(EventTooLarge) after reading little more than the limit", async () => {
    const counter = { pulled: 0 }
    const layer = memory(
      [],
      () =>
        new Response(endless(512 * 1024 * 1024, new Uint8Array(64 * 1024).fill(0x20), counter), {
          headers: { "content-type": "application/json" }
        })
    )
    const result = await call(
      { servers: ["http://a.test"], cookieInit: "off", maxReplySize: 1024 * 1024, maxAttempts: 1 },
      layer
    )
    expect(result._tag === "Left" && (result.left as any).attempts[0].error).toMatchObject({
      _tag: "DecodeError",
      reason: "EventTooLarge"
    })
    expect(counter.pulled).toBeLessThan(4 * 1024 * 1024)
  })

  it("an endless SSE line ends with DecodeError(EventTooLarge) after reading little more than maxEventSize", async () => {
    const counter = { pulled: 0 }
    const head = new TextEncoder().encode("data: ")
    const layer = memory([], () => {
      const body = endless(512 * 1024 * 1024, new Uint8Array(64 * 1024).fill(0x61), counter)
      const withHead = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(head)
        },
        async pull(controller) {
          const reader = body.getReader()
          const { done, value } = await reader.read()
          reader.releaseLock()
          if (done) controller.close()
          else controller.enqueue(value)
        }
      })
      return new Response(withHead, { headers: { "content-type": "text/event-stream" } })
    })
    const result = await call(
      { servers: ["http://a.test"], cookieInit: "off", maxEventSize: 256 * 1024, maxAttempts: 1 },
      layer,
      true
    )
    expect(result._tag === "Left" && (result.left as any).attempts[0].error).toMatchObject({
      _tag: "DecodeError",
      reason: "EventTooLarge"
    })
    expect(counter.pulled).toBeLessThan(2 * 1024 * 1024)
  })

  it("an oversized error page is cut to a short excerpt", async () => {
    const counter = { pulled: 0 }
    const layer = memory(
      [],
      () => new Response(endless(256 * 1024 * 1024, new Uint8Array(16 * 1024).fill(0x62), counter), { status: 500 })
    )
    const result = await call({ servers: ["http://a.test"], cookieInit: "off", maxAttempts: 1 }, layer)
    const error = result._tag === "Left" ? (result.left as any).attempts[0].error : undefined
    expect(error).toMatchObject({ _tag: "HttpStatusError", status: 500 })
    expect(error.body.length).toBeLessThanOrEqual(201)
    expect(counter.pulled).toBeLessThan(1024 * 1024)
  })
})
