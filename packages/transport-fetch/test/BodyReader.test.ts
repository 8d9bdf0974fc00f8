import { BodyReader, EasyChat } from "@easychat/core"
import { MirrorServer } from "@easychat/testkit"
import { FetchHttpClient, HttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as FetchTransport from "../src/index.js"
import { madeOf } from "../src/internal/client.js"
import { serve, waitUntil } from "./servers.js"

type Outcome = { readonly _tag: "end" } | { readonly _tag: "fail"; readonly cause: unknown }

/** A sink that records what it is given; `onChunk` runs after each read is recorded. */
const record = (onChunk?: (count: number) => void) => {
  const chunks: Array<Uint8Array> = []
  let settle: (outcome: Outcome) => void = () => {}
  const settled = new Promise<Outcome>((resolve) => (settle = resolve))
  const sink: BodyReader.Sink = {
    chunk: (bytes) => {
      chunks.push(bytes)
      onChunk?.(chunks.length)
    },
    end: () => settle({ _tag: "end" }),
    fail: (cause) => settle({ _tag: "fail", cause })
  }
  return {
    sink,
    chunks,
    outcome: Effect.promise(() => settled),
    text: () => Buffer.concat(chunks).toString("latin1"),
    size: () => chunks.reduce((n, c) => n + c.length, 0)
  }
}

/** The layer's reader opening the body of a GET. */
const openGet = (url: string, sink: BodyReader.Sink) =>
  Effect.gen(function* () {
    const reader = yield* BodyReader.BodyReader
    const response = yield* HttpClient.get(url)
    return { response, reader, body: yield* reader.open(response, sink) }
  })

const endless = serve((_req, res) => {
  res.writeHead(200, { "content-type": "text/event-stream" })
  res.write("data: first\n\n")
  // never ends: only the client can close this response
})

describe("BodyReader", () => {
  it.effect("the layer provides the fetch reader", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* BodyReader.BodyReader).name, "fetch")
      assert.strictEqual((yield* BodyReader.current).name, "fetch")
      assert.strictEqual(FetchTransport.bodyReader.name, "fetch")
    }).pipe(Effect.provide(FetchTransport.layer()))
  )

  it.scopedLive("the fetch reader has the raw body of every response of the layer's client", () =>
    Effect.gen(function* () {
      const server = yield* serve((_req, res) => res.end("ok"))
      const client = yield* HttpClient.HttpClient
      const traced = yield* client.get(server.url)
      const untraced = yield* client.get(server.url).pipe(Effect.withTracerEnabled(false))
      const scoped = yield* HttpClient.withScope(client).get(server.url)
      for (const response of [traced, untraced, scoped]) {
        assert.isDefined(madeOf(response))
        const sink = record()
        yield* FetchTransport.bodyReader.open(response, sink.sink)
        assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
        assert.strictEqual(sink.text(), "ok")
      }
    }).pipe(Effect.provide(FetchTransport.layer()))
  )

  // Fails when core reads bodies another way than through the layer's BodyReader.
  it.scopedLive("fast reader in use: EasyChat streams a reply through the fetch reader", () =>
    Effect.gen(function* () {
      const mirror = yield* Effect.acquireRelease(
        Effect.promise(() => MirrorServer.start()),
        (server) => Effect.promise(() => server.close())
      )
      const opened: Array<string> = []
      const counting = (reader: BodyReader.Service): BodyReader.Service => ({
        name: `counting ${reader.name}`,
        open: (response, sink) => {
          // The reader underneath, and whether it has the raw body of this response (its fast path).
          opened.push(`${reader.name}${madeOf(response) === undefined ? " (through response.stream)" : ""}`)
          return reader.open(response, sink)
        },
        abandon: reader.abandon
      })
      const transport = Layer.merge(
        Layer.effect(BodyReader.BodyReader, Effect.map(BodyReader.BodyReader, counting)),
        Layer.effect(HttpClient.HttpClient, HttpClient.HttpClient)
      ).pipe(Layer.provide(FetchTransport.layer()))
      const content = yield* Effect.gen(function* () {
        const chat = yield* EasyChat.EasyChat
        return yield* chat.stream({ messages: [{ role: "user", content: "hi" }] }).pipe(
          Stream.map((delta) => delta.content ?? ""),
          Stream.mkString
        )
      }).pipe(Effect.provide(EasyChat.layer({ servers: [mirror.url] }).pipe(Layer.provide(transport))))
      assert.strictEqual(content, "Echo: hi\nThis reply comes from the easychat test mirror.")
      assert.isAtLeast(opened.length, 1, "the layer's BodyReader was not used")
      assert.deepStrictEqual([...new Set(opened)], ["fetch"])
    })
  )

  describe("reading", () => {
    it.scopedLive("delivers every read in order, then the end", () =>
      Effect.gen(function* () {
        const pieces = Array.from({ length: 300 }, (_, i) => `data: {"n":${i}}\n\n`)
        const server = yield* serve((_req, res) => {
          res.writeHead(200, { "content-type": "text/event-stream" })
          let i = 0
          const next = () => {
            if (i === pieces.length) return res.end()
            res.write(pieces[i++])
            if (i % 30 === 0) setTimeout(next, 2)
            else next()
          }
          next()
        })
        const sink = record()
        yield* openGet(server.url, sink.sink)
        assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
        assert.strictEqual(sink.text(), pieces.join(""))
        assert.isAbove(sink.chunks.length, 1)
      }).pipe(Effect.provide(FetchTransport.layer()))
    )

    it.scopedLive("a response without a body ends at once", () =>
      Effect.gen(function* () {
        const server = yield* serve((_req, res) => res.writeHead(204).end())
        const sink = record()
        const { response } = yield* openGet(server.url, sink.sink)
        assert.strictEqual(response.status, 204)
        assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
        assert.strictEqual(sink.chunks.length, 0)
      }).pipe(Effect.provide(FetchTransport.layer()))
    )

    it.scopedLive("a connection cut mid-body fails the sink after the reads before it", () =>
      Effect.gen(function* () {
        const server = yield* serve((_req, res) => {
          res.writeHead(200, { "content-type": "text/event-stream", "content-length": "1000" })
          res.write("data: partial\n\n", () => setTimeout(() => res.socket?.destroy(), 20))
        })
        const sink = record()
        yield* openGet(server.url, sink.sink)
        const outcome = yield* sink.outcome
        assert.strictEqual(outcome._tag, "fail")
        assert.strictEqual(sink.text(), "data: partial\n\n")
      }).pipe(Effect.provide(FetchTransport.layer()))
    )

    it.scopedLive("pause stops the reads until resume", () =>
      Effect.gen(function* () {
        const size = 32 * 1024 * 1024
        const server = yield* serve((_req, res) => {
          res.writeHead(200, { "content-type": "application/octet-stream" })
          res.end(Buffer.alloc(size, 97))
        })
        let pause = () => {}
        const sink = record((count) => {
          if (count === 1) pause()
        })
        const { body } = yield* openGet(server.url, sink.sink)
        pause = body.pause
        yield* waitUntil("a first read", () => sink.chunks.length > 0)
        yield* Effect.sleep("50 millis")
        const whilePaused = sink.chunks.length
        yield* Effect.sleep("100 millis")
        assert.strictEqual(sink.chunks.length, whilePaused, "no read is delivered while paused")
        assert.isBelow(sink.size(), size)
        body.resume()
        assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
        assert.strictEqual(sink.size(), size)
      }).pipe(Effect.provide(FetchTransport.layer()))
    )

    it.scopedLive("cancel closes the socket and delivers nothing more", () =>
      Effect.gen(function* () {
        const server = yield* endless
        const sink = record()
        const { body } = yield* openGet(server.url, sink.sink)
        yield* waitUntil("a first read", () => sink.chunks.length > 0)
        body.cancel()
        body.cancel()
        yield* waitUntil("the socket closed", () => server.requests[0]!.socket.closed, "1 second")
        assert.strictEqual(sink.chunks.length, 1)
      }).pipe(Effect.provide(FetchTransport.layer()))
    )

    it.scopedLive("abandon closes the socket of a response nobody reads", () =>
      Effect.gen(function* () {
        const server = yield* endless
        const reader = yield* BodyReader.BodyReader
        const response = yield* HttpClient.get(server.url)
        reader.abandon(response)
        yield* waitUntil("the socket closed", () => server.requests[0]!.socket.closed, "1 second")
      }).pipe(Effect.provide(FetchTransport.layer()))
    )

    it.scopedLive("release drains a small rest and keeps the connection for the next request", () =>
      Effect.gen(function* () {
        const server = yield* serve((_req, res) => {
          res.writeHead(200, { "content-type": "text/event-stream" })
          res.write("data: [DONE]\n\n")
          // The rest arrives after the reader let go: it is read, not delivered.
          setTimeout(() => res.end(`: ${"x".repeat(8 * 1024)}\n\n`), 30)
        })
        let release = () => {}
        const sink = record(() => release())
        const { body } = yield* openGet(server.url, sink.sink)
        release = body.release
        yield* Effect.sleep("100 millis")
        assert.strictEqual(sink.text(), "data: [DONE]\n\n")
        const second = record()
        yield* openGet(server.url, second.sink)
        assert.deepStrictEqual(yield* second.outcome, { _tag: "end" })
        assert.strictEqual(server.requests.length, 2)
        assert.strictEqual(server.connections(), 1, "the drained connection was reused")
        assert.strictEqual(server.closed(), 0)
      }).pipe(Effect.provide(FetchTransport.layer()))
    )

    it.scopedLive("release of a rest larger than DRAIN_BYTES closes the connection", () =>
      Effect.gen(function* () {
        const server = yield* serve((_req, res) => {
          res.writeHead(200, { "content-type": "application/octet-stream" })
          res.write("first")
          setTimeout(() => res.write(Buffer.alloc(4 * BodyReader.DRAIN_BYTES, 97)), 30)
          // never ends
        })
        let release = () => {}
        const sink = record(() => release())
        const { body } = yield* openGet(server.url, sink.sink)
        release = body.release
        yield* waitUntil("the socket closed", () => server.requests[0]!.socket.closed, "1 second")
        assert.strictEqual(sink.text(), "first")
      }).pipe(Effect.provide(FetchTransport.layer()))
    )

    it.scopedLive("release of a rest that takes longer than DRAIN_MILLIS closes the connection", () =>
      Effect.gen(function* () {
        const server = yield* endless
        let release = () => {}
        const sink = record(() => release())
        const { body } = yield* openGet(server.url, sink.sink)
        release = body.release
        yield* Effect.sleep(`${BodyReader.DRAIN_MILLIS / 2} millis`)
        assert.isFalse(server.requests[0]!.socket.closed)
        yield* waitUntil("the socket closed", () => server.requests[0]!.socket.closed, "2 seconds")
      }).pipe(Effect.provide(FetchTransport.layer()))
    )

    it.effect("cancel and abandon abort the signal the fetch was given", () => {
      const signals: Array<AbortSignal> = []
      const cancelled: Array<unknown> = []
      const fetch: typeof globalThis.fetch = async (_input, init) => {
        signals.push(init!.signal!)
        let open = true
        const body = new ReadableStream<Uint8Array>({
          // One read per timer turn, as from a network.
          pull: (controller) =>
            new Promise<void>((resolve) =>
              setTimeout(() => {
                if (open) controller.enqueue(new Uint8Array(16))
                resolve()
              }, 1)
            ),
          cancel: (reason) => {
            open = false
            cancelled.push(reason)
          }
        })
        return new Response(body, { status: 200 })
      }
      return Effect.gen(function* () {
        const reader = yield* BodyReader.BodyReader
        const sink = record()
        const body = yield* reader.open(yield* HttpClient.get("http://mirror.test/a"), sink.sink)
        yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
        assert.isFalse(signals[0]!.aborted)
        body.cancel()
        assert.isTrue(signals[0]!.aborted)
        reader.abandon(yield* HttpClient.get("http://mirror.test/b"))
        assert.isTrue(signals[1]!.aborted)
        assert.strictEqual(cancelled.length, 2)
      }).pipe(Effect.provide(FetchTransport.layer({ fetch, browser: false })))
    })

    it.scopedLive("a response from another HttpClient is read through its stream", () =>
      Effect.gen(function* () {
        const server = yield* serve((_req, res) => res.end("from fetch"))
        const response = yield* HttpClient.get(server.url).pipe(Effect.provide(FetchHttpClient.layer))
        const sink = record()
        yield* FetchTransport.bodyReader.open(response, sink.sink)
        assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
        assert.strictEqual(sink.text(), "from fetch")
      })
    )
  })
})
