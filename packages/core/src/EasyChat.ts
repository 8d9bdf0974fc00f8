/**
 * The EasyChat client as an Effect service: `complete`, `stream` and the
 * original provider's `createCompletion`, over a pool of servers with
 * failover, on whichever `HttpClient` a transport provides.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as BodyReader from "./BodyReader.js"
import type { ChatCompletion, ChatDelta, ChatRequestInput, Message, StreamOptions } from "./Chat.js"
import type { ChatCall } from "./ChatCall.js"
import type { EasyChatError, InvalidRequest } from "./Errors.js"
import type * as Forward from "./internal/forward.js"
import type * as Models from "./internal/models.js"
import { makeCalls } from "./internal/service.js"
import { resolve } from "./internal/settings.js"
import type { Options } from "./Presets.js"
import * as ServerPool from "./ServerPool.js"
import * as Strategy from "./Strategy.js"

/**
 * The original provider's call shape: `{ model, messages, stream, ...kwargs }`
 * with the kwargs `temperature`, `presence_penalty`, `frequency_penalty`,
 * `top_p` and `active_server`.
 * @since 0.1.0 @category models
 */
export interface CreateCompletionParams {
  readonly model?: string
  readonly messages: ReadonlyArray<Message>
  readonly stream: boolean
  readonly temperature?: number
  readonly presence_penalty?: number
  readonly frequency_penalty?: number
  readonly top_p?: number
  readonly active_server?: number | string
  readonly [key: string]: unknown
}

/** @since 0.2.0 @category models */
export type ForwardRequest = Forward.ForwardRequest
/** @since 0.2.0 @category models */
export type Forwarded = Forward.Forwarded
/** @since 0.2.0 @category models */
export type ServerModels = Models.ServerModels

/** @since 0.1.0 @category models */
export interface Service {
  /** The whole reply. */
  readonly complete: (request: ChatRequestInput) => Effect.Effect<ChatCompletion, EasyChatError>
  /**
   * The reply as it arrives, one `ChatDelta` per piece and choice; `Chat.collect`
   * turns it into the `ChatCompletion` that `complete` returns.
   */
  readonly stream: (request: ChatRequestInput, options?: StreamOptions) => Stream.Stream<ChatDelta, EasyChatError>
  /**
   * The same reply as `stream`, as the low-level handle that `stream`, the
   * Promise facade and the gateway read: pull each batch, or poll and wait
   * between reads. The call ends (its connection closed) with the scope.
   */
  readonly call: (request: ChatRequestInput, options?: StreamOptions) => Effect.Effect<ChatCall, never, Scope.Scope>
  /** The original's shape: text pieces of choice 0 (one piece when `stream` is false). */
  readonly createCompletion: (params: CreateCompletionParams) => Stream.Stream<string, EasyChatError>
  /**
   * Another endpoint of the same API (`/embeddings`, `/completions`, ...,
   * relative to the chat path without `/chat/completions`) through the pool:
   * the same choice, cookies, headers, breakers and failover as a chat call
   * until the answer's status and content type are checked, then its body
   * as the server sends it.
   */
  readonly forward: (request: ForwardRequest) => Effect.Effect<Forwarded, EasyChatError>
  /** Each server's `GET {apiBase}/models` list (`undefined` for a server without one). */
  readonly models: Effect.Effect<ReadonlyArray<ServerModels>>
  readonly pool: ServerPool.Service
}

/** @since 0.1.0 @category tags */
export class EasyChat extends Context.Tag("@easychat/core/EasyChat")<EasyChat, Service>() {}

/**
 * What the original provider declared about itself.
 * @since 0.1.0 @category constants
 */
export const info = {
  url: "https://free.easychat.work",
  supportsStream: true,
  supportsGpt35Turbo: true,
  working: true
} as const

/**
 * Builds the service from options (a preset, overridden by anything given).
 * Options that break a rule fail with `InvalidRequest`.
 * @since 0.1.0 @category constructors
 */
export const make = (
  options?: Options
): Effect.Effect<Service, InvalidRequest, HttpClient.HttpClient | ServerPool.ServerPool> =>
  Effect.gen(function* () {
    const settings = yield* resolve(options)
    const pool = yield* ServerPool.ServerPool
    const http = yield* HttpClient.HttpClient
    const calls = makeCalls(settings, pool, http, yield* BodyReader.current)
    return {
      ...calls,
      createCompletion: ({ model, messages, stream, active_server, ...kwargs }) => {
        const request: Record<string, unknown> = { ...kwargs, messages }
        if (model !== undefined) request.model = model
        if (active_server !== undefined) request.activeServer = active_server
        return stream
          ? calls.stream(request).pipe(
              Stream.filter((delta) => delta.choice === 0 && delta.content.length > 0),
              Stream.map((delta) => delta.content)
            )
          : Stream.fromEffect(Effect.map(calls.complete(request), (reply) => reply.content))
      },
      pool
    }
  })

/**
 * Provides `EasyChat` and its `ServerPool` from one set of options.
 * @since 0.1.0 @category layers
 */
export const layer = (
  options?: Options
): Layer.Layer<EasyChat | ServerPool.ServerPool, InvalidRequest, HttpClient.HttpClient> =>
  Layer.effect(EasyChat, make(options)).pipe(Layer.provideMerge(ServerPool.layer(options)))

/**
 * Options from the environment: `EASYCHAT_SERVERS` (comma-separated servers,
 * each a URL with optional `;weight=…;priority=…` attributes, e.g.
 * `http://a:8080;weight=3,http://b:8080;priority=1`),
 * `EASYCHAT_PATH`, `EASYCHAT_MODEL`, `EASYCHAT_API_KEY`,
 * `EASYCHAT_ACCESS_CODE`, `EASYCHAT_STRATEGY`, `EASYCHAT_COOKIE_INIT`,
 * `EASYCHAT_MAX_ATTEMPTS`; anything unset keeps the value of `base`.
 * @since 0.1.0 @category config
 */
export const options = (base: Options = {}): Config.Config<Options> =>
  Config.all({
    servers: Config.option(Config.array(Config.string(), "EASYCHAT_SERVERS")),
    path: Config.option(Config.string("EASYCHAT_PATH")),
    model: Config.option(Config.string("EASYCHAT_MODEL")),
    apiKey: Config.option(Config.redacted("EASYCHAT_API_KEY")),
    accessCode: Config.option(Config.redacted("EASYCHAT_ACCESS_CODE")),
    strategy: Config.option(Config.literal(...Strategy.names)("EASYCHAT_STRATEGY")),
    cookieInit: Config.option(Config.literal("best-effort", "required", "off")("EASYCHAT_COOKIE_INIT")),
    maxAttempts: Config.option(Config.integer("EASYCHAT_MAX_ATTEMPTS"))
  }).pipe(
    Config.map((env) => {
      const out: { -readonly [K in keyof Options]: Options[K] } = { ...base }
      if (Option.isSome(env.servers)) out.servers = env.servers.value.map((s) => s.trim()).filter((s) => s !== "")
      if (Option.isSome(env.path)) out.path = env.path.value
      if (Option.isSome(env.model)) out.model = env.model.value
      if (Option.isSome(env.apiKey)) out.apiKey = Redacted.value(env.apiKey.value)
      if (Option.isSome(env.accessCode)) out.accessCode = Redacted.value(env.accessCode.value)
      if (Option.isSome(env.strategy)) out.strategy = env.strategy.value
      if (Option.isSome(env.cookieInit)) out.cookieInit = env.cookieInit.value
      if (Option.isSome(env.maxAttempts)) out.maxAttempts = env.maxAttempts.value
      return out
    })
  )

/**
 * `layer` with options read from the environment through Effect `Config`.
 * @since 0.1.0 @category layers
 */
export const layerConfig = (
  base?: Options
): Layer.Layer<EasyChat | ServerPool.ServerPool, InvalidRequest | ConfigError.ConfigError, HttpClient.HttpClient> =>
  Layer.unwrapEffect(Effect.map(options(base), layer))
