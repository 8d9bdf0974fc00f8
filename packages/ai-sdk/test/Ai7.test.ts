// The provider under `ai` 7 and `@ai-sdk/openai-compatible` 3 (the cases: ./cases.ts). `ai` 7 supports Node 22 and
// later: the cases run there (CI's Node 22 and 24 passes) and are skipped, loudly, on Node 20.
import { createOpenAICompatible } from "@ai-sdk/openai-compatible-3"
import * as ai from "ai-7"
import { describe, expect, it } from "vitest"
import { createEasyChat } from "../src/index.js"
import { chatRequests, type Json, providerCases, withProvider } from "./cases.js"

const nodeMajor = Number(process.versions.node.split(".")[0])
const skip = nodeMajor < 22
if (skip) {
  console.warn(
    `\n${"!".repeat(78)}\n!! SKIPPING the ai 7 cases: ai 7 needs Node 22 or later, this is Node ${process.versions.node}.\n` +
      `!! CI runs them on Node 22 and 24.\n${"!".repeat(78)}\n`
  )
}

// Our models implement specification v3; `ai` 7 takes them as they are (their type included) and adapts them to v4.
const model: Parameters<typeof ai.generateText>[0]["model"] = createEasyChat({ servers: ["http://127.0.0.1:9"] })(
  "gpt-4o"
)

describe.skipIf(skip)("ai 7", () => {
  it("takes the provider's models (specification v3)", () => {
    expect(typeof model === "object" && model.specificationVersion).toBe("v3")
  })

  providerCases({ name: "ai 7", ai, createOpenAICompatible })

  // `reasoning` is new in ai 7 (specification v4): ai 7 passes it on to v3 models as it is.
  describe("the reasoning setting", () => {
    const sent = (reasoning: string | undefined, providerOptions?: Json) =>
      withProvider(1, "fetch", { defaults: {} }, async ({ provider, pool }) => {
        const theirs = createOpenAICompatible({ name: "easychat", baseURL: `${pool.urls[0]}/api/openai/v1` })
        for (const model of [provider("gpt-4o"), theirs.chatModel("gpt-4o")])
          await ai.generateText({
            model,
            prompt: "Hi",
            ...(reasoning === undefined ? {} : { reasoning: reasoning as "high" }),
            ...(providerOptions === undefined ? {} : { providerOptions })
          })
        const [ours, openaiCompatible] = chatRequests(pool.servers[0]!).map((r) => r.body as Json)
        // easychat always says `stream`; openai-compatible leaves it out of a whole request.
        expect(ours).toEqual({ stream: false, ...openaiCompatible })
        return ours!
      })

    for (const reasoning of ["high", "none", "xhigh"]) {
      it(`"${reasoning}" is sent as reasoning_effort, as @ai-sdk/openai-compatible 3 sends it`, async () => {
        expect((await sent(reasoning)).reasoning_effort).toBe(reasoning)
      })
    }

    it('"provider-default", or no setting, sends no reasoning_effort', async () => {
      expect(await sent("provider-default")).not.toHaveProperty("reasoning_effort")
      expect(await sent(undefined)).not.toHaveProperty("reasoning_effort")
    })

    it("a reasoning_effort in providerOptions wins over the setting", async () => {
      const body = await withProvider(1, "fetch", { defaults: {} }, async ({ provider, pool }) => {
        await ai.generateText({
          model: provider("gpt-4o"),
          prompt: "Hi",
          reasoning: "high",
          providerOptions: { easychat: { reasoning_effort: "low" } }
        })
        return chatRequests(pool.servers[0]!)[0]!.body as Json
      })
      expect(body.reasoning_effort).toBe("low")
    })
  })
})
