import type { Message } from "@easychat/core"
import * as AiError from "@effect/ai/AiError"
import type * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Prompt from "@effect/ai/Prompt"
import * as Tool from "@effect/ai/Tool"
import * as Effect from "effect/Effect"
import * as Encoding from "effect/Encoding"

const module = "EasyChatLanguageModel"

const malformed = (method: string, description: string) => new AiError.MalformedInput({ module, method, description })

// A user's file as an OpenAI `image_url` part: only images have a place in a chat message.
const filePart = (part: Prompt.FilePart): Effect.Effect<unknown, AiError.AiError> => {
  if (!part.mediaType.startsWith("image/")) {
    return Effect.fail(malformed("prepareMessages", `Unsupported media type for a file: '${part.mediaType}'`))
  }
  const mediaType = part.mediaType === "image/*" ? "image/jpeg" : part.mediaType
  const url =
    part.data instanceof URL
      ? part.data.toString()
      : part.data instanceof Uint8Array
        ? `data:${mediaType};base64,${Encoding.encodeBase64(part.data)}`
        : part.data.startsWith("data:") || /^https?:\/\//.test(part.data)
          ? part.data
          : `data:${mediaType};base64,${part.data}`
  return Effect.succeed({ type: "image_url", image_url: { url } })
}

/**
 * The prompt as OpenAI chat messages. Reasoning parts stay out: servers that
 * reason (DeepSeek) reject their own reasoning sent back as input.
 */
export const prepareMessages = (
  options: LanguageModel.ProviderOptions
): Effect.Effect<Array<Message>, AiError.AiError> =>
  Effect.gen(function* () {
    const messages: Array<Message> = []
    for (const message of options.prompt.content) {
      switch (message.role) {
        case "system": {
          messages.push({ role: "system", content: message.content })
          break
        }
        case "user": {
          const only = message.content.length === 1 ? message.content[0] : undefined
          if (only?.type === "text") {
            messages.push({ role: "user", content: only.text })
            break
          }
          const content: Array<unknown> = []
          for (const part of message.content) {
            content.push(part.type === "text" ? { type: "text", text: part.text } : yield* filePart(part))
          }
          messages.push({ role: "user", content })
          break
        }
        case "assistant": {
          let text = ""
          const toolCalls: Array<unknown> = []
          for (const part of message.content) {
            if (part.type === "text") text += part.text
            else if (part.type === "tool-call" && !part.providerExecuted) {
              toolCalls.push({
                id: part.id,
                type: "function",
                function: { name: part.name, arguments: JSON.stringify(part.params) }
              })
            }
          }
          messages.push(
            toolCalls.length > 0
              ? { role: "assistant", content: text.length > 0 ? text : null, tool_calls: toolCalls }
              : { role: "assistant", content: text }
          )
          break
        }
        case "tool": {
          for (const part of message.content) {
            messages.push({ role: "tool", tool_call_id: part.id, content: JSON.stringify(part.result) })
          }
          break
        }
      }
    }
    return messages
  })

/** The toolkit's tools and the tool choice as the OpenAI `tools` and `tool_choice` fields. */
export const prepareTools = (
  options: LanguageModel.ProviderOptions
): Effect.Effect<{ readonly tools?: Array<unknown>; readonly tool_choice?: unknown }, AiError.AiError> =>
  Effect.gen(function* () {
    if (options.tools.length === 0) return {}
    const tools: Array<unknown> = []
    for (const tool of options.tools) {
      if (!Tool.isUserDefined(tool)) {
        return yield* malformed("prepareTools", `Provider-defined tools are not supported: '${tool.name}'`)
      }
      const description = Tool.getDescription(tool as any)
      tools.push({
        type: "function",
        function: {
          name: tool.name,
          ...(description === undefined ? {} : { description }),
          parameters: Tool.getJsonSchema(tool as any)
        }
      })
    }
    const choice = options.toolChoice
    const tool_choice =
      typeof choice === "string"
        ? choice
        : "tool" in choice
          ? { type: "function", function: { name: choice.tool } }
          : // `oneOf`: the tools are already narrowed to the allowed ones
            choice.mode === "required"
            ? "required"
            : "auto"
    return { tools, tool_choice }
  })

/** A JSON answer (`generateObject`) as the OpenAI `response_format`. */
export const prepareResponseFormat = (
  options: LanguageModel.ProviderOptions
): { readonly response_format?: unknown } => {
  if (options.responseFormat.type !== "json") return {}
  const { objectName, schema } = options.responseFormat
  const description = Tool.getDescriptionFromSchemaAst(schema.ast)
  return {
    response_format: {
      type: "json_schema",
      json_schema: {
        name: objectName,
        ...(description === undefined ? {} : { description }),
        schema: Tool.getJsonSchemaFromSchemaAst(schema.ast)
      }
    }
  }
}
