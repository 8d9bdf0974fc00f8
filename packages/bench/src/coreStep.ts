// Core's decode path, for the sections that measure it apart from the engine.
import { type ChatDelta, Sse } from "@easychat/core"

// Core's per-event step itself. It is not exported from the package, so it is
// taken from core's build by path (the bench is a private workspace package).
import { stepOf } from "../../core/dist/internal/chunk.js"
import { emptyTally, type Tally, tallyDelta } from "./tally.js"

const NO_SECRETS: ReadonlyArray<string> = []

/** The two pieces of a core build the decode path runs (`ab.ts` passes another checkout's). */
export interface DecodeParts {
  readonly makeDecoder: () => {
    readonly push: (bytes: Uint8Array) => ReadonlyArray<Sse.SseEvent>
    readonly end: () => ReadonlyArray<Sse.SseEvent>
  }
  readonly stepOf: (server: string, event: Sse.SseEvent, secrets: ReadonlyArray<string>) => unknown
}

type Step = "[DONE]" | ChatDelta | ReadonlyArray<ChatDelta> | undefined

/**
 * Core's decode path as engine.ts runs it on each network read:
 * `Sse.makeDecoder().push`, then `stepOf` on each event, `onDelta` on each
 * delta (every one carries something). `push` returns true at `[DONE]`.
 */
export const decodePathOf = (parts: DecodeParts) => (onDelta: (delta: ChatDelta) => void) => {
  const decoder = parts.makeDecoder()
  const run = (events: ReadonlyArray<Sse.SseEvent>): boolean => {
    for (let i = 0; i < events.length; i++) {
      const step = parts.stepOf("http://bench.invalid", events[i]!, NO_SECRETS) as Step
      if (step === undefined) continue
      if (step === "[DONE]") return true
      if (Array.isArray(step)) for (const delta of step) onDelta(delta)
      else onDelta(step as ChatDelta)
    }
    return false
  }
  return {
    push: (bytes: Uint8Array): boolean => run(decoder.push(bytes)),
    end: (): boolean => run(decoder.end())
  }
}

export const makeDeltaDecoder = decodePathOf({ makeDecoder: Sse.makeDecoder, stepOf })

/** Calls `f` with the content of each delta that has some. */
export const onContent =
  (f: (content: string) => void) =>
  (delta: ChatDelta): void => {
    if (delta.content !== "") f(delta.content)
  }

/** Core's decode path over reads, counting content deltas and their characters. */
export const decodeLoopOf = (make: ReturnType<typeof decodePathOf>) => (chunks: ReadonlyArray<Uint8Array>) => {
  const tally = { deltas: 0, characters: 0 }
  const decoder = make(
    onContent((content) => {
      tally.deltas++
      tally.characters += content.length
    })
  )
  for (let i = 0; i < chunks.length; i++) if (decoder.push(chunks[i]!)) return tally
  decoder.end()
  return tally
}

export const oursDecodeLoop = decodeLoopOf(makeDeltaDecoder)

/** Core's decode path over reads, counting everything a delta carries. */
export const oursTallyLoop = (chunks: ReadonlyArray<Uint8Array>): Tally => {
  const tally = emptyTally()
  const decoder = makeDeltaDecoder((delta) => tallyDelta(tally, delta))
  for (let i = 0; i < chunks.length; i++) if (decoder.push(chunks[i]!)) return tally
  decoder.end()
  return tally
}
