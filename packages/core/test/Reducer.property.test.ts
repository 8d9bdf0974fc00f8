// The reducer's property: any reply, streamed in chunks split anywhere, adds
// up to the `ChatCompletion` that `complete` returns for the same reply whole,
// through the real EasyChat pipeline over an in-memory HttpClient.
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import fc from "fast-check"
import { Chat, EasyChat } from "../src/index.js"

const SERVER = "http://memory.test"
const encoder = new TextEncoder()

/** Answers a stream request with `parts` (one read each), a whole one with `whole` (or the stream too). */
const memory = (whole: string | undefined, parts: () => ReadonlyArray<Uint8Array>) =>
  Layer.succeed(
    HttpClient.HttpClient,
    HttpClient.make((request) =>
      Effect.sync(() => {
        const streamed =
          request.body._tag === "Uint8Array" && new TextDecoder().decode(request.body.body).includes('"stream":true')
        if (!streamed && whole !== undefined) {
          return HttpClientResponse.fromWeb(
            request,
            new Response(whole, { headers: { "content-type": "application/json" } })
          )
        }
        const reads = parts()
        let i = 0
        const body = new ReadableStream<Uint8Array>({
          pull(controller) {
            const part = reads[i++]
            if (part === undefined) controller.close()
            else controller.enqueue(part)
          }
        })
        return HttpClientResponse.fromWeb(
          request,
          new Response(body, { headers: { "content-type": "text/event-stream" } })
        )
      })
    )
  )

const text = (min = 0) => fc.string({ unit: "grapheme", minLength: min, maxLength: 14 })

/** One choice of a whole reply, and how its strings are cut into pieces. */
const choiceArb = fc.record({
  content: fc.option(text(), { nil: null }),
  reasoning: fc.option(fc.record({ key: fc.constantFrom("reasoning_content", "reasoning"), text: text(1) }), {
    nil: undefined
  }),
  calls: fc.array(fc.record({ id: fc.stringMatching(/^call_[a-z0-9]{1,6}$/), name: text(1), args: text() }), {
    maxLength: 3
  }),
  refusal: fc.option(text(1), { nil: undefined }),
  logprobs: fc.boolean(),
  finish: fc.constantFrom("stop", "length", "tool_calls", "content_filter"),
  cuts: fc.array(fc.nat(20), { maxLength: 6 })
})

const replyArb = fc.record({
  choices: fc.array(choiceArb, { minLength: 1, maxLength: 3 }),
  usage: fc.option(fc.record({ prompt_tokens: fc.nat(99), completion_tokens: fc.nat(99) }), { nil: undefined }),
  order: fc.array(fc.nat(), { maxLength: 80 }),
  splits: fc.array(fc.nat(100_000), { maxLength: 16 })
})
type Reply = typeof replyArb extends fc.Arbitrary<infer T> ? T : never

/** Cuts `s` (by code points) at the given places. */
const cut = (s: string, cuts: ReadonlyArray<number>): Array<string> => {
  const chars = Array.from(s)
  const at = [...new Set(cuts.map((c) => c % (chars.length + 1)))].sort((a, b) => a - b)
  const out: Array<string> = []
  let last = 0
  for (const p of [...at, chars.length]) {
    if (p > last) out.push(chars.slice(last, p).join(""))
    last = p
  }
  return out
}

const meta = { id: "chatcmpl-p", created: 1733480000, model: "m-1", system_fingerprint: "fp_p", provider: "X" }

const wholeOf = (reply: Reply) => ({
  ...meta,
  object: "chat.completion",
  choices: reply.choices.map((c, index) => ({
    index,
    message: {
      role: "assistant",
      content: c.content,
      ...(c.reasoning ? { [c.reasoning.key]: c.reasoning.text } : {}),
      ...(c.calls.length > 0
        ? {
            tool_calls: c.calls.map((call) => ({
              id: call.id,
              type: "function",
              function: { name: call.name, arguments: call.args }
            }))
          }
        : {}),
      ...(c.refusal ? { refusal: c.refusal } : {})
    },
    // Logprobs travel with content pieces: a choice without content has none.
    logprobs:
      c.logprobs && (c.content ?? "") !== ""
        ? { content: cut(c.content ?? "", c.cuts).map(tokenOf), refusal: null }
        : null,
    finish_reason: c.finish
  })),
  ...(reply.usage
    ? { usage: { ...reply.usage, total_tokens: reply.usage.prompt_tokens + reply.usage.completion_tokens } }
    : {})
})

const tokenOf = (token: string) => ({
  token,
  logprob: -0.5,
  bytes: Array.from(encoder.encode(token)),
  top_logprobs: []
})

/** Each choice's chunks, in order: reasoning, content (with logprobs), refusal, tool calls, finish. */
const choiceChunks = (c: Reply["choices"][number], index: number): Array<Record<string, unknown>> => {
  const piece = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    index,
    delta,
    logprobs: null,
    finish_reason: null,
    ...extra
  })
  const out = [piece({ role: "assistant", content: c.content === null ? null : "" })]
  if (c.reasoning) for (const p of cut(c.reasoning.text, c.cuts)) out.push(piece({ [c.reasoning.key]: p }))
  for (const p of cut(c.content ?? "", c.cuts)) {
    out.push(piece({ content: p }, c.logprobs ? { logprobs: { content: [tokenOf(p)], refusal: null } } : {}))
  }
  if (c.refusal) for (const p of cut(c.refusal, c.cuts)) out.push(piece({ refusal: p }))
  c.calls.forEach((call, k) => {
    const [first = "", ...rest] = cut(call.args, c.cuts)
    out.push(
      piece({
        tool_calls: [{ index: k, id: call.id, type: "function", function: { name: call.name, arguments: first } }]
      })
    )
    for (const p of rest) out.push(piece({ tool_calls: [{ index: k, function: { arguments: p } }] }))
  })
  out.push(piece({}, { finish_reason: c.finish }))
  return out
}

/** The stream's bytes: the choices' chunks interleaved by `order`, a usage chunk last, `[DONE]`. */
const streamOf = (reply: Reply): Uint8Array => {
  const queues = reply.choices.map(choiceChunks)
  const events: Array<string> = []
  let turn = 0
  while (queues.some((q) => q.length > 0)) {
    const open = queues.filter((q) => q.length > 0)
    const q = open[(reply.order[turn++] ?? 0) % open.length]!
    events.push(JSON.stringify({ ...meta, object: "chat.completion.chunk", choices: [q.shift()] }))
  }
  const whole = wholeOf(reply)
  if (whole.usage)
    events.push(JSON.stringify({ ...meta, object: "chat.completion.chunk", choices: [], usage: whole.usage }))
  return encoder.encode(`${events.map((e) => `data: ${e}\n\n`).join("")}data: [DONE]\n\n`)
}

const split = (bytes: Uint8Array, points: ReadonlyArray<number>) => {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b)
  const parts: Array<Uint8Array> = []
  let last = 0
  for (const p of [...at, bytes.length]) {
    if (p > last) parts.push(bytes.slice(last, p))
    last = p
  }
  return parts
}

describe("the reducer", () => {
  it("collects any reply, streamed in chunks split anywhere, into the reply complete returns", async () => {
    await fc.assert(
      fc.asyncProperty(replyArb, async (reply) => {
        const whole = JSON.stringify(wholeOf(reply))
        const bytes = streamOf(reply)
        const request = { messages: [{ role: "user" as const, content: "x" }] }
        const run = <A>(answer: string | undefined, f: (chat: EasyChat.Service) => Effect.Effect<A, unknown>) =>
          Effect.runPromise(
            Effect.flatMap(EasyChat.EasyChat, f).pipe(
              Effect.provide(EasyChat.layer({ servers: [SERVER], cookieInit: "off" })),
              Effect.provide(memory(answer, () => split(bytes, reply.splits)))
            )
          )
        const fromWhole = await run(whole, (chat) => chat.complete(request))
        const fromStream = await run(whole, (chat) => Chat.collect(chat.stream(request)))
        // A whole request answered with a stream adds it up the same way.
        const fromDeltas = await run(undefined, (chat) => chat.complete(request))
        const { raw: rawWhole, ...expected } = fromWhole
        const { raw: rawStream, ...got } = fromStream
        expect(got).toStrictEqual(expected)
        const { raw: _, ...again } = fromDeltas
        expect(again).toStrictEqual(expected)
        // The chunks add up to the whole body's messages, field for field (a `null` or `""` the server sent only in a
        // chunk that carried nothing, such as the role chunk's `content: null`, never reached the reducer).
        const messages = (raw: unknown) =>
          (raw as { choices: Array<{ message: Record<string, unknown> }> }).choices.map((c) =>
            Object.fromEntries(Object.entries(c.message).filter(([, v]) => v !== null && v !== ""))
          )
        expect(messages(rawStream)).toEqual(messages(rawWhole))
        expect(rawStream).toMatchObject({ ...meta, object: "chat.completion" })
      }),
      { numRuns: 300 }
    )
  }, 120_000)
})
