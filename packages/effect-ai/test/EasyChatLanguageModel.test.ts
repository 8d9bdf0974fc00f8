// The language model over real mirrors on 127.0.0.1 (testkit), through the
// node transport: failover, text byte for byte, tools run by a Toolkit,
// reasoning, usage and finish reasons, and errors as AiError.

import { EasyChat, type Options } from "@easychat/core"
import { Fixtures, MirrorPool, type MirrorServer } from "@easychat/testkit"
import * as NodeTransport from "@easychat/transport-node"
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import * as Tool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import { assert, describe, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { EasyChatLanguageModel } from "../src/index.js"

type Json = Record<string, any>

const reply = 'Bonjour 🌍 世界!\n"Quoted", tabs\tand a line end — 終わり.'
const down: MirrorServer.MirrorServerOptions = { fault: { kind: "status", status: 503 } }

/** Mirrors started for one test and closed after it. */
const withPool = <A, E, R>(
  servers: ReadonlyArray<MirrorServer.MirrorServerOptions>,
  body: (pool: MirrorPool.MirrorPool) => Effect.Effect<A, E, R>
) =>
  Effect.acquireUseRelease(
    Effect.promise(() => MirrorPool.start(servers)),
    body,
    (pool) => Effect.promise(() => pool.close())
  )

/**
 * The language model over a pool; the servers are tried in order (each one a
 * priority tier of its own), so that the failing ones are always tried first.
 */
const modelLayer = (
  pool: MirrorPool.MirrorPool,
  options: EasyChatLanguageModel.Options = {},
  chat: Options = {}
): Layer.Layer<LanguageModel.LanguageModel> =>
  EasyChatLanguageModel.layer(options).pipe(
    Layer.provide(EasyChat.layer({ servers: pool.urls.map((url, priority) => ({ url, priority })), ...chat })),
    Layer.provide(NodeTransport.layer()),
    Layer.orDie
  )

const chatRequests = (server: MirrorServer.MirrorServer): Array<Json> =>
  server.requests.filter((r) => r.method === "POST").map((r) => r.body as Json)

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), Chunk.toArray)

const textOf = (parts: ReadonlyArray<Response.AnyPart>): string =>
  parts.flatMap((p) => (p.type === "text-delta" ? [p.delta] : [])).join("")
const reasoningOf = (parts: ReadonlyArray<Response.AnyPart>): string =>
  parts.flatMap((p) => (p.type === "reasoning-delta" ? [p.delta] : [])).join("")

const GetWeather = Tool.make("get_weather", {
  description: "The current weather in a city",
  parameters: { location: Schema.String, unit: Schema.Literal("celsius", "fahrenheit") },
  success: Schema.String
})
const Weather = Toolkit.make(GetWeather)
const temperatures: Record<string, number> = { "Paris, France": 18, "Tokyo, Japan": 24 }
const WeatherHandlers = Weather.toLayer({
  get_weather: ({ location, unit }) => Effect.succeed(`${location}: ${temperatures[location] ?? 0} °${unit[0]}`)
})

const parallelCalls = Fixtures.wholeOf(Fixtures.openaiParallelToolCalls) as Json
const expectedCalls = (parallelCalls.choices[0].message.tool_calls as Array<Json>).map((call) => ({
  id: call.id as string,
  params: JSON.parse(call.function.arguments)
}))

describe("EasyChatLanguageModel", () => {
  describe("generateText", () => {
    it.live("fails over to the next mirror and returns the text byte for byte", () =>
      withPool([down, { reply }], (pool) =>
        Effect.gen(function* () {
          const response = yield* LanguageModel.generateText({ prompt: "Say hello" })
          assert.strictEqual(response.text, reply)
          assert.strictEqual(response.finishReason, "stop")
          assert.isAbove(response.usage.outputTokens ?? 0, 0)
          assert.strictEqual(
            response.usage.totalTokens,
            (response.usage.inputTokens ?? 0) + (response.usage.outputTokens ?? 0)
          )
          const metadata = response.content.find((p) => p.type === "response-metadata")
          assert.strictEqual(metadata?.metadata.easychat?.server, pool.urls[1])
          assert.strictEqual(chatRequests(pool.servers[0]!).length, 1)
          const [body] = chatRequests(pool.servers[1]!)
          assert.deepStrictEqual(body!.messages, [{ role: "user", content: "Say hello" }])
        }).pipe(Effect.provide(modelLayer(pool)))
      )
    )

    it.live("sends the prompt as OpenAI messages: system, user parts, assistant tool calls, tool results", () =>
      withPool([{ reply }], (pool) =>
        Effect.gen(function* () {
          const prompt = Prompt.make([
            { role: "system", content: "Be brief." },
            {
              role: "user",
              content: [
                { type: "text", text: "What is in the picture?" },
                { type: "file", mediaType: "image/png", data: new Uint8Array([137, 80, 78, 71]) }
              ]
            },
            {
              role: "assistant",
              content: [
                { type: "reasoning", text: "Let me look." },
                { type: "tool-call", id: "call_1", name: "get_weather", params: { location: "Paris, France" } }
              ]
            },
            {
              role: "tool",
              content: [
                {
                  type: "tool-result",
                  id: "call_1",
                  name: "get_weather",
                  result: "18 °C",
                  isFailure: false,
                  providerExecuted: false
                }
              ]
            }
          ])
          yield* LanguageModel.generateText({ prompt })
          const [body] = chatRequests(pool.servers[0]!)
          assert.deepStrictEqual(body!.messages, [
            { role: "system", content: "Be brief." },
            {
              role: "user",
              content: [
                { type: "text", text: "What is in the picture?" },
                { type: "image_url", image_url: { url: "data:image/png;base64,iVBORw==" } }
              ]
            },
            {
              role: "assistant",
              content: null,
              tool_calls: [
                {
                  id: "call_1",
                  type: "function",
                  function: { name: "get_weather", arguments: '{"location":"Paris, France"}' }
                }
              ]
            },
            { role: "tool", tool_call_id: "call_1", content: '"18 °C"' }
          ])
        }).pipe(Effect.provide(modelLayer(pool)))
      )
    )

    it.live("runs the Toolkit's handler for each tool call and sends the results back", () =>
      withPool([down, { fixture: Fixtures.toolLoop(Fixtures.openaiParallelToolCalls, reply) }], (pool) =>
        Effect.gen(function* () {
          const prompt = Prompt.make("Weather in Paris and Tokyo?")
          const first = yield* LanguageModel.generateText({ prompt, toolkit: Weather })
          assert.strictEqual(first.finishReason, "tool-calls")
          assert.deepStrictEqual(
            first.toolCalls.map((call) => ({ id: call.id, params: call.params })),
            expectedCalls
          )
          assert.deepStrictEqual(
            first.toolResults.map((result) => [result.id, result.result]),
            [
              [expectedCalls[0]!.id, "Paris, France: 18 °c"],
              [expectedCalls[1]!.id, "Tokyo, Japan: 24 °c"]
            ]
          )
          const [asked] = chatRequests(pool.servers[1]!)
          assert.deepStrictEqual(asked!.tools, [
            {
              type: "function",
              function: {
                name: "get_weather",
                description: "The current weather in a city",
                parameters: Tool.getJsonSchema(GetWeather)
              }
            }
          ])
          assert.strictEqual(asked!.tool_choice, "auto")

          const second = yield* LanguageModel.generateText({
            prompt: Prompt.merge(prompt, Prompt.fromResponseParts(first.content)),
            toolkit: Weather
          })
          assert.strictEqual(second.text, reply)
          assert.strictEqual(second.finishReason, "stop")
          const sent = chatRequests(pool.servers[1]!)[1]!.messages as Array<Json>
          assert.deepStrictEqual(
            sent.slice(1).map((m) => [m.role, m.tool_call_id ?? m.tool_calls?.length]),
            [
              ["assistant", 2],
              ["tool", expectedCalls[0]!.id],
              ["tool", expectedCalls[1]!.id]
            ]
          )
        }).pipe(Effect.provide(modelLayer(pool)), Effect.provide(WeatherHandlers))
      )
    )

    it.live("returns reasoning, text, usage with reasoning tokens and the response metadata", () =>
      withPool([{ fixture: Fixtures.deepseekReasoning }], (pool) =>
        Effect.gen(function* () {
          const whole = Fixtures.wholeOf(Fixtures.deepseekReasoning) as Json
          const response = yield* LanguageModel.generateText({ prompt: "Think" })
          assert.strictEqual(response.reasoningText, whole.choices[0].message.reasoning_content)
          assert.strictEqual(response.text, whole.choices[0].message.content)
          assert.strictEqual(response.finishReason, "stop")
          assert.strictEqual(response.usage.inputTokens, whole.usage.prompt_tokens)
          assert.strictEqual(response.usage.outputTokens, whole.usage.completion_tokens)
          assert.strictEqual(response.usage.reasoningTokens, whole.usage.completion_tokens_details.reasoning_tokens)
          const metadata = response.content.find((p) => p.type === "response-metadata")
          assert.strictEqual(metadata?.id._tag === "Some" && metadata.id.value, whole.id)
          assert.strictEqual(metadata?.modelId._tag === "Some" && metadata.modelId.value, whole.model)
        }).pipe(Effect.provide(modelLayer(pool)))
      )
    )

    it.live("asks for a JSON answer with the schema (generateObject)", () =>
      withPool([{ reply: '{"name":"Ada","year":1815}' }], (pool) =>
        Effect.gen(function* () {
          const Person = Schema.Struct({ name: Schema.String, year: Schema.Number })
          const response = yield* LanguageModel.generateObject({ prompt: "Who?", schema: Person, objectName: "person" })
          assert.deepStrictEqual(response.value, { name: "Ada", year: 1815 })
          const [body] = chatRequests(pool.servers[0]!)
          assert.strictEqual(body!.response_format.type, "json_schema")
          assert.strictEqual(body!.response_format.json_schema.name, "person")
          assert.deepStrictEqual(body!.response_format.json_schema.schema.required, ["name", "year"])
        }).pipe(Effect.provide(modelLayer(pool)))
      )
    )

    it.live("model() is an AiModel that names the model; withConfigOverride adds request fields", () =>
      withPool([{ reply }], (pool) =>
        Effect.gen(function* () {
          const response = yield* LanguageModel.generateText({ prompt: "Hi" }).pipe(
            EasyChatLanguageModel.withConfigOverride({ max_tokens: 64 }),
            Effect.provide(EasyChatLanguageModel.model("qwen3:8b", { seed: 7 }))
          )
          const metadata = response.content.find((p) => p.type === "response-metadata")
          assert.strictEqual(metadata?.modelId._tag === "Some" && metadata.modelId.value, "qwen3:8b")
          const [body] = chatRequests(pool.servers[0]!)
          assert.strictEqual(body!.model, "qwen3:8b")
          assert.strictEqual(body!.seed, 7)
          assert.strictEqual(body!.max_tokens, 64)
        }).pipe(
          Effect.provide(EasyChat.layer({ servers: pool.urls }).pipe(Layer.provide(NodeTransport.layer()), Layer.orDie))
        )
      )
    )
  })

  describe("streamText", () => {
    it.live("fails over to the next mirror and streams the text byte for byte", () =>
      withPool([down, { fault: { kind: "reset-before-headers" } }, { reply, chunkSize: 1 }], (pool) =>
        Effect.gen(function* () {
          const parts = yield* collect(LanguageModel.streamText({ prompt: "Say hello" }))
          assert.strictEqual(textOf(parts), reply)
          assert.deepStrictEqual(
            parts.filter((p) => p.type !== "text-delta").map((p) => p.type),
            ["response-metadata", "text-start", "text-end", "finish"]
          )
          const finish = parts.find((p) => p.type === "finish")!
          assert.strictEqual(finish.reason, "stop")
          assert.isAbove(finish.usage.outputTokens ?? 0, 0)
          assert.strictEqual(finish.metadata.easychat?.server, pool.urls[2])
          assert.strictEqual(chatRequests(pool.servers[0]!).length, 1)
          const [body] = chatRequests(pool.servers[2]!)
          assert.strictEqual(body!.stream, true)
          assert.deepStrictEqual(body!.stream_options, { include_usage: true })
        }).pipe(Effect.provide(modelLayer(pool)))
      )
    )

    it.live("assembles streamed tool-call fragments and runs the Toolkit's handler", () =>
      withPool([down, { fixture: Fixtures.openaiParallelToolCalls }], (pool) =>
        Effect.gen(function* () {
          const parts = yield* collect(
            LanguageModel.streamText({ prompt: "Weather in Paris and Tokyo?", toolkit: Weather })
          )
          const calls = parts.flatMap((p) => (p.type === "tool-call" ? [{ id: p.id, params: p.params }] : []))
          assert.deepStrictEqual(calls, expectedCalls)
          for (const { id, params } of expectedCalls) {
            const fragments = parts.flatMap((p) => (p.type === "tool-params-delta" && p.id === id ? [p.delta] : []))
            assert.isAbove(fragments.length, 1)
            assert.deepStrictEqual(JSON.parse(fragments.join("")), params)
            assert.isTrue(parts.some((p) => p.type === "tool-params-start" && p.id === id && p.name === "get_weather"))
            assert.isTrue(parts.some((p) => p.type === "tool-params-end" && p.id === id))
          }
          const results = parts.flatMap((p) => (p.type === "tool-result" ? [[p.id, p.result]] : []))
          assert.deepStrictEqual(results, [
            [expectedCalls[0]!.id, "Paris, France: 18 °c"],
            [expectedCalls[1]!.id, "Tokyo, Japan: 24 °c"]
          ])
          const finish = parts.find((p) => p.type === "finish")!
          assert.strictEqual(finish.reason, "tool-calls")
        }).pipe(Effect.provide(modelLayer(pool)), Effect.provide(WeatherHandlers))
      )
    )

    for (const fixture of [Fixtures.ollamaReasoning, Fixtures.deepseekReasoning, Fixtures.openrouterReasoning]) {
      it.live(`streams reasoning then text: ${fixture.name}`, () =>
        withPool([{ fixture }], (pool) =>
          Effect.gen(function* () {
            const chunks = Fixtures.chunksOf(fixture) as Array<Json>
            const deltas = chunks.flatMap((c) => (c.choices ?? []).map((choice: Json) => choice.delta ?? {}))
            const reasoning = deltas.map((d) => d.reasoning_content ?? d.reasoning ?? "").join("")
            const text = deltas.map((d) => d.content ?? "").join("")
            const usage = [...chunks].reverse().find((c) => c.usage)?.usage as Json

            const parts = yield* collect(LanguageModel.streamText({ prompt: "Think" }))
            assert.strictEqual(reasoningOf(parts), reasoning)
            assert.strictEqual(textOf(parts), text)
            assert.deepStrictEqual(
              parts.filter((p) => !p.type.endsWith("-delta")).map((p) => p.type),
              ["response-metadata", "reasoning-start", "reasoning-end", "text-start", "text-end", "finish"]
            )
            const finish = parts.find((p) => p.type === "finish")!
            assert.strictEqual(finish.reason, "stop")
            assert.strictEqual(finish.usage.inputTokens, usage.prompt_tokens)
            assert.strictEqual(finish.usage.outputTokens, usage.completion_tokens)
            assert.strictEqual(finish.usage.reasoningTokens, usage.completion_tokens_details?.reasoning_tokens)
          }).pipe(Effect.provide(modelLayer(pool)))
        )
      )
    }
  })

  describe("both", () => {
    it.live("a legacy function_call is a tool call with a generated id, whole and streamed", () =>
      withPool([{ fixture: Fixtures.legacyFunctionCall }], (pool) =>
        Effect.gen(function* () {
          const params = { location: "東京", unit: "celsius" }
          const whole = yield* LanguageModel.generateText({ prompt: "Weather in Tokyo?", toolkit: Weather })
          assert.deepStrictEqual(
            whole.toolCalls.map((call) => [call.name, call.params]),
            [["get_weather", params]]
          )
          assert.isAbove(whole.toolCalls[0]!.id.length, 0)
          assert.deepStrictEqual(
            whole.toolResults.map((result) => result.result),
            ["東京: 0 °c"]
          )
          assert.strictEqual(whole.finishReason, "tool-calls")

          const parts = yield* collect(LanguageModel.streamText({ prompt: "Weather in Tokyo?", toolkit: Weather }))
          const call = parts.find((p) => p.type === "tool-call")
          assert.deepStrictEqual(call?.params, params)
          assert.isTrue(parts.some((p) => p.type === "tool-params-start" && p.id === call?.id))
          assert.deepStrictEqual(
            parts.flatMap((p) => (p.type === "tool-result" ? [[p.id, p.result]] : [])),
            [[call?.id, "東京: 0 °c"]]
          )
          assert.strictEqual(parts.find((p) => p.type === "finish")?.reason, "tool-calls")
        }).pipe(Effect.provide(modelLayer(pool)), Effect.provide(WeatherHandlers))
      )
    )

    it.live("a refusal is in the finish part's metadata, whole and streamed", () =>
      withPool([{ fixture: Fixtures.refusal }], (pool) =>
        Effect.gen(function* () {
          const refusal = (Fixtures.wholeOf(Fixtures.refusal) as Json).choices[0].message.refusal as string
          const whole = yield* LanguageModel.generateText({ prompt: "Do it" })
          const finish = whole.content.find((p) => p.type === "finish")
          assert.strictEqual(finish?.metadata.easychat?.refusal, refusal)
          assert.strictEqual(whole.text, "")

          const parts = yield* collect(LanguageModel.streamText({ prompt: "Do it" }))
          assert.strictEqual(parts.find((p) => p.type === "finish")?.metadata.easychat?.refusal, refusal)
          assert.strictEqual(textOf(parts), "")
        }).pipe(Effect.provide(modelLayer(pool)))
      )
    )
  })

  describe("errors", () => {
    it.live("every mirror failing is an AiError with the easychat error as its cause, and no secret", () =>
      withPool([down, down], (pool) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(LanguageModel.generateText({ prompt: "Hi" }))
          assert.strictEqual(error._tag, "UnknownError")
          assert.include(error.message, "HTTP 503")
          const cause = (error as { cause?: { _tag?: string } }).cause
          assert.strictEqual(cause?._tag, "AllServersFailed")
          assert.notInclude(error.message, "sk-secret")
          assert.notInclude(JSON.stringify(error), "sk-secret")

          const streamed = yield* Effect.flip(collect(LanguageModel.streamText({ prompt: "Hi" })))
          assert.strictEqual(streamed._tag, "UnknownError")
        }).pipe(Effect.provide(modelLayer(pool, {}, { apiKey: "sk-secret" })))
      )
    )

    it.live("a request easychat refuses is MalformedInput", () =>
      withPool([{ reply }], (pool) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(
            LanguageModel.generateText({ prompt: "Hi" }).pipe(
              EasyChatLanguageModel.withConfigOverride({ temperature: 9 })
            )
          )
          assert.strictEqual(error._tag, "MalformedInput")
          assert.include(error.message, "temperature")
          assert.strictEqual(chatRequests(pool.servers[0]!).length, 0)
        }).pipe(Effect.provide(modelLayer(pool)))
      )
    )

    it.live("a stream cut after its first text fails with an AiError, the text before it delivered", () =>
      withPool([{ reply, fault: { kind: "close-mid-stream", afterDeltas: 3 } }], (pool) =>
        Effect.gen(function* () {
          const seen: Array<Response.AnyPart> = []
          const error = yield* Effect.flip(
            Stream.runForEach(LanguageModel.streamText({ prompt: "Hi" }), (part) => Effect.sync(() => seen.push(part)))
          )
          assert.strictEqual(error._tag, "UnknownError")
          assert.strictEqual((error as { cause?: { _tag?: string } }).cause?._tag, "StreamInterrupted")
          assert.isTrue(reply.startsWith(textOf(seen)))
          assert.isAbove(textOf(seen).length, 0)
        }).pipe(Effect.provide(modelLayer(pool)))
      )
    )
  })
})
