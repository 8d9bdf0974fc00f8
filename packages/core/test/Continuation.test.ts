// Continuation after a cut (`continueAfterCut`, `internal/continuation.ts` on
// the driver) on the scripted in-memory transport and the TestClock: what is
// resent, what the caller sees, and when a cut reply is not continued.
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as Tracer from "effect/Tracer"
import type { ChatDelta, ChatRequestInput } from "../src/Chat.js"
import {
  type AttemptError,
  DecodeError,
  HttpStatusError,
  StreamInterrupted,
  Timeout,
  TransportError,
  UpstreamError
} from "../src/Errors.js"
import { Chat, Client, EasyChat, type EasyChatError, type Presets } from "../src/index.js"
import { continuePrompt } from "../src/internal/continuation.js"
import { type Verdict, verdictOf } from "../src/internal/policy.js"
import { chunk, DONE, finish } from "./fixtures.js"
import * as Scripted from "./scripted.js"

const A = "http://a.test"
const B = "http://b.test"
const C = "http://c.test"
const CHAT = "/api/openai/v1/chat/completions"
const question = { role: "user" as const, content: "Hello" }
const request = { messages: [question] }
const post = (server: string) => `POST ${server} ${CHAT}`

const reasoning = (text: string) =>
  chunk(null, { choices: [{ index: 0, delta: { reasoning_content: text }, finish_reason: null }] })
const toolCall = chunk(null, {
  choices: [
    {
      index: 0,
      delta: { tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "f", arguments: "" } }] },
      finish_reason: null
    }
  ]
})
/** The rest of the reply, from another server. */
const rest = Scripted.sse([chunk(" world"), chunk("!"), finish(), DONE])

const pool = (servers: ReadonlyArray<string>, options: Presets.Options = {}): Presets.Options => ({
  servers,
  strategy: "round-robin",
  cookieInit: "off",
  continueAfterCut: true,
  ...options
})

const client = (options: Presets.Options, script: Scripted.Script) => {
  const transport = Scripted.make(script)
  const layer = EasyChat.layer(options).pipe(Layer.provide(transport.layer), Layer.orDie)
  return {
    transport,
    /** The JSON body of the `n`th request. */
    body: (n: number) => JSON.parse(transport.exchanges[n]!.body) as { messages: ReadonlyArray<unknown> },
    use: <X, E>(f: (chat: EasyChat.Service) => Effect.Effect<X, E>) =>
      Effect.zipLeft(Effect.provide(Effect.flatMap(EasyChat.EasyChat, f), layer), Scripted.settled)
  }
}

interface Got {
  readonly deltas: ReadonlyArray<ChatDelta>
  readonly error: EasyChatError | undefined
}
type Read = (chat: EasyChat.Service, request: ChatRequestInput) => Effect.Effect<Got>
const viaStream: Read = (chat, request) =>
  Effect.gen(function* () {
    const deltas: Array<ChatDelta> = []
    const end = yield* Effect.either(Stream.runForEach(chat.stream(request), (d) => Effect.sync(() => deltas.push(d))))
    return { deltas, error: Either.isLeft(end) ? end.left : undefined }
  })
const viaCall: Read = (chat, request) =>
  Effect.scoped(
    Effect.gen(function* () {
      const call = yield* chat.call(request)
      const deltas: Array<ChatDelta> = []
      while (true) {
        const step = yield* Effect.either(call.pull)
        if (Either.isLeft(step)) return { deltas, error: Option.getOrUndefined(step.left) }
        deltas.push(...step.right)
      }
    })
  )
const text = (got: Got) => got.deltas.map((d) => d.content).join("")
const marked = (got: Got) => got.deltas.flatMap((d, i) => (d.continuedFrom === undefined ? [] : [[i, d.continuedFrom]]))

describe.each([
  ["stream", viaStream],
  ["call", viaCall]
] as const)("a cut stream continued (%s)", (_, read) => {
  it.effect(
    "resends the request with the text so far as the last assistant message and the prompt, not the reasoning",
    () =>
      Effect.gen(function* () {
        const { transport, body, use } = client(pool([A, B]), {
          [A]: [Scripted.sse([reasoning("Let me think."), chunk("Hel"), chunk("lo")], { ending: "cut" })],
          [B]: [rest]
        })
        const got = yield* use((chat) => read(chat, request))
        expect(got.error).toBeUndefined()
        expect(transport.asked()).toEqual([post(A), post(B)])
        expect(body(0).messages).toEqual([question])
        expect(body(1)).toMatchObject({
          stream: true,
          messages: [question, { role: "assistant", content: "Hello" }, { role: "user", content: continuePrompt }]
        })
        expect(transport.exchanges[1]!.body).not.toContain("Let me think.")
        // One stream: the prefix, then the continuation; its first delta says where it began.
        expect(got.deltas.map((d) => [d.content, d.server])).toEqual([
          ["", A],
          ["Hel", A],
          ["lo", A],
          [" world", B],
          ["!", B],
          ["", B]
        ])
        expect(got.deltas[0]!.reasoning).toBe("Let me think.")
        expect(marked(got)).toEqual([[3, { server: A, deltas: 3, characters: 5 }]])
        expect(Chat.accumulate(got.deltas)).toMatchObject({ content: "Hello world!", finishReason: "stop" })
      })
  )

  const cuts: ReadonlyArray<readonly [string, Scripted.Reply, ReadonlyArray<number>]> = [
    ["a lost connection", Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" }), []],
    ["an end without [DONE] or finish reason", Scripted.sse([chunk("Hel"), chunk("lo")]), []],
    ["an idle timeout", Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "stall" }), [3000]],
    [
      "an error event",
      Scripted.sse([chunk("Hel"), chunk("lo"), 'event: error\ndata: {"message":"quota exceeded"}\n\n'], {
        ending: "stall"
      }),
      []
    ],
    [
      "an error chunk",
      Scripted.sse([chunk("Hel"), chunk("lo"), `data: ${JSON.stringify({ error: { message: "overloaded" } })}\n\n`]),
      []
    ],
    ["a malformed chunk", Scripted.sse([chunk("Hel"), chunk("lo"), "data: {not json\n\n"]), []]
  ]
  for (const [name, reply, steps] of cuts) {
    it.effect(`continues after ${name}`, () =>
      Effect.gen(function* () {
        const { transport, body, use } = client(pool([A, B], { timeouts: { idle: 3000 } }), {
          [A]: [reply],
          [B]: [rest]
        })
        const fiber = yield* Effect.fork(use((chat) => read(chat, request)))
        for (const step of steps) yield* TestClock.adjust(step)
        const got = yield* Fiber.join(fiber)
        expect(got.error).toBeUndefined()
        expect(text(got)).toBe("Hello world!")
        expect(marked(got)).toEqual([[2, { server: A, deltas: 2, characters: 5 }]])
        expect(body(1).messages.at(-2)).toEqual({ role: "assistant", content: "Hello" })
        expect(transport.asked()).toEqual([post(A), post(B)])
      })
    )
  }

  it.effect("is refused once a tool call has begun: StreamInterrupted, as today", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B]), {
        [A]: [Scripted.sse([chunk("Let me look."), toolCall], { ending: "cut" })],
        [B]: [rest]
      })
      const got = yield* use((chat) => read(chat, request))
      expect(got.error).toMatchObject({ _tag: "StreamInterrupted", server: A, deltas: 2, characters: 12 })
      expect(transport.asked()).toEqual([post(A)])
    })
  )

  it.effect("is refused for several choices (n > 1) and after a finish reason", () =>
    Effect.gen(function* () {
      const several = client(pool([A, B]), { [A]: [Scripted.sse([chunk("Hel")], { ending: "cut" })], [B]: [rest] })
      const n2 = yield* several.use((chat) => read(chat, { ...request, n: 2 }))
      expect(n2.error).toMatchObject({ _tag: "StreamInterrupted", server: A })
      expect(several.transport.asked()).toEqual([post(A)])

      const finished = client(pool([A, B]), {
        [A]: [Scripted.sse([chunk("Hello"), finish()], { ending: "cut" })],
        [B]: [rest]
      })
      const done = yield* finished.use((chat) => read(chat, request))
      expect(done.error).toMatchObject({ _tag: "StreamInterrupted", server: A, deltas: 2 })
      expect(finished.transport.asked()).toEqual([post(A)])
    })
  )

  it.effect("off (the default): the call ends with StreamInterrupted as today", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B], { continueAfterCut: false }), {
        [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
        [B]: [rest]
      })
      const got = yield* use((chat) => read(chat, request))
      expect(got.deltas.map((d) => d.content)).toEqual(["Hel", "lo"])
      expect(got.error).toMatchObject({ _tag: "StreamInterrupted", server: A, deltas: 2, characters: 5 })
      expect(transport.asked()).toEqual([post(A)])
    })
  )

  it.effect("a continuation that fails before its first delta fails over; with none left, the cut stands", () =>
    Effect.gen(function* () {
      const three = client(pool([A, B, C]), {
        [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
        [B]: [Scripted.status(503)],
        [C]: [rest]
      })
      const got = yield* three.use((chat) => read(chat, request))
      expect(text(got)).toBe("Hello world!")
      expect(three.transport.asked()).toEqual([post(A), post(B), post(C)])
      expect(three.body(2).messages.at(-2)).toEqual({ role: "assistant", content: "Hello" })
      expect(marked(got)).toEqual([[2, { server: A, deltas: 2, characters: 5 }]])

      const two = client(pool([A, B]), {
        [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
        [B]: [Scripted.status(503)]
      })
      const cut = yield* two.use((chat) => read(chat, request))
      expect(cut.deltas.map((d) => d.content)).toEqual(["Hel", "lo"])
      expect(cut.error).toMatchObject({ _tag: "StreamInterrupted", server: A, deltas: 2, characters: 5 })

      // A server that refuses the continuation's request (400) does not change what the call ends with.
      const refused = client(pool([A, B]), {
        [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
        [B]: [Scripted.json({ error: { message: "assistant message last" } }, { status: 400 })]
      })
      expect((yield* refused.use((chat) => read(chat, request))).error).toMatchObject({
        _tag: "StreamInterrupted",
        server: A
      })
    })
  )

  it.effect("counts against maxAttempts", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B], { maxAttempts: 1 }), {
        [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
        [B]: [rest]
      })
      const got = yield* use((chat) => read(chat, request))
      expect(got.error).toMatchObject({ _tag: "StreamInterrupted", server: A, deltas: 2, characters: 5 })
      expect(transport.asked()).toEqual([post(A)])
    })
  )

  it.effect("a continuation cut in turn is continued from the whole text; the last cut counts the whole call", () =>
    Effect.gen(function* () {
      const chained = client(pool([A, B, C]), {
        [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
        [B]: [Scripted.sse([chunk(" wor")], { ending: "cut" })],
        [C]: [Scripted.sse([chunk("ld"), finish(), DONE])]
      })
      const got = yield* chained.use((chat) => read(chat, request))
      expect(text(got)).toBe("Hello world")
      expect(chained.body(2).messages.at(-2)).toEqual({ role: "assistant", content: "Hello wor" })
      expect(marked(got)).toEqual([
        [2, { server: A, deltas: 2, characters: 5 }],
        [3, { server: B, deltas: 3, characters: 9 }]
      ])

      const cutTwice = client(pool([A, B]), {
        [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
        [B]: [Scripted.sse([chunk(" wor")], { ending: "cut" })]
      })
      const ended = yield* cutTwice.use((chat) => read(chat, request))
      expect(ended.error).toMatchObject({ _tag: "StreamInterrupted", server: B, deltas: 3, characters: 9 })
    })
  )

  it.effect("a pinned call is not continued elsewhere", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B]), {
        [A]: [Scripted.sse([chunk("Hel")], { ending: "cut" })],
        [B]: [rest]
      })
      const got = yield* use((chat) => read(chat, { ...request, activeServer: A }))
      expect(got.error).toMatchObject({ _tag: "StreamInterrupted", server: A })
      expect(transport.asked()).toEqual([post(A)])
    })
  )

  it.effect("a continuation has its own first-token limit, counted from its start", () =>
    Effect.gen(function* () {
      const { use } = client(pool([A, B], { timeouts: { firstToken: 5000, idle: 1000 } }), {
        [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
        [B]: [Scripted.sse([{ data: chunk(" world"), delay: 4000 }, finish(), DONE])]
      })
      const fiber = yield* Effect.fork(use((chat) => read(chat, request)))
      yield* TestClock.adjust(4000)
      const got = yield* Fiber.join(fiber)
      expect(got.error).toBeUndefined()
      expect(text(got)).toBe("Hello world")
    })
  )
})

describe("a continued call with hedging", () => {
  it.effect("the continuation is hedged as a first request is", () =>
    Effect.gen(function* () {
      const { transport, body, use } = client(pool([A, B, C], { hedge: { after: 1000 } }), {
        [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
        [B]: [Scripted.sse([{ data: chunk(" slow"), delay: 5000 }])],
        [C]: [rest]
      })
      const fiber = yield* Effect.fork(use((chat) => viaStream(chat, request)))
      yield* TestClock.adjust(1000)
      const got = yield* Fiber.join(fiber)
      expect(text(got)).toBe("Hello world!")
      expect(transport.asked()).toEqual([post(A), post(B), post(C)])
      expect(body(2).messages.at(-2)).toEqual({ role: "assistant", content: "Hello" })
      expect(transport.exchanges[1]).toMatchObject({ server: B, cancelled: true })
      expect(marked(got)).toEqual([[2, { server: A, deltas: 2, characters: 5 }]])
    })
  )
})

describe("the debug log of a continued call", () => {
  it.effect("says where the stream was cut and how much had been delivered", () =>
    Effect.gen(function* () {
      const logs: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
      const logger = Logger.make(({ message, annotations }) => {
        logs.push({ message, annotations: Object.fromEntries(annotations) })
      })
      const { use } = client(pool([A, B]), {
        [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
        [B]: [rest]
      })
      yield* use((chat) => viaStream(chat, request)).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Logger.withMinimumLogLevel(LogLevel.Debug)
      )
      // The fallback body reader's own fibers log their end too: only easychat's lines are read here.
      const own = logs.filter((l) => String(l.message).startsWith("easychat:"))
      expect(own.map((l) => [String(l.message), l.annotations])).toEqual([
        [
          "easychat: stream cut after its first delta, continuing it on another server",
          expect.objectContaining({ server: A, attempt: 1, error: "StreamInterrupted", deltas: 2, characters: 5 })
        ]
      ])
    })
  )
})

describe("the spans of a continued call", () => {
  it.effect(
    "the continuation's attempt is marked, with why its server was chosen; the call says what was continued",
    () =>
      Effect.gen(function* () {
        const spans: Array<Tracer.Span> = []
        const base = yield* Effect.tracer
        const recording = Tracer.make({
          span: (...args) => {
            const span = base.span(...args)
            spans.push(span)
            return span
          },
          context: base.context
        })
        const { use } = client(pool([A, B]), {
          [A]: [Scripted.sse([chunk("Hi"), finish(), DONE]), rest],
          [B]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })]
        })
        // The first call teaches the pool A's time to first delta; the second is cut on B and continued on A.
        yield* use((chat) => Effect.zipRight(viaStream(chat, request), viaStream(chat, request))).pipe(
          Effect.withTracer(recording)
        )
        const attrs = (span: Tracer.Span) => Object.fromEntries(span.attributes)
        const attempts = spans.filter((s) => s.name === "easychat.attempt").map(attrs)
        expect(attempts.slice(1)).toEqual([
          expect.objectContaining({
            "easychat.server": B,
            "easychat.attempt": 1,
            "easychat.outcome": "StreamInterrupted"
          }),
          expect.objectContaining({
            "easychat.server": A,
            "easychat.attempt": 2,
            "easychat.strategy": "round-robin",
            "easychat.estimate_ms": 0,
            "easychat.continuation": true,
            "easychat.outcome": "ok"
          })
        ])
        expect(attempts[1]).not.toHaveProperty("easychat.continuation")
        const calls = spans.filter((s) => s.name === "easychat.stream").map(attrs)
        expect(calls).toEqual([{}, { "easychat.continuation": `5 characters from ${B}` }])
      })
  )
})

describe("verdictOf with a continuable reply", () => {
  const server = A
  const errors: ReadonlyArray<readonly [AttemptError, Verdict, Verdict]> = [
    [new StreamInterrupted({ server, deltas: 2, characters: 5, detail: "cut" }), "failover", "continue"],
    [new Timeout({ server, phase: "idle", millis: 1000 }), "failover", "continue"],
    [new UpstreamError({ server, detail: "quota exceeded" }), "failover", "continue"],
    [new DecodeError({ server, reason: "InvalidJson", detail: "not JSON" }), "failover", "continue"],
    [new TransportError({ server, detail: "ECONNRESET" }), "failover", "continue"],
    [new Timeout({ server, phase: "total", millis: 1000 }), "fail", "fail"],
    [new HttpStatusError({ server, status: 400, statusText: "", body: "" }), "fail", "fail"]
  ]
  it("continues any cut after the first delta, but for the call's total time and the request's faults", () => {
    for (const [error, before, after] of errors) {
      expect([error._tag, verdictOf(error, 0, true), verdictOf(error, 3, true)]).toEqual([error._tag, before, after])
      // Not continuable (off, a tool call begun, several choices): as without the option.
      expect(verdictOf(error, 3, false)).toBe(after === "continue" ? "fail" : after)
      expect(verdictOf(error, 3)).toBe(verdictOf(error, 3, false))
    }
  })
})

describe("the Promise facade", () => {
  it.live("streams a continued reply as one", () =>
    Effect.promise(async () => {
      const transport = Scripted.make({
        [A]: [Scripted.sse([chunk("Hel"), chunk("lo")], { ending: "cut" })],
        [B]: [rest]
      })
      const chat = Client.make(pool([A, B]), transport.layer)
      try {
        const deltas: Array<ChatDelta> = []
        for await (const delta of chat.streamDeltas(request)) deltas.push(delta)
        expect(deltas.map((d) => d.content).join("")).toBe("Hello world!")
        expect(deltas.find((d) => d.continuedFrom !== undefined)?.continuedFrom).toEqual({
          server: A,
          deltas: 2,
          characters: 5
        })
      } finally {
        await chat.close()
      }
    })
  )
})
