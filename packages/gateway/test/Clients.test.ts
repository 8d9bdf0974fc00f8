import { createOpenAICompatible } from "@ai-sdk/openai-compatible"
import { Fixtures } from "@easychat/testkit"
import { generateText, stepCountIs, streamText, tool } from "ai"
import type OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { z } from "zod"
import { chatRequests, transports, withGateway as withGatewayVia } from "./fixtures.js"

const finalText = "It is sunny in both."
const loop = Fixtures.toolLoop(Fixtures.openaiParallelToolCalls, finalText)
const calls = (Fixtures.wholeOf(Fixtures.openaiParallelToolCalls) as OpenAI.ChatCompletion).choices[0]!.message
  .tool_calls as Array<OpenAI.ChatCompletionMessageFunctionToolCall>
const question = [{ role: "user" as const, content: "What is the weather in Paris and Tokyo?" }]

const weather = ({ location }: { location: string }) => ({ location, sky: "sunny" })

// ---------------------------------------------------------------------------
// What the AI SDK (`@ai-sdk/openai-compatible`) must report for each fixture, from the fixture itself

type Json = Record<string, any>
const nonEmpty = (u: unknown): u is string => typeof u === "string" && u !== ""

/** What a client of `fixture` asks for (provider options go into the body as they are). */
const extraParamsFor = (fixture: Fixtures.Fixture): Json =>
  fixture === Fixtures.twoChoices ? { n: 2 } : fixture === Fixtures.logprobs ? { logprobs: true, top_logprobs: 2 } : {}

/** The fixtures that call a tool: the SDK gets the tool's definition for them, without an `execute`. */
const callsTools = (fixture: Fixtures.Fixture) =>
  fixture === Fixtures.openaiParallelToolCalls || fixture === Fixtures.legacyFunctionCall
const weatherTool = {
  get_weather: tool({
    description: "The weather at a place",
    inputSchema: z.object({ location: z.string(), unit: z.string().optional() }),
    outputSchema: z.object({ location: z.string(), sky: z.string() })
  })
}
/** The tool set a request for `fixture` offers: none but for the tool-call fixtures (typed as one for the results). */
const toolsFor = (fixture: Fixtures.Fixture) => (callsTools(fixture) ? weatherTool : ({} as typeof weatherTool))

/** The SDK's unified finish reason for an OpenAI one (a refusal with "stop" is a content filter to it). */
const unifiedFinishReason = (raw: string, refused: boolean) =>
  (
    ({
      stop: refused ? "content-filter" : "stop",
      length: "length",
      content_filter: "content-filter",
      tool_calls: "tool-calls",
      function_call: "tool-calls"
    }) as Record<string, string>
  )[raw] ?? "other"

/** The SDK's `usage` for an OpenAI `usage` object (absent details count 0); all undefined without one. */
const sdkUsageOf = (usage: Json | undefined) => {
  if (usage === undefined)
    return {
      inputTokens: undefined,
      inputTokenDetails: { noCacheTokens: undefined, cacheReadTokens: undefined, cacheWriteTokens: undefined },
      outputTokens: undefined,
      outputTokenDetails: { textTokens: undefined, reasoningTokens: undefined },
      totalTokens: undefined,
      raw: undefined,
      reasoningTokens: undefined,
      cachedInputTokens: undefined
    }
  const cached = usage.prompt_tokens_details?.cached_tokens ?? 0
  const reasoning = usage.completion_tokens_details?.reasoning_tokens ?? 0
  return {
    inputTokens: usage.prompt_tokens,
    inputTokenDetails: {
      noCacheTokens: usage.prompt_tokens - cached,
      cacheReadTokens: cached,
      cacheWriteTokens: undefined
    },
    outputTokens: usage.completion_tokens,
    outputTokenDetails: { textTokens: usage.completion_tokens - reasoning, reasoningTokens: reasoning },
    totalTokens: usage.total_tokens,
    // Everything the server sent (OpenRouter's `cost`, DeepSeek's cache counts) stays in `raw`.
    raw: usage,
    reasoningTokens: reasoning,
    cachedInputTokens: cached
  }
}

/** What the SDK must report for a fixture, read from its whole reply (and, streamed, from its chunks). */
const sdkExpectations = (fixture: Fixtures.Fixture) => {
  const whole = Fixtures.wholeOf(fixture) as Json
  const chunks = Fixtures.chunksOf(fixture) as ReadonlyArray<Json>
  const choice: Json = (whole.choices as Array<Json>).find((c) => c.index === 0)!
  const message: Json = choice.message
  const reasoning = nonEmpty(message.reasoning_content) ? message.reasoning_content : message.reasoning
  const refused = nonEmpty(message.refusal)
  const streamUsage = chunks.filter((c) => c.usage != null).at(-1)?.usage as Json | undefined
  return {
    whole,
    chunks,
    // The SDK has no refusal field: it reports a refusal as the text (the refusal fixture's content is null).
    text: (message.content ?? "") + (refused ? message.refusal : ""),
    reasoning: nonEmpty(reasoning) ? reasoning : undefined,
    // None for the legacy `function_call`: the SDK ignores it (see the generateText test).
    toolCalls: ((message.tool_calls ?? []) as Array<Json>).map((call) => ({
      toolCallId: call.id,
      toolName: call.function.name,
      input: JSON.parse(call.function.arguments)
    })),
    rawFinishReason: choice.finish_reason as string,
    finishReason: unifiedFinishReason(choice.finish_reason, refused),
    usage: sdkUsageOf(whole.usage),
    streamUsage: sdkUsageOf(streamUsage),
    /**
     * The streamed SDK reads `choices[0]` of each chunk, whatever its `index`: with `n: 2` (the chunks of the
     * two choices interleaved, one choice per chunk) its text is both choices' pieces in arrival order.
     */
    streamedText: chunks
      .map((c) => {
        const delta: Json = c.choices?.[0]?.delta ?? {}
        return (typeof delta.content === "string" ? delta.content : "") + (nonEmpty(delta.refusal) ? delta.refusal : "")
      })
      .join(""),
    response: { id: whole.id, modelId: whole.model, timestamp: new Date(whole.created * 1000) }
  }
}

/** The tool results the second request carried, by call id. */
const toolResults = (body: unknown) =>
  ((body as { messages: Array<Record<string, unknown>> }).messages ?? [])
    .filter((m) => m.role === "tool")
    .map((m) => ({ id: m.tool_call_id, content: JSON.parse(String(m.content)) }))

const expectedResults = calls.map((call) => ({
  id: call.id,
  content: weather(JSON.parse(call.function.arguments))
}))

describe.each(transports)("the pool on the %s transport", (via) => {
  const withGateway: typeof withGatewayVia = (mirrors, options, body) => withGatewayVia(mirrors, options, body, via)

  describe("a tool loop through the gateway", () => {
    for (const stream of [false, true]) {
      it(`openai runTools (${stream ? "streamed" : "whole"}): the tools run, their results go back, the text ends it`, async () => {
        await withGateway([{ fixture: loop }], {}, async ({ client, pool }) => {
          const ran: Array<string> = []
          const runner = client.chat.completions.runTools({
            model: "gpt-4o",
            messages: question,
            stream,
            tools: [
              {
                type: "function",
                function: {
                  name: "get_weather",
                  description: "The weather at a place",
                  parameters: {
                    type: "object",
                    properties: { location: { type: "string" }, unit: { type: "string" } },
                    required: ["location"]
                  },
                  parse: JSON.parse,
                  function: (args: { location: string }) => {
                    ran.push(args.location)
                    return weather(args)
                  }
                }
              }
            ]
          } as Parameters<typeof client.chat.completions.runTools>[0])
          expect(await runner.finalContent()).toBe(finalText)
          expect(ran).toEqual(["Paris, France", "Tokyo, Japan"])
          const sent = chatRequests(pool.servers[0]!)
          expect(sent).toHaveLength(2)
          const assistant = (sent[1]!.body as { messages: Array<Record<string, unknown>> }).messages[1]
          expect(assistant).toMatchObject({ role: "assistant", tool_calls: calls })
          expect(toolResults(sent[1]!.body)).toEqual(expectedResults)
        })
      })
    }

    for (const streamed of [false, true]) {
      it(`AI SDK ${streamed ? "streamText" : "generateText"}: two steps, the tools executed, the final text`, async () => {
        await withGateway([{ fixture: loop }], {}, async ({ gateway, pool }) => {
          const provider = createOpenAICompatible({ name: "gateway", baseURL: `${gateway.url}/v1`, apiKey: "unused" })
          const ran: Array<string> = []
          const options = {
            model: provider.chatModel("gpt-4o"),
            messages: question,
            tools: {
              get_weather: tool({
                description: "The weather at a place",
                inputSchema: z.object({ location: z.string(), unit: z.string().optional() }),
                execute: async (args) => {
                  ran.push(args.location)
                  return weather(args)
                }
              })
            },
            stopWhen: stepCountIs(2)
          }
          const result = streamed ? streamText(options) : await generateText(options)
          const steps = await result.steps
          expect(steps).toHaveLength(2)
          expect(steps[0]!.toolCalls.map((c) => [c.toolCallId, c.toolName, c.input])).toEqual(
            calls.map((c) => [c.id, "get_weather", JSON.parse(c.function.arguments)])
          )
          expect(steps[0]!.finishReason).toBe("tool-calls")
          expect(await result.text).toBe(finalText)
          expect(ran).toEqual(["Paris, France", "Tokyo, Japan"])
          const sent = chatRequests(pool.servers[0]!)
          expect(sent).toHaveLength(2)
          expect(toolResults(sent[1]!.body).map((r) => r.id)).toEqual(calls.map((c) => c.id))
        })
      })
    }
  })

  describe.each(Fixtures.all.map((fixture) => [fixture.name, fixture] as const))(
    "the AI SDK on %s through the gateway",
    (_, fixture) => {
      const expected = sdkExpectations(fixture)
      const modelFor = (gateway: { url: string }) =>
        createOpenAICompatible({
          name: "gateway",
          baseURL: `${gateway.url}/v1`,
          apiKey: "unused",
          includeUsage: fixture.includeUsage
        }).chatModel("m")
      const providerOptions = { gateway: extraParamsFor(fixture) }

      it("generateText: text, reasoningText, toolCalls, finishReason, usage and the body, field by field", async () => {
        await withGateway([{ fixture }], {}, async ({ gateway, pool }) => {
          const result = await generateText({
            model: modelFor(gateway),
            prompt: "Hello gateway",
            providerOptions,
            tools: toolsFor(fixture)
          })
          expect(chatRequests(pool.servers[0]!)[0]?.body).toMatchObject(extraParamsFor(fixture))
          expect(result.text).toBe(expected.text)
          expect(result.reasoningText).toBe(expected.reasoning)
          expect(result.toolCalls.map(({ toolCallId, toolName, input }) => ({ toolCallId, toolName, input }))).toEqual(
            expected.toolCalls
          )
          // The tools have no `execute`: the calls are reported, none runs.
          expect(result.toolResults).toEqual([])
          expect(result.finishReason).toBe(expected.finishReason)
          expect(result.rawFinishReason).toBe(expected.rawFinishReason)
          expect(result.usage).toEqual(expected.usage)
          expect(result.totalUsage).toEqual(expected.usage)
          expect(result.response).toMatchObject(expected.response)
          if (fixture === Fixtures.legacyFunctionCall) {
            // The SDK ignores the legacy `function_call` (its response schema has no such field): no tool call, no
            // text, nothing in `content`; only the finish reason ("function_call" → "tool-calls") tells of it.
            expect(expected.whole.choices[0].message.function_call).toMatchObject({ name: "get_weather" })
            expect(result.content).toEqual([])
          }
          // What the SDK does not surface (choice 1, logprobs, function_call, reasoning_details, provider,
          // native_finish_reason) the gateway delivered all the same: the body the SDK parsed is the upstream's.
          expect(result.response.body).toEqual(expected.whole)
        })
      })

      it("streamText: the fullStream's deltas add up to the same text, reasoning and tool calls; finish and usage", async () => {
        await withGateway([{ fixture }], {}, async ({ gateway }) => {
          const result = streamText({
            model: modelFor(gateway),
            prompt: "Hello gateway",
            providerOptions,
            includeRawChunks: true,
            tools: toolsFor(fixture)
          })
          let text = ""
          let reasoning = ""
          const inputs = new Map<string, string>()
          const raw: Array<unknown> = []
          const errors: Array<unknown> = []
          const finishes: Array<Json> = []
          for await (const part of result.fullStream) {
            if (part.type === "text-delta") text += part.text
            else if (part.type === "reasoning-delta") reasoning += part.text
            else if (part.type === "tool-input-delta") inputs.set(part.id, (inputs.get(part.id) ?? "") + part.delta)
            else if (part.type === "raw") raw.push(part.rawValue)
            else if (part.type === "error") errors.push(part.error)
            else if (part.type === "finish") finishes.push(part)
          }
          expect(errors).toEqual([])
          // Every chunk reached the SDK as the upstream sent it, whatever the SDK makes of it.
          expect(raw).toEqual(expected.chunks)
          expect(text).toBe(expected.streamedText)
          // n: 2 — the SDK mixes the two choices (see `streamedText`): choice 0 alone is lost to it.
          if (expected.whole.choices.length === 1) expect(text).toBe(expected.text)
          else expect(text).not.toBe(expected.text)
          expect(await result.text).toBe(text)
          expect(reasoning === "" ? undefined : reasoning).toBe(expected.reasoning)
          expect(await result.reasoningText).toBe(expected.reasoning)
          const toolCalls = (await result.toolCalls).map(({ toolCallId, toolName, input }) => ({
            toolCallId,
            toolName,
            input
          }))
          expect(toolCalls).toEqual(expected.toolCalls)
          // The arguments' fragments, joined per call, are the whole reply's arguments.
          expect([...inputs.entries()].map(([id, input]) => [id, JSON.parse(input)])).toEqual(
            expected.toolCalls.map((c) => [c.toolCallId, c.input])
          )
          expect(await result.finishReason).toBe(expected.finishReason)
          expect(await result.rawFinishReason).toBe(expected.rawFinishReason)
          expect(finishes).toHaveLength(1)
          expect(finishes[0]).toMatchObject({
            finishReason: expected.finishReason,
            rawFinishReason: expected.rawFinishReason
          })
          // Usage only when the stream carries it (the whole reply always does; several streams don't).
          expect(await result.usage).toEqual(expected.streamUsage)
          expect(finishes[0]!.totalUsage).toEqual(expected.streamUsage)
          expect(await result.response).toMatchObject(expected.response)
        })
      })
    }
  )

  describe("reasoning through the gateway", () => {
    const whole = Fixtures.wholeOf(Fixtures.deepseekReasoning) as {
      choices: Array<{ message: { content: string; reasoning_content: string } }>
    }
    const { content, reasoning_content: reasoning } = whole.choices[0]!.message

    for (const streamed of [false, true]) {
      it(`AI SDK ${streamed ? "streamText" : "generateText"}: reasoningText and the text (DeepSeek)`, async () => {
        await withGateway([{ fixture: Fixtures.deepseekReasoning }], {}, async ({ gateway }) => {
          const provider = createOpenAICompatible({ name: "gateway", baseURL: `${gateway.url}/v1`, apiKey: "unused" })
          const options = { model: provider.chatModel("deepseek-reasoner"), prompt: "1+1?" }
          const result = streamed ? streamText(options) : await generateText(options)
          expect(await result.reasoningText).toBe(reasoning)
          expect(await result.text).toBe(content)
        })
      })
    }

    it("openai client: reasoning_content on the message and on the deltas", async () => {
      await withGateway([{ fixture: Fixtures.deepseekReasoning }], {}, async ({ client }) => {
        const reply = await client.chat.completions.create({ model: "deepseek-reasoner", messages: question })
        expect((reply.choices[0]!.message as unknown as { reasoning_content: string }).reasoning_content).toBe(
          reasoning
        )
        let thought = ""
        let said = ""
        for await (const chunk of await client.chat.completions.create({
          model: "deepseek-reasoner",
          messages: question,
          stream: true
        })) {
          const delta = chunk.choices[0]?.delta as { content?: string | null; reasoning_content?: string | null }
          thought += delta?.reasoning_content ?? ""
          said += delta?.content ?? ""
        }
        expect(thought).toBe(reasoning)
        expect(said).toBe(content)
      })
    })
  })
})
