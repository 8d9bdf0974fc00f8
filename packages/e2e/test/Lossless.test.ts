// Nothing lost: testkit's fixtures (real servers' bytes) served by a real
// mirror on 127.0.0.1, read through `complete`, the delta streams, the text
// stream and the reducers, on both transports, and compared field by field
// with the fixture itself: the whole body for `complete`, the chunks for the
// deltas. Then the reasoning phase as activity: it is the first token, it
// keeps `idle` alive, and once delivered it rules out failover.
import { Chat, type ChatCompletion, type ChatDelta, Client, type EasyChat } from "@easychat/core"
import { Fixtures, MirrorPool, MirrorServer } from "@easychat/testkit"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { failure, messages, posts, run, transports } from "./support.js"

type Fixture = Fixtures.Fixture
type Json = Record<string, any>

const request = { messages }

const isObject = (u: unknown): u is Json => typeof u === "object" && u !== null && !Array.isArray(u)
const nonEmpty = (u: unknown): u is string => typeof u === "string" && u !== ""
const nonEmptyArray = (u: unknown): u is ReadonlyArray<unknown> => Array.isArray(u) && u.length > 0

const chunksOf = (f: Fixture) => Fixtures.chunksOf(f) as ReadonlyArray<Json>
const wholeOf = (f: Fixture) => Fixtures.wholeOf(f) as Json

// ---------------------------------------------------------------------------
// What the stream must give, written from the ChatDelta contract

/**
 * Whether a choice of a chunk is worth a delta: text, reasoning or a refusal
 * that is not empty, tool-call fragments, a legacy function_call, OpenRouter's
 * reasoning_details, logprobs, or a finish reason. A role-only chunk is not.
 */
const choiceCarries = (choice: Json): boolean => {
  const d = isObject(choice.delta) ? choice.delta : {}
  return (
    nonEmpty(d.content) ||
    nonEmpty(d.reasoning_content) ||
    nonEmpty(d.reasoning) ||
    nonEmpty(d.refusal) ||
    nonEmptyArray(d.tool_calls) ||
    isObject(d.function_call) ||
    nonEmptyArray(d.reasoning_details) ||
    (choice.logprobs !== undefined && choice.logprobs !== null) ||
    typeof choice.finish_reason === "string"
  )
}
/** A chunk carries something when one of its choices does, or when it brings the usage. */
const chunkCarries = (chunk: Json): boolean =>
  isObject(chunk.usage) || (Array.isArray(chunk.choices) && chunk.choices.some(choiceCarries))

/** The fields of a delta, as plain data (`chunk` and `server` are checked on their own). */
const DELTA_FIELDS = [
  "choice",
  "content",
  "reasoning",
  "reasoningDetails",
  "toolCalls",
  "functionCall",
  "refusal",
  "logprobs",
  "finishReason",
  "usage"
] as const
const fieldsOf = (delta: ChatDelta): Json => {
  const out: Json = {}
  for (const key of DELTA_FIELDS) if (delta[key] !== undefined) out[key] = delta[key]
  return out
}

/** The deltas a chunk gives: one per choice that carries something; the usage on the first (or a delta of its own). */
const expectedDeltasOf = (chunk: Json): Array<Json> => {
  const choices: Array<Json> = Array.isArray(chunk.choices) ? chunk.choices : []
  const out = choices.filter(choiceCarries).map((choice) => {
    const d: Json = isObject(choice.delta) ? choice.delta : {}
    const e: Json = { choice: choice.index, content: typeof d.content === "string" ? d.content : "" }
    const reasoning = nonEmpty(d.reasoning_content) ? d.reasoning_content : d.reasoning
    if (nonEmpty(reasoning)) e.reasoning = reasoning
    if (nonEmptyArray(d.reasoning_details)) e.reasoningDetails = d.reasoning_details
    if (nonEmptyArray(d.tool_calls)) e.toolCalls = d.tool_calls
    if (isObject(d.function_call)) {
      e.functionCall = d.function_call
      e.toolCalls ??= [{ index: 0, function: d.function_call }]
    }
    if (nonEmpty(d.refusal)) e.refusal = d.refusal
    if (choice.logprobs !== undefined && choice.logprobs !== null) e.logprobs = choice.logprobs
    if (typeof choice.finish_reason === "string") e.finishReason = choice.finish_reason
    return e
  })
  if (isObject(chunk.usage)) {
    if (out.length === 0) out.push({ choice: choices[0]?.index ?? 0, content: "" })
    out[0]!.usage = chunk.usage
  }
  return out
}

/** The distinct chunk objects of the deltas, in order (the deltas of one chunk share it). */
const distinctChunks = (deltas: ReadonlyArray<ChatDelta>): Array<unknown> => {
  const out: Array<unknown> = []
  for (const delta of deltas) if (out.at(-1) !== delta.chunk) out.push(delta.chunk)
  return out
}

/** What the deltas of each choice add up to, by hand. */
const joinByChoice = (deltas: ReadonlyArray<ChatDelta>) => {
  const choices = new Map<
    number,
    { content: string; reasoning: string; refusal: string; args: Array<string>; finishReasons: Array<string> }
  >()
  for (const d of deltas) {
    let c = choices.get(d.choice)
    if (c === undefined)
      choices.set(d.choice, (c = { content: "", reasoning: "", refusal: "", args: [], finishReasons: [] }))
    c.content += d.content
    c.reasoning += d.reasoning ?? ""
    c.refusal += d.refusal ?? ""
    for (const call of d.toolCalls ?? [])
      c.args[call.index] = (c.args[call.index] ?? "") + (call.function?.arguments ?? "")
    if (d.finishReason !== undefined) c.finishReasons.push(d.finishReason)
  }
  return choices
}

/** The tool-call arguments of a whole message, by index (a legacy function_call is index 0). */
const argumentsOf = (message: Json): Array<string> =>
  Array.isArray(message.tool_calls)
    ? message.tool_calls.map((call: Json) => call.function.arguments)
    : isObject(message.function_call)
      ? [message.function_call.arguments]
      : []

/** The deltas of one streamed fixture, checked against its chunks and its whole body. */
const expectDeltasMatch = (f: Fixture, deltas: ReadonlyArray<ChatDelta>, server: string) => {
  const chunks = chunksOf(f)
  const carrying = chunks.filter(chunkCarries)
  // Every chunk that carries something reaches the caller, untouched and in order; no other does.
  expect(distinctChunks(deltas)).toStrictEqual(carrying)
  // Each chunk's deltas hold exactly what its choices carry (choice index, finish reason and usage included).
  expect(deltas.map(fieldsOf)).toStrictEqual(carrying.flatMap(expectedDeltasOf))
  for (const d of deltas) expect(d.server).toBe(server)

  const whole = wholeOf(f)
  const joined = joinByChoice(deltas)
  expect([...joined.keys()].sort()).toEqual(whole.choices.map((c: Json) => c.index).sort())
  for (const choice of whole.choices as Array<Json>) {
    const m: Json = choice.message
    const got = joined.get(choice.index)!
    expect(got.content).toBe(m.content ?? "")
    expect(got.reasoning).toBe(m.reasoning_content ?? m.reasoning ?? "")
    expect(got.refusal).toBe(m.refusal ?? "")
    expect(got.args).toEqual(argumentsOf(m))
    expect(got.finishReasons).toEqual([choice.finish_reason])
  }
  const usages = deltas.flatMap((d) => (d.usage === undefined ? [] : [d.usage]))
  expect(usages).toStrictEqual(chunks.filter((c) => isObject(c.usage)).map((c) => c.usage))
  // When the stream reports usage at all, it is the whole reply's.
  if (usages.length > 0) expect(usages.at(-1)).toStrictEqual(whole.usage)
}

// ---------------------------------------------------------------------------
// What `complete` must give, written from the ChatCompletion contract

const expectedChoiceOf = (choice: Json): Json => {
  const m: Json = choice.message
  const reasoning = nonEmpty(m.reasoning_content) ? m.reasoning_content : m.reasoning
  const toolCalls = Array.isArray(m.tool_calls)
    ? m.tool_calls.map((c: Json) => ({
        id: c.id,
        type: c.type,
        function: { name: c.function.name, arguments: c.function.arguments }
      }))
    : isObject(m.function_call)
      ? [{ id: "", type: "function", function: m.function_call }]
      : undefined
  return {
    index: choice.index,
    content: m.content ?? "",
    reasoning: nonEmpty(reasoning) ? reasoning : undefined,
    toolCalls,
    functionCall: isObject(m.function_call) ? m.function_call : undefined,
    refusal: nonEmpty(m.refusal) ? m.refusal : undefined,
    logprobs: choice.logprobs ?? undefined,
    finishReason: choice.finish_reason ?? undefined
  }
}

const CHOICE_FIELDS = [
  "content",
  "reasoning",
  "toolCalls",
  "functionCall",
  "refusal",
  "logprobs",
  "finishReason"
] as const

/** `complete` against the fixture's whole body, field by field. */
const expectReplyMatchesWhole = (f: Fixture, reply: ChatCompletion, server: string) => {
  const body = wholeOf(f)
  const expected = [...(body.choices as Array<Json>)].sort((a, b) => a.index - b.index).map(expectedChoiceOf)
  expect(reply.choices).toHaveLength(expected.length)
  reply.choices.forEach((choice, i) => {
    const e = expected[i]!
    expect(choice.index).toBe(e.index)
    for (const key of CHOICE_FIELDS) expect(choice[key], `choices[${i}].${key}`).toStrictEqual(e[key])
  })
  for (const key of CHOICE_FIELDS) expect(reply[key], key).toStrictEqual(expected[0]![key])
  expect(reply.usage).toStrictEqual(body.usage)
  expect(reply.model).toBe(body.model)
  expect(reply.id).toBe(body.id)
  expect(reply.created).toBe(body.created)
  expect(reply.systemFingerprint).toBe(body.system_fingerprint ?? undefined)
  expect(reply.raw).toStrictEqual(Fixtures.wholeOf(f))
  expect(reply.server).toBe(server)
}

// ---------------------------------------------------------------------------
// The reducers against `complete`

/**
 * Whether a chunk the reducer sees has `key` (even as null) in the delta of
 * choice `index`: the chunks that give deltas, or every chunk with `everyChunk`.
 */
const streamed = (f: Fixture, index: number, key: string, everyChunk: boolean) =>
  chunksOf(f)
    .filter((chunk) => everyChunk || chunkCarries(chunk))
    .some((chunk) =>
      (chunk.choices as Array<Json>).some((c) => c.index === index && isObject(c.delta) && key in c.delta)
    )

/** The message fields a stream sends in pieces and a whole reply sends whole. */
const MESSAGE_FIELDS = ["content", "tool_calls", "function_call", "reasoning_content", "reasoning", "refusal"]

/**
 * The body the reducer assembled against the whole body, on what both carry.
 * Left out, because the reducer never sees them: the whole message's
 * `annotations: []` (OpenAI); a `refusal: null` that no chunk sends
 * (OpenRouter); a null that only a chunk without a delta sends (the role
 * chunk's `content: null` of the refusal fixture, its `refusal: null` in
 * others), unless the stream was read with `everyChunk`; the whole body's
 * `usage` when the stream has none; the chunks' `obfuscation` padding, which
 * the whole body does not have.
 */
const expectRawMatchesWhole = (f: Fixture, raw: unknown, everyChunk: boolean) => {
  const body = wholeOf(f)
  const assembled = raw as Json
  for (const key of ["id", "object", "created", "model", "system_fingerprint", "service_tier", "provider"]) {
    if (key in body) expect(assembled[key], key).toStrictEqual(body[key])
  }
  expect(assembled.choices).toHaveLength(body.choices.length)
  ;(body.choices as Array<Json>).forEach((choice, i) => {
    const got: Json = assembled.choices[i]
    expect(got.index).toBe(choice.index)
    for (const key of ["finish_reason", "native_finish_reason", "logprobs"]) {
      if (key in choice) expect(got[key], `choices[${i}].${key}`).toStrictEqual(choice[key])
    }
    // The reducer starts every message as the assistant's, role chunk seen or not.
    expect(got.message.role).toBe(choice.message.role)
    for (const key of MESSAGE_FIELDS) {
      if (!(key in choice.message)) continue
      if (streamed(f, choice.index, key, everyChunk)) {
        expect(got.message[key], `choices[${i}].message.${key}`).toStrictEqual(choice.message[key])
      } else {
        // The whole reply's null says what the reducer's silence says.
        expect(choice.message[key], `choices[${i}].message.${key}`).toBeNull()
        expect(got.message).not.toHaveProperty(key)
      }
    }
    // OpenRouter streams one reasoning_details entry per chunk; the reducer joins the text of each index, as
    // the whole reply holds them.
    if (Array.isArray(choice.message.reasoning_details)) {
      expect(got.message.reasoning_details).toStrictEqual(choice.message.reasoning_details)
    }
  })
}

/** Whether the stream of `f` reports usage (several don't unless asked: the whole reply always does). */
const streamHasUsage = (f: Fixture) => chunksOf(f).some((c) => isObject(c.usage))

/** A reply assembled from the stream against `complete`'s: every field but `raw` and `server`, then `raw` on what both carry. */
const expectSameReply = (f: Fixture, assembled: ChatCompletion, whole: ChatCompletion, everyChunk = false) => {
  for (const key of [...CHOICE_FIELDS, "choices", "model", "id", "created", "systemFingerprint"] as const) {
    expect(assembled[key], key).toStrictEqual(whole[key])
  }
  if (streamHasUsage(f)) expect(assembled.usage).toStrictEqual(whole.usage)
  else expect(assembled.usage).toBeUndefined()
  expect(assembled.server).toBe(whole.server)
  expectRawMatchesWhole(f, assembled.raw, everyChunk)
}

// ---------------------------------------------------------------------------

const options = (server: MirrorServer.MirrorServer) => ({ servers: [server.url], cookieInit: "off" as const })

const collectDeltas = (chat: EasyChat.Service) =>
  Effect.map(Stream.runCollect(chat.stream(request)), Chunk.toReadonlyArray)

const drain = async <A>(iterable: AsyncIterable<A>): Promise<Array<A>> => {
  const out: Array<A> = []
  for await (const item of iterable) out.push(item)
  return out
}

/** Choice 0's text pieces, as the chunks send them. */
const choiceZeroPieces = (f: Fixture): Array<string> =>
  chunksOf(f).flatMap((chunk) =>
    (chunk.choices as Array<Json>).flatMap((c) =>
      c.index === 0 && nonEmpty(c.delta?.content) ? [c.delta.content] : []
    )
  )

describe.each(Fixtures.all.map((f) => [f.name, f] as const))("%s", (_name, f) => {
  let server: MirrorServer.MirrorServer
  // The same bytes cut every 7 bytes: through lines, JSON strings and multi-byte characters.
  let split: MirrorServer.MirrorServer
  beforeAll(async () => {
    server = await MirrorServer.start({ fixture: f })
    split = await MirrorServer.start({ fixture: f, fixtureSplit: "bytes", chunkSize: 7 })
  })
  afterAll(async () => {
    await server.close()
    await split.close()
  })

  it("the fixture says something worth checking", () => {
    expect(chunksOf(f).filter(chunkCarries).length).toBeGreaterThan(1)
  })

  describe.each(transports)("on the %s transport", (_transport, layer) => {
    let client: Client.Client
    let splitClient: Client.Client
    beforeAll(() => {
      client = Client.make(options(server), layer())
      splitClient = Client.make(options(split), layer())
    })
    afterAll(async () => {
      await client.close()
      await splitClient.close()
    })

    it("complete (Effect) gives every field of the whole body", async () => {
      const reply = await run(options(server), (chat) => chat.complete(request), layer())
      expectReplyMatchesWhole(f, reply, server.url)
    })

    it("complete (Promise) gives every field of the whole body", async () => {
      expectReplyMatchesWhole(f, await client.complete(request), server.url)
    })

    it("chat.stream gives every chunk that carries something, untouched", async () => {
      expectDeltasMatch(f, await run(options(server), collectDeltas, layer()), server.url)
    })

    it("streamDeltas gives every chunk that carries something, untouched", async () => {
      expectDeltasMatch(f, await drain(client.streamDeltas(request)), server.url)
    })

    it("Chat.collect, Chat.accumulate, streamDeltas().final() and stream().final() add up to complete", async () => {
      const [whole, collected, deltas] = await run(
        options(server),
        (chat) => Effect.all([chat.complete(request), Chat.collect(chat.stream(request)), collectDeltas(chat)]),
        layer()
      )
      expectSameReply(f, collected, whole)
      expectSameReply(f, Chat.accumulate(deltas), whole)
      expectSameReply(f, await client.streamDeltas(request).final(), whole)
      expectSameReply(f, await client.stream(request).final(), whole)
    })

    it("with everyChunk, Chat.collect sees every chunk: raw has the nulls of the role chunk too", async () => {
      const [whole, collected] = await run(
        options(server),
        (chat) => Effect.all([chat.complete(request), Chat.collect(chat.stream(request, { everyChunk: true }))]),
        layer()
      )
      expectSameReply(f, collected, whole, true)
    })

    it("the text streams give choice 0's content only", async () => {
      const text = wholeOf(f).choices.find((c: Json) => c.index === 0).message.content ?? ""
      const pieces = await drain(client.stream(request))
      expect(pieces).toEqual(choiceZeroPieces(f))
      expect(pieces.join("")).toBe(text)
      const original = await run(
        options(server),
        (chat) => Stream.runCollect(chat.createCompletion({ messages, stream: true })),
        layer()
      )
      expect(Chunk.toReadonlyArray(original)).toEqual(pieces)
    })

    it("split anywhere (7 bytes per write), the streams give the same deltas and reply", async () => {
      const [whole, deltas, collected] = await run(
        options(split),
        (chat) => Effect.all([chat.complete(request), collectDeltas(chat), Chat.collect(chat.stream(request))]),
        layer()
      )
      expectDeltasMatch(f, deltas, split.url)
      expectDeltasMatch(f, await drain(splitClient.streamDeltas(request)), split.url)
      expectSameReply(f, collected, whole)
      expectSameReply(f, await splitClient.streamDeltas(request).final(), whole)
      expect((await drain(splitClient.stream(request))).join("")).toBe(whole.content)
    })
  })
})

// ---------------------------------------------------------------------------
// Reasoning is activity

const deepseek = Fixtures.deepseekReasoning

/** DeepSeek's bytes with every reasoning delta emptied: the same timing, nothing delivered before the content. */
const silentReasoning: Fixture = {
  ...deepseek,
  name: "deepseek-reasoning-emptied",
  stream: deepseek.stream
    .split("\n")
    .map((line) => {
      if (!line.startsWith("data: {")) return line
      const chunk = JSON.parse(line.slice("data: ".length))
      for (const choice of chunk.choices)
        if (nonEmpty(choice.delta.reasoning_content)) choice.delta.reasoning_content = ""
      return `data: ${JSON.stringify(chunk)}`
    })
    .join("\n")
}

// DeepSeek's stream is 2 comments, the role chunk, 20 reasoning chunks, 12 content chunks,
// the finish chunk and [DONE], one event per write: with 60 ms between writes, the first
// reasoning delta comes at ~180 ms and the first content at ~1380 ms, far past `firstToken`.
const DELAY_MS = 60
const reasoningTimeouts = { headers: 2000, firstToken: 400, idle: 300, total: 10_000 }
const FIRST_CONTENT_MS = 23 * DELAY_MS

/** The events of DeepSeek's stream: 2 comments and the role chunk come before the first reasoning delta. */
const REASONING_STARTS_AT = 3

const attemptError = (error: any) => (error._tag === "AllServersFailed" ? error.attempts.at(-1).error : error)

describe("reasoning deltas are activity", () => {
  let servers: Array<MirrorServer.MirrorServer> = []
  let pool: MirrorPool.MirrorPool | undefined
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.close()))
    servers = []
    await pool?.close()
    pool = undefined
  })
  const start = async (fixture: Fixture) => {
    const s = await MirrorServer.start({ fixture, delayMs: DELAY_MS })
    servers.push(s)
    return s
  }

  describe.each(transports)("on the %s transport", (_transport, layer) => {
    it("a reasoning phase longer than firstToken does not time out, and keeps idle alive", async () => {
      const server = await start(deepseek)
      const started = Date.now()
      const deltas = await run(
        { ...options(server), timeouts: reasoningTimeouts },
        (chat) => collectDeltas(chat),
        layer()
      )
      // The content came well after firstToken: only the reasoning deltas kept the call alive.
      expect(Date.now() - started).toBeGreaterThan(FIRST_CONTENT_MS)
      expectDeltasMatch(deepseek, deltas, server.url)
      const client = Client.make({ ...options(server), timeouts: reasoningTimeouts }, layer())
      const reply = await client
        .streamDeltas(request)
        .final()
        .finally(() => client.close())
      expect(reply.reasoning).toBe(wholeOf(deepseek).choices[0].message.reasoning_content)
      expect(reply.content).toBe(wholeOf(deepseek).choices[0].message.content)
    })
  })

  it("control: the same timing with the reasoning emptied times out at firstToken", async () => {
    const server = await start(silentReasoning)
    const error = await failure({ ...options(server), timeouts: reasoningTimeouts }, (chat) =>
      Stream.runDrain(chat.stream(request))
    )
    expect(attemptError(error)).toMatchObject({ _tag: "Timeout", phase: "firstToken", millis: 400 })
  })

  it("a stall after reasoning deltas is an idle timeout, the reasoning kept", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "stall-mid-stream", afterDeltas: REASONING_STARTS_AT + 3 } }, {}], {
      fixture: deepseek
    })
    const seen: Array<ChatDelta> = []
    const error = await failure(
      { servers: pool.urls, cookieInit: "off", strategy: "round-robin", timeouts: reasoningTimeouts },
      (chat) => Stream.runForEach(chat.stream(request), (d) => Effect.sync(() => seen.push(d)))
    )
    expect(seen.map((d) => d.reasoning)).toEqual(["嗯", "，用户", "问"])
    expect(attemptError(error)).toMatchObject({ _tag: "Timeout", phase: "idle", server: pool.urls[0] })
    expect(posts(pool.servers[1]!)).toBe(0)
  })

  describe.each(transports)("a cut on the %s transport", (_transport, layer) => {
    const cutAfter = async (events: number) => {
      pool = await MirrorPool.start([{ fault: { kind: "close-mid-stream", afterDeltas: events } }, {}], {
        fixture: deepseek
      })
      const seen: Array<ChatDelta> = []
      const outcome = await run(
        { servers: pool.urls, cookieInit: "off", strategy: "round-robin" },
        (chat) => Effect.either(Stream.runForEach(chat.stream(request), (d) => Effect.sync(() => seen.push(d)))),
        layer()
      )
      return { outcome, seen, pool }
    }

    it("after a reasoning delta: StreamInterrupted, no failover", async () => {
      const { outcome, seen, pool } = await cutAfter(REASONING_STARTS_AT + 2)
      expect(seen.map((d) => d.reasoning)).toEqual(["嗯", "，用户"])
      expect(outcome._tag).toBe("Left")
      expect((outcome as any).left).toMatchObject({
        _tag: "StreamInterrupted",
        server: pool.urls[0],
        deltas: 2,
        characters: 0
      })
      expect(posts(pool.servers[1]!)).toBe(0)
    })

    it("control: before any delta, the same cut fails over", async () => {
      const { outcome, seen, pool } = await cutAfter(REASONING_STARTS_AT)
      expect(outcome._tag).toBe("Right")
      expect(posts(pool.servers[1]!)).toBe(1)
      expectDeltasMatch(deepseek, seen, pool.urls[1]!)
    })
  })
})

// ---------------------------------------------------------------------------
// Tool-call and refusal fragments are activity too: the same checks as for reasoning

/** `f` with `empty` applied to the delta of every choice: the same timing, without what `empty` takes out. */
const emptied = (f: Fixture, name: string, empty: (delta: Json) => void): Fixture => ({
  ...f,
  name,
  stream: f.stream
    .split("\n")
    .map((line) => {
      if (!line.startsWith("data: {")) return line
      const chunk = JSON.parse(line.slice("data: ".length))
      for (const choice of chunk.choices) if (isObject(choice.delta)) empty(choice.delta)
      return `data: ${JSON.stringify(chunk)}`
    })
    .join("\n")
})

/** The index of the first SSE event of `f` (comments included, as the faults count them) that `p` holds for. */
const eventIndex = (f: Fixture, p: (chunk: Json) => boolean) =>
  f.stream
    .split("\n\n")
    .filter((event) => event !== "")
    .findIndex((event) => event.startsWith("data: {") && p(JSON.parse(event.slice("data: ".length))))

const finishes = (chunk: Json) => (chunk.choices as Array<Json>).some((c) => typeof c.finish_reason === "string")

const fragmentKinds = [
  {
    kind: "tool-call",
    // Each call's id and name, then its arguments in about 12 fragments, both calls in turn: 27 chunks of
    // fragments from the first event on, the finish chunk at event 27 (~1620 ms with 60 ms between writes).
    fixture: Fixtures.openaiParallelToolCalls,
    silenced: emptied(Fixtures.openaiParallelToolCalls, "openai-parallel-tool-calls-emptied", (d) => {
      delete d.tool_calls
    }),
    fragmentOfDelta: (d: ChatDelta): unknown => d.toolCalls,
    fragmentOfChunk: (c: Json): unknown => c.choices[0].delta.tool_calls,
    firstTwo: [
      [
        {
          index: 0,
          id: "call_Fq8ZpK2mW7xR4tN9vB3cL6hJ",
          type: "function",
          function: { name: "get_weather", arguments: "" }
        }
      ],
      [{ index: 0, function: { arguments: '{"' } }]
    ]
  },
  {
    kind: "refusal",
    // The role chunk (refusal ""), 10 refusal fragments, the finish chunk at event 11 (~660 ms): no content ever.
    fixture: Fixtures.refusal,
    silenced: emptied(Fixtures.refusal, "refusal-emptied", (d) => {
      if (nonEmpty(d.refusal)) d.refusal = ""
    }),
    fragmentOfDelta: (d: ChatDelta): unknown => d.refusal,
    fragmentOfChunk: (c: Json): unknown => c.choices[0].delta.refusal,
    firstTwo: ["I'm", " sorry"]
  }
] as const

describe.each(fragmentKinds.map((k) => [k.kind, k] as const))("%s fragments are activity", (kind, k) => {
  const f = k.fixture
  /** The event of the first fragment: the faults' `afterDeltas` counts events. */
  const firstAt = eventIndex(f, (chunk) => k.fragmentOfChunk(chunk) !== undefined && chunkCarries(chunk))
  const finishAt = eventIndex(f, finishes)

  let servers: Array<MirrorServer.MirrorServer> = []
  let pool: MirrorPool.MirrorPool | undefined
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.close()))
    servers = []
    await pool?.close()
    pool = undefined
  })
  const start = async (fixture: Fixture) => {
    const s = await MirrorServer.start({ fixture, delayMs: DELAY_MS })
    servers.push(s)
    return s
  }

  it("the fixture: fragments from early on, the finish well past firstToken, nothing else in between", () => {
    expect(firstAt).toBeGreaterThanOrEqual(0)
    expect(firstAt * DELAY_MS).toBeLessThan(reasoningTimeouts.firstToken)
    expect(finishAt * DELAY_MS).toBeGreaterThan(reasoningTimeouts.firstToken + DELAY_MS)
    // Every chunk between the first fragment and the finish carries a fragment of this kind, and no content.
    const between = chunksOf(f).slice(firstAt, finishAt)
    for (const chunk of between) {
      expect(k.fragmentOfChunk(chunk)).toBeDefined()
      expect(nonEmpty(chunk.choices[0].delta.content)).toBe(false)
    }
    expect(between.slice(0, 2).map(k.fragmentOfChunk)).toStrictEqual(k.firstTwo)
    // The control's stream carries nothing before its finish chunk.
    expect(chunksOf(k.silenced).filter(chunkCarries)).toStrictEqual([chunksOf(k.silenced)[finishAt]])
  })

  describe.each(transports)("on the %s transport", (_transport, layer) => {
    it(`a stream of ${kind} fragments longer than firstToken does not time out, and keeps idle alive`, async () => {
      const server = await start(f)
      const started = Date.now()
      const deltas = await run(
        { ...options(server), timeouts: reasoningTimeouts },
        (chat) => collectDeltas(chat),
        layer()
      )
      // The finish came well after firstToken, with no content ever: only the fragments kept the call alive.
      expect(Date.now() - started).toBeGreaterThan(finishAt * DELAY_MS)
      expectDeltasMatch(f, deltas, server.url)
      const client = Client.make({ ...options(server), timeouts: reasoningTimeouts }, layer())
      const reply = await client
        .streamDeltas(request)
        .final()
        .finally(() => client.close())
      const expected = expectedChoiceOf(wholeOf(f).choices[0])
      for (const key of CHOICE_FIELDS) expect(reply[key], key).toStrictEqual(expected[key])
    })
  })

  it("control: the same timing with the fragments emptied times out at firstToken", async () => {
    const server = await start(k.silenced)
    const error = await failure({ ...options(server), timeouts: reasoningTimeouts }, (chat) =>
      Stream.runDrain(chat.stream(request))
    )
    expect(attemptError(error)).toMatchObject({ _tag: "Timeout", phase: "firstToken", millis: 400 })
  })

  it(`a stall after ${kind} fragments is an idle timeout, the fragments kept, no failover`, async () => {
    pool = await MirrorPool.start([{ fault: { kind: "stall-mid-stream", afterDeltas: firstAt + 3 } }, {}], {
      fixture: f
    })
    const seen: Array<ChatDelta> = []
    const error = await failure(
      { servers: pool.urls, cookieInit: "off", strategy: "round-robin", timeouts: reasoningTimeouts },
      (chat) => Stream.runForEach(chat.stream(request), (d) => Effect.sync(() => seen.push(d)))
    )
    expect(seen.map(k.fragmentOfDelta)).toStrictEqual(
      chunksOf(f)
        .slice(firstAt, firstAt + 3)
        .map(k.fragmentOfChunk)
    )
    expect(attemptError(error)).toMatchObject({ _tag: "Timeout", phase: "idle", server: pool.urls[0] })
    expect(posts(pool.servers[1]!)).toBe(0)
  })

  describe.each(transports)("a cut on the %s transport", (_transport, layer) => {
    const cutAfter = async (events: number) => {
      pool = await MirrorPool.start([{ fault: { kind: "close-mid-stream", afterDeltas: events } }, {}], {
        fixture: f
      })
      const seen: Array<ChatDelta> = []
      const outcome = await run(
        { servers: pool.urls, cookieInit: "off", strategy: "round-robin" },
        (chat) => Effect.either(Stream.runForEach(chat.stream(request), (d) => Effect.sync(() => seen.push(d)))),
        layer()
      )
      return { outcome, seen, pool }
    }

    it(`after a ${kind} fragment: StreamInterrupted, no failover`, async () => {
      const { outcome, seen, pool } = await cutAfter(firstAt + 2)
      expect(seen.map(k.fragmentOfDelta)).toStrictEqual(k.firstTwo)
      expect(seen.every((d) => d.content === "")).toBe(true)
      expect(outcome._tag).toBe("Left")
      expect((outcome as any).left).toMatchObject({
        _tag: "StreamInterrupted",
        server: pool.urls[0],
        deltas: 2,
        characters: 0
      })
      expect(posts(pool.servers[1]!)).toBe(0)
    })

    it("control: before any delta, the same cut fails over", async () => {
      const { outcome, seen, pool } = await cutAfter(firstAt)
      expect(outcome._tag).toBe("Right")
      expect(posts(pool.servers[1]!)).toBe(1)
      expectDeltasMatch(f, seen, pool.urls[1]!)
    })
  })
})
