// The provider's cases, written once and run through each line of the `ai` package: `EasyChatProvider.test.ts`
// runs them with `ai` 6 and `@ai-sdk/openai-compatible` 2, `Ai7.test.ts` with `ai` 7 and `@ai-sdk/openai-compatible`
// 3 (Node 22 and later).
import type { LanguageModelV3, LanguageModelV3CallOptions, LanguageModelV3StreamPart } from "@ai-sdk/provider"
import { Fixtures, MirrorPool, type MirrorServer } from "@easychat/testkit"
import * as NodeTransport from "@easychat/transport-node"
import { describe, expect, it } from "vitest"
import { z } from "zod"
import { createEasyChat, type Options } from "../src/index.js"

// The SDK logs its warnings to the console; the tests read them from the results.
;(globalThis as { AI_SDK_LOG_WARNINGS?: boolean }).AI_SDK_LOG_WARNINGS = false

/**
 * What the cases use of an `ai` package, typed loosely enough that `ai` 6 and `ai` 7 both fit (the results are read
 * as plain objects).
 */
export interface AiPackage {
  readonly generateText: (options: any) => Promise<any>
  readonly streamText: (options: any) => any
  readonly stepCountIs: (count: number) => any
  readonly tool: (tool: any) => any
  readonly jsonSchema: (schema: any) => { readonly jsonSchema: unknown }
  readonly Output: { readonly object: (options: any) => any }
  readonly APICallError: { readonly isInstance: (error: unknown) => boolean }
}

/** A line of the AI SDK: `ai` and the `@ai-sdk/openai-compatible` of the same release, to compare with. */
export interface AiLine {
  /** `"ai 6"`, `"ai 7"`. */
  readonly name: string
  readonly ai: AiPackage
  readonly createOpenAICompatible: (options: {
    readonly name: string
    readonly baseURL: string
    readonly includeUsage?: boolean
  }) => { readonly chatModel: (modelId: string) => any }
}

/** A model the SDK runs: ours (specification v3) or openai-compatible's (v3 or v4). */
type AnyModel = Pick<LanguageModelV3, "doGenerate" | "doStream">

export type Json = Record<string, any>

const question = [{ role: "user" as const, content: "What is the weather in Paris and Tokyo?" }]
const finalText = "It is sunny in both."
// Text that a decoder must not cut: CJK, an emoji (a surrogate pair), quotes, line ends.
const exactText = 'Bonjour 世界 👋🏽 — "quoted"\nline two\r\n\tend 🎉'
const weather = ({ location }: { location: string }) => ({ location, sky: "sunny" })

/** Chat requests a mirror received (the cookie page `GET /` left out). */
export const chatRequests = (server: MirrorServer.MirrorServer) => server.requests.filter((r) => r.method === "POST")

/** Two mirrors that fail before any byte of a reply, whole or streamed, and a healthy third. */
const twoOfThreeFail = (healthy: MirrorServer.MirrorServerOptions): Array<MirrorServer.MirrorServerOptions> => [
  { fault: { kind: "status", status: 503 } },
  { fault: { kind: "reset-before-headers" } },
  healthy
]

export type Via = "fetch" | "node"
const transports: ReadonlyArray<Via> = ["fetch", "node"]

export const withProvider = async <A>(
  mirrors: number | ReadonlyArray<MirrorServer.MirrorServerOptions>,
  via: Via,
  options: Options,
  body: (ctx: { provider: ReturnType<typeof createEasyChat>; pool: MirrorPool.MirrorPool }) => Promise<A>
): Promise<A> => {
  const pool = await MirrorPool.start(mirrors)
  // Round-robin from the first server: the failing mirrors are tried before the healthy one.
  const provider = createEasyChat({
    servers: pool.urls,
    strategy: "round-robin",
    ...(via === "node" ? { transport: NodeTransport.layer() } : {}),
    ...options
  })
  try {
    return await body({ provider, pool })
  } finally {
    await provider.close()
    await pool.close()
  }
}

const weatherInput = z.object({ location: z.string(), unit: z.string().optional() })
const toolCallsOf = (fixture: Fixtures.Fixture) =>
  ((Fixtures.wholeOf(fixture) as Json).choices[0].message.tool_calls as Array<Json>).map((call) => ({
    toolCallId: call.id as string,
    toolName: call.function.name as string,
    input: JSON.parse(call.function.arguments)
  }))

// ---------------------------------------------------------------------------
// The same calls through `@ai-sdk/openai-compatible` pointed at one mirror: the same parts

/** What a stream gives, without what only one provider names (its metadata key, raw chunks). */
const partsOf = async (model: AnyModel, options: LanguageModelV3CallOptions) => {
  const { stream } = await model.doStream(options)
  const parts: Array<LanguageModelV3StreamPart> = []
  const reader = stream.getReader()
  while (true) {
    const next = await reader.read()
    if (next.done) break
    parts.push(next.value)
  }
  return parts.map((part) => {
    const { providerMetadata: _, ...rest } = part as LanguageModelV3StreamPart & { providerMetadata?: unknown }
    return rest
  })
}

const callOptions = (fixture: Fixtures.Fixture): LanguageModelV3CallOptions => ({
  prompt: [{ role: "user", content: [{ type: "text", text: "Hello" }] }],
  ...(fixture === Fixtures.openaiParallelToolCalls
    ? {
        tools: [
          {
            type: "function",
            name: "get_weather",
            inputSchema: { type: "object", properties: { location: { type: "string" } } }
          }
        ]
      }
    : {}),
  ...(fixture === Fixtures.logprobs
    ? { providerOptions: { mirror: { logprobs: true }, easychat: { logprobs: true } } }
    : {})
})

/** Fixtures both providers read alike (a legacy `function_call` and `n: 2` differ on purpose: see the README). */
const compared = [
  Fixtures.openaiParallelToolCalls,
  Fixtures.deepseekReasoning,
  Fixtures.ollamaReasoning,
  Fixtures.openrouterReasoning,
  Fixtures.logprobs,
  Fixtures.refusal,
  Fixtures.includeUsage,
  Fixtures.textReply(exactText, { chunkSize: 2 })
]

/**
 * Registers every case of the provider under the AI SDK line `line`: failover, what the stream carries, abort and
 * errors on both transports, and the comparison with `@ai-sdk/openai-compatible` part by part.
 */
export const providerCases = (line: AiLine): void => {
  const { generateText, jsonSchema, Output, stepCountIs, streamText, tool, APICallError } = line.ai
  const { createOpenAICompatible } = line
  type APICallError = { isRetryable: boolean; statusCode?: number; message: string; cause: unknown }
  /** The weather tool, declared only: the SDK reports its calls. */
  const declaredTools = {
    get_weather: tool({
      description: "The weather at a place",
      inputSchema: weatherInput,
      outputSchema: z.object({ location: z.string(), sky: z.string() })
    })
  }
  /** The weather tool, executed: its locations are pushed to `ran`. */
  const executedTools = (ran: Array<string>) => ({
    get_weather: tool({
      description: "The weather at a place",
      inputSchema: weatherInput,
      execute: async (args: z.infer<typeof weatherInput>) => {
        ran.push(args.location)
        return weather(args)
      }
    })
  })
  describe.each(transports)(`${line.name}: createEasyChat on the %s transport`, (via) => {
    describe("failover under the AI SDK", () => {
      it("generateText: two of three mirrors fail, the text arrives whole", async () => {
        await withProvider(twoOfThreeFail({ reply: exactText }), via, {}, async ({ provider, pool }) => {
          const result = await generateText({ model: provider("gpt-4o-mini"), prompt: "Hello" })
          expect(result.text).toBe(exactText)
          expect(result.finishReason).toBe("stop")
          expect(result.providerMetadata?.easychat?.server).toBe(pool.urls[2])
          expect(pool.servers.map((s) => chatRequests(s).length)).toEqual([1, 1, 1])
        })
      })

      it("streamText: two of three mirrors fail, the text arrives byte for byte", async () => {
        await withProvider(twoOfThreeFail({ reply: exactText, chunkSize: 3 }), via, {}, async ({ provider, pool }) => {
          const result = streamText({ model: provider.chat("gpt-4o-mini"), prompt: "Hello" })
          const pieces: Array<string> = []
          for await (const piece of result.textStream) pieces.push(piece)
          expect(pieces.join("")).toBe(exactText)
          expect(pieces.length).toBeGreaterThan(5)
          expect(await result.text).toBe(exactText)
          expect(await result.finishReason).toBe("stop")
          expect(chatRequests(pool.servers[2]!)[0]!.body).toMatchObject({ stream: true, model: "gpt-4o-mini" })
        })
      })

      for (const streamed of [false, true]) {
        it(`agent loop (${streamed ? "streamText" : "generateText"}): the tool runs, its results go back, the text ends it`, async () => {
          const loop = Fixtures.toolLoop(Fixtures.openaiParallelToolCalls, finalText)
          await withProvider(twoOfThreeFail({ fixture: loop }), via, {}, async ({ provider, pool }) => {
            const ran: Array<string> = []
            const options = {
              model: provider.languageModel("gpt-4o"),
              messages: question,
              tools: executedTools(ran),
              stopWhen: stepCountIs(3)
            }
            const result = streamed ? streamText(options) : await generateText(options)
            const steps = await result.steps
            expect(steps).toHaveLength(2)
            expect(steps[0]!.finishReason).toBe("tool-calls")
            expect(
              steps[0]!.toolCalls.map((c: Json) => ({ toolCallId: c.toolCallId, toolName: c.toolName, input: c.input }))
            ).toEqual(toolCallsOf(Fixtures.openaiParallelToolCalls))
            expect(await result.text).toBe(finalText)
            expect(ran).toEqual(["Paris, France", "Tokyo, Japan"])
            const sent = chatRequests(pool.servers[2]!)
            expect(sent).toHaveLength(2)
            const second = sent[1]!.body as { messages: Array<Json>; tools: Array<Json> }
            expect(second.tools[0]).toMatchObject({ type: "function", function: { name: "get_weather" } })
            expect(second.messages[1]).toMatchObject({ role: "assistant", content: null })
            expect(second.messages[1]!.tool_calls.map((c: Json) => c.id)).toEqual(
              toolCallsOf(Fixtures.openaiParallelToolCalls).map((c) => c.toolCallId)
            )
            expect(
              second.messages.filter((m) => m.role === "tool").map((m) => [m.tool_call_id, JSON.parse(m.content)])
            ).toEqual(
              toolCallsOf(Fixtures.openaiParallelToolCalls).map((c) => [
                c.toolCallId,
                weather(c.input as { location: string })
              ])
            )
          })
        })
      }
    })

    describe("what the stream carries", () => {
      it("streamed tool calls give tool-input-start/-delta/-end, then tool-call", async () => {
        await withProvider([{ fixture: Fixtures.openaiParallelToolCalls }], via, {}, async ({ provider }) => {
          const result = streamText({
            model: provider("gpt-4o"),
            messages: question,
            tools: declaredTools
          })
          const parts: Array<Json> = []
          for await (const part of result.fullStream) parts.push(part)
          await expect(result.finishReason).resolves.toBe("tool-calls")
          const calls = toolCallsOf(Fixtures.openaiParallelToolCalls)
          for (const call of calls) {
            const mine = parts.filter((p) => p.id === call.toolCallId || p.toolCallId === call.toolCallId)
            const types = mine.map((p) => p.type)
            expect(types[0]).toBe("tool-input-start")
            expect(types.filter((t) => t === "tool-input-delta").length).toBeGreaterThan(1)
            expect(types.indexOf("tool-input-end")).toBeGreaterThan(types.lastIndexOf("tool-input-delta"))
            expect(types.indexOf("tool-call")).toBeGreaterThan(types.indexOf("tool-input-end"))
            expect(mine[0]).toMatchObject({ toolName: "get_weather" })
            const input = mine
              .filter((p) => p.type === "tool-input-delta")
              .map((p) => p.delta)
              .join("")
            expect(JSON.parse(input)).toEqual(call.input)
            expect(mine.find((p) => p.type === "tool-call")).toMatchObject(call)
          }
        })
      })

      it("reasoning parts: reasoning-start/-delta/-end, then the text", async () => {
        await withProvider([{ fixture: Fixtures.deepseekReasoning }], via, {}, async ({ provider }) => {
          const whole = (Fixtures.wholeOf(Fixtures.deepseekReasoning) as Json).choices[0].message
          const result = streamText({ model: provider("deepseek-reasoner"), prompt: "Think" })
          const parts: Array<Json> = []
          for await (const part of result.fullStream) parts.push(part)
          const types = parts.map((p) => p.type)
          expect(types.indexOf("reasoning-start")).toBeLessThan(types.indexOf("reasoning-delta"))
          expect(types.indexOf("reasoning-end")).toBeLessThan(types.indexOf("text-start"))
          expect(
            parts
              .filter((p) => p.type === "reasoning-delta")
              .map((p) => p.text)
              .join("")
          ).toBe(whole.reasoning_content)
          expect(await result.reasoningText).toBe(whole.reasoning_content)
          expect(await result.text).toBe(whole.content)
          const generated = await generateText({ model: provider("deepseek-reasoner"), prompt: "Think" })
          expect(generated.reasoningText).toBe(whole.reasoning_content)
          expect(generated.text).toBe(whole.content)
        })
      })

      it("usage, finish reason and response metadata, whole and streamed", async () => {
        await withProvider(
          [{ fixture: Fixtures.includeUsage }],
          via,
          { includeUsage: true },
          async ({ provider, pool }) => {
            const whole = Fixtures.wholeOf(Fixtures.includeUsage) as Json
            const expectedUsage = {
              inputTokens: whole.usage.prompt_tokens,
              outputTokens: whole.usage.completion_tokens,
              totalTokens: whole.usage.total_tokens
            }
            const response = { id: whole.id, modelId: whole.model, timestamp: new Date(whole.created * 1000) }
            const generated = await generateText({ model: provider("gpt-4o"), prompt: "Hi" })
            expect(generated.usage).toMatchObject(expectedUsage)
            expect(generated.finishReason).toBe("stop")
            expect(generated.rawFinishReason).toBe("stop")
            expect(generated.response).toMatchObject(response)
            const streamed = streamText({ model: provider("gpt-4o"), prompt: "Hi" })
            expect(await streamed.text).toBe(whole.choices[0].message.content)
            expect(await streamed.usage).toMatchObject(expectedUsage)
            expect(await streamed.finishReason).toBe("stop")
            expect(await streamed.response).toMatchObject(response)
            expect(chatRequests(pool.servers[0]!)[1]!.body).toMatchObject({ stream_options: { include_usage: true } })
          }
        )
      })

      for (const structuredOutputs of [false, true]) {
        it(`Output.object (structuredOutputs: ${structuredOutputs}): the JSON reply parsed, response_format sent`, async () => {
          const reply = '{"name":"Ada","born":1815}'
          await withProvider([{ reply }], via, { structuredOutputs }, async ({ provider, pool }) => {
            const schema = z.object({ name: z.string(), born: z.number() })
            const result = await generateText({
              model: provider("gpt-4o"),
              prompt: "Who wrote the first program?",
              output: Output.object({ schema })
            })
            expect(result.output).toEqual({ name: "Ada", born: 1815 })
            const streamed = streamText({
              model: provider("gpt-4o"),
              prompt: "Again",
              output: Output.object({ schema })
            })
            expect(await streamed.output).toEqual({ name: "Ada", born: 1815 })
            const [whole] = chatRequests(pool.servers[0]!).map((r) => r.body as Json)
            if (structuredOutputs)
              expect(whole!.response_format).toMatchObject({
                type: "json_schema",
                json_schema: { name: "response", strict: true, schema: { type: "object" } }
              })
            else {
              expect(whole!.response_format).toEqual({ type: "json_object" })
              expect(result.warnings).toEqual([
                expect.objectContaining({ type: "unsupported", feature: "responseFormat" })
              ])
              // Streamed, the warnings come with `stream-start`.
              expect(await streamed.warnings).toEqual(result.warnings)
            }
          })
        })
      }

      it("call settings reach the request: tools, tool_choice, response_format, sampling, providerOptions", async () => {
        await withProvider(1, via, { defaults: {} }, async ({ provider, pool }) => {
          const schema = jsonSchema({ type: "object", properties: { name: { type: "string" } } })
          await generateText({
            model: provider("gpt-4o"),
            system: "Be brief",
            prompt: "Hello",
            maxOutputTokens: 64,
            temperature: 0.2,
            topP: 0.9,
            stopSequences: ["END"],
            seed: 7,
            presencePenalty: 0.1,
            frequencyPenalty: 0.3,
            tools: { get_weather: tool({ inputSchema: schema }) },
            toolChoice: { type: "tool", toolName: "get_weather" },
            providerOptions: { easychat: { user: "u-1", logit_bias: { "42": 1 } } }
          }).catch(() => undefined) // the mirror answers text: the SDK says the tool was not called
          const body = chatRequests(pool.servers[0]!)[0]!.body as Json
          expect(body).toEqual({
            model: "gpt-4o",
            stream: false,
            max_tokens: 64,
            temperature: 0.2,
            top_p: 0.9,
            stop: ["END"],
            seed: 7,
            presence_penalty: 0.1,
            frequency_penalty: 0.3,
            user: "u-1",
            logit_bias: { "42": 1 },
            messages: [
              { role: "system", content: "Be brief" },
              { role: "user", content: "Hello" }
            ],
            tools: [{ type: "function", function: { name: "get_weather", parameters: schema.jsonSchema } }],
            tool_choice: { type: "function", function: { name: "get_weather" } }
          })
        })
      })
    })

    describe("abort and errors", () => {
      it("an abort closes the connection: the mirror sees the response cut", async () => {
        await withProvider([{ delayMs: 40, deltas: 200 }], via, {}, async ({ provider, pool }) => {
          const controller = new AbortController()
          const result = streamText({ model: provider("gpt-4o"), prompt: "Hello", abortSignal: controller.signal })
          const seen: Array<string> = []
          let aborted = false
          try {
            for await (const piece of result.textStream) {
              seen.push(piece)
              if (seen.length === 2) controller.abort()
            }
          } catch {
            aborted = true
          }
          expect(aborted || controller.signal.aborted).toBe(true)
          expect(seen.length).toBeLessThan(10)
          const request = chatRequests(pool.servers[0]!)[0]!
          const closed = await request.closed
          expect(closed.finished).toBe(false)
        })
      })

      it("an abort before the first byte rejects generateText and cuts the request", async () => {
        await withProvider([{ headersDelayMs: 5000 }], via, {}, async ({ provider, pool }) => {
          const controller = new AbortController()
          const pending = generateText({ model: provider("gpt-4o"), prompt: "Hello", abortSignal: controller.signal })
          while (chatRequests(pool.servers[0]!).length === 0) await new Promise((r) => setTimeout(r, 5))
          controller.abort()
          await expect(pending).rejects.toThrow()
          expect((await chatRequests(pool.servers[0]!)[0]!.closed).finished).toBe(false)
        })
      })

      it("errors are APICallError, not retryable, with easychat's typed error as cause; the SDK does not retry", async () => {
        const down = { fault: { kind: "status", status: 503 } } as const
        await withProvider([down, down, down], via, {}, async ({ provider, pool }) => {
          const error = await generateText({ model: provider("gpt-4o"), prompt: "Hello" }).catch((e: unknown) => e)
          expect(APICallError.isInstance(error)).toBe(true)
          const call = error as APICallError
          expect(call.isRetryable).toBe(false)
          expect(call.statusCode).toBe(503)
          expect((call.cause as { _tag: string })._tag).toBe("AllServersFailed")
          expect(call.message).toBe((call.cause as Error).message)
          // The SDK's default `maxRetries: 2` did not repeat the pool's failover: one request per mirror.
          expect(pool.servers.map((s) => chatRequests(s).length)).toEqual([1, 1, 1])

          const errors: Array<unknown> = []
          const streamed = streamText({
            model: provider("gpt-4o"),
            prompt: "Hello",
            onError: ({ error }: { error: unknown }) => {
              errors.push(error)
            }
          })
          await streamed.consumeStream()
          expect(errors).toHaveLength(1)
          expect(APICallError.isInstance(errors[0])).toBe(true)
          expect((errors[0] as APICallError).isRetryable).toBe(false)
        })
      })

      it("a stream cut after its first delta ends with an error part and the text so far", async () => {
        await withProvider(
          [{ reply: exactText, fault: { kind: "close-mid-stream", afterDeltas: 2 } }],
          via,
          {},
          async ({ provider }) => {
            const parts: Array<Json> = []
            const result = streamText({ model: provider("gpt-4o"), prompt: "Hello", onError: () => {} })
            for await (const part of result.fullStream) parts.push(part)
            const error = parts.find((p) => p.type === "error")?.error as APICallError
            expect(APICallError.isInstance(error)).toBe(true)
            expect((error.cause as { _tag: string })._tag).toBe("StreamInterrupted")
            expect(
              parts
                .filter((p) => p.type === "text-delta")
                .map((p) => p.text)
                .join("")
            ).toBe(exactText.slice(0, [...exactText].slice(0, 8).join("").length))
          }
        )
      })
    })
  })

  describe.each(compared.map((fixture) => [fixture.name, fixture] as const))(
    `${line.name}: the same as @ai-sdk/openai-compatible on %s`,
    (_, fixture) => {
      const both = async (body: (ours: AnyModel, theirs: AnyModel) => Promise<void>) => {
        await withProvider([{ fixture }], "fetch", { includeUsage: true, defaults: {} }, async ({ provider, pool }) => {
          const theirs = createOpenAICompatible({
            name: "mirror",
            baseURL: `${pool.urls[0]}/api/openai/v1`,
            includeUsage: true
          }).chatModel("gpt-4o")
          await body(provider("gpt-4o"), theirs)
          // Both sent the same request.
          const [oursWhole, theirsWhole, ...rest] = chatRequests(pool.servers[0]!).map((r) => r.body)
          // easychat always says `stream`; openai-compatible leaves it out of a whole request.
          expect(oursWhole).toEqual({ stream: false, ...(theirsWhole as Json) })
          if (rest.length === 2) expect(rest[0]).toEqual(rest[1])
        })
      }

      it("streamText and generateText through the ai package: the same parts and results", async () => {
        await both(async (ours, theirs) => {
          const prompt = "Hello"
          const tools = fixture === Fixtures.openaiParallelToolCalls ? declaredTools : undefined
          const providerOptions = fixture === Fixtures.logprobs ? callOptions(fixture).providerOptions : undefined
          const settings = (model: AnyModel) => ({
            model,
            prompt,
            ...(tools ? { tools } : {}),
            ...(providerOptions ? { providerOptions } : {})
          })
          const whole = async (model: AnyModel) => {
            const r = await generateText(settings(model))
            return [r.text, r.reasoningText, r.toolCalls, r.finishReason, r.rawFinishReason, r.usage, r.response.id]
          }
          expect(await whole(ours)).toEqual(await whole(theirs))
          const streamed = async (model: AnyModel) => {
            const parts: Array<Json> = []
            for await (const part of streamText(settings(model)).fullStream) {
              // `performance` (ai 7) is a measurement of this run: timings and rates.
              const { providerMetadata: _, request: __, performance: ___, response, ...rest } = part as Json
              parts.push(response === undefined ? rest : { ...rest, response: { ...response, headers: undefined } })
            }
            return parts
          }
          const parts = await streamed(ours)
          expect(parts.filter((p) => p.type.endsWith("-delta")).length).toBeGreaterThan(2)
          expect(parts).toEqual(await streamed(theirs))
        })
      })

      it("doGenerate and doStream: same content, parts, usage and finish reason", async () => {
        await both(async (ours, theirs) => {
          const a = await ours.doGenerate(callOptions(fixture))
          const b = await theirs.doGenerate(callOptions(fixture))
          expect(a.content).toEqual(b.content)
          expect(a.finishReason).toEqual(b.finishReason)
          expect(a.usage).toEqual(b.usage)
          expect(a.warnings).toEqual(b.warnings)
          const { headers: _h, body: rawA, ...responseA } = a.response ?? {}
          const { headers: _h2, body: rawB, ...responseB } = b.response ?? {}
          expect(responseA).toEqual(responseB)
          expect(rawA).toEqual(rawB)
          expect(await partsOf(ours, callOptions(fixture))).toEqual(await partsOf(theirs, callOptions(fixture)))
        })
      })
    }
  )
}
