import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { delay, HttpResponse, http } from "msw"
import { setupServer } from "msw/node"
import { afterAll, afterEach, beforeAll } from "vitest"
import { Chat, type EasyChat, Presets } from "../src/index.js"
import { DONE, failureOf, mirror, type Received, sse, withChat } from "./fixtures.js"

const A = "http://lossless-a.test"
const B = "http://lossless-b.test"
const server = setupServer()
beforeAll(() => server.listen({ onUnhandledRequest: "error" }))
afterEach(() => server.resetHandlers())
afterAll(() => server.close())

const messages = [{ role: "user" as const, content: "Weather?" }]
const data = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`
const collect = (chat: EasyChat.Service, request: Parameters<EasyChat.Service["stream"]>[0]) =>
  Effect.map(Stream.runCollect(chat.stream(request)), Chunk.toReadonlyArray)

describe("request bodies", () => {
  const bodies = async (options: Presets.Options, request: Record<string, unknown>) => {
    const log: Array<Received> = []
    server.use(...mirror(A, log))
    await withChat({ ...options, servers: [A], cookieInit: "off" }, (chat) =>
      chat.complete({ messages, ...request } as never)
    )
    return log[0]!.body as Record<string, unknown>
  }

  it("the EasyChat preset adds the original sampling defaults; null leaves one out", async () => {
    expect(await bodies(Presets.easyChat, {})).toMatchObject({
      temperature: 0.5,
      presence_penalty: 0,
      frequency_penalty: 0,
      top_p: 1
    })
    const body = await bodies(Presets.easyChat, { temperature: null, top_p: 0.3 })
    expect("temperature" in body).toBe(false)
    expect(body).toMatchObject({ top_p: 0.3, presence_penalty: 0, frequency_penalty: 0 })
  })

  it("the OpenAI-compatible and NextChat presets send only what the caller sent", async () => {
    const next = await bodies(Presets.nextChat(A), { seed: 1, stop: null })
    expect(Object.keys(next).sort()).toEqual(["messages", "model", "seed", "stop", "stream"])
    const seen: Array<Record<string, unknown>> = []
    server.use(
      http.post(`${A}/v1/chat/completions`, async ({ request }) => {
        seen.push((await request.json()) as Record<string, unknown>)
        return HttpResponse.json(whole)
      })
    )
    await withChat(Presets.openAICompatible(A), (chat) => chat.complete({ messages, temperature: 0.2 }))
    expect(Object.keys(seen[0]!).sort()).toEqual(["messages", "model", "stream", "temperature"])
  })

  it("accepts an assistant message with tool_calls and no content key, and sends it as given", async () => {
    const assistant = {
      role: "assistant" as const,
      tool_calls: [{ id: "call_1", type: "function", function: { name: "f", arguments: "{}" } }]
    }
    const tool = { role: "tool" as const, tool_call_id: "call_1", content: "42" }
    const body = await bodies(Presets.openAICompatible(A, { path: "/api/openai/v1/chat/completions" }), {
      messages: [...messages, assistant, tool]
    })
    expect(body.messages).toEqual([...messages, assistant, tool])
  })

  it("still refuses a message without content that is not an assistant's tool call", async () => {
    const error = await failureOf({ servers: [A] }, (chat) => chat.complete({ messages: [{ role: "user" }] } as never))
    expect(error).toMatchObject({ _tag: "InvalidRequest", field: "messages.0.content" })
    const assistant = await failureOf({ servers: [A] }, (chat) =>
      chat.complete({ messages: [{ role: "assistant" }] } as never)
    )
    expect(assistant).toMatchObject({ _tag: "InvalidRequest", field: "messages.0.content" })
  })
})

const whole = {
  id: "chatcmpl-w",
  object: "chat.completion",
  created: 1733480000,
  model: "m",
  system_fingerprint: "fp_1",
  choices: [
    {
      index: 0,
      message: {
        role: "assistant",
        content: null,
        reasoning_content: "Think.",
        tool_calls: [{ id: "call_1", type: "function", function: { name: "get", arguments: '{"a":1}' } }],
        refusal: null
      },
      logprobs: null,
      finish_reason: "tool_calls"
    },
    { index: 1, message: { role: "assistant", content: "Other" }, logprobs: null, finish_reason: "stop" }
  ],
  usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 }
}

describe("replies", () => {
  it("complete returns every choice, choice 0 on top, the metadata and the raw body", async () => {
    server.use(...mirror(A, [], () => HttpResponse.json(whole)))
    const reply = await withChat({ servers: [A], cookieInit: "off" }, (chat) => chat.complete({ messages }))
    expect(reply).toStrictEqual({
      content: "",
      reasoning: "Think.",
      toolCalls: [{ id: "call_1", type: "function", function: { name: "get", arguments: '{"a":1}' } }],
      finishReason: "tool_calls",
      choices: [
        {
          index: 0,
          content: "",
          reasoning: "Think.",
          toolCalls: [{ id: "call_1", type: "function", function: { name: "get", arguments: '{"a":1}' } }],
          finishReason: "tool_calls"
        },
        { index: 1, content: "Other", finishReason: "stop" }
      ],
      usage: whole.usage,
      model: "m",
      id: "chatcmpl-w",
      created: 1733480000,
      systemFingerprint: "fp_1",
      raw: whole,
      server: A
    })
  })

  const chunkOf = (choices: ReadonlyArray<unknown>, extra: Record<string, unknown> = {}) => ({
    id: "chatcmpl-w",
    object: "chat.completion.chunk",
    created: 1733480000,
    model: "m",
    system_fingerprint: "fp_1",
    choices,
    ...extra
  })
  const streamed = [
    chunkOf([{ index: 0, delta: { role: "assistant", content: null }, finish_reason: null }]),
    chunkOf([{ index: 0, delta: { reasoning_content: "Thi" }, finish_reason: null }]),
    chunkOf([
      { index: 0, delta: { reasoning_content: "nk." }, finish_reason: null },
      { index: 1, delta: { role: "assistant", content: "Oth" }, finish_reason: null }
    ]),
    chunkOf([
      {
        index: 0,
        delta: { tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "get", arguments: "" } }] },
        finish_reason: null
      }
    ]),
    chunkOf([
      { index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"a"' } }] }, finish_reason: null }
    ]),
    chunkOf([{ index: 1, delta: { content: "er" }, finish_reason: "stop" }]),
    chunkOf([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: ":1}" } }] }, finish_reason: null }]),
    chunkOf([{ index: 0, delta: {}, finish_reason: "tool_calls" }]),
    chunkOf([], { usage: whole.usage })
  ]

  it("stream gives one delta per choice and kind, each with its chunk; the reducer gives complete's reply", async () => {
    server.use(...mirror(A, [], () => sse([...streamed.map(data), DONE])))
    const deltas = await withChat({ servers: [A], cookieInit: "off" }, (chat) => collect(chat, { messages }))
    expect(deltas.map(({ server: _, ...d }) => d)).toEqual([
      { choice: 0, content: "", reasoning: "Thi" },
      { choice: 0, content: "", reasoning: "nk." },
      { choice: 1, content: "Oth" },
      {
        choice: 0,
        content: "",
        toolCalls: [{ index: 0, id: "call_1", type: "function", function: { name: "get", arguments: "" } }]
      },
      { choice: 0, content: "", toolCalls: [{ index: 0, function: { arguments: '{"a"' } }] },
      { choice: 1, content: "er", finishReason: "stop" },
      { choice: 0, content: "", toolCalls: [{ index: 0, function: { arguments: ":1}" } }] },
      { choice: 0, content: "", finishReason: "tool_calls" },
      { choice: 0, content: "", usage: whole.usage }
    ])
    // Each delta's chunk is the server's, untouched; the two deltas of one chunk share it.
    expect(deltas.map((d) => d.chunk)).toEqual([2, 3, 3, 4, 5, 6, 7, 8, 9].map((i) => streamed[i - 1]))
    expect(deltas[1]!.chunk).toBe(deltas[2]!.chunk)
    expect(Chat.chunkText(deltas[0]!)).toBe(JSON.stringify(streamed[1]))

    const { raw: _, ...fromStream } = Chat.accumulate(deltas)
    server.use(...mirror(A, [], () => HttpResponse.json(whole)))
    const { raw: __, ...fromWhole } = await withChat({ servers: [A], cookieInit: "off" }, (chat) =>
      chat.complete({ messages })
    )
    expect(fromStream).toStrictEqual(fromWhole)
  })

  it("a whole request answered with a stream adds its deltas up, within maxReplySize", async () => {
    server.use(...mirror(A, [], () => sse([...streamed.map(data), DONE])))
    const reply = await withChat({ servers: [A], cookieInit: "off" }, (chat) => chat.complete({ messages }))
    expect(reply.toolCalls).toEqual(whole.choices[0]!.message.tool_calls)
    expect(reply.choices.map((c) => c.content)).toEqual(["", "Other"])
    expect(reply.raw).toMatchObject({ id: "chatcmpl-w", object: "chat.completion", usage: whole.usage })

    const endless = () =>
      new ReadableStream<Uint8Array>({
        pull(controller) {
          controller.enqueue(
            new TextEncoder().encode(data(chunkOf([{ index: 0, delta: { content: "x".repeat(100) } }])))
          )
        }
      })
    server.use(
      ...mirror(A, [], () => new HttpResponse(endless(), { headers: { "content-type": "text/event-stream" } })),
      ...mirror(B, [], () => HttpResponse.json(whole))
    )
    const bounded = await withChat(
      { servers: [A, B], cookieInit: "off", strategy: "round-robin", maxReplySize: 64 * 1024 },
      (chat) => chat.complete({ messages, activeServer: undefined })
    ).catch((e) => e)
    // The endless stream fails over (nothing reached the caller) to B's whole reply, or, when B went first, B answers.
    expect(bounded).toMatchObject({ server: B })
    const alone = await failureOf({ servers: [A], cookieInit: "off", maxReplySize: 64 * 1024 }, (chat) =>
      chat.complete({ messages })
    )
    expect(alone).toMatchObject({
      _tag: "AllServersFailed",
      attempts: [{ server: A, error: { _tag: "DecodeError", reason: "EventTooLarge" } }]
    })
  })

  it("stream() text and createCompletion carry choice 0 only", async () => {
    server.use(...mirror(A, [], () => sse([...streamed.map(data), DONE])))
    const pieces = await withChat({ servers: [A], cookieInit: "off" }, (chat) =>
      Effect.map(
        Stream.runCollect(chat.createCompletion({ messages, stream: true })),
        (c) => Chunk.toReadonlyArray(c) as ReadonlyArray<string>
      )
    )
    expect(pieces).toEqual([])
  })

  it("everyChunk also gives the chunks that carry nothing, once something was delivered", async () => {
    server.use(...mirror(A, [], () => sse([...streamed.map(data), DONE])))
    const deltas = await withChat({ servers: [A], cookieInit: "off" }, (chat) =>
      Effect.map(Stream.runCollect(chat.stream({ messages }, { everyChunk: true })), Chunk.toReadonlyArray)
    )
    expect([...new Set(deltas.map((d) => d.chunk))]).toEqual(streamed)
  })

  it("everyChunk leaves nothing of an attempt that fails before its first delta", async () => {
    const role = data(streamed[0])
    server.use(
      ...mirror(A, [], () => sse([role, 'data: {"error":{"message":"overloaded"}}\n\n'])),
      ...mirror(B, [], () => sse([role, data(chunkOf([{ index: 0, delta: { content: "B" } }])), DONE]))
    )
    const deltas = await withChat({ servers: [A, B], cookieInit: "off", strategy: "round-robin" }, (chat) =>
      Effect.map(Stream.runCollect(chat.stream({ messages }, { everyChunk: true })), Chunk.toReadonlyArray)
    )
    expect(deltas.map((d) => [d.server, d.content])).toEqual([
      [B, ""],
      [B, "B"]
    ])
  })
})

describe("forward and models", () => {
  it("forwards another endpoint through the pool with failover, and its body unchanged", async () => {
    const seen: Array<string> = []
    const embedding = '{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-2e-7]}],"model":"e"}'
    server.use(
      http.post(`${A}/v1/embeddings`, () => {
        seen.push(A)
        return HttpResponse.json({ error: { message: "down" } }, { status: 503 })
      }),
      http.post(`${B}/v1/embeddings`, async ({ request }) => {
        seen.push(`${B} ${await request.text()}`)
        return new HttpResponse(embedding, { headers: { "content-type": "application/json" } })
      })
    )
    const options = { ...Presets.openAICompatible(A), servers: [A, B], strategy: "round-robin" as const }
    const out = await withChat(options, (chat) =>
      Effect.scoped(
        Effect.flatMap(chat.forward({ endpoint: "/embeddings", body: { input: "hi", model: "e" } }), (answer) =>
          Effect.map(Stream.runCollect(Stream.decodeText(answer.body)), (text) => ({
            server: answer.server,
            status: answer.status,
            text: Chunk.join(text, "")
          }))
        )
      )
    )
    expect(out).toEqual({ server: B, status: 200, text: embedding })
    expect(seen).toEqual([A, `${B} {"input":"hi","model":"e"}`])
  })

  it("forwards the caller's query as it came, and refuses an endpoint that is not a path", async () => {
    const urls: Array<string> = []
    server.use(
      http.post(`${A}/v1/embeddings`, ({ request }) => {
        urls.push(request.url)
        return HttpResponse.json({ data: [] })
      })
    )
    const options = Presets.openAICompatible(A)
    const status = await withChat(options, (chat) =>
      Effect.scoped(
        Effect.map(chat.forward({ endpoint: "/embeddings?api-version=2024-10-21", body: {} }), (a) => a.status)
      )
    )
    expect(status).toBe(200)
    expect(urls).toEqual([`${A}/v1/embeddings?api-version=2024-10-21`])
    const error = await failureOf(options, (chat) => Effect.scoped(chat.forward({ endpoint: "/../admin", body: {} })))
    expect(error).toMatchObject({ _tag: "InvalidRequest", field: "endpoint" })
  })

  it("lists each server's models, or undefined for a server without the endpoint", async () => {
    server.use(
      http.get(`${A}/v1/models`, () => HttpResponse.json({ object: "list", data: [{ id: "m1", object: "model" }] })),
      http.get(`${B}/v1/models`, () => new HttpResponse("no", { status: 404 }))
    )
    const models = await withChat({ ...Presets.openAICompatible(A), servers: [A, B] }, (chat) => chat.models)
    expect(models).toEqual([
      { server: A, models: [{ id: "m1", object: "model" }] },
      { server: B, models: undefined }
    ])
  })
})

describe("what servers send at the edges", () => {
  const options = { servers: [A], cookieInit: "off" as const }
  const chunkOf = (choices: unknown, extra: Record<string, unknown> = {}) =>
    data({ id: "c", object: "chat.completion.chunk", choices, ...extra })
  const run = (answer: () => Response, opts: Record<string, unknown> = options) => {
    server.use(...mirror(A, [], answer))
    return withChat(opts, (chat) => collect(chat, { messages }))
  }

  it("a choice that carries only fields without a name (audio) is a delta, and the first token", async () => {
    const audio = { id: "audio_1", data: "UklGRg==", transcript: "Hi" }
    const body = new ReadableStream<Uint8Array>({
      async start(controller) {
        const enc = new TextEncoder()
        controller.enqueue(enc.encode(chunkOf([{ index: 0, delta: { role: "assistant", audio } }])))
        // Longer than firstToken: the audio piece was the first token.
        await new Promise((resolve) => setTimeout(resolve, 400))
        controller.enqueue(enc.encode(chunkOf([{ index: 0, delta: {}, finish_reason: "stop" }]) + DONE))
        controller.close()
      }
    })
    const deltas = await run(() => new HttpResponse(body, { headers: { "content-type": "text/event-stream" } }), {
      ...options,
      timeouts: { firstToken: 250 }
    })
    expect(deltas.map(({ server: _, ...d }) => d)).toEqual([
      { choice: 0, content: "" },
      { choice: 0, content: "", finishReason: "stop" }
    ])
    expect(deltas[0]!.chunk).toMatchObject({ choices: [{ delta: { audio } }] })
    expect(Chat.accumulate(deltas).raw).toMatchObject({ choices: [{ message: { audio } }] })
  })

  it("choices: null is no choices (a usage chunk), not a broken stream", async () => {
    const usage = { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 }
    const deltas = await run(() =>
      sse([
        chunkOf([{ index: 0, delta: { content: "a" } }]),
        chunkOf([{ index: 0, delta: {}, finish_reason: "stop" }]),
        chunkOf(null, { usage }),
        DONE
      ])
    )
    expect(deltas.at(-1)).toMatchObject({ choice: 0, content: "", usage })
  })

  it("tool calls without an index (Gemini) are told apart by id; a later null takes nothing away", async () => {
    const deltas = await run(() =>
      sse([
        chunkOf([
          {
            index: 0,
            delta: { tool_calls: [{ id: "c1", type: "function", function: { name: "a", arguments: '{"x":1}' } }] }
          }
        ]),
        chunkOf([
          {
            index: 0,
            delta: { tool_calls: [{ id: "c2", type: "function", function: { name: "b", arguments: '{"y"' } }] }
          }
        ]),
        chunkOf([
          { index: 0, delta: { tool_calls: [{ id: null, type: null, function: { name: null, arguments: ":2}" } }] } }
        ]),
        chunkOf([{ index: 0, delta: {}, finish_reason: "tool_calls" }]),
        DONE
      ])
    )
    expect(Chat.accumulate(deltas).toolCalls).toEqual([
      { id: "c1", type: "function", function: { name: "a", arguments: '{"x":1}' } },
      { id: "c2", type: "function", function: { name: "b", arguments: '{"y":2}' } }
    ])
  })

  it("with several choices, a stream cut before every choice finished is StreamInterrupted", async () => {
    server.use(
      ...mirror(A, [], () =>
        sse([
          chunkOf([{ index: 0, delta: { content: "Hel" } }]),
          chunkOf([{ index: 1, delta: { content: "Bye" }, finish_reason: "stop" }])
        ])
      )
    )
    const error = await failureOf(options, (chat) => collect(chat, { messages, n: 2 }))
    expect(error).toMatchObject({ _tag: "StreamInterrupted", server: A, deltas: 2 })
  })

  it("usage alone is not the first token: an attempt that fails after it fails over and leaves nothing", async () => {
    const usage = { prompt_tokens: 1, completion_tokens: 0, total_tokens: 1 }
    server.use(
      ...mirror(A, [], () =>
        sse([
          chunkOf([{ index: 0, delta: { role: "assistant" } }], { usage }),
          'data: {"error":{"message":"overloaded"}}\n\n'
        ])
      ),
      ...mirror(B, [], () => sse([chunkOf([{ index: 0, delta: { content: "B" }, finish_reason: "stop" }]), DONE]))
    )
    const deltas = await withChat({ servers: [A, B], cookieInit: "off", strategy: "round-robin" }, (chat) =>
      collect(chat, { messages })
    )
    expect(deltas.map((d) => [d.server, d.content])).toEqual([[B, "B"]])
  })

  it("a whole request answered with a stream of no choices is NoResponse, and fails over", async () => {
    server.use(...mirror(A, [], () => sse([DONE])), ...mirror(B, [], () => HttpResponse.json(whole)))
    const reply = await withChat({ servers: [A, B], cookieInit: "off", strategy: "round-robin" }, (chat) =>
      chat.complete({ messages })
    )
    expect(reply.server).toBe(B)
    const alone = await failureOf(options, (chat) => chat.complete({ messages }))
    expect(alone).toMatchObject({ _tag: "AllServersFailed", attempts: [{ error: { _tag: "NoResponse" } }] })
  })

  it("a whole reply nested thousands of levels deep is a DecodeError that fails over, not a crash further on", async () => {
    const deep = `{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"stop"}],"x":${"[".repeat(5000)}${"]".repeat(5000)}}`
    server.use(
      ...mirror(A, [], () => new HttpResponse(deep, { headers: { "content-type": "application/json" } })),
      ...mirror(B, [], () => HttpResponse.json(whole))
    )
    const reply = await withChat({ servers: [A, B], cookieInit: "off", strategy: "round-robin" }, (chat) =>
      chat.complete({ messages })
    )
    expect(reply.server).toBe(B)
    const alone = await failureOf(options, (chat) => chat.complete({ messages }))
    expect(alone).toMatchObject({
      _tag: "AllServersFailed",
      attempts: [{ error: { _tag: "DecodeError", reason: "InvalidJson" } }]
    })
    // Brackets inside strings are text, not depth.
    server.use(...mirror(A, [], () => HttpResponse.json({ ...whole, note: "[".repeat(5000) })))
    expect((await withChat(options, (chat) => chat.complete({ messages }))).id).toBe("chatcmpl-w")
  })

  it("a reply read from the reducer does not change with later deltas", async () => {
    const deltas = await run(() =>
      sse([
        chunkOf([{ index: 0, delta: { content: "a" }, logprobs: { content: [{ token: "a", logprob: -1 }] } }]),
        chunkOf([{ index: 0, delta: { content: "b" }, logprobs: { content: [{ token: "b", logprob: -1 }] } }]),
        chunkOf([{ index: 0, delta: {}, finish_reason: "stop" }]),
        DONE
      ])
    )
    const reply = Chat.accumulator()
    reply.add(deltas[0]!)
    const first = reply.get()
    reply.add(deltas[1]!)
    expect(first.logprobs).toEqual({ content: [{ token: "a", logprob: -1 }] })
    expect(reply.get().logprobs).toEqual({
      content: [
        { token: "a", logprob: -1 },
        { token: "b", logprob: -1 }
      ]
    })
  })

  it("models: a server answering nonsense has no list; the others still answer", async () => {
    server.use(
      http.get(
        `${A}/v1/models`,
        () => new HttpResponse("{not json", { headers: { "content-type": "application/json" } })
      ),
      http.get(`${B}/v1/models`, async () => {
        await delay(50)
        return HttpResponse.json({ data: [{ id: "m" }] })
      })
    )
    const models = await withChat({ ...Presets.openAICompatible(A), servers: [A, B] }, (chat) => chat.models)
    expect(models).toEqual([
      { server: A, models: undefined },
      { server: B, models: [{ id: "m" }] }
    ])
  })
})
