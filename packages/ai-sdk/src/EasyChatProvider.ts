/**
 * An AI SDK provider over an easychat pool: `generateText`, `streamText`,
 * structured output and tools reach the pool's servers through easychat's
 * client, with its failover, circuit breakers, timeouts and routing.
 *
 * @since 0.1.0
 */

import type { LanguageModelV3, ProviderV3 } from "@ai-sdk/provider"
import { NoSuchModelError } from "@ai-sdk/provider"
import { Client, type Presets } from "@easychat/core"
import * as FetchTransport from "@easychat/transport-fetch"
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Layer from "effect/Layer"
import { EasyChatLanguageModel } from "./internal/languageModel.js"

/**
 * The options of `createClient` (`Presets.Options`: `servers`, `model`,
 * `strategy`, `timeouts`, `breaker`, ...) and the provider's own.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options extends Presets.Options {
  /**
   * The `HttpClient` layer of the pool, with its `BodyReader` when it has one
   * (`NodeTransport.layer()`). Default: `@easychat/transport-fetch`'s `layer()`.
   */
  readonly transport?: Layer.Layer<HttpClient.HttpClient>
  /** The provider's name in the AI SDK's results (`provider`). Default `"easychat"`. */
  readonly name?: string
  /**
   * Ask for usage at the end of streams (`stream_options: { include_usage: true }`).
   * Default `false`: some servers refuse the field.
   */
  readonly includeUsage?: boolean
  /**
   * Send a JSON schema of `responseFormat` (`Output.object`, `generateObject`) as
   * `response_format: { type: "json_schema", ... }` (OpenAI's structured outputs).
   * Default `false`: `{ type: "json_object" }`, with a warning that the schema was left out.
   */
  readonly structuredOutputs?: boolean
}

/**
 * A provider whose models are chat models of the pool: call it, or its
 * `languageModel` or `chat`, with a model id (the request's `model`).
 *
 * @since 0.1.0
 * @category models
 */
export interface EasyChatProvider extends ProviderV3 {
  (modelId: string): LanguageModelV3
  languageModel(modelId: string): LanguageModelV3
  chat(modelId: string): LanguageModelV3
  /** The pool's client: `health()`, and `complete`/`streamDeltas` outside the AI SDK. */
  readonly client: Client.Client
  /** Closes the pool's connections. */
  close(): Promise<void>
}

/**
 * Builds the provider and its pool. Invalid options throw easychat's
 * `InvalidRequest` at once. Every model of one provider shares the pool (its
 * breakers, cookies and latency measurements).
 *
 * Errors reach the AI SDK as `APICallError` with `isRetryable: false` (the
 * pool has already failed over; the SDK's own retries would repeat it), their
 * `message` and `cause` easychat's typed error. Set `maxRetries: 0` on
 * `generateText`/`streamText` to make that explicit.
 *
 * @example
 * ```ts
 * import { createEasyChat } from "@easychat/ai-sdk"
 * import { generateText } from "ai"
 *
 * const easychat = createEasyChat({ servers: ["http://127.0.0.1:8787"] })
 * const { text } = await generateText({ model: easychat("gpt-4o-mini"), prompt: "Hello" })
 * ```
 * @since 0.1.0
 * @category constructors
 */
export const createEasyChat = (options: Options = {}): EasyChatProvider => {
  const { transport, name = "easychat", includeUsage = false, structuredOutputs = false, ...pool } = options
  const client = Client.make(pool, transport ?? FetchTransport.layer())
  const config = {
    provider: `${name}.chat`,
    client: () => client,
    includeUsage,
    structuredOutputs
  }
  const languageModel = (modelId: string): LanguageModelV3 => new EasyChatLanguageModel(modelId, config)
  const noSuchModel = (modelType: "embeddingModel" | "imageModel") => (modelId: string) => {
    throw new NoSuchModelError({ modelId, modelType })
  }
  return Object.assign((modelId: string) => languageModel(modelId), {
    specificationVersion: "v3" as const,
    languageModel,
    chat: languageModel,
    embeddingModel: noSuchModel("embeddingModel"),
    imageModel: noSuchModel("imageModel"),
    client,
    close: () => client.close()
  })
}
