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
import * as fs from "node:fs"
import * as http from "node:http"
import * as nodePath from "node:path"
import { EasyChat, type EasyChatError, InvalidRequest, Presets, ServerPool } from "@easychat/core"
import * as NodeTransport from "@easychat/transport-node"
import type * as HttpApp from "@effect/platform/HttpApp"
import type * as HttpClient from "@effect/platform/HttpClient"
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
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import * as Config from "./Config.js"
import * as internal from "./internal/app.js"
import { KEY_RULE, keyProblem as keyRule } from "./internal/keys.js"
import { DEFAULT_ROUTE, instrument, type Metrics, makeMetrics, metricsOf } from "./internal/metrics.js"
import type { ErrorBody } from "./internal/openai.js"
import { fromEasyChatError } from "./internal/openai.js"
import * as routes from "./internal/routes.js"
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

const fail = (field: string, rule: string) => Either.left(new InvalidRequest({ field, rule }))

/**
 * Why a key would be refused (a rule it breaks), or `undefined` when it is
 * accepted: at least 16 characters, each printable ASCII other than space.
 * A short key can be guessed; a key with other characters could never be
 * sent in a header. The key itself is never part of the answer.
 * @since 0.2.0 @category validation
 */
export const keyProblem: (key: string) => string | undefined = keyRule

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
  readonly metrics: "open" | "keyed" | "off"
  readonly accessLog: "json" | "text" | "off"
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
    const page = options.page ?? true
    if (typeof page !== "boolean") return yield* fail("page", "must be a boolean")
    const metrics = options.metrics ?? "keyed"
    if (metrics !== "open" && metrics !== "keyed" && metrics !== "off")
      return yield* fail("metrics", 'must be "open", "keyed" or "off"')
    const accessLog = options.accessLog ?? "off"
    if (accessLog !== "json" && accessLog !== "text" && accessLog !== "off")
      return yield* fail("accessLog", 'must be "json", "text" or "off"')
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
      page,
      // A loopback address it is bound to other than the usual three (`127.0.0.2`) is this machine too.
      hostnames: [...hostnames.map((h) => h.trim().toLowerCase()), ...(isLoopback(host) ? [hostHeaderName(host)] : [])],
      sendTimeoutMs,
      drainTimeoutMs,
      metrics,
      accessLog
    }
  })

/** What the app measures, into `metrics` (the pools `start` builds count their attempts there too). */
const observabilityOf = (settings: Checked, metrics: Metrics): internal.Observability => ({
  metrics,
  access: settings.metrics,
  accessLog: settings.accessLog
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
    Effect.map(Clock.currentTimeMillis, (now) => internal.make(settings, now, observabilityOf(settings, makeMetrics())))
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
  graceOf: (settings: Checked) => number,
  metrics?: Metrics,
  router?: routes.Router<never>
): Layer.Layer<never, HttpServerError.ServeError | InvalidRequest, EasyChat.EasyChat | ServerPool.ServerPool> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const settings = yield* check(options)
      const app = internal.make(
        settings,
        yield* Clock.currentTimeMillis,
        // A pool made by `layerChat` brings the metrics its attempts are counted in.
        observabilityOf(settings, metrics ?? metricsOf(yield* ServerPool.ServerPool) ?? makeMetrics()),
        router
      )
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

/** The gateway's options of a configuration, with `own` over them. */
const optionsOf = (config: Config.Config, own: Options): Options => {
  const { keys, ...file } = config.gateway
  const defined = Object.fromEntries(Object.entries(own).filter(([, v]) => v !== undefined)) as Options
  return { ...file, keys: keys.map(Redacted.value), ...defined }
}

/** Whether the gateway's own settings differ between two configurations (they apply at the next start). */
const settingsChanged = (a: Config.Config, b: Config.Config) => {
  const plain = (c: Config.Config) => JSON.stringify({ ...c.gateway, keys: c.gateway.keys.map(Redacted.value) })
  return plain(a) !== plain(b)
}

/** Calls `reload` when the file changes, once changes have stopped for 200 ms. */
const watchFile = (path: string, reload: Effect.Effect<unknown, unknown>) =>
  Effect.gen(function* () {
    const run = Runtime.runFork(yield* Effect.runtime<never>())
    const name = nodePath.basename(path)
    let timer: ReturnType<typeof setTimeout> | undefined
    // The folder, not the file: editors replace a file (a rename), which ends a watch on the file itself.
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const watcher = fs.watch(nodePath.dirname(path), (_, changed) => {
          if (changed !== null && changed !== name) return
          clearTimeout(timer)
          timer = setTimeout(() => run(Effect.ignore(reload)), 200)
        })
        watcher.on("error", () => {})
        return watcher
      }),
      (watcher) =>
        Effect.sync(() => {
          clearTimeout(timer)
          watcher.close()
        })
    )
  })

const layerConfigWith = (
  options: ConfigOptions,
  graceOf: (settings: Checked) => number,
  metrics: Metrics
): Layer.Layer<Routes, HttpServerError.ServeError | InvalidRequest | Config.InvalidConfig, HttpClient.HttpClient> =>
  Layer.unwrapScoped(
    Effect.gen(function* () {
      const { config: source, watch, ...own } = options
      const initial = typeof source === "string" ? yield* Config.load(source) : source
      const file = typeof source === "string" ? source : source.file
      // Reloads build their pools on the transport the gateway was given.
      const transport = yield* Effect.context<HttpClient.HttpClient>()
      const first = yield* routes.build(initial, undefined, metrics)
      const table = yield* Ref.make(first)
      const current = yield* Ref.make(initial)
      const lock = yield* Effect.makeSemaphore(1)
      const reload = (next?: Config.Config) =>
        Effect.gen(function* () {
          const config =
            next ??
            (file === undefined
              ? yield* new Config.InvalidConfig({
                  issues: [{ path: "", rule: "was not read from a file: give reload a configuration" }]
                })
              : yield* Config.load(file))
          const built = yield* Effect.provide(routes.build(config, yield* Ref.get(table), metrics), transport)
          yield* Ref.set(table, built)
          if (settingsChanged(yield* Ref.get(current), config)) {
            yield* Effect.logWarning(
              "easychat gateway: host, port, keys, CORS and limits changed in the configuration; they apply at the next start"
            )
          }
          yield* Ref.set(current, config)
          yield* Effect.logInfo(
            `easychat gateway: routes reloaded${file === undefined ? "" : ` from ${file}`}: ${built.routes.map((r) => r.name).join(", ")}`
          )
          return config
        }).pipe(
          lock.withPermits(1),
          Effect.tapError((error) => Effect.logWarning(`easychat gateway: the routes in use stay; ${error.message}`))
        )
      if (watch === true && file !== undefined) yield* watchFile(file, reload())
      const server = layerWith(optionsOf(initial, own), graceOf, metrics, routes.configured(table)).pipe(
        // Routes bring their own pools; the app's own (read only by `/metrics` without routes) is the first route's.
        Layer.provide(Layer.succeedContext(first.routes[0]!.context!))
      )
      return Layer.merge(server, Layer.succeed(Routes, { reload, current: Ref.get(current) }))
    })
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

/** The pool's options for a gateway: no sampling defaults unless the operator chose some. */
const poolOptions = (chat: Presets.Options = {}): Presets.Options => ({
  ...chat,
  defaults: chat.defaults === undefined || chat.defaults === Presets.easyChatDefaults ? {} : chat.defaults
})

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
): Layer.Layer<EasyChat.EasyChat | ServerPool.ServerPool, InvalidRequest, HttpClient.HttpClient> => {
  const pool = poolOptions(options)
  return Layer.effect(EasyChat.EasyChat, EasyChat.make(pool)).pipe(
    Layer.provideMerge(
      Layer.effect(
        ServerPool.ServerPool,
        Effect.map(ServerPool.make(pool), (made) => instrument(made, makeMetrics(), DEFAULT_ROUTE))
      )
    )
  )
}

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
  // The gateway builds the pool: its attempts are counted in the gateway's metrics.
  const metrics = makeMetrics()
  if (config !== undefined) {
    if (chat !== undefined) {
      throw new InvalidRequest({ field: "config", rule: "replaces chat: give the routes' pools in it, or chat alone" })
    }
    const listen = (at: string) => {
      url = at
      onListen?.(at)
    }
    return started(
      layerConfigWith(
        { ...gateway, config, ...(watch === undefined ? {} : { watch }), onListen: listen },
        (settings) => grace ?? settings.drainTimeoutMs,
        metrics
      ).pipe(Layer.provide(NodeTransport.layer(transport))),
      () => url,
      (drainTimeout) => (grace = drainTimeout)
    )
  }
  const pool = poolOptions(chat)
  const chatLayer = Layer.effect(EasyChat.EasyChat, EasyChat.make(pool)).pipe(
    Layer.provideMerge(
      Layer.effect(
        ServerPool.ServerPool,
        Effect.map(ServerPool.make(pool), (made) => instrument(made, metrics, DEFAULT_ROUTE))
      )
    )
  )
  const live = layerWith(
    {
      ...gateway,
      onListen: (at) => {
        url = at
        onListen?.(at)
      }
    },
    (settings) => grace ?? settings.drainTimeoutMs,
    metrics
  ).pipe(Layer.provide(chatLayer), Layer.provide(NodeTransport.layer(transport)))
  return started(
    live,
    () => url,
    (drainTimeout) => (grace = drainTimeout)
  )
}

/** Builds a gateway's layer in a scope of its own, and the `Running` that closes it. */
const started = async <ROut>(
  live: Layer.Layer<ROut, unknown>,
  url: () => string,
  setGrace: (drainTimeout: number | undefined) => void
): Promise<Running> => {
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
      const grace = millisOf(closeOptions.drainTimeout)
      setGrace(grace)
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
  const context = exit.value as Context.Context<unknown>
  const routesOf = Context.getOption(context as Context.Context<Routes>, Routes)
  if (routesOf._tag === "None") return { url: url(), close }
  const reload = async (config?: Config.Config) => {
    const done = await Effect.runPromiseExit(routesOf.value.reload(config))
    if (Exit.isSuccess(done)) return done.value
    throw Cause.squash(done.cause)
  }
  return { url: url(), close, reload }
}
