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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as internal from "./internal/app.js"
import type { ErrorBody } from "./internal/openai.js"
import { fromEasyChatError } from "./internal/openai.js"
import { makeDrain, sliceBodies, watchSends } from "./internal/server.js"

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
   * constant time), each at least 16 printable ASCII characters without
   * spaces (see `keyProblem`). None (the default): no key is asked for, and
   * only loopback `Host` names and `hostnames` are served.
   */
  readonly keys?: ReadonlyArray<string>
  /**
   * `Host` names served without keys besides loopback ones (`localhost`,
   * `127.0.0.1`, `[::1]`), e.g. `["gateway.lan"]`; compared without case.
   * A page on any other name (DNS rebinding) is refused. Default: none.
   */
  readonly hostnames?: ReadonlyArray<string>
  /** Origins browsers may call from (`Access-Control-Allow-Origin`); `"*"` allows any. Default: no CORS. */
  readonly cors?: ReadonlyArray<string>
  /** The largest request body accepted, in bytes (default 1 MiB); over it: 413. */
  readonly maxBodyBytes?: number
  /** Requests to the pool (chat and other `POST /v1/*`) served at once (default 64); over it: 429 with `Retry-After`. */
  readonly maxConcurrent?: number
  /**
   * How long a client may take to send its request body, which is read
   * before a concurrency slot is taken (milliseconds or a `Duration`,
   * default 30 seconds); over it: 408.
   */
  readonly bodyTimeout?: Duration.DurationInput
  /**
   * How long a client may read nothing while its answer waits to be sent
   * (milliseconds or a `Duration`, default 60 seconds); over it the
   * connection is closed, which cancels the upstream call and frees the
   * slot. A reply that waits for the upstream is never cut by it.
   */
  readonly sendTimeout?: Duration.DurationInput
  /**
   * When the server stops (`Running.close()`, the layer's scope closing,
   * SIGTERM in the CLI): how long requests in progress may still finish
   * (milliseconds or a `Duration`, default 10 seconds; 0: at once). New
   * connections are refused meanwhile; streams still open after it end with
   * an SSE `error` event (code `gateway_shutdown`) and no `[DONE]`.
   */
  readonly drainTimeout?: Duration.DurationInput
  /**
   * Whether clients may choose the server (`activeServer` and other routing
   * fields of the request body). Default `false`: those fields are dropped,
   * and the operator's pool options decide.
   */
  readonly allowRouting?: boolean
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

const KEY_RULE = "must be at least 16 characters, each printable ASCII other than space (e.g. openssl rand -hex 24)"

/**
 * Why a key would be refused (a rule it breaks), or `undefined` when it is
 * accepted: at least 16 characters, each printable ASCII other than space.
 * A short key can be guessed; a key with other characters could never be
 * sent in a header. The key itself is never part of the answer.
 * @since 0.2.0 @category validation
 */
export const keyProblem = (key: string): string | undefined =>
  typeof key === "string" && key.length >= 16 && /^[\x21-\x7e]+$/.test(key) ? undefined : KEY_RULE

/** Milliseconds of a duration option (a number of milliseconds or a `Duration`); `undefined` when invalid. */
const millisOf = (input: unknown): number | undefined => {
  if (typeof input === "number") return Number.isFinite(input) && input >= 0 ? input : undefined
  try {
    const duration = Duration.decode(input as Duration.DurationInput)
    return Duration.isFinite(duration) ? Duration.toMillis(duration) : undefined
  } catch {
    return undefined
  }
}
const isPositiveInteger = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n > 0
const isNonEmptyStrings = (list: unknown): list is ReadonlyArray<string> =>
  Array.isArray(list) && list.every((s) => typeof s === "string" && s.trim() !== "")

interface Checked extends internal.Settings {
  readonly port: number
  readonly host: string
  readonly bodyTimeoutMs: number
  readonly allowRouting: boolean
  readonly hostnames: ReadonlyArray<string>
  readonly sendTimeoutMs: number
  readonly drainTimeoutMs: number
}

const check = (options: Options): Either.Either<Checked, InvalidRequest> =>
  Either.gen(function* () {
    const port = options.port ?? 8080
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      return yield* fail("port", "must be an integer from 0 to 65535")
    const host = options.host ?? "127.0.0.1"
    if (typeof host !== "string" || host.trim() === "") return yield* fail("host", "must be a non-empty string")
    const keys = options.keys ?? []
    if (!Array.isArray(keys)) return yield* fail("keys", "must be a list of keys")
    // Which key, by its place: never the key itself.
    const refused = keys.findIndex((key) => keyProblem(key) !== undefined)
    if (refused >= 0) return yield* fail(keys.length === 1 ? "keys" : `keys[${refused}]`, KEY_RULE)
    const hostnames = options.hostnames ?? []
    // The port is left out of a `Host` before it is compared: a name with one would never match.
    if (
      !isNonEmptyStrings(hostnames) ||
      hostnames.some((h) => /[\s/]/.test(h.trim()) || /^[^[]*:|\]:/.test(h.trim()))
    ) {
      return yield* fail("hostnames", "must be host names such as gateway.lan, without scheme, port or path")
    }
    const cors = options.cors ?? []
    if (!isNonEmptyStrings(cors)) return yield* fail("cors", "must be origins such as https://app.example.com, or *")
    const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024
    if (!isPositiveInteger(maxBodyBytes)) return yield* fail("maxBodyBytes", "must be a positive integer")
    const maxConcurrent = options.maxConcurrent ?? 64
    if (!isPositiveInteger(maxConcurrent)) return yield* fail("maxConcurrent", "must be a positive integer")
    const bodyTimeoutMs = millisOf(options.bodyTimeout ?? 30_000)
    if (bodyTimeoutMs === undefined || bodyTimeoutMs <= 0) {
      return yield* fail("bodyTimeout", "must be a positive number of milliseconds or a Duration")
    }
    const sendTimeoutMs = millisOf(options.sendTimeout ?? 60_000)
    if (sendTimeoutMs === undefined || sendTimeoutMs <= 0) {
      return yield* fail("sendTimeout", "must be a positive number of milliseconds or a Duration")
    }
    const drainTimeoutMs = millisOf(options.drainTimeout ?? 10_000)
    if (drainTimeoutMs === undefined) {
      return yield* fail("drainTimeout", "must be a number of milliseconds (0: at once) or a Duration")
    }
    const allowRouting = options.allowRouting ?? false
    if (typeof allowRouting !== "boolean") return yield* fail("allowRouting", "must be a boolean")
    const models = options.models ?? ["gpt-3.5-turbo"]
    if (!isNonEmptyStrings(models) || models.length === 0) {
      return yield* fail("models", "must hold at least one model name")
    }
    return {
      port,
      host,
      keys,
      cors,
      maxBodyBytes,
      maxConcurrent,
      models,
      bodyTimeoutMs,
      allowRouting,
      // A loopback address it is bound to other than the usual three (`127.0.0.2`) is this machine too.
      hostnames: [...hostnames.map((h) => h.trim().toLowerCase()), ...(isLoopback(host) ? [hostHeaderName(host)] : [])],
      sendTimeoutMs,
      drainTimeoutMs
    }
  })

/**
 * The gateway as an `HttpApp`, to mount in an Effect HTTP server of your own
 * (`HttpServer.serve(app)`, or `HttpRouter.mountApp("/ai", app)`). Every
 * answer is a response: errors are OpenAI-shaped, never failures of the app.
 * Options that break a rule fail with `InvalidRequest`; `port`, `host`,
 * `onListen`, `sendTimeout` and `drainTimeout` belong to the server and are
 * not used here (your server's own limits apply).
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

/** 127.0.0.0/8, ::1 and localhost, in any case and with or without brackets: this machine only. */
/** How a bound address appears in a `Host` header, without its port: IPv6 in brackets. */
const hostHeaderName = (host: string) => {
  const bare = host.toLowerCase().replace(/^\[|\]$/g, "")
  return bare.includes(":") ? `[${bare}]` : bare
}

const isLoopback = (host: string) => {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "")
  return h === "localhost" || h === "::1" || h === "::ffff:127.0.0.1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}

const urlOf = (address: HttpServer.Address): string =>
  address._tag === "UnixAddress"
    ? `unix:${address.path}`
    : `http://${address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname}:${address.port}`

/** The layer, with the grace period of the drain chosen when it closes (`Running.close`) rather than up front. */
const layerWith = (
  options: Options,
  graceOf: (settings: Checked) => number
): Layer.Layer<never, HttpServerError.ServeError | InvalidRequest, EasyChat.EasyChat | ServerPool.ServerPool> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const settings = yield* check(options)
      const app = internal.make(settings, yield* Clock.currentTimeMillis)
      const server = http.createServer()
      // `100 Continue` only once the request has passed its checks and its body is about to be read.
      server.on("checkContinue", internal.checkContinue)
      const serve = Effect.gen(function* () {
        yield* watchSends(server, settings.sendTimeoutMs)
        // Added early, so it runs late: after the drain, whatever is still open is cut.
        yield* Effect.addFinalizer(() => Effect.sync(() => server.closeAllConnections()))
        const drain = yield* makeDrain(server)
        // The platform's span per request (a URL parsed, the headers copied, a span made) costs a cold
        // request about 0.4 ms before the handler runs; under the default tracer nobody sees it.
        const serving = HttpServer.serveEffect(drain.app(sliceBodies(app)))
        yield* (yield* Effect.tracer) === silentTracer
          ? HttpMiddleware.withTracerDisabledWhenEffect(serving, () => true)
          : serving
        // Added last, so it runs first, while the handler still answers the requests in progress.
        yield* Effect.addFinalizer(() => drain.run(graceOf(settings)))
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
 * Serves the gateway on Node (`node:http` through `@effect/platform-node`)
 * until the layer's scope closes. Closing it drains: new connections are
 * refused, requests in progress may finish for `drainTimeout` (default
 * 10 s), then the streams still open end with an SSE `error` event
 * (`gateway_shutdown`) and the connections left are closed, which cancels
 * their upstream requests. Fails with `ServeError` when the port cannot be
 * bound, `InvalidRequest` on bad options. The pool is yours: build it with
 * `defaults: {}` so that it sends only what clients send (the EasyChat preset
 * adds its sampling fields otherwise).
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
  layerWith(options, (settings) => settings.drainTimeoutMs)

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
  /**
   * Stops: refuses new connections, lets the requests in progress finish
   * for `drainTimeout` (the option's, default 10 s; `close({ drainTimeout: 0 })`
   * stops at once), ends the streams still open with an SSE `error` event,
   * closes the connections left and the pool's. Calling it again returns
   * the same promise.
   */
  readonly close: (options?: CloseOptions) => Promise<void>
}

/**
 * Options of `Running.close`.
 * @since 0.2.0 @category models
 */
export interface CloseOptions {
  /** The grace period for this close, instead of the gateway's `drainTimeout`; `0` stops at once. */
  readonly drainTimeout?: Duration.DurationInput
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
  let grace: number | undefined
  const live = layerWith(
    {
      ...gateway,
      onListen: (at) => {
        url = at
        onListen?.(at)
      }
    },
    (settings) => grace ?? settings.drainTimeoutMs
  ).pipe(Layer.provide(EasyChat.layer(poolOptions(chat))), Layer.provide(NodeTransport.layer(transport)))
  const scope = Effect.runSync(Scope.make())
  const exit = await Effect.runPromiseExit(Layer.buildWithScope(live, scope))
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    // The tagged error itself, as the rest of easychat's Promise API does.
    throw Cause.squash(exit.cause)
  }
  let closing: Promise<void> | undefined
  const close = (closeOptions: CloseOptions = {}): Promise<void> => {
    if (closing !== undefined) return closing
    if (closeOptions.drainTimeout !== undefined) {
      grace = millisOf(closeOptions.drainTimeout)
      if (grace === undefined) {
        return Promise.reject(
          new InvalidRequest({
            field: "drainTimeout",
            rule: "must be a number of milliseconds (0: at once) or a Duration"
          })
        )
      }
    }
    closing = Effect.runPromise(Scope.close(scope, Exit.void))
    return closing
  }
  return { url, close }
}
