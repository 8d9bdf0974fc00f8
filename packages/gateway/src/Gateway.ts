/**
 * An OpenAI-compatible HTTP server in front of an easychat pool:
 * `POST /v1/chat/completions` (whole or streamed), any other `POST /v1/*`
 * (`/v1/embeddings`, `/v1/completions`, ...), `GET /v1/models` and
 * `GET /health`, as Effect code on `@effect/platform`'s HTTP server. Any
 * OpenAI client pointed at it gets failover it never sees, circuit breakers,
 * OpenAI-shaped errors, and the upstream's replies unchanged: every chunk
 * (re-framed as SSE) as it arrives, every field, every choice.
 *
 * @since 0.1.0
 */
import * as http from "node:http"
import { EasyChat, type EasyChatError, InvalidRequest, Presets, type ServerPool } from "@easychat/core"
import * as NodeTransport from "@easychat/transport-node"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as internal from "./internal/app.js"
import type { ErrorBody } from "./internal/openai.js"
import { fromEasyChatError } from "./internal/openai.js"

/**
 * @since 0.1.0 @category models
 */
export interface Options {
  /** The port to listen on (default 8080; 0 picks a free one, see `onListen`). */
  readonly port?: number
  /** The address to listen on (default `127.0.0.1`: this machine only). */
  readonly host?: string
  /**
   * Keys clients must send as `Authorization: Bearer <key>` (compared in
   * constant time). None (the default): no key is asked for.
   */
  readonly keys?: ReadonlyArray<string>
  /** Origins browsers may call from (`Access-Control-Allow-Origin`); `"*"` allows any. Default: no CORS. */
  readonly cors?: ReadonlyArray<string>
  /** The largest request body accepted, in bytes (default 1 MiB); over it: 413. */
  readonly maxBodyBytes?: number
  /** Requests to the pool (chat and other `POST /v1/*`) served at once (default 64); over it: 429 with `Retry-After`. */
  readonly maxConcurrent?: number
  /**
   * The models `GET /v1/models` lists for a server that has no `/models`
   * list of its own (servers that have one are asked, at most once a
   * minute). Default `["gpt-3.5-turbo"]`.
   */
  readonly models?: ReadonlyArray<string>
  /** Called once the server listens, with its URL (e.g. `http://127.0.0.1:8080`). */
  readonly onListen?: (url: string) => void
}

/**
 * OpenAI's error body, as every error answer of the gateway carries it.
 * @since 0.1.0 @category models
 */
export type { ErrorBody }

const fail = (field: string, rule: string) => Either.left(new InvalidRequest({ field, rule }))
const isPositiveInteger = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n > 0
const isNonEmptyStrings = (list: unknown): list is ReadonlyArray<string> =>
  Array.isArray(list) && list.every((s) => typeof s === "string" && s.trim() !== "")

interface Checked extends internal.Settings {
  readonly port: number
  readonly host: string
}

const check = (options: Options): Either.Either<Checked, InvalidRequest> =>
  Either.gen(function* () {
    const port = options.port ?? 8080
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      return yield* fail("port", "must be an integer from 0 to 65535")
    const host = options.host ?? "127.0.0.1"
    if (typeof host !== "string" || host.trim() === "") return yield* fail("host", "must be a non-empty string")
    const keys = options.keys ?? []
    if (!isNonEmptyStrings(keys)) return yield* fail("keys", "must be non-empty strings")
    const cors = options.cors ?? []
    if (!isNonEmptyStrings(cors)) return yield* fail("cors", "must be origins such as https://app.example.com, or *")
    const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024
    if (!isPositiveInteger(maxBodyBytes)) return yield* fail("maxBodyBytes", "must be a positive integer")
    const maxConcurrent = options.maxConcurrent ?? 64
    if (!isPositiveInteger(maxConcurrent)) return yield* fail("maxConcurrent", "must be a positive integer")
    const models = options.models ?? ["gpt-3.5-turbo"]
    if (!isNonEmptyStrings(models) || models.length === 0) {
      return yield* fail("models", "must hold at least one model name")
    }
    return { port, host, keys, cors, maxBodyBytes, maxConcurrent, models }
  })

/**
 * The gateway as an `HttpApp`, to mount in an Effect HTTP server of your own
 * (`HttpServer.serve(app)`, or `HttpRouter.mountApp("/ai", app)`). Every
 * answer is a response: errors are OpenAI-shaped, never failures of the app.
 * Options that break a rule fail with `InvalidRequest`; `port`, `host` and
 * `onListen` are not used here.
 *
 * @since 0.1.0 @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<HttpApp.Default<never, EasyChat.EasyChat | ServerPool.ServerPool>, InvalidRequest> =>
  Effect.flatMap(check(options), (settings) =>
    Effect.map(Clock.currentTimeMillis, (now) => internal.make(settings, now))
  )

/** Effect's default tracer, which records nothing. */
const silentTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

const isLoopback = (host: string) => host === "localhost" || host === "::1" || /^127\./.test(host)

const urlOf = (address: HttpServer.Address): string =>
  address._tag === "UnixAddress"
    ? `unix:${address.path}`
    : `http://${address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname}:${address.port}`

/**
 * Serves the gateway on Node (`node:http` through `@effect/platform-node`)
 * until the layer's scope closes; closing it also closes the connections
 * still open, which cancels their upstream requests. Fails with `ServeError`
 * when the port cannot be bound, `InvalidRequest` on bad options. The pool
 * is yours: build it with `defaults: {}` so that it sends only what clients
 * send (the EasyChat preset adds its sampling fields otherwise).
 *
 * @example
 * ```ts
 * Gateway.layer({ port: 8080 }).pipe(
 *   Layer.provide(EasyChat.layer({ ...Presets.easyChat, defaults: {} })),
 *   Layer.provide(NodeTransport.layer()),
 *   Layer.launch,
 *   NodeRuntime.runMain
 * )
 * ```
 * @since 0.1.0 @category layers
 */
export const layer = (
  options: Options = {}
): Layer.Layer<never, HttpServerError.ServeError | InvalidRequest, EasyChat.EasyChat | ServerPool.ServerPool> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const settings = yield* check(options)
      const app = internal.make(settings, yield* Clock.currentTimeMillis)
      const server = http.createServer()
      const serve = Effect.gen(function* () {
        // Added first, so it runs after the handler is removed: streams still open are cut, not awaited.
        yield* Effect.addFinalizer(() => Effect.sync(() => server.closeAllConnections()))
        // The platform's span per request (a URL parsed, the headers copied, a span made) costs a cold
        // request about 0.4 ms before the handler runs; under the default tracer nobody sees it.
        const serving = HttpServer.serveEffect(app)
        yield* (yield* Effect.tracer) === silentTracer
          ? HttpMiddleware.withTracerDisabledWhenEffect(serving, () => true)
          : serving
        const url = urlOf((yield* HttpServer.HttpServer).address)
        if (settings.keys.length === 0 && !isLoopback(settings.host)) {
          yield* Effect.logWarning(
            `easychat gateway: ${url} accepts requests without a key from any host that can reach it; set keys`
          )
        }
        options.onListen?.(url)
      })
      return Layer.scopedDiscard(serve).pipe(
        Layer.provide(NodeHttpServer.layerServer(() => server, { port: settings.port, host: settings.host }))
      )
    })
  )

/**
 * The status and OpenAI error body the gateway answers an easychat error
 * with: `InvalidRequest` 400, `AllServersFailed` and the upstream's faults
 * 502, `Timeout` 504; `code` is the error's tag.
 * @since 0.1.0 @category errors
 */
export const errorOf = (error: EasyChatError): { readonly status: number; readonly body: ErrorBody } => {
  const { status, body } = fromEasyChatError(error)
  return { status, body }
}

/**
 * Options of `start`: the gateway's, the pool's (`chat`: servers, preset
 * values, timeouts, ...; default `Presets.easyChat`) and the Node transport's.
 * The pool sends what the client sent and nothing more: the EasyChat
 * preset's sampling defaults are left out; `chat.defaults` set to an object
 * of your own adds its fields to requests that lack them.
 * @since 0.1.0 @category models
 */
export interface StartOptions extends Options {
  readonly chat?: Presets.Options
  readonly transport?: NodeTransport.Options
}

/**
 * A running gateway started from Promise code.
 * @since 0.1.0 @category models
 */
export interface Running {
  /** Where it listens, e.g. `http://127.0.0.1:8080`. */
  readonly url: string
  /** Stops listening, cuts open connections and closes the pool's. */
  readonly close: () => Promise<void>
}

/** The pool's options for a gateway: no sampling defaults unless the operator chose some. */
const poolOptions = (chat: Presets.Options = {}): Presets.Options => ({
  ...chat,
  defaults: chat.defaults === undefined || chat.defaults === Presets.easyChatDefaults ? {} : chat.defaults
})

/**
 * Starts the gateway with the Node transport, for code that does not use
 * Effect. Rejects with `InvalidRequest` on bad options, or the `ServeError`
 * when the port cannot be bound.
 *
 * @example
 * ```ts
 * const gateway = await Gateway.start({ port: 8080, chat: Presets.openAICompatible("http://127.0.0.1:11434") })
 * // point any OpenAI client at `${gateway.url}/v1`
 * await gateway.close()
 * ```
 * @since 0.1.0 @category constructors
 */
export const start = async (options: StartOptions = {}): Promise<Running> => {
  const { chat, transport, onListen, ...gateway } = options
  let url = ""
  const live = layer({
    ...gateway,
    onListen: (at) => {
      url = at
      onListen?.(at)
    }
  }).pipe(Layer.provide(EasyChat.layer(poolOptions(chat))), Layer.provide(NodeTransport.layer(transport)))
  const scope = Effect.runSync(Scope.make())
  const exit = await Effect.runPromiseExit(Layer.buildWithScope(live, scope))
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    // The tagged error itself, as the rest of easychat's Promise API does.
    throw Cause.squash(exit.cause)
  }
  return { url, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}
