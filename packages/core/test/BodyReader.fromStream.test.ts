// The contract of `BodyReader.fromStream` that BodyReader.test.ts leaves out: reads that are
// already queued (delivered in order, each once, nothing after the end), streams whose reads
// come without a wait (pause and cancel still stop them), a body that fails at once, a cancel
// right after `open`, and release's time bound.
import { HttpClientRequest, HttpClientResponse } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as BodyReader from "../src/BodyReader.js"
import { bytesOf, sleep, source, waitUntil, webClient } from "./bodies.js"

type Outcome = { readonly _tag: "end" } | { readonly _tag: "fail"; readonly cause: unknown }

/** A sink that records every call; `onChunk` runs after each read is recorded. */
const record = (onChunk?: (count: number) => void) => {
  const chunks: Array<Uint8Array> = []
  const calls: Array<string> = []
  let settle: (outcome: Outcome) => void = () => {}
  const settled = new Promise<Outcome>((resolve) => (settle = resolve))
  const sink: BodyReader.Sink = {
    chunk: (bytes) => {
      calls.push("chunk")
      chunks.push(bytes)
      onChunk?.(chunks.length)
    },
    end: () => {
      calls.push("end")
      settle({ _tag: "end" })
    },
    fail: (cause) => {
      calls.push("fail")
      settle({ _tag: "fail", cause })
    }
  }
  return { sink, chunks, calls, outcome: Effect.promise(() => settled), text: () => Buffer.concat(chunks).toString() }
}

/** A response whose body is any Effect `Stream` (`fromStream` reads nothing else of it). */
const responseOf = (stream: Stream.Stream<Uint8Array, unknown>) =>
  ({
    ...HttpClientResponse.fromWeb(HttpClientRequest.get("http://mirror.test/"), new Response(null)),
    stream
  }) as unknown as HttpClientResponse.HttpClientResponse

/** A stream of `count` reads ("0,", "1,", ...) that come without a wait; counts its pulls and its finalizer. */
const immediate = (count: number) => {
  let pulls = 0
  let finalized = false
  const stream = Stream.repeatEffect(Effect.sync(() => bytesOf(`${pulls++},`))).pipe(
    Stream.take(count),
    Stream.ensuring(
      Effect.sync(() => {
        finalized = true
      })
    )
  )
  return { stream, pulls: () => pulls, finalized: () => finalized }
}

const numbers = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `${from + i},`).join("")

describe("BodyReader.fromStream", () => {
  it.live("delivers reads that are already queued in order, each once, then the end, and nothing after", () =>
    Effect.gen(function* () {
      const pieces = Array.from({ length: 200 }, (_, i) => bytesOf(`piece ${i};`))
      const { client } = webClient(
        () =>
          new ReadableStream<Uint8Array>({
            start: (controller) => {
              for (const piece of pieces) controller.enqueue(piece)
              controller.close()
            }
          })
      )
      const response = yield* client.get("http://mirror.test/")
      const sink = record()
      yield* BodyReader.fromStream.open(response, sink.sink)
      assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
      assert.deepStrictEqual(sink.chunks, pieces)
      yield* sleep(20)
      assert.deepStrictEqual(sink.calls, [...pieces.map(() => "chunk"), "end"])
    })
  )

  it.live("delivers a stream whose reads come without a wait in order, after open has returned", () =>
    Effect.gen(function* () {
      const source = immediate(1000)
      const sink = record()
      yield* BodyReader.fromStream.open(responseOf(source.stream), sink.sink)
      assert.strictEqual(sink.calls.length, 0)
      assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
      assert.strictEqual(sink.text(), numbers(0, 1000))
      assert.strictEqual(sink.calls.length, 1001)
    })
  )

  it.live("pause stops a stream whose reads come without a wait, until resume", () =>
    Effect.gen(function* () {
      const source = immediate(10_000)
      let body: BodyReader.Body | undefined
      const sink = record((count) => {
        if (count === 3) body!.pause()
      })
      body = yield* BodyReader.fromStream.open(responseOf(source.stream), sink.sink)
      yield* waitUntil("three reads", () => sink.chunks.length >= 3)
      yield* sleep(30)
      const delivered = sink.chunks.length
      const pulled = source.pulls()
      // The read asked for before the pause may still arrive; nothing after it.
      assert.isAtMost(delivered, 4)
      assert.isAtMost(pulled, 5)
      yield* sleep(30)
      assert.strictEqual(sink.chunks.length, delivered)
      assert.strictEqual(source.pulls(), pulled)
      body.resume()
      assert.deepStrictEqual(yield* sink.outcome, { _tag: "end" })
      assert.strictEqual(sink.text(), numbers(0, 10_000))
    })
  )

  it.live("a cancel from the sink stops a stream whose reads come without a wait, and runs its finalizers", () =>
    Effect.gen(function* () {
      const source = immediate(10_000)
      let body: BodyReader.Body | undefined
      const sink = record((count) => {
        if (count === 100) body!.cancel()
      })
      body = yield* BodyReader.fromStream.open(responseOf(source.stream), sink.sink)
      yield* waitUntil("the stream finalized", source.finalized)
      yield* sleep(20)
      assert.strictEqual(sink.calls.length, 100)
      assert.strictEqual(sink.text(), numbers(0, 100))
      assert.isAtMost(source.pulls(), 102)
    })
  )

  it.live("a body that fails at once fails the sink after open has returned", () =>
    Effect.gen(function* () {
      // No body: `response.stream` is `Stream.fail(EmptyBody)`.
      const { client } = webClient(() => null)
      const response = yield* client.get("http://mirror.test/")
      const sink = record()
      yield* BodyReader.fromStream.open(response, sink.sink)
      assert.strictEqual(sink.calls.length, 0)
      const outcome = yield* sink.outcome
      assert.strictEqual(outcome._tag, "fail")
      yield* sleep(20)
      assert.deepStrictEqual(sink.calls, ["fail"])
    })
  )

  it.live("cancel right after open, before any read, aborts the request and delivers nothing", () =>
    Effect.gen(function* () {
      const web = source(() => bytesOf("x"))
      const { client, signals } = webClient(() => web.stream)
      const response = yield* client.get("http://mirror.test/")
      const sink = record()
      const body = yield* BodyReader.fromStream.open(response, sink.sink)
      body.cancel()
      yield* waitUntil("the request aborted", () => signals[0]!.aborted)
      yield* waitUntil("the body cancelled", web.cancelled)
      yield* sleep(20)
      assert.strictEqual(sink.calls.length, 0)
      assert.isAtMost(web.pulls(), 1)
    })
  )

  it.live("release of a rest that lasts longer than DRAIN_MILLIS cancels and aborts", () =>
    Effect.gen(function* () {
      const rest = source(() => new Uint8Array(1))
      const { client, signals } = webClient(() => rest.stream)
      const response = yield* client.get("http://mirror.test/")
      let body: BodyReader.Body | undefined
      const sink = record(() => body!.release())
      body = yield* BodyReader.fromStream.open(response, sink.sink)
      yield* waitUntil("a read", () => sink.chunks.length > 0)
      yield* sleep(BodyReader.DRAIN_MILLIS / 2)
      assert.isFalse(rest.cancelled())
      assert.isFalse(signals[0]!.aborted)
      yield* waitUntil("cancelled", rest.cancelled, BodyReader.DRAIN_MILLIS * 2)
      yield* waitUntil("aborted", () => signals[0]!.aborted)
      assert.deepStrictEqual(sink.calls, ["chunk"])
    })
  )
})
