/**
 * `@effect/ai`'s `LanguageModel` over an easychat pool: `generateText`,
 * `generateObject`, `streamText` and `Toolkit`s with failover, circuit
 * breakers, timeouts and every routing option of `@easychat/core`.
 *
 * @since 0.1.0
 */

import { type ChatRequestInput, EasyChat } from "@easychat/core"
import type * as AiError from "@effect/ai/AiError"
import * as LanguageModel from "@effect/ai/LanguageModel"
import * as AiModel from "@effect/ai/Model"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import { dual } from "effect/Function"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { toAiError } from "./internal/errors.js"
import { prepareMessages, prepareResponseFormat, prepareTools } from "./internal/prompt.js"
import { makeResponse, makeStreamResponse } from "./internal/response.js"

/**
 * Fields of every request: any chat-request field of `@easychat/core`
 * (`model`, `temperature`, `max_tokens`, `activeServer`, ...) but the ones the
 * prompt and the toolkit decide.
 *
 * @since 0.1.0
 * @category models
 */
export type RequestFields = Omit<
  Partial<ChatRequestInput>,
  "messages" | "tools" | "tool_choice" | "stream" | "response_format"
>

/**
 * Request fields for the calls of an effect, over those of the layer.
 *
 * @since 0.1.0
 * @category context
 */
export class Config extends Context.Tag("@easychat/effect-ai/EasyChatLanguageModel/Config")<Config, RequestFields>() {}

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The model to ask for; default: the pool's own (`EasyChat.layer`'s `model`). */
  readonly model?: string
  /** Fields of every request. */
  readonly config?: RequestFields
}

declare module "@effect/ai/Response" {
  export interface ResponseMetadataPartMetadata {
    readonly easychat?: { readonly server: string } | undefined
  }
  export interface FinishPartMetadata {
    /** The server that answered, and the model's refusal when it refused. */
    readonly easychat?: { readonly server: string; readonly refusal?: string } | undefined
  }
}

/**
 * Builds the `LanguageModel` from the `EasyChat` service in context.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (options: Options = {}): Effect.Effect<LanguageModel.Service, never, EasyChat.EasyChat> =>
  Effect.gen(function* () {
    const chat = yield* EasyChat.EasyChat

    const makeRequest = (provider: LanguageModel.ProviderOptions): Effect.Effect<ChatRequestInput, AiError.AiError> =>
      Effect.gen(function* () {
        const overrides = yield* Effect.serviceOption(Config)
        const messages = yield* prepareMessages(provider)
        const tools = yield* prepareTools(provider)
        return {
          ...(options.model === undefined ? {} : { model: options.model }),
          ...options.config,
          ...(overrides._tag === "Some" ? overrides.value : {}),
          ...tools,
          ...prepareResponseFormat(provider),
          messages
        }
      })

    return yield* LanguageModel.make({
      generateText: (provider) =>
        makeRequest(provider).pipe(
          Effect.flatMap((request) => Effect.mapError(chat.complete(request), toAiError("generateText"))),
          Effect.flatMap(makeResponse)
        ),
      streamText: (provider) =>
        makeRequest(provider).pipe(
          Effect.map((request) =>
            // Usage arrives on a last chunk only when asked for; a request's own `stream_options` wins.
            chat
              .stream({ stream_options: { include_usage: true }, ...request })
              .pipe(Stream.mapError(toAiError("streamText")))
          ),
          Stream.unwrap,
          makeStreamResponse
        )
    })
  })

/**
 * Provides `LanguageModel` from the `EasyChat` service: give it
 * `EasyChat.layer(options)` and a transport layer.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<LanguageModel.LanguageModel, never, EasyChat.EasyChat> =>
  Layer.effect(LanguageModel.LanguageModel, make(options))

/**
 * The same as an `AiModel` (`"easychat"`), to choose among providers with
 * `Effect.provide(model)`.
 *
 * @since 0.1.0
 * @category ai models
 */
export const model = (
  model?: string,
  config?: RequestFields
): AiModel.Model<"easychat", LanguageModel.LanguageModel, EasyChat.EasyChat> =>
  AiModel.make(
    "easychat",
    layer({ ...(model === undefined ? {} : { model }), ...(config === undefined ? {} : { config }) })
  )

/**
 * Request fields for the language-model calls of one effect, over the layer's.
 *
 * @since 0.1.0
 * @category config
 */
export const withConfigOverride: {
  (overrides: RequestFields): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, overrides: RequestFields): Effect.Effect<A, E, R>
} = dual(
  2,
  <A, E, R>(self: Effect.Effect<A, E, R>, overrides: RequestFields): Effect.Effect<A, E, R> =>
    Effect.flatMap(Effect.serviceOption(Config), (current) =>
      Effect.provideService(self, Config, { ...(current._tag === "Some" ? current.value : {}), ...overrides })
    )
)
