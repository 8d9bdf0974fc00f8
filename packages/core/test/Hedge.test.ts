// Hedged first requests (`hedge` option, `internal/hedge.ts` on the driver) on
// the scripted in-memory transport and the TestClock: when a hedge starts, who
// wins, what becomes of the losers, and what the caller sees.
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
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
import type { ChatDelta } from "../src/Chat.js"
import { Client, EasyChat, type EasyChatError, type Presets, ServerPool } from "../src/index.js"
import { chunk, DONE, finish } from "./fixtures.js"
import * as Scripted from "./scripted.js"

const A = "http://a.test"
const B = "http://b.test"
const C = "http://c.test"
const CHAT = "/api/openai/v1/chat/completions"
const request = { messages: [{ role: "user" as const, content: "Hello" }] }
const post = (server: string) => `POST ${server} ${CHAT}`

const hello = Scripted.sse([chunk("Hello"), chunk(" world"), finish(), DONE])
/** A stream whose first delta comes after `ms`. */
const slow = (ms: number, text = "Slow") =>
  Scripted.sse([{ data: chunk(text), delay: ms }, chunk(" reply"), finish(), DONE])
const whole = (content: string, rest: Omit<Scripted.Reply, "body"> = {}) =>
  Scripted.json(
    {
      id: "chatcmpl-1",
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }]
    },
    rest
  )

const pool = (servers: ReadonlyArray<string>, options: Presets.Options = {}): Presets.Options => ({
  servers,
  strategy: "round-robin",
  cookieInit: "off",
  hedge: { after: 1000 },
  ...options
})

/** A client on a transport that answers from `script`; `quantile` stands in for the pool's measured one. */
const client = (options: Presets.Options, script: Scripted.Script, quantile?: (q: number) => number | undefined) => {
  const transport = Scripted.make(script)
  const pools = Layer.effect(
    ServerPool.ServerPool,
    Effect.map(ServerPool.make(options), (p) => (quantile === undefined ? p : { ...p, firstDeltaQuantile: quantile }))
  )
  const layer = Layer.effect(EasyChat.EasyChat, EasyChat.make(options)).pipe(
    Layer.provideMerge(pools),
    Layer.provide(transport.layer),
    Layer.orDie
  )
  return {
    transport,
    use: <X, E>(f: (chat: EasyChat.Service) => Effect.Effect<X, E>) =>
      Effect.zipLeft(Effect.provide(Effect.flatMap(EasyChat.EasyChat, f), layer), Scripted.settled)
  }
}

interface Got {
  readonly deltas: ReadonlyArray<ChatDelta>
  readonly error: EasyChatError | undefined
}
const read = (chat: EasyChat.Service): Effect.Effect<Got> =>
  Effect.gen(function* () {
    const deltas: Array<ChatDelta> = []
    const end = yield* Effect.either(Stream.runForEach(chat.stream(request), (d) => Effect.sync(() => deltas.push(d))))
    return { deltas, error: Either.isLeft(end) ? end.left : undefined }
  })
const texts = (got: Got) => got.deltas.map((d) => [d.content, d.server])
const helloFrom = (server: string) => [
  ["Hello", server],
  [" world", server],
  ["", server]
]
const triedOf = (error: EasyChatError | undefined) =>
  error?._tag === "AllServersFailed" ? error.attempts.map((a) => [a.server, a.error._tag]) : error

describe("a hedged stream", () => {
  it.effect("starts a hedge exactly at `after`, not before; the first to deliver wins, the slow one is cancelled", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B]), { [A]: [slow(5000)], [B]: [hello] })
      const fiber = yield* Effect.fork(use(read))
      yield* TestClock.adjust(999)
      expect(transport.asked()).toEqual([post(A)])
      yield* TestClock.adjust(1)
      expect(transport.asked()).toEqual([post(A), post(B)])
      const got = yield* Fiber.join(fiber)
      expect(got.error).toBeUndefined()
      expect(texts(got)).toEqual(helloFrom(B))
      // A's body was being read: it is cancelled, and none of its deltas reached the caller.
      expect(transport.exchanges[0]).toMatchObject({ cancelled: true, read: 0 })
      expect(got.deltas.some((d) => d.server === A)).toBe(false)
    })
  )

  it.effect("a loser still waiting for its headers has its request aborted", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B]), { [A]: [{ wait: "forever" }], [B]: [hello] })
      const fiber = yield* Effect.fork(use(read))
      yield* TestClock.adjust(1000)
      const got = yield* Fiber.join(fiber)
      expect(texts(got)).toEqual(helloFrom(B))
      expect(transport.exchanges.map((e) => [e.server, e.aborted])).toEqual([
        [A, true],
        [B, false]
      ])
    })
  )

  it.effect(
    "the first attempt wins when it delivers before the hedge: the hedge is cancelled, nothing of it is seen",
    () =>
      Effect.gen(function* () {
        const { transport, use } = client(pool([A, B]), { [A]: [slow(1500, "First")], [B]: [slow(3000, "Hedge")] })
        const fiber = yield* Effect.fork(use(read))
        yield* TestClock.adjust(1000)
        expect(transport.asked()).toEqual([post(A), post(B)])
        yield* TestClock.adjust(500)
        const got = yield* Fiber.join(fiber)
        expect(got.deltas.map((d) => [d.content, d.server])).toEqual([
          ["First", A],
          [" reply", A],
          ["", A]
        ])
        expect(transport.exchanges[1]).toMatchObject({ server: B, cancelled: true, read: 0 })
        expect(transport.exchanges[0]).toMatchObject({ cancelled: false })
      })
  )

  it.effect("a fast first attempt starts no hedge", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B]), { [A]: [slow(999, "Quick")], [B]: [hello] })
      const fiber = yield* Effect.fork(use(read))
      yield* TestClock.adjust(999)
      const got = yield* Fiber.join(fiber)
      expect(got.deltas.map((d) => d.content).join("")).toBe("Quick reply")
      yield* TestClock.adjust(10_000)
      expect(transport.asked()).toEqual([post(A)])
    })
  )

  it.effect("a failure before `after` fails over at once, and the hedge timer counts from the new attempt", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B, C]), {
        [A]: [Scripted.status(503)],
        [B]: [slow(5000)],
        [C]: [hello]
      })
      const fiber = yield* Effect.fork(use(read))
      yield* TestClock.adjust(0)
      expect(transport.asked()).toEqual([post(A), post(B)])
      yield* TestClock.adjust(999)
      expect(transport.asked()).toEqual([post(A), post(B)])
      yield* TestClock.adjust(1)
      const got = yield* Fiber.join(fiber)
      expect(texts(got)).toEqual(helloFrom(C))
      expect(transport.asked()).toEqual([post(A), post(B), post(C)])
    })
  )

  it.effect("max bounds the attempts running at once; a hedge counts against maxAttempts", () =>
    Effect.gen(function* () {
      const three = pool([A, B, C], { hedge: { after: 1000, max: 3 }, maxAttempts: 2, timeouts: { firstToken: 5000 } })
      const { transport, use } = client(three, {
        [A]: [Scripted.sse([], { ending: "stall" })],
        [B]: [Scripted.sse([], { ending: "stall" })],
        [C]: [hello]
      })
      const fiber = yield* Effect.fork(use(read))
      yield* TestClock.adjust(1000)
      yield* TestClock.adjust(1000)
      // A third would be allowed by max, not by maxAttempts.
      expect(transport.asked()).toEqual([post(A), post(B)])
      yield* TestClock.adjust(3000)
      yield* TestClock.adjust(1000)
      const got = yield* Fiber.join(fiber)
      expect(triedOf(got.error)).toEqual([
        [A, "Timeout"],
        [B, "Timeout"]
      ])
      expect(transport.asked()).toEqual([post(A), post(B)])

      const two = client(pool([A, B, C], { timeouts: { firstToken: 5000 } }), {
        [A]: [Scripted.sse([], { ending: "stall" })],
        [B]: [Scripted.sse([], { ending: "stall" })],
        [C]: [hello]
      })
      const bounded = yield* Effect.fork(two.use(read))
      yield* TestClock.adjust(1000)
      yield* TestClock.adjust(3000)
      // max 2 (the default): no third while A and B run.
      expect(two.transport.asked()).toEqual([post(A), post(B)])
      yield* TestClock.adjust(1000)
      // A's first token is due at 5 s: C starts in its place.
      const answered = yield* Fiber.join(bounded)
      expect(texts(answered)).toEqual(helloFrom(C))
      expect(two.transport.asked()).toEqual([post(A), post(B), post(C)])
      expect(two.transport.exchanges[1]).toMatchObject({ server: B, cancelled: true })
    })
  )

  it.effect("AllServersFailed lists every attempt, hedges included, in the order they failed", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B, C], { timeouts: { firstToken: 5000 } }), {
        [A]: [Scripted.sse([], { ending: "stall" })],
        [B]: [Scripted.status(503)],
        [C]: [Scripted.refused]
      })
      const fiber = yield* Effect.fork(use(read))
      yield* TestClock.adjust(1000)
      // B (the hedge) failed at once, C took its place and was refused: only A is left.
      expect(transport.asked()).toEqual([post(A), post(B), post(C)])
      yield* TestClock.adjust(4000)
      const got = yield* Fiber.join(fiber)
      expect(got.deltas).toEqual([])
      expect(triedOf(got.error)).toEqual([
        [B, "HttpStatusError"],
        [C, "TransportError"],
        [A, "Timeout"]
      ])
    })
  )

  it.effect("a request fault of any attempt ends the race and the call, the others cancelled", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B]), {
        [A]: [Scripted.sse([], { ending: "stall" })],
        [B]: [Scripted.json({ error: { message: "bad model" } }, { status: 400 })]
      })
      const fiber = yield* Effect.fork(use(read))
      yield* TestClock.adjust(1000)
      const got = yield* Fiber.join(fiber)
      expect(got.error).toMatchObject({ _tag: "HttpStatusError", status: 400, server: B })
      expect(transport.exchanges[0]).toMatchObject({ server: A, cancelled: true })
    })
  )

  it.effect("usage-only chunks of a loser never reach the caller", () =>
    Effect.gen(function* () {
      const usage = `data: ${JSON.stringify({ id: "x", choices: [], usage: { prompt_tokens: 3, completion_tokens: 0, total_tokens: 3 } })}\n\n`
      const { use } = client(pool([A, B]), {
        [A]: [Scripted.sse([usage, { data: chunk("late"), delay: 5000 }])],
        [B]: [hello]
      })
      const fiber = yield* Effect.fork(use(read))
      yield* TestClock.adjust(1000)
      const got = yield* Fiber.join(fiber)
      expect(texts(got)).toEqual(helloFrom(B))
      expect(got.deltas.some((d) => d.usage !== undefined)).toBe(false)
    })
  )

  it.effect('`after: "auto"` hedges at the pool\'s 95th percentile, and not at all until it has one', () =>
    Effect.gen(function* () {
      const asked: Array<number> = []
      const measured = client(pool([A, B], { hedge: { after: "auto" } }), { [A]: [slow(5000)], [B]: [hello] }, (q) => {
        asked.push(q)
        return 700
      })
      const fiber = yield* Effect.fork(measured.use(read))
      yield* TestClock.adjust(699)
      expect(measured.transport.asked()).toEqual([post(A)])
      yield* TestClock.adjust(1)
      expect(texts(yield* Fiber.join(fiber))).toEqual(helloFrom(B))
      expect(asked).toEqual([0.95])

      const unmeasured = client(
        pool([A, B], { hedge: { after: "auto" } }),
        { [A]: [slow(5000)], [B]: [hello] },
        () => undefined
      )
      const plain = yield* Effect.fork(unmeasured.use(read))
      yield* TestClock.adjust(5000)
      expect((yield* Fiber.join(plain)).deltas.map((d) => d.content).join("")).toBe("Slow reply")
      expect(unmeasured.transport.asked()).toEqual([post(A)])
    })
  )

  it.effect("a ChatCall opens when the race is won: poll gives the winner's first batch, wait the next", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B]), {
        [A]: [slow(5000)],
        [B]: [Scripted.sse([chunk("Hel"), { data: chunk("lo"), delay: 100 }, { data: finish() + DONE, delay: 100 }])]
      })
      const contents = (batch: Chunk.Chunk<ChatDelta> | undefined) =>
        batch === undefined ? undefined : Chunk.toReadonlyArray(batch).map((d) => [d.content, d.server])
      const fiber = yield* Effect.fork(
        use((chat) =>
          Effect.scoped(
            Effect.gen(function* () {
              const call = yield* chat.call(request)
              expect(call.wait(() => {})).toBe(false)
              expect(contents(yield* call.start)).toEqual([])
              expect(contents(call.poll())).toEqual([["Hel", B]])
              expect(call.poll()).toBeUndefined()
              // As in any call: once a pull has armed the idle limit, wait wakes the caller.
              const second = yield* Effect.fork(call.pull)
              yield* TestClock.adjust(100)
              expect(contents(yield* Fiber.join(second))).toEqual([["lo", B]])
              const woken = yield* Effect.makeLatch(false)
              expect(call.wait(() => Effect.runSync(woken.open))).toBe(true)
              yield* TestClock.adjust(100)
              yield* woken.await
              expect(contents(call.poll())).toEqual([["", B]])
              expect(Option.getOrUndefined(yield* Effect.flip(call.pull))).toBeUndefined()
            })
          )
        )
      )
      yield* TestClock.adjust(1000)
      yield* Fiber.join(fiber)
      expect(transport.exchanges[0]).toMatchObject({ server: A, cancelled: true })
    })
  )
})

describe("a hedged whole call (complete)", () => {
  it.effect("hedges on the response: the first whole reply wins, the slow request is aborted", () =>
    Effect.gen(function* () {
      const { transport, use } = client(pool([A, B]), {
        [A]: [whole("from A", { wait: 5000 })],
        [B]: [whole("from B", { wait: 200 })]
      })
      const fiber = yield* Effect.fork(use((chat) => chat.complete(request)))
      yield* TestClock.adjust(1000)
      expect(transport.asked()).toEqual([post(A), post(B)])
      yield* TestClock.adjust(200)
      expect(yield* Fiber.join(fiber)).toMatchObject({ content: "from B", server: B })
      expect(transport.exchanges[0]).toMatchObject({ server: A, aborted: true })
    })
  )

  it.effect("a hedge's success is the pool's: its time to first delta is recorded, the loser's nothing", () =>
    Effect.gen(function* () {
      const { use } = client(pool([A, B]), { [A]: [whole("from A", { wait: 5000 })], [B]: [whole("from B")] })
      const fiber = yield* Effect.fork(use((chat) => Effect.zipRight(chat.complete(request), chat.pool.health)))
      yield* TestClock.adjust(1000)
      const health = yield* Fiber.join(fiber)
      expect(health.map((h) => [h.server, h.failures, h.lastLatencyMs])).toEqual([
        [A, 0, undefined],
        [B, 0, 0]
      ])
    })
  )
})

describe("the debug log of a hedged call", () => {
  it.effect("says when a hedge started, on which server, and which attempt answered", () =>
    Effect.gen(function* () {
      const logs: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
      const logger = Logger.make(({ message, annotations }) => {
        logs.push({ message, annotations: Object.fromEntries(annotations) })
      })
      const { use } = client(pool([A, B]), { [A]: [slow(5000)], [B]: [hello] })
      const fiber = yield* Effect.fork(
        use(read).pipe(
          Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
          Logger.withMinimumLogLevel(LogLevel.Debug)
        )
      )
      yield* TestClock.adjust(1000)
      yield* Fiber.join(fiber)
      const own = logs.filter((l) => String(l.message).startsWith("easychat:"))
      expect(own.map((l) => [String(l.message), l.annotations])).toEqual([
        [
          "easychat: no first item in time, hedging on another server",
          { server: B, attempt: 2, strategy: "round-robin", waiting: A }
        ],
        ["easychat: hedged call answered", { server: B, attempt: 2, hedges: 1, cancelled: 1 }]
      ])
    })
  )
})

describe("the spans of a hedged call", () => {
  it.effect(
    "each attempt's server, strategy and estimate, the hedge marked, the loser's outcome; the call's winner",
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
        const { use } = client(pool([A, B]), { [A]: [slow(5000)], [B]: [hello] })
        const fiber = yield* Effect.fork(use(read).pipe(Effect.withTracer(recording)))
        yield* TestClock.adjust(1000)
        yield* Fiber.join(fiber)
        const attrs = (span: Tracer.Span) => Object.fromEntries(span.attributes)
        expect(spans.filter((s) => s.name === "easychat.attempt").map(attrs)).toEqual([
          {
            "easychat.server": A,
            "easychat.attempt": 1,
            "easychat.strategy": "round-robin",
            "easychat.outcome": "lost",
            "http.response.status_code": 200
          },
          {
            "easychat.server": B,
            "easychat.attempt": 2,
            "easychat.strategy": "round-robin",
            "easychat.hedge": true,
            "http.response.status_code": 200,
            "easychat.outcome": "ok"
          }
        ])
        expect(attrs(spans.find((s) => s.name === "easychat.stream")!)).toEqual({
          "easychat.hedge": "attempt 2 won (1 hedged)"
        })
      })
  )
})

describe("the Promise facade", () => {
  it.live("reads a hedged stream and a hedged reply", () =>
    Effect.promise(async () => {
      const transport = Scripted.make({ [A]: [slow(5000), whole("A", { wait: 5000 })], [B]: [hello, whole("B")] })
      const chat = Client.make(pool([A, B], { hedge: { after: 20 } }), transport.layer)
      try {
        const pieces: Array<string> = []
        for await (const piece of chat.stream(request)) pieces.push(piece)
        expect(pieces.join("")).toBe("Hello world")
        expect(await chat.complete(request)).toMatchObject({ content: "B", server: B })
      } finally {
        await chat.close()
      }
      expect(transport.exchanges.map((e) => [e.server, e.cancelled || e.aborted])).toEqual([
        [A, true],
        [B, false],
        [A, true],
        [B, false]
      ])
    })
  )
})

describe("the hedge option", () => {
  it("is checked: each error names its field", () => {
    const bad: ReadonlyArray<readonly [Presets.Hedge, string]> = [
      [{ after: 0 }, "hedge.after"],
      [{ after: "soon" as never }, "hedge.after"],
      [{ after: 100, max: 1 }, "hedge.max"],
      [{ after: 100, max: 2.5 }, "hedge.max"],
      ["yes" as never, "hedge"]
    ]
    for (const [hedge, field] of bad) {
      expect(() => Client.make({ servers: [A], hedge }, Layer.empty as never)).toThrow(
        expect.objectContaining({ field })
      )
    }
    expect(() => Client.make({ servers: [A], continueAfterCut: "yes" as never }, Layer.empty as never)).toThrow(
      expect.objectContaining({ field: "continueAfterCut" })
    )
    const ok = Client.make(
      { servers: [A], hedge: { after: "auto", max: 3 }, continueAfterCut: true },
      Layer.empty as never
    )
    void ok.close()
  })
})
