import type { ChatCompletion, ChatDelta, Usage } from "@easychat/core"
import * as AiError from "@effect/ai/AiError"
import * as IdGenerator from "@effect/ai/IdGenerator"
import type * as Response from "@effect/ai/Response"
import * as Tool from "@effect/ai/Tool"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

const module = "EasyChatLanguageModel"

/** OpenAI's finish reasons (and the legacy `function_call`) as `@effect/ai`'s. */
export const finishReason = (reason: string | undefined, hasToolCalls: boolean): Response.FinishReason => {
  switch (reason) {
    case "stop":
    case "eos":
      return hasToolCalls ? "tool-calls" : "stop"
    case "length":
      return "length"
    case "content_filter":
      return "content-filter"
    case "tool_calls":
    case "function_call":
      return "tool-calls"
    case undefined:
      return hasToolCalls ? "tool-calls" : "unknown"
    default:
      return "other"
  }
}

const field = (value: unknown, key: string): unknown =>
  typeof value === "object" && value !== null ? (value as Record<string, unknown>)[key] : undefined
const numberOr = (value: unknown): number | undefined => (typeof value === "number" ? value : undefined)

/** OpenAI's usage (with DeepSeek's cache field) as `@effect/ai`'s. */
export const usage = (usage: Usage | undefined): typeof Response.Usage.Encoded => {
  const reasoningTokens = numberOr(field(usage?.completion_tokens_details, "reasoning_tokens"))
  const cachedInputTokens =
    numberOr(field(usage?.prompt_tokens_details, "cached_tokens")) ?? numberOr(usage?.prompt_cache_hit_tokens)
  return {
    inputTokens: usage?.prompt_tokens,
    outputTokens: usage?.completion_tokens,
    totalTokens:
      usage?.total_tokens ??
      (usage?.prompt_tokens === undefined && usage?.completion_tokens === undefined
        ? undefined
        : (usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0)),
    ...(reasoningTokens === undefined ? {} : { reasoningTokens }),
    ...(cachedInputTokens === undefined ? {} : { cachedInputTokens })
  }
}

const responseMetadata = (
  meta: { readonly id?: unknown; readonly model?: unknown; readonly created?: unknown },
  server: string
): Response.ResponseMetadataPartEncoded => ({
  type: "response-metadata",
  ...(typeof meta.id === "string" ? { id: meta.id } : {}),
  ...(typeof meta.model === "string" ? { modelId: meta.model } : {}),
  ...(typeof meta.created === "number"
    ? { timestamp: DateTime.formatIso(DateTime.unsafeMake(meta.created * 1000)) }
    : {}),
  metadata: { easychat: { server } }
})

const parseParams = (method: string, name: string, text: string): Effect.Effect<unknown, AiError.AiError> =>
  Effect.try({
    // An empty argument string is a call without arguments (some servers send none).
    try: () => Tool.unsafeSecureJsonParse(text.length === 0 ? "{}" : text),
    catch: (cause) =>
      new AiError.MalformedOutput({
        module,
        method,
        description: `Cannot parse the arguments of a call of the tool '${name}'`,
        cause
      })
  })

/** A whole reply as response parts. */
export const makeResponse = (
  reply: ChatCompletion
): Effect.Effect<Array<Response.PartEncoded>, AiError.AiError, IdGenerator.IdGenerator> =>
  Effect.gen(function* () {
    const ids = yield* IdGenerator.IdGenerator
    const parts: Array<Response.PartEncoded> = [responseMetadata(reply, reply.server)]
    if (reply.reasoning !== undefined && reply.reasoning.length > 0) {
      parts.push({ type: "reasoning", text: reply.reasoning })
    }
    if (reply.content.length > 0) parts.push({ type: "text", text: reply.content })
    const calls = reply.toolCalls ?? []
    for (const call of calls) {
      const params = yield* parseParams("generateText", call.function.name, call.function.arguments)
      const id = call.id.length > 0 ? call.id : yield* ids.generateId()
      parts.push({ type: "tool-call", id, name: call.function.name, params })
    }
    parts.push({
      type: "finish",
      reason: finishReason(reply.finishReason, calls.length > 0),
      usage: usage(reply.usage),
      metadata: {
        easychat:
          reply.refusal === undefined ? { server: reply.server } : { server: reply.server, refusal: reply.refusal }
      }
    })
    return parts
  })

interface OpenToolCall {
  readonly id: string
  readonly name: string
  arguments: string
  ended: boolean
}

/**
 * A stream of deltas as stream parts: choice 0's text and reasoning as
 * start/delta/end parts, tool-call fragments as `tool-params-*` parts and,
 * once the server finished the call, one `tool-call` with the joined
 * arguments; then the finish part with the last usage the server sent.
 */
export const makeStreamResponse = (
  deltas: Stream.Stream<ChatDelta, AiError.AiError>
): Stream.Stream<Response.StreamPartEncoded, AiError.AiError, IdGenerator.IdGenerator> =>
  Stream.unwrap(
    Effect.gen(function* () {
      const ids = yield* IdGenerator.IdGenerator
      let started = false
      let server = ""
      let text: string | undefined
      let reasoning: string | undefined
      let blocks = 0
      let refusal = ""
      let reason: string | undefined
      let lastUsage: Usage | undefined
      const calls = new Map<number, OpenToolCall>()

      const endText = (parts: Array<Response.StreamPartEncoded>) => {
        if (text !== undefined) parts.push({ type: "text-end", id: text })
        text = undefined
      }
      const endReasoning = (parts: Array<Response.StreamPartEncoded>) => {
        if (reasoning !== undefined) parts.push({ type: "reasoning-end", id: reasoning })
        reasoning = undefined
      }
      const endCalls = (parts: Array<Response.StreamPartEncoded>) =>
        Effect.gen(function* () {
          for (const call of calls.values()) {
            if (call.ended) continue
            call.ended = true
            const params = yield* parseParams("streamText", call.name, call.arguments)
            parts.push({ type: "tool-params-end", id: call.id })
            parts.push({ type: "tool-call", id: call.id, name: call.name, params })
          }
        })

      const onDelta = (delta: ChatDelta) =>
        Effect.gen(function* () {
          const parts: Array<Response.StreamPartEncoded> = []
          if (delta.usage !== undefined) lastUsage = delta.usage
          if (delta.choice !== 0) return parts
          if (!started) {
            started = true
            server = delta.server
            parts.push(responseMetadata(delta.chunk, delta.server))
          }
          if (delta.reasoning !== undefined && delta.reasoning.length > 0) {
            endText(parts)
            if (reasoning === undefined) {
              reasoning = `reasoning-${blocks++}`
              parts.push({ type: "reasoning-start", id: reasoning })
            }
            parts.push({ type: "reasoning-delta", id: reasoning, delta: delta.reasoning })
          }
          if (delta.content.length > 0) {
            endReasoning(parts)
            if (text === undefined) {
              text = `text-${blocks++}`
              parts.push({ type: "text-start", id: text })
            }
            parts.push({ type: "text-delta", id: text, delta: delta.content })
          }
          if (delta.refusal !== undefined) refusal += delta.refusal
          for (const fragment of delta.toolCalls ?? []) {
            let call = calls.get(fragment.index)
            if (call === undefined) {
              endReasoning(parts)
              endText(parts)
              const name = fragment.function?.name ?? ""
              call = { id: fragment.id ?? (yield* ids.generateId()), name, arguments: "", ended: false }
              calls.set(fragment.index, call)
              parts.push({ type: "tool-params-start", id: call.id, name })
            }
            const piece = fragment.function?.arguments
            if (piece !== undefined && piece.length > 0) {
              call.arguments += piece
              parts.push({ type: "tool-params-delta", id: call.id, delta: piece })
            }
          }
          if (delta.finishReason !== undefined) {
            reason = delta.finishReason
            endReasoning(parts)
            endText(parts)
            yield* endCalls(parts)
          }
          return parts
        })

      const onEnd = Effect.gen(function* () {
        const parts: Array<Response.StreamPartEncoded> = []
        endReasoning(parts)
        endText(parts)
        yield* endCalls(parts)
        parts.push({
          type: "finish",
          reason: finishReason(reason, calls.size > 0),
          usage: usage(lastUsage),
          metadata: { easychat: refusal.length > 0 ? { server, refusal } : { server } }
        })
        return parts
      })

      return deltas.pipe(
        Stream.mapEffect(onDelta),
        Stream.concat(Stream.fromEffect(Effect.suspend(() => onEnd))),
        Stream.flattenIterables
      )
    })
  )
