import type { Errors } from "@easychat/core"
import * as AiError from "@effect/ai/AiError"

const module = "EasyChatLanguageModel"

/**
 * An easychat error as an `AiError`, the easychat error kept as its `cause`.
 * easychat's messages never hold a key or a cookie, so they are safe to show.
 */
export const toAiError =
  (method: string) =>
  (error: Errors.EasyChatError): AiError.AiError => {
    const description = error.message
    switch (error._tag) {
      case "InvalidRequest":
        return new AiError.MalformedInput({ module, method, description, cause: error })
      case "DecodeError":
      case "NoResponse":
        return new AiError.MalformedOutput({ module, method, description, cause: error })
      default:
        return new AiError.UnknownError({ module, method, description, cause: error })
    }
  }
