import { Fixtures } from "@easychat/testkit"
import type OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { chatRequests, messages, postJson, transports, withGateway as withGatewayVia } from "./fixtures.js"

/** What a client of `fixture` asks for, so that the request is one a real server answers that way. */
const paramsFor = (fixture: Fixtures.Fixture) => ({
  model: "m",
  messages,
  ...(fixture === Fixtures.twoChoices ? { n: 2 } : {}),
  ...(fixture === Fixtures.logprobs ? { logprobs: true, top_logprobs: 2 } : {})
})

/** The `data:` payloads of an SSE text, exactly as written (comments and other fields left out). */
const dataOf = (text: string): Array<string> =>
  text.split(/\n\n/).flatMap((block) => {
    const lines = block.split("\n").filter((line) => line.startsWith("data:"))
    return lines.length === 0 ? [] : [lines.map((line) => line.slice(line.startsWith("data: ") ? 6 : 5)).join("\n")]
  })

describe.each(transports)("the pool on the %s transport", (via) => {
  const withGateway: typeof withGatewayVia = (mirrors, options, body) => withGatewayVia(mirrors, options, body, via)

  describe.each(Fixtures.all.map((fixture) => [fixture.name, fixture] as const))(
    "%s through the gateway",
    (_, fixture) => {
      it("openai client, whole: the upstream's body", async () => {
        await withGateway([{ fixture }], {}, async ({ client, pool }) => {
          const reply = await client.chat.completions.create(
            paramsFor(fixture) as OpenAI.ChatCompletionCreateParamsNonStreaming
          )
          expect({ ...reply }).toEqual(Fixtures.wholeOf(fixture))
          // The request went on as the client sent it: nothing added, nothing dropped.
          expect(chatRequests(pool.servers[0]!)[0]?.body).toEqual({ ...paramsFor(fixture), stream: false })
        })
      })

      it("openai client, streamed: every chunk as the upstream sent it", async () => {
        await withGateway([{ fixture }], {}, async ({ client }) => {
          const stream = await client.chat.completions.create({
            ...paramsFor(fixture),
            stream: true,
            ...(fixture.includeUsage ? { stream_options: { include_usage: true } } : {})
          } as OpenAI.ChatCompletionCreateParamsStreaming)
          const chunks: Array<unknown> = []
          for await (const chunk of stream) chunks.push(chunk)
          expect(chunks).toEqual(Fixtures.chunksOf(fixture))
        })
      })

      it("raw SSE: each chunk's text byte for byte, then [DONE], however the upstream's writes cut it", async () => {
        const split = { fixtureSplit: "bytes", chunkSize: 7 } as const
        await withGateway(
          [{ fixture }, { fixture, ...split }],
          { chat: { strategy: "round-robin" } },
          async ({ gateway, pool }) => {
            for (const _ of pool.servers) {
              const response = await postJson(`${gateway.url}/v1/chat/completions`, {
                ...paramsFor(fixture),
                stream: true
              })
              expect(response.status).toBe(200)
              expect(dataOf(response.text)).toEqual(dataOf(fixture.stream))
              expect(response.text.endsWith("data: [DONE]\n\n")).toBe(true)
            }
            for (const server of pool.servers) expect(chatRequests(server)).toHaveLength(1)
          }
        )
      })
    }
  )

  describe("chunks with several choices", () => {
    // Both choices in each chunk, a chunk sent twice in a row, a chunk over two `data:` lines, a keep-alive.
    const both = (a: string, b: string, finish: string | null = null) =>
      JSON.stringify({
        id: "chatcmpl-n2",
        object: "chat.completion.chunk",
        created: 1753874600,
        model: "m",
        choices: [
          { index: 0, delta: { content: a }, logprobs: null, finish_reason: finish },
          { index: 1, delta: { content: b }, logprobs: null, finish_reason: finish }
        ]
      })
    const role =
      '{"id":"chatcmpl-n2","choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null},{"index":1,"delta":{"role":"assistant"},"finish_reason":null}]}'
    const events = [role, both("Hi", "你好"), both("!", "！"), both("!", "！"), both("", "", "stop")]
    const fixture: Fixtures.Fixture = {
      name: "n-2-shared-chunks",
      description: "two choices in every chunk",
      includeUsage: false,
      stream: `${events
        .map((e, i) =>
          i === 2 ? `: keep-alive\n\ndata: ${e.replace(',"choices"', '\ndata: ,"choices"')}\n\n` : `data: ${e}\n\n`
        )
        .join("")}data: [DONE]\n\n`,
      whole: "{}"
    }

    it("sends each chunk once, a chunk sent twice twice, as written", async () => {
      await withGateway([{ fixture }], {}, async ({ client, gateway }) => {
        const response = await postJson(`${gateway.url}/v1/chat/completions`, { messages, n: 2, stream: true })
        expect(dataOf(response.text)).toEqual(dataOf(fixture.stream))
        // The chunk over two lines goes on over two lines.
        expect(response.text).toContain('\ndata: ,"choices"')
        const chunks: Array<unknown> = []
        for await (const chunk of await client.chat.completions.create({ model: "m", messages, n: 2, stream: true }))
          chunks.push(chunk)
        expect(chunks).toEqual(events.map((e) => JSON.parse(e)))
      })
    })
  })
})
