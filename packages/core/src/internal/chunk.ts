import type { ToolCallDelta, Usage } from "../Chat.js"
import { DecodeError, UpstreamError } from "../Errors.js"
import type { SseEvent } from "../Sse.js"
import { parseJson } from "./completion.js"
import { type Chunk, carriesOther, Delta, isActivity, NAMED_CHOICE, NAMED_DELTA, nonEmpty } from "./delta.js"
import { excerpt, isObject, upstreamFromBody } from "./upstream.js"
import { matchFragment, matchKnownFragment, matchUsual, stringOf } from "./usualChunk.js"

/** `[DONE]`: the end of the reply. */
export const DONE = "[DONE]"

/**
 * What one SSE event means for the reply: the end, a delta (no wrapper: one
 * object per event is enough), the deltas of a chunk with several choices,
 * or nothing.
 */
export type Step = typeof DONE | Delta | Array<Delta> | undefined

/** Tool-call fragments as sent; one without an index (some servers) takes its position. */
const fragmentsOf = (calls: ReadonlyArray<unknown>): ReadonlyArray<ToolCallDelta> => {
  for (const call of calls) if (!isObject(call) || !Number.isInteger(call.index)) return calls.map(indexed)
  return calls as ReadonlyArray<ToolCallDelta>
}
const indexed = (call: unknown, position: number): ToolCallDelta =>
  isObject(call) && Number.isInteger(call.index)
    ? (call as unknown as ToolCallDelta)
    : ({ ...(isObject(call) ? call : {}), index: position } as ToolCallDelta)

/** The delta of one choice of a chunk, or `undefined` when it carries nothing. */
const choiceDelta = (server: string, chunk: Chunk, data: string, choice: Record<string, unknown>, position: number) => {
  const delta = isObject(choice.delta) ? choice.delta : undefined
  const index = Number.isInteger(choice.index) ? (choice.index as number) : position
  const out = new Delta(index, typeof delta?.content === "string" ? delta.content : "", server, data, chunk)
  if (delta !== undefined) {
    const reasoning = nonEmpty(delta.reasoning_content) ? delta.reasoning_content : delta.reasoning
    if (nonEmpty(reasoning)) out.reasoning = reasoning
    if (Array.isArray(delta.reasoning_details) && delta.reasoning_details.length > 0) {
      out.reasoningDetails = delta.reasoning_details
    }
    if (Array.isArray(delta.tool_calls) && delta.tool_calls.length > 0) out.toolCalls = fragmentsOf(delta.tool_calls)
    if (isObject(delta.function_call)) {
      out.functionCall = delta.function_call
      out.toolCalls ??= [{ index: 0, function: delta.function_call }]
    }
    if (nonEmpty(delta.refusal)) out.refusal = delta.refusal
  }
  if (choice.logprobs !== undefined && choice.logprobs !== null) out.logprobs = choice.logprobs
  if (typeof choice.finish_reason === "string") out.finishReason = choice.finish_reason
  if (isActivity(out)) return out
  // Only a choice that carries nothing else is looked through for fields without a name.
  if (!carriesOther(choice, NAMED_CHOICE) && (delta === undefined || !carriesOther(delta, NAMED_DELTA)))
    return undefined
  Delta.markOther(out)
  return out
}

/**
 * The deltas of a parsed chunk: one per choice that carries something, the
 * chunk's `usage` on the first of them (or on a delta of its own). With
 * `every`, a chunk that carries nothing still gives one empty delta.
 */
const chunkDeltas = (server: string, chunk: Chunk, data: string, every: boolean): Step => {
  // `null` (Azure, MiniMax, on a usage chunk) is no choices, as an absent key is.
  const choices = chunk.choices === null ? undefined : chunk.choices
  if (choices !== undefined && !Array.isArray(choices)) {
    throw new DecodeError({ reason: "InvalidChunk", detail: "choices must be an array", server })
  }
  let first: Delta | undefined
  let more: Array<Delta> | undefined
  const count = Array.isArray(choices) ? choices.length : 0
  for (let i = 0; i < count; i++) {
    const choice: unknown = choices![i]
    if (!isObject(choice)) {
      throw new DecodeError({ reason: "InvalidChunk", detail: `choices[${i}] must be an object`, server })
    }
    const delta = choiceDelta(server, chunk, data, choice, i)
    if (delta === undefined) continue
    if (first === undefined) first = delta
    else (more ??= [first]).push(delta)
  }
  if (isObject(chunk.usage)) {
    first ??= new Delta(firstIndex(choices), "", server, data, chunk)
    first.usage = chunk.usage as Usage
  }
  if (first === undefined && every) return new Delta(firstIndex(choices), "", server, data, chunk)
  return more ?? first
}
const firstIndex = (choices: unknown): number => {
  const choice: unknown = Array.isArray(choices) ? choices[0] : undefined
  return isObject(choice) && Number.isInteger(choice.index) ? (choice.index as number) : 0
}

/**
 * Turns one SSE event into a step: `[DONE]`, the delta(s) of a chunk, or
 * nothing (a chunk that carries nothing, such as a role-only one; with
 * `every`, an empty delta instead). Throws the typed error for errors sent
 * inside the stream and for chunks that are not JSON objects.
 */
export const stepOf = (server: string, event: SseEvent, secrets: ReadonlyArray<string>, every = false): Step => {
  const data = event.data
  if (data === "[DONE]") return DONE
  if (event.event === "error") {
    let body: unknown = data
    try {
      body = JSON.parse(data)
    } catch {
      // A plain-text error event.
    }
    throw (
      upstreamFromBody(server, isObject(body) && body.error === undefined ? { error: body } : body, secrets) ??
      new UpstreamError({ server, detail: excerpt(data, secrets) })
    )
  }
  const known = matchKnownFragment(data)
  const usual = known === null ? matchUsual(data) : null
  if (usual !== null) {
    // An empty text leaves the chunk to JSON.parse: a field beside it may still be a piece of the reply.
    const content = usual[1]
    if (content !== undefined) {
      const text = stringOf(content)
      if (text !== "") return new Delta(0, text, server, data, undefined)
    } else {
      const reasoning = stringOf((usual[2] ?? usual[3])!)
      if (reasoning !== "") {
        const delta = new Delta(0, "", server, data, undefined)
        delta.reasoning = reasoning
        return delta
      }
    }
  }
  const fragment = known ?? (usual === null ? matchFragment(data) : null)
  if (fragment !== null) {
    // The deltas JSON.parse would give (see `choiceDelta`): the call as sent, its keys in the chunk's order.
    const delta = new Delta(0, "", server, data, undefined)
    delta.toolCalls = [{ index: fragment[0], function: { arguments: stringOf(fragment[1]) } }]
    return delta
  }
  const chunk = parseJson(server, data, secrets)
  if (!isObject(chunk)) {
    throw new DecodeError({
      reason: "InvalidChunk",
      detail: `a chunk must be a JSON object: ${excerpt(data, secrets)}`,
      server
    })
  }
  const upstream = upstreamFromBody(server, chunk, secrets)
  if (upstream !== undefined) throw upstream
  return chunkDeltas(server, chunk, data, every)
}
