/**
 * An OpenAI-compatible HTTP server in front of an easychat pool, or of one
 * pool per model from a configuration (`layerConfig`):
 * `POST /v1/chat/completions` (whole or streamed), any other `POST /v1/*`
 * (`/v1/embeddings`, `/v1/completions`, ...), `GET /v1/models`,
 * `GET /health`, `GET /metrics` and a chat page at `/`, as Effect code on
 * `@effect/platform`'s HTTP server. Any OpenAI client pointed at it gets
 * failover it never sees, circuit breakers, OpenAI-shaped errors, and the
 * upstream's replies unchanged: every chunk (re-framed as SSE) as it
 * arrives, every field, every choice.
 *
 * @since 0.1.0
 */
import { type EasyChat, type EasyChatError, InvalidRequest, type Presets, type ServerPool } from "@easychat/core"
import * as NodeTransport from "@easychat/transport-node"
import type * as HttpApp from "@effect/platform/HttpApp"
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Config from "./Config.js"
import * as internal from "./internal/app.js"
import { keyProblem as keyRule } from "./internal/keys.js"
import { type Metrics, makeMetrics } from "./internal/metrics.js"
import type { ErrorBody } from "./internal/openai.js"
import { fromEasyChatError } from "./internal/openai.js"
import { type Checked, check } from "./internal/options.js"
import { layerPool } from "./internal/pool.js"
import * as reload from "./internal/reload.js"
import { observabilityOf, serve } from "./internal/serve.js"
import { started } from "./internal/start.js"

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
  /**
   * Whether `GET /` serves a chat page: pick a model, chat with streamed
   * replies (reasoning apart, a stop button) and watch the pool's health.
   * It is served without a key (it holds no data) and asks the user for
   * one, which it keeps in the tab's `sessionStorage`. Default `true`.
   */
  readonly page?: boolean
  /**
   * `GET /metrics`, the gateway's metrics in Prometheus' text format (see
   * the README): behind the keys as every other endpoint (`"keyed"`, the
   * default), without a key for a scraper that holds none (`"open"`;
   * without keys the gateway still answers loopback hosts and `hostnames`
   * only), or not served (`"off"`).
   */
  readonly metrics?: "open" | "keyed" | "off"
  /**
   * One line per request, written to Effect's `Console` (route it with
   * `Effect.withConsole`): when it came, method, path (no query), route,
   * model, status, outcome, duration, time to its status (a chat stream:
   * its first delta), the server that answered, attempts and bytes, never
   * a header. `"json"`: one object a line; `"text"`: `key=value` pairs;
   * `"off"` (the default): none.
   */
  readonly accessLog?: "json" | "text" | "off"
  /** Called once the server listens, with its URL (e.g. `http://127.0.0.1:8080`). */
  readonly onListen?: (url: string) => void
}

/**
 * OpenAI's error body, as every error answer of the gateway carries it.
 * @since 0.1.0 @category models
 */
export type { ErrorBody }

/**
 * Why a key would be refused (a rule it breaks), or `undefined` when it is
 * accepted: at least 16 characters, each printable ASCII other than space.
 * A short key can be guessed; a key with other characters could never be
 * sent in a header. The key itself is never part of the answer.
 * @since 0.2.0 @category validation
 */
export const keyProblem: (key: string) => string | undefined = keyRule

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
    Effect.map(Clock.currentTimeMillis, (now) => internal.make(settings, now, observabilityOf(settings, makeMetrics())))
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
  serve(options, (settings) => settings.drainTimeoutMs)

/**
 * Options of `layerConfig` and of `start` with a configuration: the
 * configuration or its file, and gateway options that take precedence over
 * the file's (a test's `port: 0`, an `onListen`).
 * @since 0.5.0 @category models
 */
export interface ConfigOptions extends Options {
  /** A checked configuration (`Config.load`, `Config.parse`), or the path of its file. */
  readonly config: Config.Config | string
  /**
   * Reload when the file changes (`fs.watch` on its folder, after 200 ms
   * without another change). Default `false`: reload with `Routes.reload`
   * (the CLI does on SIGHUP).
   */
  readonly watch?: boolean
}

/**
 * The routes of a gateway started from a configuration.
 * @since 0.5.0 @category models
 */
export interface RoutesService {
  /**
   * Reads the file again (or takes `config`), builds the new routes and
   * swaps them in at once: requests that start afterwards use them, those
   * in progress (open streams) finish on the routes they started with. A
   * route whose pool is unchanged keeps it whole (breakers, estimates,
   * cookies); a rebuilt pool keeps what was measured of servers it still
   * has. A bad configuration fails with `InvalidConfig`, logged with each
   * path and rule, and the routes in use stay. The gateway's own settings
   * (host, port, keys, CORS, limits) apply at the next start.
   */
  readonly reload: (config?: Config.Config) => Effect.Effect<Config.Config, Config.InvalidConfig>
  /** The configuration in use. */
  readonly current: Effect.Effect<Config.Config>
}

/**
 * The `RoutesService` of a gateway started with `layerConfig`.
 * @since 0.5.0 @category tags
 */
export class Routes extends Context.Tag("@easychat/gateway/Routes")<Routes, RoutesService>() {}

/** `layerConfig`, with the drain's grace period read when it closes, and the metrics its pools count in. */
const layerConfigWith = (
  options: ConfigOptions,
  graceOf: (settings: Checked) => number,
  metrics: Metrics
): Layer.Layer<Routes, HttpServerError.ServeError | InvalidRequest | Config.InvalidConfig, HttpClient.HttpClient> =>
  Layer.unwrapScoped(
    Effect.map(reload.make(options, metrics), (routes) =>
      Layer.merge(
        serve(routes.options, graceOf, metrics, routes.router).pipe(
          Layer.provide(Layer.succeedContext(routes.context))
        ),
        Layer.succeed(Routes, routes.service)
      )
    )
  )

/**
 * Serves the gateway on Node from a configuration: one pool per route,
 * built on the transport you provide, each request routed by its body's
 * `model` (a model no route serves: 404 `model_not_found`), a route's
 * `fallback` answering when its whole pool failed. `Routes` reloads it.
 * Fails with `InvalidConfig` on a bad file, otherwise as `layer`.
 *
 * @example
 * ```ts
 * Gateway.layerConfig({ config: "easychat.yaml", watch: true }).pipe(
 *   Layer.provide(NodeTransport.layer()),
 *   Layer.launch,
 *   NodeRuntime.runMain
 * )
 * ```
 * @since 0.5.0 @category layers
 */
export const layerConfig = (
  options: ConfigOptions
): Layer.Layer<Routes, HttpServerError.ServeError | InvalidRequest | Config.InvalidConfig, HttpClient.HttpClient> =>
  layerConfigWith(options, (settings) => settings.drainTimeoutMs, makeMetrics())

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
  /**
   * Routes from a configuration (a `Config.Config` or the path of its file)
   * instead of `chat`'s one pool; the file's gateway settings apply under
   * these options. See `layerConfig`.
   */
  readonly config?: Config.Config | string
  /** With `config` as a path: reload when the file changes (see `ConfigOptions.watch`). */
  readonly watch?: boolean
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
  /** Started with `config`: reloads the routes (see `RoutesService.reload`); rejects with `InvalidConfig`. */
  readonly reload?: (config?: Config.Config) => Promise<Config.Config>
}

/**
 * Options of `Running.close`.
 * @since 0.2.0 @category models
 */
export interface CloseOptions {
  /** The grace period for this close, instead of the gateway's `drainTimeout`; `0` stops at once. */
  readonly drainTimeout?: Duration.DurationInput
}

/**
 * `EasyChat.layer(options)` for `Gateway.layer`: the same services, without
 * the EasyChat preset's sampling defaults (as `start` builds its pool), and
 * the pool's attempts, failures and failovers counted in the metrics and the
 * access log of the gateway it is provided to. A pool built otherwise shows
 * its health in the metrics, and no attempts.
 *
 * @example
 * ```ts
 * Gateway.layer({ port: 8080 }).pipe(
 *   Layer.provide(Gateway.layerChat({ servers: ["http://127.0.0.1:11434/v1"] })),
 *   Layer.provide(NodeTransport.layer()),
 *   Layer.launch,
 *   NodeRuntime.runMain
 * )
 * ```
 * @since 0.5.0 @category layers
 */
export const layerChat = (
  options: Presets.Options = {}
): Layer.Layer<EasyChat.EasyChat | ServerPool.ServerPool, InvalidRequest, HttpClient.HttpClient> =>
  layerPool(options, makeMetrics())

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
  const { chat, transport, onListen, config, watch, ...gateway } = options
  let url = ""
  let grace: number | undefined
  const listen = (at: string) => {
    url = at
    onListen?.(at)
  }
  const graceOf = (settings: Checked) => grace ?? settings.drainTimeoutMs
  const setGrace = (drainTimeout: number | undefined) => {
    grace = drainTimeout
  }
  // The gateway builds the pools: their attempts are counted in the gateway's metrics.
  const metrics = makeMetrics()
  if (config === undefined) {
    const live = serve({ ...gateway, onListen: listen }, graceOf, metrics).pipe(
      Layer.provide(layerPool(chat ?? {}, metrics)),
      Layer.provide(NodeTransport.layer(transport))
    )
    return started(live, () => url, setGrace, Context.getOption(Routes))
  }
  if (chat !== undefined) {
    throw new InvalidRequest({ field: "config", rule: "replaces chat: give the routes' pools in it, or chat alone" })
  }
  const live = layerConfigWith(
    { ...gateway, config, ...(watch === undefined ? {} : { watch }), onListen: listen },
    graceOf,
    metrics
  ).pipe(Layer.provide(NodeTransport.layer(transport)))
  return started(live, () => url, setGrace, Context.getOption(Routes))
}
