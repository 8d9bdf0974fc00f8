import * as http from "node:http"
import type * as net from "node:net"
import { FetchHttpClient, HttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import * as BodyReader from "../src/BodyReader.js"
import { bytesOf, sleep, source, waitUntil, webClient } from "./bodies.js"

type Outcome = { readonly _tag: "end" } | { readonly _tag: "fail"; readonly cause: unknown }

/** A sink that records what it is given; `onChunk` runs after each read is recorded. */
const record = (onChunk?: (count: number) => void) => {
  const chunks: Array<Uint8Array> = []
  let calls = 0
  let settle: (outcome: Outcome) => void = () => {}
  const settled = new Promise<Outcome>((resolve) => (settle = resolve))
  const sink: BodyReader.Sink = {
    chunk: (bytes) => {
      calls++
      chunks.push(bytes)
      onChunk?.(chunks.length)
    },
    end: () => {
      calls++
      settle({ _tag: "end" })
    },
    fail: (cause) => {
      calls++
      settle({ _tag: "fail", cause })
    }
  }
  return {
    sink,
    chunks,
    calls: () => calls,
    outcome: Effect.promise(() => settled),
    bytes: () => Buffer.concat(chunks)
  }
}

/** Deterministic bytes that are not all alike. */
const noise = (size: number, seed: number) => {
  const out = new Uint8Array(size)
  let x = seed
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    out[i] = x >>> 24
  }
  return out
}

/** A real server on 127.0.0.1 that tracks its sockets. */
const serve = (
  handler: http.RequestListener
): Effect.Effect<{ readonly url: string; readonly sockets: Array<net.Socket> }, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<{ server: http.Server; url: string; sockets: Array<net.Socket> }>((resume) => {
      const sockets: Array<net.Socket> = []
      const server = http.createServer({ keepAliveTimeout: 30_000 }, handler)
      server.on("connection", (socket: net.Socket) => sockets.push(socket))
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as net.AddressInfo).port
        resume(Effect.succeed({ server, url: `http://127.0.0.1:${port}`, sockets }))
      })
    }),
    ({ server, sockets }) =>
      Effect.async<void>((resume) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  )

const endless = serve((_req, res) => {
  res.writeHead(200, { "content-type": "text/event-stream" })
  res.write("data: first\n\n")
  // never ends: only the client can close this response
})

describe("BodyReader", () => {
  describe("fromWebStream", () => {
    it.live("delivers each read in order, then the end", () =>
      Effect.gen(function* () {
        const pieces = ["data: a\n\n", "data: é", "\n\n", "data: [DONE]\n\n"].map(bytesOf)
        const { stream } = source((i) => pieces[i])
        const sink = record()
        BodyReader.fromWebStream(stream, sink.sink)
        assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
        assert.deepStrictEqual(sink.chunks, pieces)
      })
    )

    it.live("a failing stream fails the sink after the reads before it", () =>
      Effect.gen(function* () {
        const boom = new Error("reset")
        const { stream } = source((i) => (i < 2 ? bytesOf(`piece ${i}`) : boom))
        const sink = record()
        BodyReader.fromWebStream(stream, sink.sink)
        assert.deepStrictEqual(yield* sink.outcome, { _tag: "fail", cause: boom })
        assert.strictEqual(sink.bytes().toString(), "piece 0piece 1")
      })
    )

    it.live("pause stops the reads until resume", () =>
      Effect.gen(function* () {
        const { stream, pulls } = source((i) => (i < 50 ? bytesOf("x") : undefined))
        let body: BodyReader.Body | undefined
        const sink = record((count) => {
          if (count === 3) body!.pause()
        })
        body = BodyReader.fromWebStream(stream, sink.sink)
        yield* waitUntil("three reads", () => sink.chunks.length >= 3)
        yield* sleep(30)
        const delivered = sink.chunks.length
        const pulled = pulls()
        // The read asked for before the pause may still arrive; nothing after it.
        assert.isAtMost(delivered, 4)
        yield* sleep(30)
        assert.strictEqual(sink.chunks.length, delivered)
        assert.strictEqual(pulls(), pulled)
        body.resume()
        assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
        assert.strictEqual(sink.chunks.length, 50)
      })
    )

    it.live("cancel cancels the stream, aborts, and delivers nothing more", () =>
      Effect.gen(function* () {
        const { stream, cancelled } = source(() => bytesOf("x"))
        let aborts = 0
        const sink = record()
        const body = BodyReader.fromWebStream(stream, sink.sink, () => aborts++)
        yield* waitUntil("a read", () => sink.chunks.length > 0)
        body.cancel()
        body.cancel()
        const calls = sink.calls()
        yield* sleep(20)
        assert.isTrue(cancelled())
        assert.strictEqual(aborts, 1)
        assert.strictEqual(sink.calls(), calls)
      })
    )

    it.live("release reads a small rest to its end without delivering it, and keeps the connection", () =>
      Effect.gen(function* () {
        const { stream, pulls, cancelled } = source((i) => (i < 10 ? bytesOf(`piece ${i}`) : undefined))
        let aborts = 0
        let body: BodyReader.Body | undefined
        const sink = record(() => body!.release())
        body = BodyReader.fromWebStream(stream, sink.sink, () => aborts++)
        yield* waitUntil("the rest read", () => pulls() >= 11)
        yield* sleep(20)
        assert.strictEqual(sink.calls(), 1, "only the first read is delivered; no end")
        assert.isFalse(cancelled())
        assert.strictEqual(aborts, 0)
      })
    )

    it.live("release of a rest larger than DRAIN_BYTES cancels and aborts", () =>
      Effect.gen(function* () {
        const { stream, pulls, cancelled } = source(() => new Uint8Array(16 * 1024))
        let aborts = 0
        let body: BodyReader.Body | undefined
        const sink = record(() => body!.release())
        body = BodyReader.fromWebStream(stream, sink.sink, () => aborts++)
        yield* waitUntil("cancelled", cancelled)
        assert.strictEqual(aborts, 1)
        assert.isAtMost(pulls(), BodyReader.DRAIN_BYTES / (16 * 1024) + 3)
        assert.strictEqual(sink.calls(), 1)
      })
    )

    it.live("release of a rest that lasts longer than DRAIN_MILLIS cancels and aborts", () =>
      Effect.gen(function* () {
        const { stream, cancelled } = source(() => new Uint8Array(1))
        let aborts = 0
        let body: BodyReader.Body | undefined
        const sink = record(() => body!.release())
        body = BodyReader.fromWebStream(stream, sink.sink, () => aborts++)
        yield* sleep(BodyReader.DRAIN_MILLIS / 2)
        assert.isFalse(cancelled())
        yield* waitUntil("cancelled", cancelled, BodyReader.DRAIN_MILLIS * 2)
        assert.strictEqual(aborts, 1)
      })
    )
  })

  describe("fromStream", () => {
    it("is named stream", () => {
      assert.strictEqual(BodyReader.fromStream.name, "stream")
    })

    it.scopedLive("delivers the bytes of a FetchHttpClient response exactly", () =>
      Effect.gen(function* () {
        const body = noise(1024 * 1024 + 7, 42)
        const server = yield* serve((_req, res) => {
          res.writeHead(200, { "content-type": "application/octet-stream" })
          let offset = 0
          const next = () => {
            if (offset >= body.length) return res.end()
            const size = 1 + ((offset * 7919) % 40_000)
            res.write(body.subarray(offset, (offset += size)), () => setImmediate(next))
          }
          next()
        })
        const response = yield* HttpClient.get(server.url)
        const sink = record()
        yield* BodyReader.fromStream.open(response, sink.sink)
        assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
        assert.isTrue(Buffer.from(body).equals(sink.bytes()))
        assert.isAbove(sink.chunks.length, 1)
      }).pipe(Effect.provide(FetchHttpClient.layer))
    )

    it.live("delivers the bytes of an HttpClient.make client's web response exactly", () =>
      Effect.gen(function* () {
        const pieces = Array.from({ length: 40 }, (_, i) => noise(1 + i * 97, i))
        const { client } = webClient(() => source((i) => pieces[i]).stream)
        const response = yield* client.get("http://mirror.test/")
        const sink = record()
        yield* BodyReader.fromStream.open(response, sink.sink)
        assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
        assert.isTrue(Buffer.concat(pieces).equals(sink.bytes()))
      })
    )

    it.live("open then cancel aborts the request", () =>
      Effect.gen(function* () {
        const sources: Array<ReturnType<typeof source>> = []
        const { client, signals } = webClient(() => {
          sources.push(source(() => bytesOf("x")))
          return sources[sources.length - 1]!.stream
        })
        const response = yield* client.get("http://mirror.test/")
        const sink = record()
        const body = yield* BodyReader.fromStream.open(response, sink.sink)
        yield* waitUntil("a read", () => sink.chunks.length > 0)
        assert.isFalse(signals[0]!.aborted)
        body.cancel()
        yield* waitUntil("the request aborted", () => signals[0]!.aborted)
        yield* waitUntil("the body cancelled", () => sources[0]!.cancelled())
        const calls = sink.calls()
        yield* sleep(20)
        assert.strictEqual(sink.calls(), calls)
      })
    )

    it.live("abandon aborts the request of a response nobody read", () =>
      Effect.gen(function* () {
        const sources: Array<ReturnType<typeof source>> = []
        const { client, signals } = webClient(() => {
          sources.push(source(() => bytesOf("x")))
          return sources[sources.length - 1]!.stream
        })
        const response = yield* client.get("http://mirror.test/")
        BodyReader.fromStream.abandon(response)
        yield* waitUntil("the request aborted", () => signals[0]!.aborted)
        yield* waitUntil("the body cancelled", () => sources[0]!.cancelled())
      })
    )

    it.live("delivers nothing before open has returned, and a failing stream fails the sink after its reads", () =>
      Effect.gen(function* () {
        const boom = new Error("boom")
        const { client } = webClient(() => source((i) => (i < 2 ? bytesOf(`piece ${i}`) : boom)).stream)
        const response = yield* client.get("http://mirror.test/")
        const sink = record()
        yield* BodyReader.fromStream.open(response, sink.sink)
        assert.strictEqual(sink.calls(), 0)
        const outcome = yield* sink.outcome
        assert.strictEqual(outcome._tag, "fail")
        assert.strictEqual(sink.bytes().toString(), "piece 0piece 1")
      })
    )

    it.live("pause holds the reads until resume", () =>
      Effect.gen(function* () {
        const { stream, pulls } = source((i) => (i < 50 ? bytesOf("x") : undefined))
        const { client } = webClient(() => stream)
        const response = yield* client.get("http://mirror.test/")
        let body: BodyReader.Body | undefined
        const sink = record((count) => {
          if (count === 3) body!.pause()
        })
        body = yield* BodyReader.fromStream.open(response, sink.sink)
        yield* waitUntil("three reads", () => sink.chunks.length >= 3)
        yield* sleep(30)
        const delivered = sink.chunks.length
        const pulled = pulls()
        assert.isAtMost(delivered, 4)
        yield* sleep(30)
        assert.strictEqual(sink.chunks.length, delivered)
        assert.strictEqual(pulls(), pulled)
        body.resume()
        assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
        assert.strictEqual(sink.chunks.length, 50)
      })
    )

    it.live("release reads a small rest to its end without delivering it", () =>
      Effect.gen(function* () {
        const { stream, pulls, cancelled } = source((i) => (i < 10 ? bytesOf(`piece ${i}`) : undefined))
        const { client } = webClient(() => stream)
        const response = yield* client.get("http://mirror.test/")
        let body: BodyReader.Body | undefined
        const sink = record(() => body!.release())
        body = yield* BodyReader.fromStream.open(response, sink.sink)
        yield* waitUntil("the rest read", () => pulls() >= 11)
        yield* sleep(20)
        assert.strictEqual(sink.calls(), 1, "only the first read is delivered; no end")
        // Read to its end, not cancelled (the platform aborts a finished request's signal in any case).
        assert.isFalse(cancelled())
      })
    )

    it.live("release of a rest larger than DRAIN_BYTES cancels and aborts", () =>
      Effect.gen(function* () {
        const { stream, pulls, cancelled } = source(() => new Uint8Array(16 * 1024))
        const { client, signals } = webClient(() => stream)
        const response = yield* client.get("http://mirror.test/")
        let body: BodyReader.Body | undefined
        const sink = record(() => body!.release())
        body = yield* BodyReader.fromStream.open(response, sink.sink)
        yield* waitUntil("cancelled", cancelled)
        yield* waitUntil("aborted", () => signals[0]!.aborted)
        assert.isAtMost(pulls(), BodyReader.DRAIN_BYTES / (16 * 1024) + 3)
        assert.strictEqual(sink.calls(), 1)
      })
    )

    it.scopedLive("cancel closes the connection of a FetchHttpClient response", () =>
      Effect.gen(function* () {
        const server = yield* endless
        const response = yield* HttpClient.get(server.url)
        const sink = record()
        const body = yield* BodyReader.fromStream.open(response, sink.sink)
        yield* waitUntil("a read", () => sink.chunks.length > 0)
        body.cancel()
        yield* waitUntil("the socket closed", () => server.sockets[0]!.closed)
      }).pipe(Effect.provide(FetchHttpClient.layer))
    )

    it.scopedLive("abandon closes the connection of a FetchHttpClient response", () =>
      Effect.gen(function* () {
        const server = yield* endless
        const response = yield* HttpClient.get(server.url)
        BodyReader.fromStream.abandon(response)
        yield* waitUntil("the socket closed", () => server.sockets[0]!.closed)
      }).pipe(Effect.provide(FetchHttpClient.layer))
    )
  })

  describe("current", () => {
    it.effect("is fromStream when no BodyReader is provided", () =>
      Effect.gen(function* () {
        assert.strictEqual(yield* BodyReader.current, BodyReader.fromStream)
      })
    )

    it.effect("is the provided BodyReader", () => {
      const reader: BodyReader.Service = { ...BodyReader.fromStream, name: "mine" }
      return Effect.gen(function* () {
        assert.strictEqual(yield* BodyReader.current, reader)
      }).pipe(Effect.provide(Layer.succeed(BodyReader.BodyReader, reader)))
    })
  })
})
