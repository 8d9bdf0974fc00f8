// Core's decode path, for the sections that measure it apart from the engine.
import { Sse } from "@easychat/core"

// Core's per-event step itself. It is not exported from the package, so it is
// taken from core's build by path (the bench is a private workspace package).
import { stepOf } from "../../core/dist/internal/reply.js"

const NO_SECRETS: ReadonlyArray<string> = []

/**
 * Core's decode path as engine.ts runs it on each network read:
 * `Sse.makeDecoder().push`, then `stepOf` on each event. `push` returns true
 * at `[DONE]`.
 */
export const makeDeltaDecoder = (onContent: (content: string) => void) => {
  const decoder = Sse.makeDecoder()
  const run = (events: ReadonlyArray<Sse.SseEvent>): boolean => {
    for (let i = 0; i < events.length; i++) {
      const step = stepOf("http://bench.invalid", events[i]!, NO_SECRETS)
      if (step === undefined) continue
      if (step === "[DONE]") return true
      if (Array.isArray(step)) {
        for (const delta of step) if (delta.content !== "") onContent(delta.content)
      } else if (step.content !== "") onContent(step.content)
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
