/**
 * A `LanguageModelV3` over easychat's Promise facade: `complete` for
 * `doGenerate`, `streamDeltas` for `doStream`, so that failover, breakers,
 * timeouts and routing apply to every call the AI SDK makes.
 */
import type {
  LanguageModelV3,
  LanguageModelV3CallOptions,
  LanguageModelV3Content,
  LanguageModelV3GenerateResult,
  LanguageModelV3StreamPart,
  LanguageModelV3StreamResult,
  SharedV3ProviderMetadata,
  SharedV3Warning
} from "@ai-sdk/provider"
import { APICallError } from "@ai-sdk/provider"
import { generateId, StreamingToolCallTracker } from "@ai-sdk/provider-utils"
import type { ChatCompletion, ChatDelta, ChatRequestInput, Client } from "@easychat/core"
import { Errors } from "@easychat/core"
import { finishReasonOf, type RequestSettings, requestOf, responseMetadataOf, usageOf } from "./convert.js"

type Json = Record<string, unknown>

/** What a model needs of its provider. */
export interface ModelConfig extends RequestSettings {
  readonly provider: string
  readonly client: () => Client.Client
  /** Ask for usage in streams (`stream_options.include_usage`). */
  readonly includeUsage: boolean
}

/** The server an error names, or the last one its attempts tried; `""` when none was reached. */
const serverOf = (error: Errors.EasyChatError): string => {
  if (error._tag === "AllServersFailed") {
    const last = error.attempts.at(-1)
    return last === undefined ? "" : serverOf(last.error)
  }
  return "server" in error && typeof error.server === "string" ? error.server : ""
}

const statusOf = (error: Errors.EasyChatError): number | undefined => {
  if (error._tag === "HttpStatusError") return error.status
  if (error._tag === "AllServersFailed") {
    const last = error.attempts.at(-1)
    return last === undefined ? undefined : statusOf(last.error)
  }
  return undefined
}

/**
 * easychat's typed error as the AI SDK's `APICallError`: never retryable (the
 * pool has already tried every server it may), its message and cause the
 * typed error's, which holds no secret. Anything else (an abort) as it is.
 */
export const apiCallError = (error: unknown, body: unknown): unknown => {
  if (!Errors.isEasyChatError(error)) return error
  const statusCode = statusOf(error)
  return new APICallError({
    message: error.message,
    url: serverOf(error),
    requestBodyValues: body,
    ...(statusCode === undefined ? {} : { statusCode }),
    ...(error._tag === "HttpStatusError" ? { responseBody: error.body } : {}),
    cause: error,
    isRetryable: false,
    data: error
  })
}

const metadataOf = (server: string): SharedV3ProviderMetadata => ({ easychat: { server } })

/** The whole reply as the AI SDK's content parts: reasoning, text, refusal, tool calls. */
const contentOf = (reply: ChatCompletion): Array<LanguageModelV3Content> => {
  const content: Array<LanguageModelV3Content> = []
  if (reply.reasoning) content.push({ type: "reasoning", text: reply.reasoning })
  if (reply.content) content.push({ type: "text", text: reply.content })
  if (reply.refusal) content.push({ type: "text", text: reply.refusal })
  for (const call of reply.toolCalls ?? [])
    content.push({
      type: "tool-call",
      toolCallId: call.id || generateId(),
      toolName: call.function.name,
      input: call.function.arguments
    })
  return content
}

/** @internal */
export class EasyChatLanguageModel implements LanguageModelV3 {
  readonly specificationVersion = "v3"
  readonly supportedUrls: Record<string, Array<RegExp>> = {}
  readonly modelId: string
  readonly provider: string
  private readonly config: ModelConfig

  constructor(modelId: string, config: ModelConfig) {
    this.modelId = modelId
    this.provider = config.provider
    this.config = config
  }

  async doGenerate(options: LanguageModelV3CallOptions): Promise<LanguageModelV3GenerateResult> {
    const { body, warnings } = requestOf(this.modelId, options, this.config)
    const signal = options.abortSignal
    let reply: ChatCompletion
    try {
      reply = await this.config.client().complete(body as ChatRequestInput, signal ? { signal } : {})
    } catch (error) {
      throw apiCallError(error, body)
    }
    return {
      content: contentOf(reply),
      finishReason: finishReasonOf(reply.finishReason, Boolean(reply.refusal)),
      usage: usageOf(reply.usage),
      providerMetadata: metadataOf(reply.server),
      request: { body: JSON.stringify(body) },
      response: { ...responseMetadataOf(reply), body: reply.raw },
      warnings
    }
  }

  async doStream(options: LanguageModelV3CallOptions): Promise<LanguageModelV3StreamResult> {
    const { body: request, warnings } = requestOf(this.modelId, options, this.config)
    const body = this.config.includeUsage ? { ...request, stream_options: { include_usage: true } } : request
    const signal = options.abortSignal
    const deltas = this.config
      .client()
      .streamDeltas(body as ChatRequestInput, signal ? { signal } : {})
      [Symbol.asyncIterator]()
    // The first read opens the call and fails over: a call that no server answers rejects here, as a fetch would.
    let first: IteratorResult<ChatDelta> | undefined
    try {
      first = await deltas.next()
    } catch (error) {
      throw apiCallError(error, body)
    }
    const includeRawChunks = options.includeRawChunks === true
    const parts = streamParts(warnings, includeRawChunks)
    const stream = new ReadableStream<LanguageModelV3StreamPart>({
      start: (controller) => parts.start(controller),
      // A stream pulls again only after something was enqueued: read until a delta gives a part.
      pull: async (controller) => {
        try {
          while (true) {
            const next = first ?? (await deltas.next())
            first = undefined
            if (next.done) {
              parts.flush()
              controller.close()
              return
            }
            if (parts.add(next.value)) return
          }
        } catch (error) {
          const mapped = apiCallError(error, body)
          if (mapped === error) {
            controller.error(error)
            return
          }
          parts.fail(mapped)
          controller.close()
        }
      },
      cancel: async () => {
        await deltas.return?.()
      }
    })
    return { stream, request: { body: JSON.stringify(body) } }
  }
}

/**
 * The AI SDK's stream parts for choice 0's deltas, in the order
 * `@ai-sdk/openai-compatible` gives them: reasoning and text blocks that close
 * when the other opens, tool-call fragments through the SDK's own tracker
 * (`tool-input-start`/`-delta`/`-end`, then `tool-call`), and `finish`.
 */
const streamParts = (warnings: Array<SharedV3Warning>, raw: boolean) => {
  let controller!: ReadableStreamDefaultController<LanguageModelV3StreamPart>
  let tracker!: StreamingToolCallTracker
  let metadataSent = false
  let reasoning = false
  let text = false
  let refused = false
  let rawFinish: string | undefined
  let usage: Json | undefined
  let server = ""
  let lastChunk: unknown
  let failed = false
  // Like openai-compatible: a call's fragments wait for its name, so that `tool-input-start` can carry it.
  const pending = new Map<number, { id: string | null; args: string }>()
  const forwarded = new Set<number>()
  let emitted = 0
  const emit = (part: LanguageModelV3StreamPart) => {
    emitted++
    controller.enqueue(part)
  }
  const endReasoning = () => {
    if (reasoning) emit({ type: "reasoning-end", id: "reasoning-0" })
    reasoning = false
  }
  const endText = () => {
    if (text) emit({ type: "text-end", id: "txt-0" })
    text = false
  }
  const reasoningDelta = (delta: string) => {
    endText()
    if (!reasoning) emit({ type: "reasoning-start", id: "reasoning-0" })
    reasoning = true
    emit({ type: "reasoning-delta", id: "reasoning-0", delta })
  }
  const textDelta = (delta: string) => {
    endReasoning()
    if (!text) emit({ type: "text-start", id: "txt-0" })
    text = true
    emit({ type: "text-delta", id: "txt-0", delta })
  }
  const toolCallDelta = (call: NonNullable<ChatDelta["toolCalls"]>[number]) => {
    const { index } = call
    if (forwarded.has(index)) {
      tracker.processDelta(call)
      return
    }
    let waiting = pending.get(index)
    if (waiting === undefined) {
      waiting = { id: call.id ?? null, args: "" }
      pending.set(index, waiting)
    } else if (waiting.id == null && call.id != null) waiting.id = call.id
    if (call.function?.arguments != null) waiting.args += call.function.arguments
    const name = call.function?.name
    if (name != null) {
      tracker.processDelta({ index, id: waiting.id, function: { name, arguments: waiting.args } })
      pending.delete(index)
      forwarded.add(index)
    }
  }
  return {
    start: (c: ReadableStreamDefaultController<LanguageModelV3StreamPart>) => {
      controller = c
      tracker = new StreamingToolCallTracker({ enqueue: emit }, { generateId })
      emit({ type: "stream-start", warnings })
    },
    /** Whether the delta gave a part. */
    add: (delta: ChatDelta): boolean => {
      const before = emitted
      // The deltas of one chunk share it: one `raw` part per chunk.
      if (raw && delta.chunk !== lastChunk) emit({ type: "raw", rawValue: delta.chunk })
      lastChunk = delta.chunk
      server = delta.server
      if (!metadataSent) {
        metadataSent = true
        emit({ type: "response-metadata", ...responseMetadataOf(delta.chunk) })
      }
      if (delta.usage != null) usage = delta.usage
      if (delta.choice !== 0) return emitted > before
      if (delta.finishReason != null) rawFinish = delta.finishReason
      if (delta.reasoning) reasoningDelta(delta.reasoning)
      if (delta.content) textDelta(delta.content)
      if (delta.refusal) {
        refused = true
        textDelta(delta.refusal)
      }
      if (delta.toolCalls !== undefined && delta.toolCalls.length > 0) {
        endReasoning()
        for (const call of delta.toolCalls) toolCallDelta(call)
      }
      return emitted > before
    },
    fail: (error: unknown) => {
      failed = true
      emit({ type: "error", error })
      finish()
    },
    flush: () => finish()
  }

  function finish() {
    endReasoning()
    endText()
    for (const [index, waiting] of pending)
      tracker.processDelta({ index, id: waiting.id, function: { arguments: waiting.args } })
    pending.clear()
    tracker.flush()
    emit({
      type: "finish",
      finishReason: failed ? { unified: "error", raw: undefined } : finishReasonOf(rawFinish, refused),
      usage: usageOf(usage),
      providerMetadata: metadataOf(server)
    })
  }
}
