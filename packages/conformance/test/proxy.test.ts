// The Node transport through a local forward proxy that records what passed through it.
import { EasyChat, type Presets } from "@easychat/core"
import { MirrorServer } from "@easychat/testkit"
import * as NodeTransport from "@easychat/transport-node"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { split, tricky } from "../src/cases.js"
import * as ForwardProxy from "../src/proxy.js"
import { errorInfo } from "../src/runner.js"

const messages = [{ role: "user", content: "Through the proxy" }]
const chatPath = "/api/openai/v1/chat/completions"

let mirror: MirrorServer.MirrorServer
let proxy: ForwardProxy.RecordingProxy

beforeAll(async () => {
  // The mirror checks the cookies, so a proxy that lost them would fail the call.
  mirror = await MirrorServer.start({ reply: tricky, chunkSize: 3, redirect: true, requireCookies: true })
})
afterAll(() => mirror.close())
afterEach(async () => {
  await proxy?.close()
  await mirror.reset()
})

const run = <A, E>(effect: Effect.Effect<A, E, EasyChat.EasyChat>, options: Presets.Options, proxyUrl: string) =>
  effect.pipe(
    Effect.provide(EasyChat.layer(options)),
    Effect.provide(NodeTransport.layer({ proxy: proxyUrl })),
    Effect.runPromise
  )

/** What the proxy forwarded, as `METHOD url`. */
const forwarded = () => proxy.log.filter((e) => e.refused === undefined).map((e) => `${e.method} ${e.target}`)

describe("node transport through a forward proxy", () => {
  it("whole and streamed replies reach the mirror through the proxy, cookies included", async () => {
    proxy = await ForwardProxy.start()
    const reply = await run(
      Effect.flatMap(EasyChat.EasyChat, (chat) => chat.complete({ messages })),
      { servers: [mirror.url] },
      proxy.url
    )
    expect(reply.content).toBe(tricky)

    const pieces = await run(
      Effect.flatMap(EasyChat.EasyChat, (chat) =>
        Stream.runCollect(chat.stream({ messages }).pipe(Stream.map((d) => d.content)))
      ),
      { servers: [mirror.url] },
      proxy.url
    )
    expect([...pieces].filter((p) => p !== "")).toEqual(split(tricky, 3))

    // Plain http:// targets are forwarded as absolute-URI requests, never tunnelled.
    expect(forwarded()).toEqual([
      `GET ${mirror.url}/`,
      `GET ${mirror.url}/welcome`,
      `POST ${mirror.url}${chatPath}`,
      `GET ${mirror.url}/`,
      `GET ${mirror.url}/welcome`,
      `POST ${mirror.url}${chatPath}`
    ])
    expect(proxy.log.every((e) => e.kind === "forward")).toBe(true)
    // The proxy saw the cookies the mirror set, and the mirror got them from the proxy.
    const posts = proxy.log.filter((e) => e.method === "POST")
    for (const post of posts) {
      for (const [name, value] of Object.entries(mirror.cookies))
        expect(post.headers.cookie).toContain(`${name}=${value}`)
    }
    expect(mirror.requests.filter((r) => r.method === "POST").map((r) => r.cookies)).toEqual([
      mirror.cookies,
      mirror.cookies
    ])
  })

  it("createClient with `transport.proxy` goes through the proxy", async () => {
    proxy = await ForwardProxy.start()
    const client = NodeTransport.createClient({ servers: [mirror.url], transport: { proxy: proxy.url } })
    try {
      const pieces: Array<string> = []
      for await (const piece of client.stream({ messages })) pieces.push(piece)
      expect(pieces.join("")).toBe(tricky)
    } finally {
      await client.close()
    }
    expect(forwarded()).toEqual([`GET ${mirror.url}/`, `GET ${mirror.url}/welcome`, `POST ${mirror.url}${chatPath}`])
  })

  it("proxy credentials from the URL are sent as Basic Proxy-Authorization", async () => {
    proxy = await ForwardProxy.start({ credentials: { user: "alice", password: "pr0xy-s3cret" } })
    const url = `http://alice:pr0xy-s3cret@127.0.0.1:${proxy.port}`
    const reply = await run(
      Effect.flatMap(EasyChat.EasyChat, (chat) => chat.complete({ messages })),
      { servers: [mirror.url] },
      url
    )
    expect(reply.content).toBe(tricky)
    expect(proxy.log.map((e) => e.headers["proxy-authorization"])).toEqual(
      Array(3).fill(`Basic ${Buffer.from("alice:pr0xy-s3cret").toString("base64")}`)
    )
    // The proxy does not pass its credentials on to the mirror.
    expect(mirror.requests.some((r) => "proxy-authorization" in r.headers)).toBe(false)
  })

  it("wrong proxy credentials: the 407 is a TransportError that never shows the password", async () => {
    proxy = await ForwardProxy.start({ credentials: { user: "alice", password: "pr0xy-s3cret" } })
    const url = `http://alice:wr0ng-s3cret@127.0.0.1:${proxy.port}`
    const error = await run(
      Effect.flip(Effect.flatMap(EasyChat.EasyChat, (chat) => chat.complete({ messages }))),
      { servers: [mirror.url] },
      url
    )
    const info = errorInfo(error)
    expect(info).toMatchObject({
      _tag: "AllServersFailed",
      attempts: [{ server: mirror.url, error: { _tag: "TransportError" } }]
    })
    // undici reports the proxy's 407 as a connection failure (the request never reached the server).
    expect(info.attempts?.[0]?.error.detail).toContain("407")
    expect(JSON.stringify(info)).not.toContain("wr0ng-s3cret")
    expect(String(error)).not.toContain("wr0ng-s3cret")
    expect(mirror.requests).toEqual([])
  })

  it("https:// targets are tunnelled with CONNECT", async () => {
    proxy = await ForwardProxy.start()
    // The mirror speaks plain HTTP, so the TLS handshake inside the tunnel fails: what matters is the CONNECT.
    const target = `https://127.0.0.1:${mirror.port}`
    const error = await run(
      Effect.flip(Effect.flatMap(EasyChat.EasyChat, (chat) => chat.complete({ messages }))),
      { servers: [target], cookieInit: "off", timeouts: { headers: 5000 } },
      proxy.url
    )
    expect(errorInfo(error)).toMatchObject({
      _tag: "AllServersFailed",
      attempts: [{ server: target, error: { _tag: "TransportError" } }]
    })
    expect(proxy.log.map((e) => `${e.method} ${e.target}`)).toEqual([`CONNECT 127.0.0.1:${mirror.port}`])
  })

  it('`proxy: "env"` reads HTTP_PROXY when the layer is built', async () => {
    proxy = await ForwardProxy.start()
    const saved = {
      HTTP_PROXY: process.env.HTTP_PROXY,
      http_proxy: process.env.http_proxy,
      NO_PROXY: process.env.NO_PROXY,
      no_proxy: process.env.no_proxy
    }
    process.env.HTTP_PROXY = proxy.url
    process.env.http_proxy = proxy.url
    process.env.NO_PROXY = ""
    process.env.no_proxy = ""
    try {
      const reply = await run(
        Effect.flatMap(EasyChat.EasyChat, (chat) => chat.complete({ messages })),
        { servers: [mirror.url] },
        "env"
      )
      expect(reply.content).toBe(tricky)
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name]
        else process.env[name] = value
      }
    }
    expect(forwarded()).toEqual([`GET ${mirror.url}/`, `GET ${mirror.url}/welcome`, `POST ${mirror.url}${chatPath}`])
  })
})
