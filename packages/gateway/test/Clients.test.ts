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
