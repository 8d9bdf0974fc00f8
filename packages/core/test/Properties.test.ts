// Property tests (fast-check) for the chunk decoder and request validation,
// through the real EasyChat pipeline over an in-memory HttpClient.
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { assert, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import fc from "fast-check"
import { ChatRequest, validate } from "../src/Chat.js"
import { EasyChat } from "../src/index.js"
import { stepOf } from "../src/internal/chunk.js"
import { Delta } from "../src/internal/delta.js"
import { usualRequest } from "../src/internal/request.js"
import {
  forgetFragmentPrefix,
  forgetKnownPrefix,
  matchFragment,
  matchKnownFragment,
  readAsFragment,
  readByTail,
  stringOf,
  usualContent,
  usualReasoning
} from "../src/internal/usualChunk.js"

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
          // Role-only, null-content and unknown chunks carry no delta; a tool-call chunk is a delta of its fragment.
          expect(
            deltas.every(
              (d) =>
                d.content !== "" || d.finishReason !== undefined || d.usage !== undefined || d.toolCalls !== undefined
            )
          ).toBe(true)
          const args = finishing.flatMap((c) => (c.kind === "tool" ? [c.args] : []))
          expect(deltas.flatMap((d) => (d.toolCalls ? [d.toolCalls[0]!.function!.arguments] : []))).toEqual(args)
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

// The usual chunk is read by a regular expression instead of JSON.parse
// (internal/reply.ts): what it returns must be what JSON.parse gives, and
// anything it cannot vouch for must go to JSON.parse.
describe("the usual chunk's fast path", () => {
  /** A JSON tree whose objects keep duplicate keys and their order. */
  type Json =
    | { readonly t: "raw"; readonly text: string }
    | { readonly t: "str"; readonly s: string }
    | { readonly t: "arr"; readonly items: ReadonlyArray<Json> }
    | { readonly t: "obj"; readonly fields: ReadonlyArray<Field> }
  type Field = readonly [string, Json]

  const raw = (text: string): Json => ({ t: "raw", text })
  const str = (s: string): Json => ({ t: "str", s })
  const obj = (...fields: ReadonlyArray<Field>): Json => ({ t: "obj", fields })

  const unit = fc.oneof(
    fc.string({ unit: "grapheme", maxLength: 6 }),
    fc.constantFrom(
      '"',
      "\\",
      "/",
      "\n",
      "\t",
      "\u0000",
      "\u001f",
      "\u007f",
      "\u2028",
      "\ud800",
      "\udfff",
      "é",
      "😀",
      "中"
    )
  )
  const text = fc.array(unit, { maxLength: 4 }).map((parts) => parts.join(""))
  const number = fc.oneof(
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
    fc.integer().map(String),
    fc.constantFrom("0", "-0", "1e5", "1E+5", "2.5e-3", "-12.75", "1731412800")
  )
  const scalar: fc.Arbitrary<Json> = fc.oneof(
    { weight: 8, arbitrary: text.map(str) },
    { weight: 8, arbitrary: number.map(raw) },
    { weight: 4, arbitrary: fc.constantFrom("true", "false", "null").map(raw) },
    // Not JSON: what a lenient reader would take.
    {
      weight: 1,
      arbitrary: fc
        .constantFrom(
          "01",
          "-01",
          "1.",
          ".5",
          "1e",
          "1e+",
          "+1",
          "--1",
          "0x10",
          "tru",
          "nul",
          "NaN",
          "'x'",
          '"\\x"',
          '"\t"'
        )
        .map(raw)
    }
  )
  const value: fc.Arbitrary<Json> = fc.oneof(
    { weight: 12, arbitrary: scalar },
    fc.jsonValue({ maxDepth: 2 }).map((v) => raw(JSON.stringify(v)))
  )
  const extra = fc.tuple(fc.constantFrom("id", "object", "model", "index", "role", "logprobs", "x", "contents"), value)
  /** A field list: the given fields, extra ones, shuffled; sometimes a special one twice. */
  const fieldsOf = (special: fc.Arbitrary<ReadonlyArray<Field>>) =>
    fc
      .tuple(special, fc.array(extra, { maxLength: 3 }), fc.array(fc.nat(), { minLength: 6, maxLength: 6 }))
      .map(([own, extras, order]) => {
        const all = [...own, ...extras]
        return all
          .map((f, i) => [order[i % order.length]! + i / 100, f] as const)
          .sort((a, b) => a[0] - b[0])
          .map(([, f]) => f)
      })
  const optional = (key: string, v: fc.Arbitrary<Json>): fc.Arbitrary<ReadonlyArray<Field>> =>
    fc.oneof(
      { weight: 8, arbitrary: v.map((x): ReadonlyArray<Field> => [[key, x]]) },
      { weight: 1, arbitrary: fc.constant([]) },
      {
        weight: 1,
        arbitrary: fc.tuple(v, v).map(
          ([a, b]): ReadonlyArray<Field> => [
            [key, a],
            [key, b]
          ]
        )
      }
    )
  const reasoningValue = fc.oneof(
    { weight: 3, arbitrary: text.map(str) },
    { weight: 2, arbitrary: fc.constant(raw("null")) },
    { weight: 1, arbitrary: value }
  )
  const delta = fc
    .tuple(
      optional("content", fc.oneof({ weight: 8, arbitrary: text.map(str) }, { weight: 1, arbitrary: value })),
      fc.oneof(
        { weight: 3, arbitrary: fc.constant([]) },
        { weight: 1, arbitrary: optional("reasoning_content", reasoningValue) }
      ),
      fc.oneof(
        { weight: 3, arbitrary: fc.constant([]) },
        { weight: 1, arbitrary: optional("reasoning", reasoningValue) }
      )
    )
    .chain(([c, rc, r]) => fieldsOf(fc.constant([...c, ...rc, ...r])))
    .map((fields) => obj(...fields))
  // A tool-call fragment's delta, `{"tool_calls":[{"index":N,"function":{"arguments":"…"}}]}`, and what
  // lies a field or a value away from it: an id, type or name, a second call, an index that is not an
  // integer, arguments that are not a string, nested objects, another special key that says something.
  const callIndex = fc.oneof(
    { weight: 8, arbitrary: fc.nat(12).map((n) => raw(String(n))) },
    {
      weight: 1,
      arbitrary: fc.constantFrom("-1", "-0", "1.0", "1.5", "1e0", "01", "999999999", "1234567890").map(raw)
    },
    { weight: 1, arbitrary: fc.constantFrom('"1"', "null", "true", "[0]", "{}").map(raw) }
  )
  /** Fields as given (most often), or shuffled among extra ones. */
  const mostlyAsGiven = (fields: ReadonlyArray<Field>) =>
    fc.oneof({ weight: 3, arbitrary: fc.constant(fields) }, { weight: 1, arbitrary: fieldsOf(fc.constant(fields)) })
  const fn = fc
    .tuple(
      optional("arguments", fc.oneof({ weight: 8, arbitrary: text.map(str) }, { weight: 1, arbitrary: value })),
      fc.oneof(
        { weight: 4, arbitrary: fc.constant([]) },
        { weight: 1, arbitrary: optional("name", fc.oneof(text.map(str), fc.constant(raw("null")))) }
      )
    )
    .chain(([a, n]) => mostlyAsGiven([...a, ...n]))
    .map((fields) => obj(...fields))
  const call = fc
    .tuple(
      optional("index", callIndex),
      optional("function", fc.oneof({ weight: 8, arbitrary: fn }, { weight: 1, arbitrary: value })),
      fc.oneof(
        { weight: 6, arbitrary: fc.constant([]) },
        { weight: 1, arbitrary: fc.constant<ReadonlyArray<Field>>([["id", str("call_1")]]) },
        { weight: 1, arbitrary: fc.constant<ReadonlyArray<Field>>([["type", str("function")]]) },
        { weight: 1, arbitrary: fc.constant<ReadonlyArray<Field>>([["id", raw("null")]]) }
      )
    )
    .chain(([i, f, more]) => mostlyAsGiven([...i, ...f, ...more]))
    .map((fields) => obj(...fields))
  const calls = fc.oneof(
    { weight: 8, arbitrary: call.map((c): Json => ({ t: "arr", items: [c] })) },
    { weight: 1, arbitrary: fc.array(call, { maxLength: 2 }).map((items): Json => ({ t: "arr", items })) },
    { weight: 1, arbitrary: value }
  )
  const otherSpecial = fc.tuple(
    fc.constantFrom("content", "reasoning_content", "reasoning", "reasoning_details", "refusal", "function_call"),
    fc.oneof(
      { weight: 4, arbitrary: fc.constant(raw("null")) },
      { weight: 2, arbitrary: fc.constant(str("")) },
      { weight: 1, arbitrary: value }
    )
  )
  const fragmentDelta = fc
    .tuple(optional("tool_calls", calls), fc.array(otherSpecial, { maxLength: 2 }))
    .chain(([t, others]) => mostlyAsGiven([...others, ...t]))
    .map((fields) => obj(...fields))
  const choiceOf = (delta: fc.Arbitrary<Json>) =>
    fc
      .tuple(
        optional("delta", fc.oneof({ weight: 6, arbitrary: delta }, { weight: 1, arbitrary: value })),
        optional(
          "finish_reason",
          fc.oneof({ weight: 4, arbitrary: fc.constant(raw("null")) }, { weight: 1, arbitrary: scalar })
        )
      )
      .chain(([d, f]) => fieldsOf(fc.constant([...d, ...f])))
      .map((fields) => obj(...fields))
  const chunkOf = (choice: fc.Arbitrary<Json>) =>
    fc
      .tuple(
        optional(
          "choices",
          fc.oneof(
            { weight: 6, arbitrary: choice.map((c): Json => ({ t: "arr", items: [c] })) },
            {
              weight: 1,
              arbitrary: fc.array(fc.oneof(choice, value), { maxLength: 2 }).map((items): Json => ({ t: "arr", items }))
            },
            { weight: 1, arbitrary: value }
          )
        ),
        fc.oneof(
          { weight: 3, arbitrary: fc.constant([]) },
          { weight: 1, arbitrary: optional("error", fc.oneof(fc.constant(raw("null")), value)) }
        ),
        fc.oneof(
          { weight: 3, arbitrary: fc.constant([]) },
          { weight: 1, arbitrary: optional("usage", fc.oneof(fc.constant(raw("null")), value)) }
        )
      )
      .chain(([c, e, u]) => fieldsOf(fc.constant([...c, ...e, ...u])))
      .map((fields) => obj(...fields))
  const chunk = chunkOf(choiceOf(delta))
  /** Mostly nothing; now and then one of `a`. */
  const rarely = <T>(a: fc.Arbitrary<T>) =>
    fc.oneof({ weight: 12, arbitrary: fc.constant<ReadonlyArray<T>>([]) }, { weight: 1, arbitrary: a.map((x) => [x]) })
  // A fragment as servers send it, each level now and then a field or a value away from it.
  const sentFragment = fc
    .record({
      index: fc.oneof(
        { weight: 12, arbitrary: fc.nat(12).map((n) => raw(String(n))) },
        { weight: 1, arbitrary: callIndex }
      ),
      args: fc.oneof({ weight: 12, arbitrary: text.map(str) }, { weight: 1, arbitrary: value }),
      inFunction: rarely(fc.tuple(fc.constantFrom("name", "arguments", "x"), value)),
      inCall: rarely(fc.tuple(fc.constantFrom("id", "type", "index", "function", "x"), value)),
      nextCall: rarely(call),
      inDelta: rarely(fc.oneof(otherSpecial, fc.constant<Field>(["role", str("assistant")]), extra)),
      inChoice: rarely(extra),
      inChunk: rarely(extra)
    })
    .map((f) => {
      const fn = obj(...f.inFunction, ["arguments", f.args])
      const calls: Json = { t: "arr", items: [obj(["index", f.index], ["function", fn], ...f.inCall), ...f.nextCall] }
      const choice = obj(
        ["index", raw("0")],
        ["delta", obj(...f.inDelta, ["tool_calls", calls])],
        ["logprobs", raw("null")],
        ["finish_reason", raw("null")],
        ...f.inChoice
      )
      return obj(
        ["id", str("chatcmpl-1")],
        ["model", str("gpt-4o")],
        ["choices", { t: "arr", items: [choice] }],
        ...f.inChunk
      )
    })
  const fragmentChunk = fc.oneof(sentFragment, chunkOf(choiceOf(fragmentDelta)))

  /** JSON text with whitespace and escapes chosen by `pick`. */
  const serialize = (json: Json, pick: () => number): string => {
    const ws = () => ["", "", "", " ", "\t", "\n", "\r\n", "  "][pick() % 8]!
    // Escapes some plain characters (\uXXXX, or \/ for a slash): in one key in
    // twenty, in one character of a value in six.
    const quote = (s: string, key = false) => {
      const escaping = !key || pick() % 20 === 0
      return Array.from(JSON.stringify(s))
        .map((c, i, all) => {
          if (!escaping || i === 0 || i === all.length - 1 || all[i - 1] === "\\" || c === "\\") return c
          if (pick() % (key ? 3 : 6) !== 0) return c
          if (c === "/") return "\\/"
          return c.length === 1 ? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}` : c
        })
        .join("")
    }
    const go = (j: Json): string => {
      switch (j.t) {
        case "raw":
          return j.text
        case "str":
          return quote(j.s)
        case "arr":
          return `[${ws()}${j.items.map(go).join(`${ws()},${ws()}`)}${ws()}]`
        case "obj":
          return `{${ws()}${j.fields.map(([k, v]) => `${quote(k, true)}${ws()}:${ws()}${go(v)}`).join(`${ws()},${ws()}`)}${ws()}}`
      }
    }
    return `${ws()}${go(json)}${ws()}`
  }

  /** A few edits: most make the text invalid JSON, some keep it valid. */
  const mutate = (text: string, edits: ReadonlyArray<readonly [number, number, number]>) => {
    let out = text
    for (const [kind, at, c] of edits) {
      const i = at % (out.length + 1)
      const ch = '",:{}[]0e-.\\ \u0000x'[c % 15]!
      out =
        kind % 3 === 0
          ? out.slice(0, i) + out.slice(i + 1)
          : kind % 3 === 1
            ? out.slice(0, i) + ch + out.slice(i)
            : out.slice(0, i) + ch + out.slice(i + 1)
    }
    return out
  }

  const isObject = (u: unknown): u is Record<string, unknown> =>
    typeof u === "object" && u !== null && !Array.isArray(u)
  /** What the caller gets from one chunk, by the documented rules, with JSON.parse. */
  const expected = (data: string) => {
    let body: unknown
    try {
      body = JSON.parse(data)
    } catch {
      return { error: { _tag: "DecodeError", reason: "InvalidJson" } }
    }
    if (!isObject(body)) return { error: { _tag: "DecodeError", reason: "InvalidChunk" } }
    if (body.error !== undefined && body.error !== null && body.error !== false)
      return { error: { _tag: "UpstreamError" } }
    if (body.choices !== undefined && body.choices !== null && !Array.isArray(body.choices)) {
      return { error: { _tag: "DecodeError", reason: "InvalidChunk" } }
    }
    // One delta per choice that carries something; the usage on the first, or on a delta of its own.
    const choices = Array.isArray(body.choices) ? body.choices : []
    const nonEmpty = (u: unknown): u is string => typeof u === "string" && u !== ""
    const deltas: Array<Record<string, unknown>> = []
    for (const [i, choice] of choices.entries()) {
      if (!isObject(choice)) return { error: { _tag: "DecodeError", reason: "InvalidChunk" } }
      const delta = isObject(choice.delta) ? choice.delta : {}
      const out: Record<string, unknown> = {
        choice: Number.isInteger(choice.index) ? choice.index : i,
        content: typeof delta.content === "string" ? delta.content : ""
      }
      const reasoning = nonEmpty(delta.reasoning_content) ? delta.reasoning_content : delta.reasoning
      if (nonEmpty(reasoning)) out.reasoning = reasoning
      if (Array.isArray(delta.reasoning_details) && delta.reasoning_details.length > 0)
        out.reasoningDetails = delta.reasoning_details
      // A fragment without an integer index takes its position.
      if (Array.isArray(delta.tool_calls) && delta.tool_calls.length > 0)
        out.toolCalls = delta.tool_calls.map((c: unknown, at) =>
          isObject(c) && Number.isInteger(c.index) ? c : { ...(isObject(c) ? c : {}), index: at }
        )
      if (isObject(delta.function_call)) {
        out.functionCall = delta.function_call
        out.toolCalls ??= [{ index: 0, function: delta.function_call }]
      }
      if (nonEmpty(delta.refusal)) out.refusal = delta.refusal
      if (choice.logprobs !== undefined && choice.logprobs !== null) out.logprobs = choice.logprobs
      if (typeof choice.finish_reason === "string") out.finishReason = choice.finish_reason
      // A field without a name in ChatDelta that says something (not null, "", [] or {}) makes a delta too.
      const says = (u: unknown) =>
        u !== null && u !== "" && !(typeof u === "object" && Object.keys(u as object).length === 0)
      const named = ["role", "content", "reasoning_content", "reasoning", "reasoning_details", "tool_calls"]
      const other =
        Object.entries(choice).some(
          ([k, v]) => !["index", "delta", "finish_reason", "logprobs"].includes(k) && says(v)
        ) || Object.entries(delta).some(([k, v]) => ![...named, "function_call", "refusal"].includes(k) && says(v))
      if (Object.keys(out).length > 2 || out.content !== "" || other) deltas.push(out)
    }
    if (isObject(body.usage)) {
      const first = choices[0]
      if (deltas.length === 0)
        deltas.push({ choice: isObject(first) && Number.isInteger(first.index) ? first.index : 0, content: "" })
      deltas[0]!.usage = body.usage
    }
    return { deltas }
  }

  const around = (data: string) => {
    // SSE turns CR and CRLF into LF, and carries each line as a data line; UTF-8
    // turns a lone surrogate into U+FFFD.
    const value = new TextDecoder().decode(encoder.encode(data.replace(/\r\n?/g, "\n")))
    const lines = value
      .split("\n")
      .map((line) => `data: ${line}\n`)
      .join("")
    const text = (s: string) => `data: ${JSON.stringify({ choices: [{ delta: { content: s } }] })}\n\n`
    return { value, bytes: encoder.encode(`${text("<")}${lines}\n${text(">")}data: [DONE]\n\n`) }
  }

  /** A chunk's text serialized from `json` with `seed`'s whitespace and escapes, and some `edits`. */
  const chunkText = (json: Json, seed: number, edits: ReadonlyArray<readonly [number, number, number]> | null) => {
    let state = seed >>> 0
    const pick = () => (state = (state * 1664525 + 1013904223) >>> 0) >>> 16
    const data = serialize(json, pick)
    return around(edits === null ? data : mutate(data, edits))
  }
  const edits = fc.oneof(
    { weight: 3, arbitrary: fc.constant(null) },
    { weight: 1, arbitrary: fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { minLength: 1, maxLength: 2 }) }
  )
  /** Streams `bytes` through the pipeline: the deltas (or the error) JSON.parse gives for `value`. */
  const decodesAsJsonParse = async (value: string, bytes: Uint8Array) => {
    const want = expected(value)
    const result = await streamOf(
      memory(() => [bytes]),
      { messages: [{ role: "user", content: "x" }] }
    )
    if (want.error !== undefined) {
      expect(result._tag).toBe("Left")
      expect(result._tag === "Left" && result.left).toMatchObject(want.error)
    } else {
      expect(result._tag).toBe("Right")
      const deltas = result._tag === "Right" ? result.right : []
      expect(deltas.map(({ server: _, ...d }) => d)).toEqual([
        { choice: 0, content: "<" },
        ...want.deltas!,
        { choice: 0, content: ">" }
      ])
    }
  }

  it("gives what JSON.parse gives, for chunks of any shape, valid or not", async () => {
    let usual = 0
    let runs = 0
    await fc.assert(
      fc.asyncProperty(chunk, fc.integer(), edits, async (json, seed, edit) => {
        const { value, bytes } = chunkText(json, seed, edit)
        runs++
        if (usualContent(value) !== undefined || usualReasoning(value) !== undefined) usual++
        await decodesAsJsonParse(value, bytes)
      }),
      { numRuns: 3000 }
    )
    // The generator reaches the fast path often enough to test it: about 1 run in 30 (one CI run saw 74 of
    // 3,000), so at least 1 in 60, which a fair run never misses.
    expect(usual).toBeGreaterThan(runs / 60)
  }, 120_000)

  it("gives what JSON.parse gives, for tool-call fragments of any shape, valid or not", async () => {
    let fragments = 0
    let runs = 0
    await fc.assert(
      fc.asyncProperty(fragmentChunk, fc.integer(), edits, async (json, seed, edit) => {
        const { value, bytes } = chunkText(json, seed, edit)
        runs++
        if (matchFragment(value) !== null) fragments++
        await decodesAsJsonParse(value, bytes)
      }),
      { numRuns: 3000 }
    )
    // The generator reaches the fast path often enough to test it, and misses it too.
    expect(fragments).toBeGreaterThan(runs / 20)
    expect(fragments).toBeLessThan(runs / 2)
  }, 120_000)

  const usualChunk = (delta: string) =>
    JSON.stringify({
      id: "chatcmpl-9xKqBf3ZyX2mPd7LrV1nC8tE4hJ6w",
      object: "chat.completion.chunk",
      created: 1731412800,
      model: "gpt-4o-mini-2024-07-18",
      system_fingerprint: "fp_0ba0d124f1",
      choices: [{ index: 0, delta: JSON.parse(delta), logprobs: null, finish_reason: null }]
    })

  it("takes the chunks servers usually send", () => {
    expect(usualContent(usualChunk('{"content":"Hello"}'))).toBe("Hello")
    expect(usualContent(usualChunk('{"role":"assistant","content":""}'))).toBe("")
    expect(usualContent(usualChunk('{"content":"a \\"quoted\\"\\nline \\u00e9 😀"}'))).toBe('a "quoted"\nline é 😀')
    expect(usualContent(' { "choices" : [ { "delta" : { "content" : "x" } } ] , "usage" : null }\n')).toBe("x")
    expect(usualContent('{"choices":[{"delta":{"content":"x"},"finish_reason":null}],"error":null,"n":-0.5e+3}')).toBe(
      "x"
    )
  })

  /** What the fast path may answer for `data`: the content of a usual chunk as JSON.parse reads it. */
  const usualByJsonParse = (data: string): string | undefined => {
    let body: unknown
    try {
      body = JSON.parse(data)
    } catch {
      return undefined
    }
    if (!isObject(body) || (body.error !== undefined && body.error !== null) || isObject(body.usage)) return undefined
    if (!Array.isArray(body.choices) || !isObject(body.choices[0]) || !isObject(body.choices[0].delta)) return undefined
    const choice = body.choices[0]
    if (typeof choice.finish_reason === "string") return undefined
    // Another choice, logprobs, or anything a delta carries besides text: never the usual chunk.
    if (body.choices.length !== 1 || ("index" in choice && choice.index !== 0)) return undefined
    if (choice.logprobs !== undefined && choice.logprobs !== null) return undefined
    const delta = choice.delta as Record<string, unknown>
    for (const key of [
      "reasoning_content",
      "reasoning",
      "reasoning_details",
      "refusal",
      "tool_calls",
      "function_call"
    ]) {
      if (delta[key] !== undefined && delta[key] !== null) return undefined
    }
    const content = delta.content
    return typeof content === "string" ? content : undefined
  }
  /** The reasoning of a usual reasoning chunk by JSON.parse: its content null or "", nothing else carried. */
  const reasoningByJsonParse = (data: string): string | undefined => {
    let body: unknown
    try {
      body = JSON.parse(data)
    } catch {
      return undefined
    }
    if (!isObject(body) || (body.error !== undefined && body.error !== null) || isObject(body.usage)) return undefined
    if (!Array.isArray(body.choices) || body.choices.length !== 1) return undefined
    const choice = body.choices[0]
    if (!isObject(choice) || !isObject(choice.delta) || typeof choice.finish_reason === "string") return undefined
    if (("index" in choice && choice.index !== 0) || (choice.logprobs !== undefined && choice.logprobs !== null))
      return undefined
    const delta = choice.delta
    if (delta.content !== undefined && delta.content !== null && delta.content !== "") return undefined
    for (const key of ["reasoning_details", "refusal", "tool_calls", "function_call"]) {
      if (delta[key] !== undefined && delta[key] !== null) return undefined
    }
    const texts = ["reasoning_content", "reasoning"].filter((k) => delta[k] !== undefined && delta[k] !== null)
    if (texts.length !== 1) return undefined
    const text = delta[texts[0]!]
    return typeof text === "string" ? text : undefined
  }
  // Text a character or a token away from a usual chunk, drawn from the edges of the grammar: the
  // whitespace JSON allows and what it does not, raw control characters, valid and invalid escapes and
  // numbers, special keys twice or at the wrong level.
  const nearUsual = fc
    .tuple(
      fc.array(
        fc.oneof(
          fc.constantFrom("", " ", "\t", "\n", "\r", "\f", "\v", "\u00a0", "\ufeff", "\u2028", ",", "x"),
          fc.constantFrom('"k":1', '"k":01', '"k":1.', '"k":+1', '"k":.5', '"k":1e', '"k":-0e+5', '"k":"v"'),
          fc.constantFrom('"k":true', '"k":tru', '"k":null', '"k":{}', '"k":[]', '"__proto__":1', '"choices":1'),
          fc.constantFrom('"error":null', '"error":false', '"error":true', '"usage":null', '"usage":{}', '"usage":1'),
          fc.constantFrom(
            '"content":"b"',
            '"content":null',
            '"delta":{}',
            '"finish_reason":null',
            '"finish_reason":"stop"'
          ),
          fc.constantFrom('"con\\u0074ent":"e"', '"index":0', '"choices":[]'),
          fc.constantFrom(
            '"reasoning_content":"r"',
            '"reasoning_content":null',
            '"reasoning":"r"',
            '"tool_calls":[]',
            '"tool_calls":null',
            '"refusal":"no"',
            '"refusal":null',
            '"function_call":{}',
            '"index":1',
            '"index":0.0',
            '"logprobs":{}',
            '"logprobs":null'
          )
        ),
        { maxLength: 3 }
      ),
      fc.array(
        fc.oneof(
          fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
          fc.constantFrom("\\n", "\\v", "\\'", "\\0", "\\a", "\\/", "\\\\", '\\"', "\\u00e9", "\\u00g9"),
          fc.constantFrom("\\u12", "\\ud800", "\\uD83D\\uDE00", "\\x41", "\u001f", "\u0000", "\u007f", "é😀")
        ),
        { maxLength: 4 }
      ),
      fc.tuple(fc.nat(7), fc.nat(7), fc.nat(7)),
      fc.constantFrom("content", "content", "reasoning_content", "reasoning")
    )
    .map(([tokens, chars, [a, b, c], key]) => {
      // The tokens go in one of the objects (or the array, or around the whole), before or after its
      // own field (the text's key: content, or one of reasoning's two).
      const parts = ["{", '"choices":[', "{", '"delta":{', `"${key}":"`, chars.join(""), '"', "}", "}", "]", "}"]
      const extra = tokens.join(a % 2 === 0 ? "," : "")
      const at = [0, 1, 2, 3, 4, 7, 8, 9, 10, 11][(a + b + c) % 10]!
      const glue = b % 3 === 0 ? extra : c % 2 === 0 ? `${extra},` : `,${extra}`
      return [...parts.slice(0, at), glue, ...parts.slice(at)].join("")
    })

  it("answers only what JSON.parse would, for text near a usual chunk", () => {
    let usual = 0
    let thinking = 0
    fc.assert(
      fc.property(nearUsual, (data) => {
        const got = usualContent(data)
        if (got !== undefined) {
          usual++
          expect(got).toBe(usualByJsonParse(data))
        }
        const reasoning = usualReasoning(data)
        if (reasoning !== undefined) {
          thinking++
          expect(got).toBeUndefined()
          expect(reasoning).toBe(reasoningByJsonParse(data))
        }
      }),
      { numRuns: 30_000 }
    )
    // Half the texts are content, half reasoning: each reaches its fast path often enough to test it.
    expect(usual).toBeGreaterThan(800)
    expect(thinking).toBeGreaterThan(800)
  })

  // After a usual chunk, one that starts as it did up to its text is read from there (the rest of the
  // expression only): its answer must be the whole expression's, whatever follows that prefix.
  it("answers only what JSON.parse would, for text after a usual chunk's prefix", () => {
    let known = 0
    let byTail = 0
    fc.assert(
      fc.property(
        nearUsual,
        fc.constantFrom("content", "reasoning_content", "reasoning"),
        fc.constantFrom("", " ", '"index":0,', '"role":"assistant",', '"content":null,', '"content":"",'),
        (near, key, before) => {
          // The prefix of a usual chunk with `key`'s text, and the text near a usual chunk from its own text on.
          const prefix = `{"id":"c","choices":[{"index":0,"delta":{${key === "content" ? "" : before}"${key}":`
          const tail = near.slice(near.indexOf(':"', near.indexOf('"delta":{')) + 1)
          if (!tail.startsWith('"')) return
          const primer = `${prefix}"p"}}]}`
          const afterPrimer = (read: (data: string) => string | undefined, data: string) => {
            forgetKnownPrefix()
            expect(key === "content" ? usualContent(primer) : usualReasoning(primer)).toBe("p")
            return read(data)
          }
          const data = prefix + tail
          const got = afterPrimer(usualContent, data)
          byTail += readByTail()
          const reasoning = afterPrimer(usualReasoning, data)
          // The same answers as the whole expression's, with no prefix known.
          forgetKnownPrefix()
          expect(usualContent(data)).toBe(got)
          forgetKnownPrefix()
          expect(usualReasoning(data)).toBe(reasoning)
          if (got !== undefined) expect(got).toBe(usualByJsonParse(data))
          if (reasoning !== undefined) {
            expect(got).toBeUndefined()
            expect(reasoning).toBe(reasoningByJsonParse(data))
          }
          if (got !== undefined || reasoning !== undefined) known++
        }
      ),
      { numRuns: 30_000 }
    )
    expect(known).toBeGreaterThan(1000)
    // The tail did read a good share of them (a prefix off by one character would read none).
    expect(byTail).toBeGreaterThan(500)
  })

  it("reads a stream's chunks after its first text by the tail, past the opening role chunk", () => {
    forgetKnownPrefix()
    const head = '{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1,"model":"gpt-4o",'
    const role = `${head}"choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`
    expect(usualContent(role)).toBe("")
    const texts = ["Hel", "lo", " 世界", " 😀", ' "q"', "!"]
    for (let i = 0; i < 30; i++) {
      const text = texts[i % texts.length]!
      const chunk = `${head}"choices":[{"index":0,"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}],"obfuscation":"${"x".repeat(i % 7)}"}`
      expect(usualContent(chunk)).toBe(text)
    }
    // The first content chunk gives the prefix; the 29 after it are read from their text on.
    expect(readByTail()).toBe(29)
  })

  /** The call index and arguments of a usual tool-call fragment, as JSON.parse reads it; `undefined` when not one. */
  const fragmentByJsonParse = (data: string): [number, string] | undefined => {
    let body: unknown
    try {
      body = JSON.parse(data)
    } catch {
      return undefined
    }
    const absent = (u: unknown) => u === undefined || u === null
    if (!isObject(body) || !absent(body.error) || !absent(body.usage)) return undefined
    if (!Array.isArray(body.choices) || body.choices.length !== 1) return undefined
    const choice = body.choices[0]
    if (!isObject(choice) || !isObject(choice.delta) || !absent(choice.finish_reason) || !absent(choice.logprobs))
      return undefined
    if ("index" in choice && choice.index !== 0) return undefined
    const delta = choice.delta
    if (!absent(delta.content) && delta.content !== "") return undefined
    for (const key of ["reasoning_content", "reasoning", "reasoning_details", "refusal", "function_call"]) {
      if (!absent(delta[key])) return undefined
    }
    const calls = delta.tool_calls
    if (!Array.isArray(calls) || calls.length !== 1 || !isObject(calls[0])) return undefined
    const call = calls[0]
    if (Object.keys(call).join() !== "index,function" || !Number.isInteger(call.index) || !isObject(call.function))
      return undefined
    const args = call.function.arguments
    if (Object.keys(call.function).join() !== "arguments" || typeof args !== "string") return undefined
    return [call.index as number, args]
  }
  // Text a character or a token away from a usual tool-call fragment (as `nearUsual`): an id, a type or a
  // name, a second call, an index that is not an integer, nested values, escapes, whitespace JSON allows or not.
  const nearFragment = fc
    .tuple(
      fc.array(
        fc.oneof(
          fc.constantFrom("", " ", "\t", "\n", "\r", "\f", "\u00a0", ",", "x", '"k":1', '"k":01', '"k":"v"', '"k":{}'),
          fc.constantFrom('"k":[1]', '"k":{"a":1}', '"error":null', '"error":1', '"usage":null', '"usage":{}'),
          fc.constantFrom('"id":"call_1"', '"id":null', '"type":"function"', '"name":"f"', '"name":null'),
          fc.constantFrom(
            '"arguments":"x"',
            '"index":0',
            '"index":1',
            '"function":{}',
            '{"index":1}',
            '"tool_calls":null'
          ),
          fc.constantFrom('"content":""', '"content":null', '"content":"a"', '"refusal":null', '"reasoning":""'),
          fc.constantFrom('"finish_reason":null', '"finish_reason":"stop"', '"logprobs":null', '"role":"assistant"'),
          fc.constantFrom('"argu\\u006dents":"e"', '"function_call":null', '"function_call":{}', '"choices":[]')
        ),
        { maxLength: 3 }
      ),
      fc.array(
        fc.oneof(
          fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
          fc.constantFrom("\\n", "\\v", "\\'", "\\0", "\\/", "\\\\", '\\"', "\\u00e9", "\\u00g9", '{\\"a\\":'),
          fc.constantFrom("\\u12", "\\ud800", "\\uD83D\\uDE00", "\\x41", "\u001f", "\u0000", "\u007f", "é😀")
        ),
        { maxLength: 4 }
      ),
      fc.constantFrom(
        "0",
        "0",
        "3",
        "12",
        "123456789",
        "1234567890",
        "-1",
        "-0",
        "1.0",
        "1e0",
        "01",
        '"1"',
        "null",
        " 2 "
      ),
      fc.tuple(fc.nat(15), fc.nat(15), fc.nat(15))
    )
    .map(([tokens, chars, index, [a, b, c]]) => {
      const parts = [
        "{",
        '"choices":[',
        "{",
        '"delta":{',
        '"tool_calls":[',
        "{",
        `"index":${index},`,
        '"function":{',
        '"arguments":"',
        chars.join(""),
        '"',
        "}",
        "}",
        "]",
        "}",
        "}",
        "]",
        "}"
      ]
      const extra = tokens.join(a % 2 === 0 ? "," : "")
      const at = (a + b + c) % (parts.length + 1)
      const glue = b % 3 === 0 ? extra : c % 2 === 0 ? `${extra},` : `,${extra}`
      return [...parts.slice(0, at), glue, ...parts.slice(at)].join("")
    })

  /** `stepOf`'s answer for `data`, or the tag of what it throws. */
  const stepFor = (data: string) => {
    try {
      return stepOf(SERVER, { event: "message", data, id: undefined, retry: undefined }, [])
    } catch (error) {
      return (error as { _tag?: string })._tag
    }
  }

  it("answers only what JSON.parse would, for text near a usual tool-call fragment", () => {
    let fast = 0
    let parsed = 0
    fc.assert(
      fc.property(nearFragment, (data) => {
        const got = matchFragment(data)
        const want = fragmentByJsonParse(data)
        if (want !== undefined) parsed++
        if (got === null) return
        fast++
        expect([got[0], stringOf(got[1])]).toEqual(want)
        // The delta the fast path gives is the one JSON.parse's path gives (a chunk past 4,096 characters takes it).
        const step = stepFor(data)
        const byParse = stepFor(data + " ".repeat(4097))
        assert(step instanceof Delta && byParse instanceof Delta)
        expect({ ...step }).toStrictEqual({ ...byParse })
        expect(JSON.stringify(step.toolCalls)).toBe(JSON.stringify(byParse.toolCalls))
        expect(step.chunk).toStrictEqual(byParse.chunk)
        expect(Delta.text(step)).toBe(data)
      }),
      { numRuns: 30_000 }
    )
    // The fast path is reached often, and not for all that JSON.parse would read as a fragment (escapes in keys, ...).
    expect(fast).toBeGreaterThan(800)
    expect(parsed).toBeGreaterThan(fast)
  })

  // After a fragment, one that starts as it did up to its arguments is read from there (the tail of the
  // expression only): its answer must be the whole expression's, whatever follows that prefix.
  it("answers only what JSON.parse would, for text after a tool-call fragment's prefix", () => {
    let byTail = 0
    fc.assert(
      fc.property(
        nearFragment,
        fc.constantFrom("", " ", '"role":"assistant",', '"content":null,', '"content":"",', '"refusal":null,'),
        (near, before) => {
          const prefix = `{"id":"c","choices":[{"index":0,"delta":{${before}"tool_calls":[{"index":3,"function":{"arguments":`
          const at = near.indexOf('"arguments":')
          if (at === -1) return
          const data = prefix + near.slice(at + '"arguments":'.length)
          forgetFragmentPrefix()
          expect(matchFragment(`${prefix}"p"}}]}}]}`)).toEqual([3, '"p"'])
          const got = matchKnownFragment(data)
          forgetFragmentPrefix()
          // The same answer as the whole expression's, with no prefix known.
          expect(got).toEqual(matchFragment(data))
          if (got === null) return
          byTail++
          expect([got[0], stringOf(got[1])]).toEqual(fragmentByJsonParse(data))
        }
      ),
      { numRuns: 30_000 }
    )
    // The tail did read most of them (a prefix off by one character would read none).
    expect(byTail).toBeGreaterThan(4000)
  })

  it("reads a stream's tool-call fragments without JSON.parse", async () => {
    const head = {
      id: "chatcmpl-T",
      object: "chat.completion.chunk",
      created: 1,
      model: "gpt-4o",
      system_fingerprint: "fp"
    }
    const chunk = (delta: unknown, finish: string | null = null) =>
      JSON.stringify({ ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })
    const call = (index: number, name: string) => ({
      index,
      id: `call_${index}`,
      type: "function",
      function: { name, arguments: "" }
    })
    const args = [
      JSON.stringify({ location: "東京, 日本", unit: "celsius" }),
      JSON.stringify({ query: 'a "quoted" \\ path\n😀', max_results: 5 })
    ]
    const pieces = args.map((a) => a.match(/.{1,4}/gsu)!)
    const events = [
      chunk({ role: "assistant", content: null, tool_calls: [call(0, "get_weather")], refusal: null }),
      ...pieces[0]!.map((p) => chunk({ tool_calls: [{ index: 0, function: { arguments: p } }] })),
      chunk({ tool_calls: [call(1, "search_web")] }),
      ...pieces[1]!.map((p) => chunk({ tool_calls: [{ index: 1, function: { arguments: p } }] })),
      chunk({}, "tool_calls")
    ]
    const bytes = encoder.encode(`${events.map((e) => `data: ${e}\n\n`).join("")}data: [DONE]\n\n`)
    forgetKnownPrefix()
    forgetFragmentPrefix()
    const result = await streamOf(
      memory(() => [bytes]),
      { messages: [{ role: "user", content: "x" }] }
    )
    // Every fragment went through the fast path, all but each call's first by the tail alone; each call's
    // first chunk and the finish did not.
    const fragments = pieces[0]!.length + pieces[1]!.length
    expect(readAsFragment()).toEqual({ all: fragments, byTail: fragments - 2 })
    assert(result._tag === "Right")
    const joined = ["", ""]
    for (const delta of result.right)
      for (const c of delta.toolCalls ?? []) joined[c.index] += c.function?.arguments ?? ""
    expect(joined).toEqual(args)
  })

  it("leaves to JSON.parse what it cannot vouch for", () => {
    for (const data of [
      '{"choices":[{"delta":{"content":"a"}}]}\f',
      '\ufeff{"choices":[{"delta":{"content":"a"}}]}',
      '{"choices":[{"delta":{"content":"a"}}]}\u00a0',
      '{"choices":[{"delta":{"content":"a\u001fb"}}]}',
      '{"choices":[{"delta":{"content":"a\u0001b"}}]}',
      '{"choices":[{"delta":{"content":"a\u0000b"}}]}',
      '{"choices":[{"delta":{"content":"a\\vb"}}]}',
      '{"choices":[{"delta":{"content":"a\\\'b"}}]}',
      '{"choices":[{"delta":{"content":"\\u00g9"}}]}',
      '{"choices":[{"delta":{"content":"\\u12"}}]}',
      '{"choices":[{"delta":{"content":"a",}}]}',
      '{"choices":[{"delta":{"content":"a"}}],"choices":1}',
      '{"choices":[{"delta":{"content":"a"}}],"usage":{}}',
      '{"choices":[{"delta":{"content":"a"}}],"usage":true}',
      '{"choices":[{"delta":{"content":"a"}}],"error":true}',
      '{"choices":[{"delta":{"content":"a"}}],"x":+1}',
      '{"choices":[{"delta":{"content":"a"}}],"x":1.}',
      'x{"choices":[{"delta":{"content":"a"}}]}',
      '{"choices":[{"delta":{"con\\u0074ent":"escaped key"}}]}',
      '{"choices":[{"delta":{"content":"a","content":"b"}}]}',
      '{"choices":[{"delta":{"content":"a"}}],"choices":[]}',
      '{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}',
      '{"choices":[{"delta":{"content":"a"}}],"usage":{"total_tokens":1}}',
      '{"choices":[{"delta":{"content":"a"}}],"error":"boom"}',
      '{"choices":[{"delta":{"content":"a"}},{"delta":{"content":"b"}}]}',
      '{"choices":[{"delta":{"content":null}}]}',
      '{"choices":[{"delta":{"content":"a"}}],"x":01}',
      '{"choices":[{"delta":{"content":"a\tb"}}]}',
      '{"choices":[{"delta":{"content":"a\\x"}}]}',
      '{"choices":[{"delta":{"content":"a"}}],}',
      '{"choices":[{"delta":{"content":"a"}}]}x',
      `{"choices":[{"delta":{"content":"${"a".repeat(5000)}"}}]}`,
      // Chunks that carry more than text: reasoning, tool calls, a refusal, logprobs, another choice.
      '{"choices":[{"delta":{"content":"","reasoning_content":"think"}}]}',
      '{"choices":[{"delta":{"content":"a","reasoning":"think"}}]}',
      '{"choices":[{"delta":{"content":"","tool_calls":[{"index":0}]}}]}',
      '{"choices":[{"delta":{"content":"","refusal":"no"}}]}',
      '{"choices":[{"delta":{"content":"","function_call":{"name":"f"}}}]}',
      '{"choices":[{"delta":{"content":"a","reasoning_details":[]}}]}',
      '{"choices":[{"index":1,"delta":{"content":"a"}}]}',
      '{"choices":[{"delta":{"content":"a"},"logprobs":{"content":[]}}]}',
      '{"choices":[{"delta":{"content":"a","reasoning_content":null,"reasoning_content":"x"}}]}'
    ]) {
      expect(usualContent(data), data.slice(0, 60)).toBeUndefined()
    }
  })
})

// The usual request is checked without Schema (internal/request.ts): whatever
// it accepts must be exactly what the schema's decoder gives, and everything
// else must go to the decoder.
describe("the usual request's fast path", () => {
  // The decoder `validate` falls back to, built here from the public schema: the oracle.
  const decode = Schema.decodeUnknownEither(ChatRequest, { errors: "first", onExcessProperty: "preserve" })
  const values = fc.constantFrom<unknown>(
    0,
    -0,
    0.5,
    1,
    1.5,
    2,
    2.5,
    -1,
    -2,
    -2.5,
    3,
    1e-9,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    7,
    7.5,
    2 ** 53,
    undefined,
    null,
    true,
    false,
    "",
    "m",
    "1",
    [],
    {}
  )
  const roles = fc.oneof(
    { weight: 9, arbitrary: fc.constantFrom<unknown>("user", "system", "assistant", "tool", "developer", "function") },
    fc.constantFrom<unknown>("User", "", 1)
  )
  const contents = fc.oneof(
    { weight: 9, arbitrary: fc.string({ maxLength: 6 }) },
    fc.constantFrom<unknown>(null, [], [{ type: "text" }], 1)
  )
  // Mostly what the field takes, sometimes anything.
  const takes: Record<string, fc.Arbitrary<unknown>> = {
    model: fc.string({ minLength: 1, maxLength: 4 }),
    stream: fc.boolean(),
    temperature: fc.double({ min: 0, max: 2 }),
    top_p: fc.double({ min: 0, max: 1 }),
    presence_penalty: fc.double({ min: -2, max: 2 }),
    frequency_penalty: fc.double({ min: -2, max: 2 }),
    max_tokens: fc.integer({ min: 1, max: 5000 })
  }
  const message = fc.oneof(
    { weight: 30, arbitrary: fc.record({ role: roles, content: contents }) },
    fc.record({ role: roles, content: contents }).map(({ role, content }) => ({ content, role })),
    fc.record({ role: roles, content: contents, name: fc.string({ maxLength: 3 }) }),
    fc.record({ role: roles }),
    fc.constantFrom<unknown>(null, "user", []),
    fc.record({ role: roles, content: contents }).map((m) => Object.assign(Object.create(null), m)),
    fc.record({ role: roles, content: contents }).map((m) => ({ ...m, [Symbol.for("x")]: 1 }))
  )
  const names = [
    "model",
    "stream",
    "temperature",
    "top_p",
    "presence_penalty",
    "frequency_penalty",
    "max_tokens",
    "activeServer",
    "stop",
    "n"
  ]
  const request = fc
    .record({
      messages: fc.oneof(
        { weight: 8, arbitrary: fc.array(message, { minLength: 1, maxLength: 3 }) },
        fc.constantFrom<unknown>([], null, "hi", undefined)
      ),
      fields: fc.uniqueArray(
        fc
          .constantFrom(...names)
          .chain((n) =>
            fc.tuple(fc.constant(n), takes[n] ? fc.oneof({ weight: 4, arbitrary: takes[n] }, values) : values)
          ),
        { maxLength: 4, selector: ([n]) => n }
      ),
      messagesAt: fc.nat(4),
      shape: fc.oneof(
        { weight: 12, arbitrary: fc.constant("plain") },
        fc.constantFrom("nullProto", "hidden", "hiddenExtra", "symbol", "array")
      )
    })
    .map(({ messages, fields, messagesAt, shape }) => {
      const entries: Array<[string, unknown]> = fields.map(([n, v]) => [n, v])
      if (messages !== undefined) entries.splice(Math.min(messagesAt, entries.length), 0, ["messages", messages])
      const input: Record<string | symbol, unknown> =
        shape === "nullProto" ? Object.create(null) : shape === "array" ? ([] as unknown as object) : {}
      for (const [n, v] of entries) input[n] = v
      // Not enumerable: an extra field, or the last one given (known or not, `messages` too).
      if (shape === "hiddenExtra") Object.defineProperty(input, "stop", { value: "x", enumerable: false })
      const last = entries.at(-1)
      if (shape === "hidden" && last !== undefined) {
        Object.defineProperty(input, last[0], { value: last[1], enumerable: false })
      }
      if (shape === "symbol") input[Symbol.for("y")] = 1
      return input
    })

  it("gives what the schema's decoder gives, or leaves the request to it", () => {
    let taken = 0
    fc.assert(
      fc.property(request, (input) => {
        const fast = usualRequest(input)
        if (fast === undefined) return
        taken++
        const slow = decode(input)
        expect(Either.isRight(slow), "the fast path accepted what the decoder refuses").toBe(true)
        const right = Either.getOrThrow(slow)
        expect(fast).toStrictEqual(right)
        // The same fields in the same order: they become the body's JSON.
        expect(JSON.stringify(fast)).toBe(JSON.stringify(right))
      }),
      { numRuns: 30_000 }
    )
    // The generator reaches the fast path often, or the property above would say nothing.
    expect(taken).toBeGreaterThan(1_000)
  })

  it("takes the requests callers usually make, and validate answers with it", () => {
    for (const input of [
      { messages: [{ role: "user", content: "Hi" }] },
      {
        model: "gpt-4o-mini",
        messages: [
          { role: "system", content: "" },
          { role: "user", content: "Hi" }
        ]
      },
      { messages: [{ role: "user", content: "Hi" }], stream: true, temperature: 0, top_p: 1, max_tokens: 64 },
      { messages: [{ role: "user", content: "Hi" }], presence_penalty: -2, frequency_penalty: 2 }
    ]) {
      const fast = usualRequest(input)
      expect(fast, JSON.stringify(input)).toStrictEqual(Either.getOrThrow(decode(input)))
      expect(Either.getOrThrow(validate(input))).toStrictEqual(fast)
    }
  })

  it("leaves to the decoder what it cannot vouch for", () => {
    const hi = [{ role: "user", content: "Hi" }]
    for (const input of [
      { messages: [{ content: "Hi", role: "user" }] },
      { messages: [{ role: "user", content: "Hi", name: "me" }] },
      { messages: [{ role: "user", content: null }] },
      { messages: hi, temperature: undefined },
      { messages: hi, activeServer: 0 },
      { messages: hi, stop: ["\n"] },
      { messages: hi, max_tokens: 1.5 },
      { messages: hi, temperature: 2.0000001 },
      { messages: hi, top_p: Number.NaN },
      { messages: [] },
      Object.assign(Object.create(null), { messages: hi })
    ]) {
      expect(usualRequest(input), JSON.stringify(input)).toBeUndefined()
    }
    // Messages only inherited (a polluted prototype) are not the request's: the decoder says they are missing.
    Object.defineProperty(Object.prototype, "messages", { value: hi, configurable: true })
    try {
      expect(usualRequest({ stop: ["\n"] })).toBeUndefined()
    } finally {
      delete (Object.prototype as { messages?: unknown }).messages
    }
  })
})
