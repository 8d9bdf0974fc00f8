// The failover driver (`internal/failover.ts`) through the public service, on
// the scripted in-memory transport and the TestClock: each rule of who is
// tried next, and when a call ends, in milliseconds.
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import type { ChatDelta, ChatRequestInput, StreamOptions } from "../src/Chat.js"
import { EasyChat, type EasyChatError, type Presets } from "../src/index.js"
import { chunk, DONE, finish } from "./fixtures.js"
import * as Scripted from "./scripted.js"

const A = "http://a.test"
const B = "http://b.test"
const C = "http://c.test"
const CHAT = "/api/openai/v1/chat/completions"
const messages = [{ role: "user" as const, content: "Hello" }]
const request = { messages }
const post = (server: string) => `POST ${server} ${CHAT}`
const get = (server: string) => `GET ${server} /`

const hello = Scripted.sse([chunk("Hello"), chunk(" world"), finish(), DONE])
const whole = Scripted.json({
  id: "chatcmpl-1",
  object: "chat.completion",
  choices: [{ index: 0, message: { role: "assistant", content: "Hello world" }, finish_reason: "stop" }]
})
const usageOnly = `data: ${JSON.stringify({ id: "chatcmpl-1", choices: [], usage: { prompt_tokens: 3, completion_tokens: 0, total_tokens: 3 } })}\n\n`
const roleOnly = chunk(null, { choices: [{ index: 0, delta: { role: "assistant" }, finish_reason: null }] })
const htmlPage: Scripted.Reply = {
  headers: { "content-type": "text/html" },
  body: ["<html><title>Just a moment...</title></html>"]
}
const jsonError = (status: number, message: string) => Scripted.json({ error: { message } }, { status })

/** Round-robin over the pool in order, no cookie page: each test scripts exactly the chat requests. */
const pool = (servers: ReadonlyArray<string>, options: Presets.Options = {}): Presets.Options => ({
  servers,
  strategy: "round-robin",
  cookieInit: "off",
  ...options
})

/** A client on a transport that answers from `script`. */
const client = (options: Presets.Options, script: Scripted.Script) => {
  const transport = Scripted.make(script)
  const layer = EasyChat.layer(options).pipe(Layer.provide(transport.layer), Layer.orDie)
  return {
    transport,
    // Settled after the client is gone, so that what became of each body is known.
    use: <X, E>(f: (chat: EasyChat.Service) => Effect.Effect<X, E>) =>
      Effect.zipLeft(Effect.provide(Effect.flatMap(EasyChat.EasyChat, f), layer), Scripted.settled)
  }
}

/** What the caller of a streamed call got: every delta, then the call's error if it failed. */
interface Got {
  readonly deltas: ReadonlyArray<ChatDelta>
  readonly error: EasyChatError | undefined
}
type Read = (chat: EasyChat.Service, request: ChatRequestInput, options?: StreamOptions) => Effect.Effect<Got>

const viaStream: Read = (chat, request, options) =>
  Effect.gen(function* () {
    const deltas: Array<ChatDelta> = []
    const end = yield* Effect.either(
      Stream.runForEach(chat.stream(request, options), (d) => Effect.sync(() => deltas.push(d)))
    )
    return { deltas, error: Either.isLeft(end) ? end.left : undefined }
  })

const viaCall: Read = (chat, request, options) =>
  Effect.scoped(
    Effect.gen(function* () {
      const call = yield* chat.call(request, options)
      const deltas: Array<ChatDelta> = []
      while (true) {
        const step = yield* Effect.either(call.pull)
        if (Either.isLeft(step)) return { deltas, error: Option.getOrUndefined(step.left) }
        deltas.push(...step.right)
      }
    })
  )

/** The two faces of a streamed call: `stream` and the `ChatCall` handle that it, the facade and the gateway read. */
const streamed = [
  ["stream", viaStream],
  ["call", viaCall]
] as const

const texts = (got: Got) => got.deltas.map((d) => [d.content, d.server])
const helloFrom = (server: string) => [
  ["Hello", server],
  [" world", server],
  ["", server]
]
const triedOf = (error: EasyChatError | undefined) =>
  error?._tag === "AllServersFailed" ? error.attempts.map((a) => [a.server, a.error._tag]) : error
const healthOf = (chat: EasyChat.Service, server: string) =>
  Effect.map(chat.pool.health, (all) => all.find((h) => h.server === server)!)

/**
 * The error of the only attempt of a call to one server answering `reply`,
 * the TestClock moved by each of `steps`: what a failover records, seen whole.
 */
const onlyAttempt = (
  reply: Scripted.Reply | typeof Scripted.refused,
  call: (chat: EasyChat.Service) => Effect.Effect<unknown, EasyChatError>,
  options: Presets.Options = {},
  steps: ReadonlyArray<number> = []
) =>
  Effect.gen(function* () {
    const { use } = client(pool([A], { maxAttempts: 1, ...options }), { [A]: [reply] })
    const fiber = yield* Effect.fork(use((chat) => Effect.flip(call(chat))))
    for (const step of steps) yield* TestClock.adjust(step)
    const error = yield* Fiber.join(fiber)
    expect(error._tag).toBe("AllServersFailed")
    return error._tag === "AllServersFailed" ? error.attempts.map((a) => a.error) : []
  })
/** A streamed read as an Effect that fails with the call's error, once every delta is taken. */
const failing =
  (read: Read) =>
  (chat: EasyChat.Service): Effect.Effect<Got, EasyChatError> =>
    Effect.flatMap(read(chat, request), (got) =>
      got.error === undefined ? Effect.succeed(got) : Effect.fail(got.error)
    )
const complete = (chat: EasyChat.Service) => chat.complete(request)

describe.each(streamed)("a streamed call (%s)", (_, read) => {
  describe("fails over before its first delta", () => {
    const failures: ReadonlyArray<
      readonly [string, Scripted.Reply | typeof Scripted.refused, Record<string, unknown>]
    > = [
      ["a 5xx", Scripted.status(503, "down"), { _tag: "HttpStatusError", status: 503, body: "down" }],
      ["a 429", jsonError(429, "slow down"), { _tag: "HttpStatusError", status: 429, body: "slow down" }],
      [
        "a page instead of an event stream",
        htmlPage,
        { _tag: "UnexpectedContentType", contentType: "text/html", expected: "text/event-stream" }
      ],
      [
        "a JSON error body",
        Scripted.json({ error: { message: "model overloaded", code: "overloaded" } }),
        { _tag: "UpstreamError", detail: "model overloaded", code: "overloaded" }
      ],
      ["a whole JSON reply", whole, { _tag: "UnexpectedContentType", expected: "text/event-stream" }],
      ["a refused connection", Scripted.refused, { _tag: "TransportError" }],
      ["a cut before any delta", Scripted.sse([roleOnly], { ending: "cut" }), { _tag: "TransportError" }],
      [
        "an error event before any delta",
        Scripted.sse(['event: error\ndata: {"message":"quota exceeded"}\n\n']),
        { _tag: "UpstreamError", detail: "quota exceeded" }
      ],
      [
        "a malformed chunk before any delta",
        Scripted.sse(["data: {not json\n\n"]),
        { _tag: "DecodeError", reason: "InvalidJson" }
      ]
    ]
    for (const [name, reply, error] of failures) {
      it.effect(`on ${name}: the next server answers, the failure is recorded against the first`, () =>
        Effect.gen(function* () {
          const { transport, use } = client(pool([A, B]), { [A]: [reply], [B]: [hello] })
          const [got, a, b] = yield* use((chat) =>
            Effect.all([read(chat, request), healthOf(chat, A), healthOf(chat, B)])
          )
          expect(got.error).toBeUndefined()
          expect(texts(got)).toEqual(helloFrom(B))
          expect(transport.asked()).toEqual([post(A), post(B)])
          expect(a).toMatchObject({ failures: 1, lastError: error._tag })
          expect(b).toMatchObject({ failures: 0, lastLatencyMs: 0 })
          expect(yield* onlyAttempt(reply, failing(read))).toMatchObject([{ server: A, ...error }])
        })
      )
    }

    it.effect("on a headers timeout: the request is aborted when its limit passes, not before", () =>
      Effect.gen(function* () {
        const { transport, use } = client(pool([A, B], { timeouts: { headers: 5000 } }), {
          [A]: [{ wait: "forever" }],
          [B]: [hello]
        })
        const fiber = yield* Effect.fork(use((chat) => Effect.zip(read(chat, request), healthOf(chat, A))))
        yield* TestClock.adjust(4999)
        expect(transport.asked()).toEqual([post(A)])
        expect(transport.exchanges[0]!.aborted).toBe(false)
        yield* TestClock.adjust(1)
        const [got, a] = yield* Fiber.join(fiber)
        expect(texts(got)).toEqual(helloFrom(B))
        expect(transport.asked()).toEqual([post(A), post(B)])
        expect(transport.exchanges[0]!.aborted).toBe(true)
        expect(a).toMatchObject({ failures: 1, lastError: "Timeout" })
        const [error] = yield* onlyAttempt({ wait: "forever" }, failing(read), { timeouts: { headers: 5000 } }, [5000])
        expect(error).toMatchObject({ _tag: "Timeout", phase: "headers", millis: 5000, server: A })
      })
    )

    it.effect("on a first-token timeout: the silent body is cancelled when its limit passes, not before", () =>
      Effect.gen(function* () {
        // Headers at once, then a usage chunk and a role chunk at 1 s, which are no first token.
        const silent = Scripted.sse([{ data: usageOnly + roleOnly, delay: 1000 }], { ending: "stall" })
        const { transport, use } = client(pool([A, B], { timeouts: { firstToken: 5000 } }), {
          [A]: [silent],
          [B]: [hello]
        })
        const fiber = yield* Effect.fork(use((chat) => read(chat, request)))
        yield* TestClock.adjust(1000)
        yield* TestClock.adjust(3999)
        expect(transport.asked()).toEqual([post(A)])
        expect(transport.exchanges[0]!.cancelled).toBe(false)
        yield* TestClock.adjust(1)
        const got = yield* Fiber.join(fiber)
        expect(got.error).toBeUndefined()
        // Nothing of A's reached the caller: not its usage either.
        expect(texts(got)).toEqual(helloFrom(B))
        expect(got.deltas.some((d) => d.usage !== undefined)).toBe(false)
        expect(transport.exchanges[0]).toMatchObject({ read: 1, cancelled: true })
        const [error] = yield* onlyAttempt(silent, failing(read), { timeouts: { firstToken: 5000 } }, [1000, 4000])
        expect(error).toMatchObject({ _tag: "Timeout", phase: "firstToken", millis: 5000, server: A })
      })
    )

    it.effect("a first-token timeout counts the headers' wait too", () =>
      Effect.gen(function* () {
        const { transport, use } = client(pool([A], { maxAttempts: 1, timeouts: { firstToken: 5000 } }), {
          [A]: [Scripted.sse([{ data: chunk("late"), delay: 2500 }], { wait: 3000 })]
        })
        const fiber = yield* Effect.fork(use((chat) => read(chat, request)))
        yield* TestClock.adjust(3000)
        yield* TestClock.adjust(2000)
        const got = yield* Fiber.join(fiber)
        expect(got.deltas).toEqual([])
        expect(got.error).toMatchObject({
          _tag: "AllServersFailed",
          attempts: [{ server: A, error: { _tag: "Timeout", phase: "firstToken", millis: 5000 } }]
        })
        expect(transport.exchanges[0]!.cancelled).toBe(true)
      })
    )

    it.effect("usage-only and empty deltas of a failed attempt leave nothing with the caller", () =>
      Effect.gen(function* () {
        const { transport, use } = client(pool([A, B]), {
          [A]: [Scripted.sse([usageOnly, roleOnly], { ending: "cut" })],
          [B]: [hello]
        })
        // With `everyChunk`, A's role chunk is a delta too: held back, then dropped with its attempt.
        const got = yield* use((chat) => read(chat, request, { everyChunk: true }))
        expect(got.error).toBeUndefined()
        expect(got.deltas.every((d) => d.server === B)).toBe(true)
        expect(got.deltas.map((d) => d.content).join("")).toBe("Hello world")
        expect(transport.exchanges[0]!.read).toBe(2)
      })
    )
  })

  describe("never fails over after its first delta", () => {
    it.effect("a cut ends the call with StreamInterrupted, the deltas before it delivered", () =>
      Effect.gen(function* () {
        const { transport, use } = client(pool([A, B]), {
          [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
          [B]: [hello]
        })
        const got = yield* use((chat) => read(chat, request))
        expect(texts(got)).toEqual([
          ["Hel", A],
          ["lo", A]
        ])
        expect(got.error).toMatchObject({ _tag: "StreamInterrupted", server: A, deltas: 2, characters: 5 })
        expect(transport.asked()).toEqual([post(A)])
      })
    )

    it.effect("an error event after a delta ends the call with it", () =>
      Effect.gen(function* () {
        const { transport, use } = client(pool([A, B]), {
          [A]: [
            Scripted.sse([chunk("partial"), 'event: error\ndata: {"message":"quota exceeded"}\n\n'], {
              ending: "stall"
            })
          ],
          [B]: [hello]
        })
        const got = yield* use((chat) => read(chat, request))
        expect(texts(got)).toEqual([["partial", A]])
        expect(got.error).toMatchObject({ _tag: "UpstreamError", server: A, detail: "quota exceeded" })
        expect(transport.asked()).toEqual([post(A)])
        expect(transport.exchanges[0]!.cancelled).toBe(true)
      })
    )

    it.effect("an idle timeout ends the call when the gap passes its limit, not before; the body is cancelled", () =>
      Effect.gen(function* () {
        const { transport, use } = client(pool([A, B], { timeouts: { idle: 3000 } }), {
          [A]: [Scripted.sse([chunk("Hel"), { data: chunk("lo"), delay: 2000 }], { ending: "stall" })],
          [B]: [hello]
        })
        const fiber = yield* Effect.fork(use((chat) => read(chat, request)))
        // Each delta restarts the idle limit: 2 s, then 2.999 s, are no gap too long.
        yield* TestClock.adjust(2000)
        yield* TestClock.adjust(2999)
        expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
        expect(transport.exchanges[0]!.cancelled).toBe(false)
        yield* TestClock.adjust(1)
        const got = yield* Fiber.join(fiber)
        expect(texts(got)).toEqual([
          ["Hel", A],
          ["lo", A]
        ])
        expect(got.error).toMatchObject({ _tag: "Timeout", phase: "idle", millis: 3000, server: A })
        expect(transport.asked()).toEqual([post(A)])
        expect(transport.exchanges[0]).toMatchObject({ read: 2, cancelled: true })
      })
    )
  })

  it.effect("a request fault (400, 422) ends the call at once: no other server is asked, nothing is counted", () =>
    Effect.gen(function* () {
      for (const status of [400, 422]) {
        const { transport, use } = client(pool([A, B]), { [A]: [jsonError(status, "bad model")], [B]: [hello] })
        const [got, a] = yield* use((chat) => Effect.zip(read(chat, request), healthOf(chat, A)))
        expect(got.deltas).toEqual([])
        expect(got.error).toMatchObject({ _tag: "HttpStatusError", status, body: "bad model", server: A })
        expect(transport.asked()).toEqual([post(A)])
        expect(a).toMatchObject({ state: "closed", failures: 0 })
      }
    })
  )

  it.effect("maxAttempts bounds the attempts; AllServersFailed lists each (server, error) in order", () =>
    Effect.gen(function* () {
      const script = { [A]: [Scripted.status(503)], [B]: [htmlPage], [C]: [Scripted.refused] }
      const two = client(pool([A, B, C], { maxAttempts: 2 }), script)
      const bounded = yield* two.use((chat) => read(chat, request))
      expect(triedOf(bounded.error)).toEqual([
        [A, "HttpStatusError"],
        [B, "UnexpectedContentType"]
      ])
      expect(two.transport.asked()).toEqual([post(A), post(B)])

      const all = client(pool([A, B, C]), script)
      const failed = yield* all.use((chat) => read(chat, request))
      expect(failed.error).toMatchObject({
        _tag: "AllServersFailed",
        attempts: [
          { server: A, error: { _tag: "HttpStatusError", status: 503, server: A } },
          { server: B, error: { _tag: "UnexpectedContentType", contentType: "text/html", server: B } },
          { server: C, error: { _tag: "TransportError", server: C } }
        ]
      })
      expect(failed.error?.message).toContain(`3. ${C}: TransportError: Cannot reach ${C}`)
      expect(all.transport.asked()).toEqual([post(A), post(B), post(C)])
    })
  )

  it.effect("the call's total time ends it with Timeout(total), naming the last server tried", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B, C], { timeouts: { headers: 6000, total: 10_000 } }), {
        [A]: [{ wait: "forever" }],
        [B]: [{ wait: "forever" }],
        [C]: [hello]
      })
      const fiber = yield* Effect.fork(use((chat) => read(chat, request)))
      yield* TestClock.adjust(6000)
      expect(transport.asked()).toEqual([post(A), post(B)])
      yield* TestClock.adjust(3999)
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust(1)
      const got = yield* Fiber.join(fiber)
      expect(got.error).toMatchObject({ _tag: "Timeout", phase: "total", millis: 10_000, server: B })
      expect(transport.asked()).toEqual([post(A), post(B)])
      expect(transport.exchanges.map((e) => e.aborted)).toEqual([true, true])
    })
  )

  it.effect("the call's total time bounds a stream that keeps sending", () =>
    Effect.gen(function* () {
      const every2s = (text: string) => ({ data: chunk(text), delay: 2000 })
      const { transport, use } = client(pool([A], { timeouts: { idle: 3000, total: 5000 } }), {
        [A]: [Scripted.sse([chunk("a"), every2s("b"), every2s("c"), every2s("d"), finish(), DONE])]
      })
      const fiber = yield* Effect.fork(use((chat) => read(chat, request)))
      yield* TestClock.adjust(2000)
      yield* TestClock.adjust(2000)
      yield* TestClock.adjust(1000)
      const got = yield* Fiber.join(fiber)
      expect(got.deltas.map((d) => d.content)).toEqual(["a", "b", "c"])
      expect(got.error).toMatchObject({ _tag: "Timeout", phase: "total", millis: 5000, server: A })
      expect(transport.exchanges[0]!.cancelled).toBe(true)
    })
  )

  it.effect("each attempt has its own first-token limit, counted from its own start", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B], { timeouts: { headers: 5000, firstToken: 8000 } }), {
        [A]: [{ wait: "forever" }],
        [B]: [Scripted.sse([], { ending: "stall" })]
      })
      const fiber = yield* Effect.fork(use((chat) => read(chat, request)))
      yield* TestClock.adjust(5000)
      expect(transport.asked()).toEqual([post(A), post(B)])
      // B began at 5 s: its first token is due at 13 s, not at the call's 8 s.
      yield* TestClock.adjust(7999)
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust(1)
      const got = yield* Fiber.join(fiber)
      expect(got.error).toMatchObject({
        _tag: "AllServersFailed",
        attempts: [
          { server: A, error: { _tag: "Timeout", phase: "headers", millis: 5000 } },
          { server: B, error: { _tag: "Timeout", phase: "firstToken", millis: 8000 } }
        ]
      })
      expect(transport.exchanges.map((e) => [e.aborted, e.cancelled])).toEqual([
        [true, false],
        [false, true]
      ])
    })
  )

  it.effect("a maxAttempts above the pool's size ends when every server was tried once", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B], { maxAttempts: 5 }), {
        [A]: [Scripted.status(500)],
        [B]: [Scripted.status(500)]
      })
      const got = yield* use((chat) => read(chat, request))
      expect(triedOf(got.error)).toEqual([
        [A, "HttpStatusError"],
        [B, "HttpStatusError"]
      ])
      expect(transport.asked()).toEqual([post(A), post(B)])
    })
  )

  it.effect("a pinned call (activeServer) never fails over", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B]), { [A]: [hello], [B]: [Scripted.status(503)] })
      const got = yield* use((chat) => read(chat, { messages, activeServer: 1 }))
      expect(triedOf(got.error)).toEqual([[B, "HttpStatusError"]])
      expect(transport.asked()).toEqual([post(B)])

      const pinned = client(pool([A, B], { activeServer: B }), { [A]: [hello], [B]: [Scripted.refused] })
      const byOption = yield* pinned.use((chat) => read(chat, request))
      expect(triedOf(byOption.error)).toEqual([[B, "TransportError"]])
      expect(pinned.transport.asked()).toEqual([post(B)])
    })
  )
})

describe("a caller that stops early", () => {
  const stops: ReadonlyArray<
    readonly [string, (chat: EasyChat.Service) => Effect.Effect<ReadonlyArray<ChatDelta>, EasyChatError>]
  > = [
    [
      "stream",
      (chat: EasyChat.Service) =>
        Effect.map(Stream.runCollect(Stream.take(chat.stream(request), 1)), Chunk.toReadonlyArray)
    ],
    [
      "call",
      (chat: EasyChat.Service) =>
        Effect.map(
          Effect.scoped(Effect.flatMap(chat.call(request), (call) => Effect.orDie(call.pull))),
          Chunk.toReadonlyArray
        )
    ]
  ]
  for (const [face, stop] of stops) {
    it.effect(`ends the attempt (${face}): its body is cancelled, nothing is counted for or against the server`, () =>
      Effect.gen(function* () {
        const { transport, use } = client(pool([A, B]), {
          [A]: [Scripted.sse([chunk("Hello")], { ending: "stall" })],
          [B]: [hello]
        })
        const [first, a] = yield* use((chat) => Effect.zip(stop(chat), healthOf(chat, A)))
        expect(first.map((d) => [d.content, d.server])).toEqual([["Hello", A]])
        expect(transport.asked()).toEqual([post(A)])
        expect(transport.exchanges[0]!.cancelled).toBe(true)
        expect(a).toMatchObject({ state: "closed", failures: 0, lastError: undefined, lastLatencyMs: undefined })
      })
    )
  }
})

describe("a ChatCall read between pulls", () => {
  it.effect("start fails over to an open attempt; once a pull has armed the idle limit, wait wakes the caller", () =>
    Effect.gen(function* () {
      const second = yield* Deferred.make<void>()
      const third = yield* Deferred.make<void>()
      const { transport, use } = client(pool([A, B]), {
        [A]: [Scripted.status(503)],
        [B]: [
          Scripted.sse([
            chunk("Hel"),
            { data: chunk("lo"), when: Deferred.await(second) },
            { data: finish() + DONE, when: Deferred.await(third) }
          ])
        ]
      })
      const contents = (batch: Chunk.Chunk<ChatDelta>) => Chunk.toReadonlyArray(batch).map((d) => d.content)
      yield* use((chat) =>
        Effect.scoped(
          Effect.gen(function* () {
            const call = yield* chat.call(request)
            expect(contents(yield* call.start)).toEqual([])
            expect(transport.asked()).toEqual([post(A), post(B)])
            expect(contents(yield* call.pull)).toEqual(["Hel"])
            yield* Deferred.succeed(second, undefined)
            expect(contents(yield* call.pull)).toEqual(["lo"])
            expect(call.poll()).toBeUndefined()
            // No Effect between reads: a callback, then `poll`.
            const woken = yield* Deferred.make<void>()
            expect(call.wait(() => Deferred.unsafeDone(woken, Exit.void))).toBe(true)
            yield* Deferred.succeed(third, undefined)
            yield* Deferred.await(woken)
            expect(contents(call.poll()!)).toEqual([""])
            expect(Option.getOrUndefined(yield* Effect.flip(call.pull))).toBeUndefined()
          })
        )
      )
      expect(transport.exchanges[1]).toMatchObject({ read: 3, cancelled: false })
    })
  )
})

describe("a whole call (complete)", () => {
  const failures: ReadonlyArray<readonly [string, Scripted.Reply | typeof Scripted.refused, Record<string, unknown>]> =
    [
      ["a 5xx", Scripted.status(502, "bad gateway"), { _tag: "HttpStatusError", status: 502, body: "bad gateway" }],
      ["a 429", jsonError(429, "slow down"), { _tag: "HttpStatusError", status: 429, body: "slow down" }],
      [
        "a page instead of JSON",
        htmlPage,
        { _tag: "UnexpectedContentType", contentType: "text/html", expected: "application/json" }
      ],
      [
        "a JSON error body",
        Scripted.json({ error: { message: "model overloaded", code: "overloaded" } }),
        { _tag: "UpstreamError", detail: "model overloaded", code: "overloaded" }
      ],
      ["a reply without choices", Scripted.json({ id: "x", object: "chat.completion" }), { _tag: "NoResponse" }],
      [
        "a malformed body",
        { headers: { "content-type": "application/json" }, body: ["{not json"] },
        { _tag: "DecodeError", reason: "InvalidJson" }
      ],
      ["a refused connection", Scripted.refused, { _tag: "TransportError" }],
      [
        "a cut JSON body",
        { headers: { "content-type": "application/json" }, body: ['{"id":'], ending: "cut" },
        { _tag: "TransportError" }
      ],
      ["an event stream cut before any delta", Scripted.sse([roleOnly], { ending: "cut" }), { _tag: "TransportError" }]
    ]
  for (const [name, reply, error] of failures) {
    it.effect(`fails over on ${name}`, () =>
      Effect.gen(function* () {
        const { transport, use } = client(pool([A, B]), { [A]: [reply], [B]: [whole] })
        const [answer, a] = yield* use((chat) => Effect.zip(chat.complete(request), healthOf(chat, A)))
        expect(answer).toMatchObject({ content: "Hello world", server: B })
        expect(transport.asked()).toEqual([post(A), post(B)])
        expect(a).toMatchObject({ failures: 1, lastError: error._tag })
        expect(yield* onlyAttempt(reply, complete)).toMatchObject([{ server: A, ...error }])
      })
    )
  }

  it.effect(
    "takes a reply streamed anyway; one cut after its first delta fails over, as nothing reached the caller",
    () =>
      Effect.gen(function* () {
        const { transport, use } = client(pool([A, B]), { [A]: [Scripted.status(503)], [B]: [hello] })
        const reply = yield* use((chat) => chat.complete(request))
        expect(reply).toMatchObject({ content: "Hello world", server: B })
        expect(transport.asked()).toEqual([post(A), post(B)])

        const cut = client(pool([A, B], { maxAttempts: 1 }), { [A]: [Scripted.sse([chunk("Hel")], { ending: "cut" })] })
        const error = yield* cut.use((chat) => Effect.flip(chat.complete(request)))
        expect(error).toMatchObject({
          _tag: "AllServersFailed",
          attempts: [{ server: A, error: { _tag: "StreamInterrupted", server: A, deltas: 1, characters: 3 } }]
        })
        const again = client(pool([A, B]), { [A]: [Scripted.sse([chunk("Hel")], { ending: "cut" })], [B]: [whole] })
        expect(yield* again.use((chat) => chat.complete(request))).toMatchObject({ content: "Hello world", server: B })
        expect(again.transport.asked()).toEqual([post(A), post(B)])
      })
  )

  it.effect("fails over on a headers timeout, the request aborted", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B], { timeouts: { headers: 5000 } }), {
        [A]: [{ wait: "forever" }],
        [B]: [whole]
      })
      const fiber = yield* Effect.fork(use((chat) => chat.complete(request)))
      yield* TestClock.adjust(4999)
      expect(transport.asked()).toEqual([post(A)])
      yield* TestClock.adjust(1)
      expect(yield* Fiber.join(fiber)).toMatchObject({ content: "Hello world", server: B })
      expect(transport.exchanges[0]!.aborted).toBe(true)
      const [error] = yield* onlyAttempt({ wait: "forever" }, complete, { timeouts: { headers: 5000 } }, [5000])
      expect(error).toMatchObject({ _tag: "Timeout", phase: "headers", millis: 5000, server: A })
    })
  )

  it.effect("fails over on a first-token timeout, the silent body cancelled", () =>
    Effect.gen(function* () {
      const silent: Scripted.Reply = {
        headers: { "content-type": "application/json" },
        body: ['{"id":'],
        ending: "stall"
      }
      const { transport, use } = client(pool([A, B], { timeouts: { firstToken: 5000 } }), {
        [A]: [silent],
        [B]: [whole]
      })
      const fiber = yield* Effect.fork(use((chat) => chat.complete(request)))
      yield* TestClock.adjust(4999)
      expect(transport.asked()).toEqual([post(A)])
      expect(transport.exchanges[0]!.cancelled).toBe(false)
      yield* TestClock.adjust(1)
      expect(yield* Fiber.join(fiber)).toMatchObject({ content: "Hello world", server: B })
      expect(transport.exchanges[0]).toMatchObject({ read: 1, cancelled: true })
      const [error] = yield* onlyAttempt(silent, complete, { timeouts: { firstToken: 5000 } }, [5000])
      expect(error).toMatchObject({ _tag: "Timeout", phase: "firstToken", millis: 5000, server: A })
    })
  )

  it.effect("a request fault (400, 422) ends the call at once", () =>
    Effect.gen(function* () {
      for (const status of [400, 422]) {
        const { transport, use } = client(pool([A, B]), { [A]: [jsonError(status, "bad model")], [B]: [whole] })
        const error = yield* use((chat) => Effect.flip(chat.complete(request)))
        expect(error).toMatchObject({ _tag: "HttpStatusError", status, body: "bad model", server: A })
        expect(transport.asked()).toEqual([post(A)])
      }
    })
  )

  it.effect("maxAttempts bounds the attempts, listed in order", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B, C], { maxAttempts: 2 }), {
        [A]: [Scripted.status(500)],
        [B]: [Scripted.json({ id: "x" })],
        [C]: [whole]
      })
      const error = yield* use((chat) => Effect.flip(chat.complete(request)))
      expect(triedOf(error)).toEqual([
        [A, "HttpStatusError"],
        [B, "NoResponse"]
      ])
      expect(transport.asked()).toEqual([post(A), post(B)])
    })
  )

  it.effect("the call's total time ends it with Timeout(total), naming the last server tried", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B, C], { timeouts: { headers: 6000, total: 10_000 } }), {
        [A]: [{ wait: "forever" }],
        [B]: [{ wait: "forever" }],
        [C]: [whole]
      })
      const fiber = yield* Effect.fork(use((chat) => Effect.flip(chat.complete(request))))
      yield* TestClock.adjust(6000)
      expect(transport.asked()).toEqual([post(A), post(B)])
      yield* TestClock.adjust(3999)
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust(1)
      expect(yield* Fiber.join(fiber)).toMatchObject({ _tag: "Timeout", phase: "total", millis: 10_000, server: B })
      expect(transport.asked()).toEqual([post(A), post(B)])
      expect(transport.exchanges.map((e) => e.aborted)).toEqual([true, true])
    })
  )

  it.effect("a pinned call never fails over", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B]), { [A]: [Scripted.status(503)], [B]: [whole] })
      const error = yield* use((chat) => Effect.flip(chat.complete({ messages, activeServer: A })))
      expect(triedOf(error)).toEqual([[A, "HttpStatusError"]])
      expect(transport.asked()).toEqual([post(A)])
    })
  )
})

describe("circuits", () => {
  it.effect(
    "a server that failed breaker.failures times is skipped by the next call, and probed after the cooldown",
    () =>
      Effect.gen(function* () {
        const { transport, use } = client(pool([A, B], { breaker: { failures: 2, cooldown: 30_000 } }), {
          [A]: [Scripted.status(503), Scripted.status(503), hello],
          [B]: [hello, hello, hello]
        })
        yield* use((chat) =>
          Effect.gen(function* () {
            for (let call = 1; call <= 2; call++) expect(texts(yield* viaStream(chat, request))).toEqual(helloFrom(B))
            expect(yield* healthOf(chat, A)).toMatchObject({ state: "open", failures: 2, lastError: "HttpStatusError" })
            expect(transport.asked()).toEqual([post(A), post(B), post(A), post(B)])
            // The third call goes straight to B, whose turn it is not.
            expect((yield* chat.complete(request)).server).toBe(B)
            expect(transport.asked().slice(4)).toEqual([post(B)])
            yield* TestClock.adjust(30_000)
            expect(yield* healthOf(chat, A)).toMatchObject({ state: "half-open" })
            expect(texts(yield* viaCall(chat, request))).toEqual(helloFrom(A))
            expect(yield* healthOf(chat, A)).toMatchObject({ state: "closed", failures: 0 })
            expect(transport.asked().slice(5)).toEqual([post(A)])
          })
        )
      })
  )

  it.effect("a 429's Retry-After opens the server's circuit for that long: the next calls skip it", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B]), {
        [A]: [
          Scripted.json({ error: { message: "slow down" } }, { status: 429, headers: { "retry-after": "7" } }),
          whole
        ],
        [B]: [whole, whole]
      })
      yield* use((chat) =>
        Effect.gen(function* () {
          expect((yield* chat.complete(request)).server).toBe(B)
          expect(yield* healthOf(chat, A)).toMatchObject({ state: "open", failures: 1 })
          expect((yield* chat.complete(request)).server).toBe(B)
          yield* TestClock.adjust(7000)
          expect((yield* chat.complete(request)).server).toBe(A)
        })
      )
      expect(transport.asked()).toEqual([post(A), post(B), post(B), post(A)])
    })
  )
})

describe("cookies", () => {
  it.effect("a 401 re-initialises the server's cookies once and sends the request again with the new ones", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B], { cookieInit: "best-effort" }), {
        [A]: [
          Scripted.page("session=one; Path=/"),
          jsonError(401, "session expired"),
          Scripted.page("session=two; Path=/"),
          hello
        ],
        [B]: []
      })
      const got = yield* use((chat) => viaStream(chat, request))
      expect(texts(got)).toEqual(helloFrom(A))
      expect(transport.asked()).toEqual([get(A), post(A), get(A), post(A)])
      expect(transport.exchanges.map((e) => e.headers.cookie)).toEqual([
        undefined,
        "session=one",
        undefined,
        "session=two"
      ])
    })
  )

  it.effect("best-effort: a failed cookie page is ignored, a refused one fails over", () =>
    Effect.gen(function* () {
      const ignored = client(pool([A], { cookieInit: "best-effort" }), { [A]: [Scripted.status(500), whole] })
      expect(yield* ignored.use((chat) => chat.complete(request))).toMatchObject({ server: A })
      expect(ignored.transport.asked()).toEqual([get(A), post(A)])

      const { transport, use } = client(pool([A, B], { cookieInit: "best-effort" }), {
        [A]: [Scripted.refused],
        [B]: [Scripted.page(), whole]
      })
      expect(yield* use((chat) => chat.complete(request))).toMatchObject({ server: B })
      expect(transport.asked()).toEqual([get(A), get(B), post(B)])
    })
  )

  it.effect("required: a failed cookie page fails over", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B], { cookieInit: "required" }), {
        [A]: [Scripted.status(503)],
        [B]: [Scripted.page(), whole]
      })
      const [reply, a] = yield* use((chat) => Effect.zip(chat.complete(request), healthOf(chat, A)))
      expect(reply).toMatchObject({ server: B })
      expect(a).toMatchObject({ failures: 1, lastError: "HttpStatusError" })
      expect(transport.asked()).toEqual([get(A), get(B), post(B)])
    })
  )

  it.effect("a second 401 fails over to the next server, which gets its own cookie page", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B], { cookieInit: "best-effort" }), {
        [A]: [Scripted.page(), Scripted.status(401), Scripted.page(), Scripted.status(401)],
        [B]: [Scripted.page("session=b; Path=/"), whole]
      })
      const reply = yield* use((chat) => chat.complete(request))
      expect(reply).toMatchObject({ content: "Hello world", server: B })
      expect(transport.asked()).toEqual([get(A), post(A), get(A), post(A), get(B), post(B)])
      expect(transport.exchanges[5]!.headers.cookie).toBe("session=b")
    })
  )
})
