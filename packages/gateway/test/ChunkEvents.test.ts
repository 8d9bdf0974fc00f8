import type { ChatDelta } from "@easychat/core"
import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import { makeChunkEvents } from "../src/internal/openai.js"

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)
// Deltas not made by core: `Chat.chunkText` is `JSON.stringify(delta.chunk)`.
const delta = (chunk: Record<string, unknown>, choice = 0): ChatDelta => ({ choice, content: "", chunk, server: "s" })
const batch = (...deltas: Array<ChatDelta>) => Chunk.fromIterable(deltas)

describe("makeChunkEvents", () => {
  it("writes each chunk once, as its text, whatever it holds", () => {
    const chunk = { id: "x", choices: [{ index: 0, delta: { content: 'é中🎉 "q"\n' } }], provider: "p" }
    const events = makeChunkEvents()
    expect(text(events.deltas(batch(delta(chunk))))).toBe(`data: ${JSON.stringify(chunk)}\n\n`)
    expect(text(events.end())).toBe("data: [DONE]\n\n")
  })

  it("writes a chunk with several choices once, and the same text twice when it came twice", () => {
    const two = {
      choices: [
        { index: 0, delta: { content: "a" } },
        { index: 1, delta: { content: "b" } }
      ]
    }
    const again = {
      choices: [
        { index: 0, delta: { content: "a" } },
        { index: 1, delta: { content: "b" } }
      ]
    }
    const events = makeChunkEvents()
    const event = `data: ${JSON.stringify(two)}\n\n`
    // Two deltas of one chunk, then the same text in another chunk (split across batches).
    expect(text(events.deltas(batch(delta(two, 0), delta(two, 1), delta(again, 0))))).toBe(event + event)
    expect(text(events.deltas(batch(delta(again, 1))))).toBe("")
  })

  it("writes an error as an SSE error event in OpenAI's shape", () => {
    const error = { status: 502, body: { error: { message: "m", type: "upstream_error", param: null, code: "X" } } }
    expect(text(makeChunkEvents().error(error))).toBe(`event: error\ndata: ${JSON.stringify(error.body)}\n\n`)
  })
})
