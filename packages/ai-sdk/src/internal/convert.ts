/**
 * The AI SDK's call options to an OpenAI chat request, and an OpenAI reply's
 * usage and finish reason to the AI SDK's: the same mapping as
 * `@ai-sdk/openai-compatible` 2, so that a model moves between the two
 * providers without a change in what it sends or reports.
 */
import type {
  LanguageModelV3CallOptions,
  LanguageModelV3FinishReason,
  LanguageModelV3Prompt,
  LanguageModelV3ResponseMetadata,
  LanguageModelV3Usage,
  SharedV3Warning
} from "@ai-sdk/provider"
import { UnsupportedFunctionalityError } from "@ai-sdk/provider"
import {
  convertBase64ToUint8Array,
  convertToBase64,
  secureJsonParse,
  stringifyWithBigIntAndCycles
} from "@ai-sdk/provider-utils"

type Json = Record<string, unknown>

/** The provider-options key of a message or part whose fields go into the OpenAI message as they are. */
const metadataOf = (part: { readonly providerOptions?: Record<string, unknown> | undefined }): Json =>
  (part.providerOptions?.easychat as Json | undefined) ?? {}

const audioFormat = (mediaType: string): string | undefined =>
  mediaType === "audio/wav" ? "wav" : mediaType === "audio/mp3" || mediaType === "audio/mpeg" ? "mp3" : undefined

/** Tool-call input as the JSON text OpenAI wants: a string that already is JSON stays as it is. */
const toolArguments = (input: unknown): string => {
  if (typeof input === "string") {
    try {
      secureJsonParse(input)
      return input
    } catch {
      return JSON.stringify(input)
    }
  }
  return stringifyWithBigIntAndCycles(input)
}

type UserPart = Extract<LanguageModelV3Prompt[number], { role: "user" }>["content"][number]

const userPart = (part: UserPart): Json => {
  const metadata = metadataOf(part)
  if (part.type === "text") return { type: "text", text: part.text, ...metadata }
  const { mediaType, data } = part
  if (mediaType.startsWith("image/")) {
    const type = mediaType === "image/*" ? "image/jpeg" : mediaType
    const url = data instanceof URL ? data.toString() : `data:${type};base64,${convertToBase64(data)}`
    return { type: "image_url", image_url: { url }, ...metadata }
  }
  if (mediaType.startsWith("audio/")) {
    const format = audioFormat(mediaType)
    if (data instanceof URL) throw new UnsupportedFunctionalityError({ functionality: "audio file parts with URLs" })
    if (format === undefined)
      throw new UnsupportedFunctionalityError({ functionality: `audio media type ${mediaType}` })
    return { type: "input_audio", input_audio: { data: convertToBase64(data), format }, ...metadata }
  }
  if (mediaType === "application/pdf") {
    if (data instanceof URL) throw new UnsupportedFunctionalityError({ functionality: "PDF file parts with URLs" })
    const file_data = `data:application/pdf;base64,${convertToBase64(data)}`
    return { type: "file", file: { filename: part.filename ?? "document.pdf", file_data }, ...metadata }
  }
  if (mediaType.startsWith("text/")) {
    const text =
      data instanceof URL
        ? data.toString()
        : new TextDecoder().decode(typeof data === "string" ? convertBase64ToUint8Array(data) : data)
    return { type: "text", text, ...metadata }
  }
  throw new UnsupportedFunctionalityError({ functionality: `file part media type ${mediaType}` })
}

/** The AI SDK's prompt as OpenAI chat messages. */
export const messagesOf = (prompt: LanguageModelV3Prompt): Array<Json> => {
  const messages: Array<Json> = []
  for (const message of prompt) {
    const metadata = metadataOf(message)
    switch (message.role) {
      case "system":
        messages.push({ role: "system", content: message.content, ...metadata })
        break
      case "user": {
        const [only] = message.content
        if (message.content.length === 1 && only?.type === "text")
          messages.push({ role: "user", content: only.text, ...metadataOf(only) })
        else messages.push({ role: "user", content: message.content.map(userPart), ...metadata })
        break
      }
      case "assistant": {
        let text = ""
        let reasoning = ""
        const toolCalls: Array<Json> = []
        for (const part of message.content) {
          if (part.type === "text") text += part.text
          else if (part.type === "reasoning") reasoning += part.text
          else if (part.type === "tool-call")
            toolCalls.push({
              id: part.toolCallId,
              type: "function",
              function: { name: part.toolName, arguments: toolArguments(part.input) },
              ...metadataOf(part)
            })
        }
        messages.push({
          role: "assistant",
          content: toolCalls.length > 0 ? text || null : text,
          ...(reasoning.length > 0 ? { reasoning_content: reasoning } : {}),
          ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
          ...metadata
        })
        break
      }
      case "tool":
        for (const part of message.content) {
          if (part.type !== "tool-result") continue
          const { output } = part
          const content =
            output.type === "text" || output.type === "error-text"
              ? output.value
              : output.type === "execution-denied"
                ? (output.reason ?? "Tool call execution denied.")
                : stringifyWithBigIntAndCycles(output.value)
          messages.push({ role: "tool", tool_call_id: part.toolCallId, content, ...metadataOf(part) })
        }
        break
    }
  }
  return messages
}

/** `tools` and `tool_choice` of the request, and a warning per tool it cannot send. */
const toolsOf = (options: LanguageModelV3CallOptions, warnings: Array<SharedV3Warning>): Json => {
  const tools = options.tools?.length ? options.tools : undefined
  if (tools === undefined) return {}
  const functions: Array<Json> = []
  for (const tool of tools) {
    if (tool.type === "provider") {
      warnings.push({ type: "unsupported", feature: `provider-defined tool ${tool.id}` })
      continue
    }
    functions.push({
      type: "function",
      function: {
        name: tool.name,
        description: tool.description,
        parameters: tool.inputSchema,
        ...(tool.strict != null ? { strict: tool.strict } : {})
      }
    })
  }
  const choice = options.toolChoice
  const tool_choice =
    choice === undefined
      ? undefined
      : choice.type === "tool"
        ? { type: "function", function: { name: choice.toolName } }
        : choice.type
  return { tools: functions, tool_choice }
}

/** Whether `response_format` may carry the JSON schema (OpenAI's structured outputs). */
export interface RequestSettings {
  readonly structuredOutputs: boolean
}

/**
 * `reasoning_effort` from the call's `reasoning` setting (`ai` 7's, specification v4, which `ai` 7 passes on to
 * v3 models): its value as it is unless `"provider-default"`, as `@ai-sdk/openai-compatible` 3 sends it. A
 * `reasoning_effort` in `providerOptions.easychat` wins.
 */
const reasoningEffortOf = (options: LanguageModelV3CallOptions): string | undefined => {
  const reasoning = (options as { readonly reasoning?: unknown }).reasoning
  return typeof reasoning === "string" && reasoning !== "provider-default" ? reasoning : undefined
}

/**
 * The OpenAI request for a call, without `stream` (the facade sets it), and
 * the warnings of what it leaves out. Undefined fields are left out, so that
 * the pool's preset `defaults` apply to what the caller did not set.
 */
export const requestOf = (
  modelId: string,
  options: LanguageModelV3CallOptions,
  settings: RequestSettings
): { readonly body: Json; readonly warnings: Array<SharedV3Warning> } => {
  const warnings: Array<SharedV3Warning> = []
  if (options.topK != null) warnings.push({ type: "unsupported", feature: "topK" })
  const format = options.responseFormat
  if (format?.type === "json" && format.schema != null && !settings.structuredOutputs)
    warnings.push({
      type: "unsupported",
      feature: "responseFormat",
      details: "JSON response format schema is only supported with structuredOutputs"
    })
  const response_format =
    format?.type !== "json"
      ? undefined
      : settings.structuredOutputs && format.schema != null
        ? {
            type: "json_schema",
            json_schema: {
              schema: format.schema,
              strict: true,
              name: format.name ?? "response",
              description: format.description
            }
          }
        : { type: "json_object" }
  const body: Json = {
    model: modelId,
    max_tokens: options.maxOutputTokens,
    temperature: options.temperature,
    top_p: options.topP,
    frequency_penalty: options.frequencyPenalty,
    presence_penalty: options.presencePenalty,
    response_format,
    stop: options.stopSequences,
    seed: options.seed,
    reasoning_effort: reasoningEffortOf(options),
    // Any field of the OpenAI API the SDK has no name for: `providerOptions.easychat`, sent as it is.
    ...(options.providerOptions?.easychat as Json | undefined),
    messages: messagesOf(options.prompt),
    ...toolsOf(options, warnings)
  }
  return { body: JSON.parse(JSON.stringify(body)) as Json, warnings }
}

/** OpenAI's usage object as the AI SDK's (absent details count 0; everything sent stays in `raw`). */
export const usageOf = (usage: Json | undefined): LanguageModelV3Usage => {
  if (usage == null)
    return {
      inputTokens: { total: undefined, noCache: undefined, cacheRead: undefined, cacheWrite: undefined },
      outputTokens: { total: undefined, text: undefined, reasoning: undefined }
    }
  const number = (u: unknown) => (typeof u === "number" ? u : 0)
  const prompt = number(usage.prompt_tokens)
  const completion = number(usage.completion_tokens)
  const cached = number((usage.prompt_tokens_details as Json | undefined)?.cached_tokens)
  const reasoning = number((usage.completion_tokens_details as Json | undefined)?.reasoning_tokens)
  return {
    inputTokens: { total: prompt, noCache: prompt - cached, cacheRead: cached, cacheWrite: undefined },
    outputTokens: { total: completion, text: Math.max(0, completion - reasoning), reasoning },
    raw: usage as NonNullable<LanguageModelV3Usage["raw"]>
  }
}

/** OpenAI's finish reason as the AI SDK's (a refusal that stops is a content filter to it). */
export const finishReasonOf = (raw: string | undefined, refused: boolean): LanguageModelV3FinishReason => {
  switch (raw) {
    case "stop":
      return { unified: refused ? "content-filter" : "stop", raw }
    case "length":
      return { unified: "length", raw }
    case "content_filter":
      return { unified: "content-filter", raw }
    case "tool_calls":
    case "function_call":
      return { unified: "tool-calls", raw }
    default:
      return { unified: "other", raw }
  }
}

/** The response metadata of a reply or chunk: `id`, `model`, `created` (Unix seconds). */
export const responseMetadataOf = (reply: {
  readonly id?: unknown
  readonly model?: unknown
  readonly created?: unknown
}): LanguageModelV3ResponseMetadata => ({
  ...(typeof reply.id === "string" ? { id: reply.id } : {}),
  ...(typeof reply.model === "string" ? { modelId: reply.model } : {}),
  ...(typeof reply.created === "number" ? { timestamp: new Date(reply.created * 1000) } : {})
})
