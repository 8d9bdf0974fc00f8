// What a client hands over from a stream, counted the same way on every side:
// ours from its `ChatDelta`s, the others from the chunk objects they parsed.
// Each side touches the text of every field it counts (its length), so that
// none is measured doing less than the others.
import type { ChatDelta } from "@easychat/core"

export interface Tally {
  /** Deltas (choices of a chunk) carrying content, reasoning or tool-call fragments. */
  deltas: number
  /** Characters (UTF-16 units) of content. */
  characters: number
  /** Characters of reasoning (`reasoning_content`, or `reasoning`). */
  reasoning: number
  /** Tool-call fragments (entries of `tool_calls`). */
  fragments: number
  /** Characters of the fragments' `function.arguments`. */
  arguments: number
}

export const emptyTally = (): Tally => ({ deltas: 0, characters: 0, reasoning: 0, fragments: 0, arguments: 0 })

export const sameTally = (a: Tally, b: Tally): boolean =>
  a.deltas === b.deltas &&
  a.characters === b.characters &&
  a.reasoning === b.reasoning &&
  a.fragments === b.fragments &&
  a.arguments === b.arguments

export const showTally = (t: Tally): string =>
  `${t.deltas} deltas, ${t.characters} content / ${t.reasoning} reasoning chars, ${t.fragments} fragments / ${t.arguments} argument chars`

/** Counts one of ours. */
export const tallyDelta = (tally: Tally, delta: ChatDelta): void => {
  let carries = false
  if (delta.content !== "") {
    tally.characters += delta.content.length
    carries = true
  }
  if (delta.reasoning !== undefined) {
    tally.reasoning += delta.reasoning.length
    carries = true
  }
  const calls = delta.toolCalls
  if (calls !== undefined) {
    tally.fragments += calls.length
    for (let i = 0; i < calls.length; i++) tally.arguments += calls[i]!.function?.arguments?.length ?? 0
    carries = true
  }
  if (carries) tally.deltas++
}

/**
 * Counts a parsed `chat.completion.chunk`, every choice, reading the fields
 * as core does (a legacy `function_call`, which core also reports as a tool
 * call, is left out: the corpora have none).
 */
export const tallyChunk = (tally: Tally, chunk: any): void => {
  const choices = chunk.choices
  for (let c = 0; c < choices.length; c++) {
    const delta = choices[c].delta
    if (delta === undefined || delta === null) continue
    let carries = false
    const content = delta.content
    if (typeof content === "string" && content !== "") {
      tally.characters += content.length
      carries = true
    }
    const reasoning =
      typeof delta.reasoning_content === "string" && delta.reasoning_content !== ""
        ? delta.reasoning_content
        : delta.reasoning
    if (typeof reasoning === "string" && reasoning !== "") {
      tally.reasoning += reasoning.length
      carries = true
    }
    const calls = delta.tool_calls
    if (Array.isArray(calls) && calls.length > 0) {
      tally.fragments += calls.length
      for (let i = 0; i < calls.length; i++) tally.arguments += calls[i].function?.arguments?.length ?? 0
      carries = true
    }
    if (carries) tally.deltas++
  }
}
