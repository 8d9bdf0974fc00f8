// A Deno worker loaded from a file has a `location` whose origin is opaque (the string "null"): `HttpClient.make`
// resolves every URL against "null" + pathname, which is not a URL, so every request used to fail as `InvalidUrl`.
import { MirrorServer } from "@easychat/testkit"
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { afterEach, assert, beforeEach, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as FetchTransport from "../src/index.js"

/** What Deno 2.9 has as `location` in `new Worker(new URL("./worker.mjs", import.meta.url), { type: "module" })`. */
const workerLocation = {
  origin: "null",
  href: "file:///srv/app/worker.mjs",
  pathname: "/srv/app/worker.mjs",
  protocol: "file:"
}

const recordingFetch = () => {
  const calls: Array<{ readonly url: string; readonly init: RequestInit }> = []
  const fetch: typeof globalThis.fetch = async (input, init) => {
    calls.push({ url: String(input), init: init ?? {} })
    return new Response("recorded", { status: 200, headers: { "content-type": "text/plain" } })
  }
  return { calls, fetch }
}

describe("an opaque origin (a worker loaded from a file)", () => {
  beforeEach(() => {
    ;(globalThis as { location?: unknown }).location = workerLocation
  })
  afterEach(() => {
    delete (globalThis as { location?: unknown }).location
  })

  it.effect("an absolute URL is sent as it is, with its query and hash", () =>
    Effect.gen(function* () {
      const { calls, fetch } = recordingFetch()
      const response = yield* HttpClient.execute(
        HttpClientRequest.post("http://127.0.0.1:8787/api/openai/v1/chat/completions?a=1").pipe(
          HttpClientRequest.appendUrlParam("b", "2"),
          HttpClientRequest.setHash("h"),
          HttpClientRequest.bodyText("hi", "text/plain")
        )
      ).pipe(Effect.provide(FetchTransport.layer({ fetch, browser: false })))
      assert.strictEqual(yield* response.text, "recorded")
      assert.deepStrictEqual(
        calls.map((c) => c.url),
        ["http://127.0.0.1:8787/api/openai/v1/chat/completions?a=1&b=2#h"]
      )
      assert.strictEqual(calls[0]!.init.method, "POST")
    })
  )

  it.effect("a relative URL is resolved against location.href, as fetch does", () =>
    Effect.gen(function* () {
      const { calls, fetch } = recordingFetch()
      yield* HttpClient.get("./data.json").pipe(Effect.provide(FetchTransport.layer({ fetch, browser: false })))
      assert.deepStrictEqual(
        calls.map((c) => c.url),
        ["file:///srv/app/data.json"]
      )
    })
  )

  it.live("interrupting a request aborts its fetch", () =>
    Effect.gen(function* () {
      const signals: Array<AbortSignal> = []
      const fetch: typeof globalThis.fetch = (_input, init) =>
        new Promise((_resolve, reject) => {
          signals.push(init!.signal!)
          init!.signal!.addEventListener("abort", () => reject(init!.signal!.reason))
        })
      const fiber = yield* HttpClient.get("http://127.0.0.1:8787/").pipe(
        Effect.provide(FetchTransport.layer({ fetch, browser: false })),
        Effect.fork
      )
      for (let waited = 0; signals.length === 0 && waited < 2000; waited++) yield* Effect.sleep(1)
      assert.strictEqual(signals.length, 1, "fetch was called")
      yield* Fiber.interrupt(fiber)
      assert.strictEqual(signals[0]!.aborted, true)
    })
  )

  it("a chat reply through createClient, against a real mirror", async () => {
    const mirror = await MirrorServer.start({ reply: "Hello from the mirror", chunkSize: 4 })
    const client = FetchTransport.createClient({ servers: [mirror.url] })
    try {
      const reply = await client.complete({ messages: [{ role: "user", content: "hi" }] })
      assert.strictEqual(reply.content, "Hello from the mirror")
      const pieces: Array<string> = []
      for await (const piece of client.stream({ messages: [{ role: "user", content: "hi" }] })) pieces.push(piece)
      assert.deepStrictEqual(pieces, ["Hell", "o fr", "om t", "he m", "irro", "r"])
    } finally {
      await client.close()
      await mirror.close()
    }
  })
})
