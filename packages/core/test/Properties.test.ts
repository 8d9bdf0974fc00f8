// Property tests (fast-check) for the chunk decoder and request validation,
// through the real EasyChat pipeline over an in-memory HttpClient.
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import fc from "fast-check"
import { EasyChat } from "../src/index.js"

const SERVER = "http://memory.test"

/** An HttpClient that answers every request from memory, counting chat requests. */
const memory = (body: () => Uint8Array[], calls = { chat: 0 }) =>
  Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request) =>
      Effect.sync(() => {
        if (request.method === "GET") return HttpClientResponse.fromWeb(request, new Response("ok"))
        calls.chat++
        const parts = body()
        let i = 0
        const stream = new ReadableStream<Uint8Array>({
          pull(controller) {
            const part = parts[i++]
            if (part === undefined) controller.close()
            else controller.enqueue(part)
          }
        })
        return HttpClientResponse.fromWeb(
          request,
          new Response(stream, { headers: { "content-type": "text/event-stream" } })
        )
      })
    )
  )

const encoder = new TextEncoder()

/** One generated chunk of a stream, and what it contributes. */
const chunkArb = fc.oneof(
  fc.record({ kind: fc.constant("text" as const), text: fc.string({ unit: "grapheme", minLength: 1, maxLength: 12 }) }),
  fc.constant({ kind: "null" as const }),
  fc.constant({ kind: "role" as const }),
  fc.record({ kind: fc.constant("tool" as const), args: fc.string({ maxLength: 8 }) }),
  fc.record({ kind: fc.constant("usage" as const), tokens: fc.nat(1000) }),
  fc.record({ kind: fc.constant("unknown" as const), extra: fc.string({ maxLength: 8 }) }),
  fc.record({ kind: fc.constant("finish" as const), reason: fc.constantFrom("stop", "length", "tool_calls") })
)
type Gen = typeof chunkArb extends fc.Arbitrary<infer T> ? T : never

const encode = (c: Gen): string => {
  const base = { id: "chatcmpl-p", object: "chat.completion.chunk" }
  const choice = (delta: unknown, finish_reason: string | null = null) => ({
    ...base,
    choices: [{ index: 0, delta, finish_reason }]
  })
  switch (c.kind) {
    case "text":
      return JSON.stringify(choice({ content: c.text }))
    case "null":
      return JSON.stringify(choice({ content: null }))
    case "role":
      return JSON.stringify(choice({ role: "assistant" }))
    case "tool":
      return JSON.stringify(
        choice({
          tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "f", arguments: c.args } }]
        })
      )
    case "usage":
      return JSON.stringify({
        ...base,
        choices: [],
        usage: { prompt_tokens: 1, completion_tokens: c.tokens, total_tokens: c.tokens + 1 }
      })
    case "unknown":
      return JSON.stringify({ ...choice({ content: null }), system_fingerprint: c.extra, x_extra: { nested: [1, 2] } })
    case "finish":
      return JSON.stringify(choice({}, c.reason))
  }
}

/** Splits bytes at the given cut points. */
const cut = (bytes: Uint8Array, points: ReadonlyArray<number>) => {
  const sorted = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b)
  const parts: Array<Uint8Array> = []
  let last = 0
  for (const p of sorted) {
    parts.push(bytes.slice(last, p))
    last = p
  }
  parts.push(bytes.slice(last))
  return parts.filter((p) => p.length > 0)
}

const streamOf = (layer: Layer.Layer<HttpClient.HttpClient>, request: unknown) =>
  Effect.runPromise(
    Effect.flatMap(EasyChat.EasyChat, (chat) =>
      Effect.either(Effect.map(Stream.runCollect(chat.stream(request as never)), Chunk.toReadonlyArray))
    ).pipe(
      Effect.provide(EasyChat.layer({ servers: [SERVER], cookieInit: "off" })),
      Effect.provide(layer),
      Effect.orDie
    )
  )

describe("chunk decoder properties", () => {
  it("any chunk sequence, split anywhere, gives exactly the concatenated text and the last finish_reason", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(chunkArb, { maxLength: 30 }),
        fc.array(fc.nat(10_000), { maxLength: 12 }),
        fc.constantFrom("\n\n", "\r\n\r\n", "\r\r"),
        async (chunks, points, end) => {
          const finishing = [...chunks, { kind: "finish" as const, reason: "stop" as const }]
          const bytes = encoder.encode(`${finishing.map((c) => `data: ${encode(c)}${end}`).join("")}data: [DONE]${end}`)
          const result = await streamOf(
            memory(() => cut(bytes, points)),
            { messages: [{ role: "user", content: "x" }] }
          )
          expect(result._tag).toBe("Right")
          const deltas = result._tag === "Right" ? result.right : []
          const text = finishing.flatMap((c) => (c.kind === "text" ? [c.text] : [])).join("")
          expect(deltas.map((d) => d.content).join("")).toBe(text)
          const finishes = deltas.flatMap((d) => (d.finishReason ? [d.finishReason] : []))
          expect(finishes.at(-1)).toBe("stop")
          // Role-only, null-content, tool-call and unknown chunks carry no delta.
          expect(deltas.every((d) => d.content !== "" || d.finishReason !== undefined || d.usage !== undefined)).toBe(
            true
          )
          const usages = finishing.flatMap((c) => (c.kind === "usage" ? [c.tokens] : []))
          expect(deltas.flatMap((d) => (d.usage ? [d.usage.completion_tokens] : []))).toEqual(usages)
        }
      ),
      { numRuns: 300 }
    )
  }, 120_000)
})

describe("request validation properties", () => {
  const valid = { messages: [{ role: "user", content: "hi" }] }
  const outside = (min: number, max: number) =>
    fc
      .oneof(
        fc.double({ max: min, maxExcluded: true, noNaN: true }),
        fc.double({ min: max, minExcluded: true, noNaN: true }),
        fc.constant(Number.NaN)
      )
      .filter((v) => !(v >= min && v <= max)) // -0 is inside [0, 2]
  const invalid = fc.oneof(
    outside(0, 2).map((v) => ({ field: "temperature", request: { ...valid, temperature: v } })),
    outside(0, 1).map((v) => ({ field: "top_p", request: { ...valid, top_p: v } })),
    outside(-2, 2).map((v) => ({ field: "presence_penalty", request: { ...valid, presence_penalty: v } })),
    outside(-2, 2).map((v) => ({ field: "frequency_penalty", request: { ...valid, frequency_penalty: v } })),
    fc
      .string()
      .filter((r) => !["system", "user", "assistant", "tool", "developer", "function"].includes(r))
      .map((role) => ({
        field: "messages.0.role",
        request: { messages: [{ role, content: "x" }] }
      })),
    fc.constant({ field: "messages", request: { messages: [] } }),
    fc.integer({ min: 1, max: 1000 }).map((i) => ({ field: "activeServer", request: { ...valid, activeServer: i } }))
  )

  it("requests outside the documented ranges are InvalidRequest naming the field, and never reach the network", async () => {
    const calls = { chat: 0 }
    const layer = memory(() => [], calls)
    await fc.assert(
      fc.asyncProperty(invalid, async ({ field, request }) => {
        const result = await streamOf(layer, request)
        expect(result._tag).toBe("Left")
        expect(result._tag === "Left" && result.left).toMatchObject({ _tag: "InvalidRequest", field })
      }),
      { numRuns: 300 }
    )
    expect(calls.chat).toBe(0)
  }, 120_000)
})
