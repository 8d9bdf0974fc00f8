import type { ChatDelta } from "@easychat/core"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import { makeChunkEncoder } from "../src/internal/openai.js"

const meta = { id: "chatcmpl-1", created: 1700000000, model: "m\u00e9" }
const head = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m\u00e9"`
const event = (delta: string, finish: string) =>
  `data: ${head},"choices":[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":${finish}}]}\n\n`
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

describe("makeChunkEncoder", () => {
  it("writes each delta's content as TextEncoder would: escapes, accents, CJK, emoji and lone surrogates", () => {
    const contents = ['a"b\\c\n\u0001', "é中", "🎉👨‍👩‍👧", "\ud800x\udc00", "\u2028\u007f", "x".repeat(5000)]
    const deltas: Array<ChatDelta> = contents.map((content) => ({ content, server: "s" }))
    const chunks = makeChunkEncoder(meta, false)
    const expected =
      event(`{"role":"assistant","content":""}`, "null") +
      contents.map((c) => event(`{"content":${JSON.stringify(c)}}`, "null")).join("")
    expect(chunks.deltas(Chunk.fromIterable(deltas))).toEqual(new TextEncoder().encode(expected))
    expect(text(chunks.end())).toBe("data: [DONE]\n\n")
  })

  it("writes a finish reason with or without content, and usage only when asked for", () => {
    const usage = { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }
    const chunks = makeChunkEncoder(meta, true)
    chunks.deltas(Chunk.empty())
    const batch: Array<ChatDelta> = [
      { content: "", server: "s" },
      { content: "end", finishReason: "length", server: "s" },
      { content: "", finishReason: "stop", usage, server: "s" }
    ]
    expect(text(chunks.deltas(Chunk.fromIterable(batch)))).toBe(
      event(`{"content":"end"}`, `"length"`) + event("{}", `"stop"`)
    )
    expect(text(chunks.end())).toBe(`data: ${head},"choices":[],"usage":${JSON.stringify(usage)}}\n\ndata: [DONE]\n\n`)
  })
})
