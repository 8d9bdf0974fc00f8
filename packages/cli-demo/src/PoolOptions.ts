/**
 * The pool options that `chat`, `servers` and `gateway` share: which servers,
 * how to choose among them, timeouts, credentials and the transport; and how
 * they become core `Options` and an `HttpClient` layer.
 *
 * @since 0.1.0
 */
import { EasyChat, Presets } from "@easychat/core"
import { MirrorServer } from "@easychat/testkit"
import * as Options from "@effect/cli/Options"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { UsageError } from "./ExitCode.js"

/**
 * The `@effect/cli` options, to spread into a command's config.
 * @since 0.1.0 @category options
 */
export const options = {
  servers: Options.text("server").pipe(
    Options.withAlias("s"),
    Options.withDescription(
      "A server base URL; repeat for a pool. Default: EASYCHAT_SERVERS, or the EasyChat preset's seven mirrors."
    ),
    Options.repeated
  ),
  pin: Options.text("pin").pipe(
    Options.withDescription("Use only this server of the pool: an index (0-based) or one of its URLs."),
    Options.optional
  ),
  strategy: Options.choice("strategy", ["random", "round-robin"]).pipe(
    Options.withDescription("How the next server is chosen (default random; EASYCHAT_STRATEGY)."),
    Options.optional
  ),
  model: Options.text("model").pipe(
    Options.withAlias("m"),
    Options.withDescription("The model to ask for (default gpt-3.5-turbo; EASYCHAT_MODEL)."),
    Options.optional
  ),
  path: Options.text("path").pipe(
    Options.withDescription(
      "The chat completions path on each server (default /api/openai/v1/chat/completions; use /v1/chat/completions for vLLM, Ollama, ...)."
    ),
    Options.optional
  ),
  timeouts: Options.text("timeout").pipe(
    Options.withDescription(
      "A phase limit as phase=duration: headers, first-token, idle or total, e.g. --timeout idle=10s --timeout total=2m (units ms, s, m, h). Repeatable."
    ),
    Options.repeated
  ),
  transport: Options.choice("transport", ["node", "fetch"]).pipe(
    Options.withDescription("The HTTP client: node (undici, keep-alive pool, proxies) or fetch (Node's global fetch)."),
    Options.withDefault("node" as const)
  ),
  proxy: Options.text("proxy").pipe(
    Options.withDescription(
      "A proxy URL (http, https, socks5), or env to use HTTP_PROXY, HTTPS_PROXY and NO_PROXY. Node transport only."
    ),
    Options.optional
  ),
  apiKey: Options.redacted("api-key").pipe(
    Options.withDescription("Sent as Authorization: Bearer <key>; never printed. Prefer EASYCHAT_API_KEY."),
    Options.optional
  ),
  accessCode: Options.redacted("access-code").pipe(
    Options.withDescription(
      "A self-hosted NextChat's access code (sent as Bearer nk-<code>); never printed. Prefer EASYCHAT_ACCESS_CODE."
    ),
    Options.optional
  ),
  local: Options.boolean("local").pipe(
    Options.withDescription("Start the embedded test mirror in this process and use it as the only server.")
  ),
  verbose: Options.boolean("verbose").pipe(
    Options.withAlias("v"),
    Options.withDescription("Print each failed attempt, failover and breaker change on stderr, and stack traces.")
  )
} as const

/**
 * What the options parse to.
 * @since 0.1.0 @category models
 */
export interface Parsed {
  readonly servers: ReadonlyArray<string>
  readonly pin: Option.Option<string>
  readonly strategy: Option.Option<"random" | "round-robin">
  readonly model: Option.Option<string>
  readonly path: Option.Option<string>
  readonly timeouts: ReadonlyArray<string>
  readonly transport: "node" | "fetch"
  readonly proxy: Option.Option<string>
  readonly apiKey: Option.Option<Redacted.Redacted>
  readonly accessCode: Option.Option<Redacted.Redacted>
  readonly local: boolean
  readonly verbose: boolean
}

/**
 * The pool ready to use: core options, a transport layer, and the embedded
 * mirror when `--local` started one.
 * @since 0.1.0 @category models
 */
export interface Pool {
  readonly options: Presets.Options
  readonly transport: Layer.Layer<HttpClient.HttpClient>
  readonly local: MirrorServer.MirrorServer | undefined
}

/**
 * Options of the embedded mirror that `--local` starts.
 * @since 0.1.0 @category models
 */
export type LocalMirror = MirrorServer.MirrorServerOptions

/**
 * Turns the parsed options (over the environment, over the EasyChat preset)
 * into a pool. `--local` starts the embedded mirror for the scope's lifetime.
 * @since 0.1.0 @category constructors
 */
export const resolve = (parsed: Parsed, local: LocalMirror = {}): Effect.Effect<Pool, UsageError, Scope.Scope> =>
  Effect.gen(function* () {
    const env = yield* Effect.mapError(
      EasyChat.options(Presets.easyChat),
      (error) => new UsageError({ reason: `Invalid environment: ${error.message}` })
    )
    const timeouts = yield* parseTimeouts(parsed.timeouts)
    const transport = yield* transportLayer(parsed)
    if (parsed.local && parsed.servers.length > 0) {
      return yield* new UsageError({ reason: "--local and --server cannot be used together" })
    }
    const mirror = parsed.local
      ? yield* Effect.acquireRelease(
          Effect.promise(() => MirrorServer.start(local)),
          (server) => Effect.promise(() => server.close())
        )
      : undefined
    const out: { -readonly [K in keyof Presets.Options]: Presets.Options[K] } = { ...env }
    if (mirror !== undefined) out.servers = [mirror.url]
    else if (parsed.servers.length > 0) out.servers = parsed.servers
    if (Option.isSome(parsed.pin)) out.activeServer = pinOf(parsed.pin.value)
    if (Option.isSome(parsed.strategy)) out.strategy = parsed.strategy.value
    if (Option.isSome(parsed.model)) out.model = parsed.model.value
    if (Option.isSome(parsed.path)) out.path = parsed.path.value
    if (Option.isSome(parsed.apiKey)) out.apiKey = Redacted.value(parsed.apiKey.value)
    if (Option.isSome(parsed.accessCode)) out.accessCode = Redacted.value(parsed.accessCode.value)
    if (Object.keys(timeouts).length > 0) out.timeouts = timeouts
    return { options: out, transport, local: mirror }
  })

const pinOf = (pin: string): number | string => (/^\d+$/.test(pin) ? Number(pin) : pin)

// Each transport is loaded only when chosen: undici alone costs a noticeable part of start-up.
const transportLayer = (parsed: Parsed): Effect.Effect<Layer.Layer<HttpClient.HttpClient>, UsageError> => {
  if (parsed.transport === "fetch") {
    return Option.isSome(parsed.proxy)
      ? Effect.fail(new UsageError({ reason: "--proxy needs --transport node (fetch has no proxy support)" }))
      : Effect.promise(() => import("@easychat/transport-fetch")).pipe(Effect.map((fetch) => fetch.layer()))
  }
  const proxy = Option.getOrUndefined(parsed.proxy)
  if (proxy !== undefined && proxy !== "env") {
    let protocol: string
    try {
      protocol = new URL(proxy).protocol
    } catch {
      // The URL may hold credentials: never echo it.
      return Effect.fail(new UsageError({ reason: '--proxy must be a URL or "env"' }))
    }
    if (!["http:", "https:", "socks:", "socks5:"].includes(protocol)) {
      return Effect.fail(
        new UsageError({ reason: `--proxy: unsupported protocol ${protocol} (use http, https or socks5)` })
      )
    }
  }
  return Effect.promise(() => import("@easychat/transport-node")).pipe(
    Effect.map((node) => node.layer(proxy === undefined ? {} : { proxy }))
  )
}

const phases: Record<string, keyof NonNullable<Presets.Options["timeouts"]>> = {
  headers: "headers",
  "first-token": "firstToken",
  firsttoken: "firstToken",
  idle: "idle",
  total: "total"
}

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/**
 * Parses `phase=duration` values (`idle=10s`, `total=2m`, `headers=500ms`).
 * @since 0.1.0 @category parsing
 */
export const parseTimeouts = (
  values: ReadonlyArray<string>
): Effect.Effect<NonNullable<Presets.Options["timeouts"]>, UsageError> =>
  Effect.gen(function* () {
    const out: Record<string, number> = {}
    for (const value of values) {
      const eq = value.indexOf("=")
      const phase = eq < 0 ? undefined : phases[value.slice(0, eq).trim().toLowerCase()]
      if (phase === undefined) {
        return yield* new UsageError({
          reason: `--timeout ${value}: expected phase=duration with phase headers, first-token, idle or total`
        })
      }
      const millis = parseDuration(value.slice(eq + 1).trim())
      if (millis === undefined) {
        return yield* new UsageError({
          reason: `--timeout ${value}: the duration needs a positive number and a unit, e.g. 500ms, 10s, 2m`
        })
      }
      out[phase] = millis
    }
    return out
  })

/**
 * `500ms`, `10s`, `1.5m`, `1h` in milliseconds; `undefined` when invalid.
 * @since 0.1.0 @category parsing
 */
export const parseDuration = (text: string): number | undefined => {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/i.exec(text)
  if (match === null) return undefined
  const millis = Number(match[1]) * units[match[2]!.toLowerCase()]!
  return millis > 0 ? Math.round(millis) : undefined
}
