// What `easychat chat` shows of a whole reply — reasoning, tool calls, a
// refusal, every field in --json — and what each preset sends, against
// mirrors that answer with replies recorded from real servers.
import { type ChatDelta, Presets } from "@easychat/core"
import { Fixtures, MirrorServer } from "@easychat/testkit"
import { createClient } from "@easychat/transport-node"
import { describe, expect, it } from "vitest"
import { chatRequests, run } from "./helpers.js"

const withFixture = async (fixture: Fixtures.Fixture, f: (mirror: MirrorServer.MirrorServer) => Promise<void>) => {
  const mirror = await MirrorServer.start({ fixture })
  try {
    await f(mirror)
  } finally {
    await mirror.close()
  }
}

const jsonLines = (stdout: string): Array<Record<string, unknown>> =>
  stdout
    .trimEnd()
    .split("\n")
    .map((line) => JSON.parse(line))

// Fixtures.deepseekReasoning: reasoning_content deltas, then content deltas.
const deepseekAnswer = "**答案：2**\n\n1 + 1 = 2 🙂"
const deepseekReasoning = ['[reasoning] 嗯，用户问"1+1"等于几。', "[reasoning] 这很简单：答案是2。"]

describe("easychat chat: reasoning, tool calls, refusals", () => {
  it.concurrent("shows the reasoning before the answer, as [reasoning] lines off a terminal, streamed or whole", async () => {
    await withFixture(Fixtures.deepseekReasoning, async (mirror) => {
      const streamed = await run(["chat", "--server", mirror.url, "1+1?"])
      const whole = await run(["chat", "--server", mirror.url, "--no-stream", "1+1?"])
      for (const result of [streamed, whole]) {
        expect(result.stderr).toBe("")
        expect(result.code).toBe(0)
        expect(result.stdout).toBe(`${[...deepseekReasoning, deepseekAnswer].join("\n")}\n`)
      }
      expect(chatRequests(mirror.requests).map((r) => (r.body as { stream: boolean }).stream)).toEqual([true, false])
    })
  })

  it.concurrent("--no-reasoning shows the answer alone", async () => {
    await withFixture(Fixtures.ollamaReasoning, async (mirror) => {
      const whole = JSON.parse(Fixtures.ollamaReasoning.whole).choices[0].message.content as string
      const streamed = await run(["chat", "--server", mirror.url, "--no-reasoning", "think"])
      const complete = await run(["chat", "--server", mirror.url, "--no-reasoning", "--no-stream", "think"])
      const shown = await run(["chat", "--server", mirror.url, "think"])
      for (const result of [streamed, complete]) {
        expect(result.code).toBe(0)
        expect(result.stdout).toBe(`${whole}\n`)
      }
      expect(shown.stdout.startsWith("[reasoning] ")).toBe(true)
      expect(shown.stdout.endsWith(`\n${whole}\n`)).toBe(true)
    })
  })

  it.concurrent("shows each tool call the model asked for, streamed or whole", async () => {
    await withFixture(Fixtures.openaiParallelToolCalls, async (mirror) => {
      const expected =
        '[tool call] get_weather({"location":"Paris, France","unit":"celsius"})\n' +
        '[tool call] get_weather({"location":"Tokyo, Japan","unit":"celsius"})\n'
      for (const args of [[], ["--no-stream"]]) {
        const result = await run(["chat", "--server", mirror.url, ...args, "weather?"])
        expect(result.code).toBe(0)
        expect(result.stderr).toBe("")
        expect(result.stdout).toBe(expected)
      }
    })
    await withFixture(Fixtures.legacyFunctionCall, async (mirror) => {
      const result = await run(["chat", "--server", mirror.url, "weather?"])
      expect(result.stdout).toBe('[tool call] get_weather({"location":"東京","unit":"celsius"})\n')
    })
  })

  it.concurrent("shows a refusal", async () => {
    await withFixture(Fixtures.refusal, async (mirror) => {
      for (const args of [[], ["--no-stream"]]) {
        const result = await run(["chat", "--server", mirror.url, ...args, "something bad"])
        expect(result.code).toBe(0)
        expect(result.stdout).toBe("[refusal] I'm sorry, I can't assist with that request.\n")
      }
    })
  })

  it.concurrent("shows choice 0 only; --json has every choice", async () => {
    await withFixture(Fixtures.twoChoices, async (mirror) => {
      const result = await run(["chat", "--server", mirror.url, "--no-stream", "hello twice"])
      const body = JSON.parse(Fixtures.twoChoices.whole)
      expect(result.stdout).toBe(`${body.choices[0].message.content}\n`)
      const json = await run(["chat", "--server", mirror.url, "--json", "hello twice"])
      const lines = jsonLines(json.stdout)
      expect(new Set(lines.filter((l) => l.type === "delta").map((l) => l.choice))).toEqual(new Set([0, 1]))
      expect((lines.at(-1)!.choices as Array<{ content: string }>).map((c) => c.content)).toEqual(
        body.choices.map((c: { message: { content: string } }) => c.message.content)
      )
    })
  })
})

describe("easychat chat --json: nothing lost", () => {
  it.concurrent("a stream: each delta's fields and its chunk, then the reply they add up to", async () => {
    await withFixture(Fixtures.openaiParallelToolCalls, async (mirror) => {
      const result = await run(["chat", "--server", mirror.url, "--json", "weather?"])
      expect(result.code).toBe(0)
      const lines = jsonLines(result.stdout)
      const deltas = lines.slice(0, -1)
      const last = lines.at(-1)!
      for (const d of deltas) expect(d).toMatchObject({ type: "delta", choice: 0, server: mirror.url })
      // Every delta carries the chunk it came from, as the server sent it.
      const chunks = Fixtures.chunksOf(Fixtures.openaiParallelToolCalls)
      for (const d of deltas) expect(chunks).toContainEqual(d.chunk)
      expect(deltas[0]).toMatchObject({
        toolCalls: [
          { index: 0, id: "call_Fq8ZpK2mW7xR4tN9vB3cL6hJ", type: "function", function: { name: "get_weather" } }
        ]
      })
      expect(deltas.at(-1)).toMatchObject({ finishReason: "tool_calls" })
      const whole = JSON.parse(Fixtures.openaiParallelToolCalls.whole)
      expect(last).toMatchObject({
        type: "result",
        content: "",
        finishReason: "tool_calls",
        toolCalls: whole.choices[0].message.tool_calls,
        choices: [{ index: 0, finishReason: "tool_calls", toolCalls: whole.choices[0].message.tool_calls }],
        model: whole.model,
        id: whole.id,
        created: whole.created,
        systemFingerprint: whole.system_fingerprint,
        raw: { object: "chat.completion", id: whole.id },
        server: mirror.url
      })
      // The same as core gives a program: the CLI adds only `type` (and each delta's `chunk`).
      const client = createClient({ servers: [mirror.url], defaults: {} })
      try {
        const expected: Array<ChatDelta> = []
        for await (const delta of client.streamDeltas({ messages: [{ role: "user", content: "weather?" }] })) {
          expected.push(delta)
        }
        expect(deltas).toEqual(expected.map((d) => ({ type: "delta", ...d, chunk: d.chunk })))
      } finally {
        await client.close()
      }
    })
  })

  it.concurrent("a whole reply: the ChatCompletion, with reasoning, refusal, logprobs and the raw body", async () => {
    const cases: ReadonlyArray<readonly [Fixtures.Fixture, Record<string, unknown>]> = [
      [
        Fixtures.deepseekReasoning,
        { reasoning: '嗯，用户问"1+1"等于几。\n这很简单：答案是2。', content: deepseekAnswer }
      ],
      [Fixtures.refusal, { refusal: "I'm sorry, I can't assist with that request.", content: "" }],
      [Fixtures.logprobs, { logprobs: { content: expect.any(Array) } }]
    ]
    for (const [fixture, fields] of cases) {
      await withFixture(fixture, async (mirror) => {
        const result = await run(["chat", "--server", mirror.url, "--no-stream", "--json", "whole"])
        expect(result.code, fixture.name).toBe(0)
        const lines = jsonLines(result.stdout)
        expect(lines, fixture.name).toHaveLength(1)
        const body = Fixtures.wholeOf(fixture) as Record<string, unknown>
        expect(lines[0], fixture.name).toMatchObject({
          type: "result",
          ...fields,
          choices: [expect.objectContaining({ index: 0 })],
          usage: body.usage,
          model: body.model,
          id: body.id,
          created: body.created,
          raw: body,
          server: mirror.url
        })
        const client = createClient({ servers: [mirror.url], defaults: {} })
        try {
          const reply = await client.complete({ messages: [{ role: "user", content: "whole" }] })
          expect(lines[0], fixture.name).toEqual(JSON.parse(JSON.stringify({ type: "result", ...reply })))
        } finally {
          await client.close()
        }
      })
    }
  })
})

describe("easychat chat --preset", () => {
  const browserLike = ["sec-ch-ua", "sec-fetch-mode", "origin", "referer", "x-requested-with"]

  it.concurrent("openai: plain headers, /v1/chat/completions, no cookies, no sampling defaults", async () => {
    const mirror = await MirrorServer.start()
    try {
      const result = await run(["chat", "--server", mirror.url, "--preset", "openai", "--api-key", "sk-1", "plain"])
      expect(result.code).toBe(0)
      expect(mirror.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /v1/chat/completions"])
      const [request] = mirror.requests
      for (const name of browserLike) expect(request!.headers, name).not.toHaveProperty(name)
      expect(request!.headers["user-agent"] ?? "").not.toContain("Mozilla")
      expect(request!.headers.authorization).toBe("Bearer sk-1")
      expect(request!.body).toEqual({
        messages: [{ role: "user", content: "plain" }],
        stream: true,
        model: "gpt-3.5-turbo"
      })
    } finally {
      await mirror.close()
    }
  })

  it.concurrent("easychat: cookies first, browser-like headers and its sampling defaults", async () => {
    const mirror = await MirrorServer.start()
    try {
      const result = await run(["chat", "--server", mirror.url, "--preset", "easychat", "--top-p", "0.9", "mirror"])
      expect(result.code).toBe(0)
      expect(mirror.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        "GET /",
        "POST /api/openai/v1/chat/completions"
      ])
      const request = chatRequests(mirror.requests)[0]!
      expect(request.headers).toMatchObject({
        "sec-ch-ua": Presets.browserHeaders(mirror.url)["sec-ch-ua"],
        origin: mirror.url,
        referer: `${mirror.url}/`
      })
      expect(request.headers["user-agent"]).toContain("Mozilla")
      // A flag wins over the preset's default.
      expect(request.body).toMatchObject({ temperature: 0.5, presence_penalty: 0, frequency_penalty: 0, top_p: 0.9 })
    } finally {
      await mirror.close()
    }
  })

  it.concurrent("without --preset: nextchat for a named server, openai for another path", async () => {
    const mirror = await MirrorServer.start()
    try {
      const named = await run(["chat", "--server", mirror.url, "named server"])
      const path = await run(["chat", "--server", mirror.url, "--path", "/v1/chat/completions", "other path"])
      const code = await run(["chat", "--server", mirror.url, "--preset", "nextchat", "--access-code", "c", "code"])
      for (const result of [named, path, code]) expect(result.code).toBe(0)
      expect(mirror.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        "POST /api/openai/v1/chat/completions",
        "POST /v1/chat/completions",
        "POST /api/openai/v1/chat/completions"
      ])
      for (const request of mirror.requests) {
        for (const name of browserLike) expect(request.headers, name).not.toHaveProperty(name)
        expect(request.body).not.toHaveProperty("temperature")
      }
      expect(mirror.requests[2]!.headers.authorization).toBe("Bearer nk-c")
    } finally {
      await mirror.close()
    }
  })

  it.concurrent("nextchat and openai need servers", async () => {
    const result = await run(["chat", "--preset", "openai", "hi"])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("the openai preset needs servers")
  })
})
