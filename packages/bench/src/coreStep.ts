// Core's decode path, for the sections that measure it apart from the engine.
import { Sse } from "@easychat/core"

const isObject = (u: unknown): u is Record<string, any> => typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Core's per-event step (`stepOf` in core's src/internal/reply.ts, which is
 * not exported), line for line on the success path: the same checks, the same
 * delta object, so the loop below costs what the engine's loop costs.
 */
export const stepOf = (server: string, event: Sse.SseEvent) => {
  const data = event.data
  if (data === "[DONE]") return "[DONE]" as const
  if (event.event === "error") throw new Error("error event")
  let chunk: unknown
  try {
    chunk = JSON.parse(data)
  } catch {
    throw new Error("not JSON")
  }
  if (!isObject(chunk)) throw new Error("not an object")
  if (chunk.error !== undefined && chunk.error !== null) throw new Error("error chunk")
  const choices = chunk.choices
  const usage = isObject(chunk.usage) ? chunk.usage : undefined
  if (choices !== undefined && !Array.isArray(choices)) throw new Error("choices must be an array")
  const choice: unknown = choices?.[0]
  const delta = isObject(choice) && isObject(choice.delta) ? choice.delta : undefined
  const content = typeof delta?.content === "string" ? delta.content : ""
  const finishReason = isObject(choice) && typeof choice.finish_reason === "string" ? choice.finish_reason : undefined
  if (content === "" && finishReason === undefined && usage === undefined) return undefined
  const out: { content: string; server: string; finishReason?: string; usage?: unknown } = { content, server }
  if (finishReason !== undefined) out.finishReason = finishReason
  if (usage !== undefined) out.usage = usage
  return out
}

/**
 * Core's decode path as engine.ts runs it on each network read:
 * `Sse.makeDecoder().push`, then `stepOf` on each event. `push` returns true
 * at `[DONE]`.
 */
export const makeDeltaDecoder = (onContent: (content: string) => void) => {
  const decoder = Sse.makeDecoder()
  const run = (events: ReadonlyArray<Sse.SseEvent>): boolean => {
    for (let i = 0; i < events.length; i++) {
      const step = stepOf("http://bench.invalid", events[i]!)
      if (step === undefined) continue
      if (step === "[DONE]") return true
      if (step.content !== "") onContent(step.content)
    }
    return false
  }
  return {
    push: (bytes: Uint8Array): boolean => run(decoder.push(bytes)),
    end: (): boolean => run(decoder.end())
  }
}

export const oursDecodeLoop = (chunks: ReadonlyArray<Uint8Array>): { deltas: number; characters: number } => {
  const tally = { deltas: 0, characters: 0 }
  const decoder = makeDeltaDecoder((content) => {
    tally.deltas++
    tally.characters += content.length
  })
  for (let i = 0; i < chunks.length; i++) if (decoder.push(chunks[i]!)) return tally
  decoder.end()
  return tally
}
