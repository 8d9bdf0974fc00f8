/**
 * The pool options that `chat`, `servers` and `gateway` share: which servers,
 * which preset (headers, cookies, path, sampling defaults), how to choose
 * among them, timeouts, credentials and the transport; and how they become
 * core `Options` and an `HttpClient` layer.
 *
 * @since 0.1.0
 */
import type { Strategy } from "@easychat/core"
import { EasyChat, Presets } from "@easychat/core"
import { MirrorServer } from "@easychat/testkit"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import { UsageError } from "./ExitCode.js"
import * as internal from "./internal/poolOptions.js"

/**
 * The presets `--preset` chooses from.
 * @since 0.2.0 @category models
 */
export type PresetName = internal.PresetName

/**
 * The `@effect/cli` options, to spread into a command's config.
 * @since 0.1.0 @category options
 */
export const options = internal.options

/**
 * What the options parse to.
 * @since 0.1.0 @category models
 */
export interface Parsed {
  readonly servers: ReadonlyArray<string>
  readonly preset: Option.Option<PresetName>
  readonly pin: Option.Option<string>
  readonly strategy: Option.Option<Strategy.Name>
  readonly model: Option.Option<string>
  readonly path: Option.Option<string>
  readonly timeouts: ReadonlyArray<string>
  readonly transport: "node" | "fetch"
  readonly proxy: Option.Option<string>
  readonly apiKey: Option.Option<Redacted.Redacted>
  readonly accessCode: Option.Option<Redacted.Redacted>
  readonly local: boolean
  readonly verbose: boolean
  /** `--hedge-after`: a duration or `auto`. */
  readonly hedgeAfter?: Option.Option<string>
  readonly continueAfterCut?: boolean
}

/**
 * The pool ready to use: core options, a transport layer, and the embedded
 * mirror when `--local` started one.
 * @since 0.1.0 @category models
 */
export interface Pool {
  readonly options: Presets.Options
  /** The preset the options start from: `--preset`, or the one `defaultPreset` chose. */
  readonly preset: PresetName
  readonly transport: Layer.Layer<HttpClient.HttpClient>
  readonly local: MirrorServer.MirrorServer | undefined
}

/**
 * Options of the embedded mirror that `--local` starts.
 * @since 0.1.0 @category models
 */
export type LocalMirror = MirrorServer.MirrorServerOptions

/**
 * Turns the parsed options into a pool: flags over the environment
 * (`EasyChat.options`), over the preset (`--preset`, or `defaultPreset`).
 * `--local` starts the embedded mirror for the scope's lifetime.
 * @since 0.1.0 @category constructors
 */
export const resolve = (parsed: Parsed, local: LocalMirror = {}): Effect.Effect<Pool, UsageError, Scope.Scope> =>
  Effect.gen(function* () {
    // The environment alone first: its servers and path take part in choosing the preset.
    const env = yield* Effect.mapError(
      EasyChat.options(),
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
    const servers =
      mirror !== undefined ? [mirror.url] : parsed.servers.length > 0 ? parsed.servers : (env.servers ?? [])
    const path = Option.getOrUndefined(parsed.path) ?? env.path
    const preset = Option.getOrElse(parsed.preset, () => defaultPreset({ servers, path }))
    const base = yield* presetOptions(preset, servers)
    const out: { -readonly [K in keyof Presets.Options]: Presets.Options[K] } = { ...base, ...env }
    if (servers.length > 0) out.servers = servers
    if (Option.isSome(parsed.pin)) out.activeServer = pinOf(parsed.pin.value)
    if (Option.isSome(parsed.strategy)) out.strategy = parsed.strategy.value
    if (Option.isSome(parsed.model)) out.model = parsed.model.value
    if (Option.isSome(parsed.path)) out.path = parsed.path.value
    if (Option.isSome(parsed.apiKey)) out.apiKey = Redacted.value(parsed.apiKey.value)
    if (Option.isSome(parsed.accessCode)) out.accessCode = Redacted.value(parsed.accessCode.value)
    if (Object.keys(timeouts).length > 0) out.timeouts = timeouts
    if (parsed.hedgeAfter !== undefined && Option.isSome(parsed.hedgeAfter)) {
      out.hedge = { after: yield* parseHedgeAfter(parsed.hedgeAfter.value) }
    }
    if (parsed.continueAfterCut === true) out.continueAfterCut = true
    return { options: out, preset, transport, local: mirror }
  })

/** NextChat's chat completions path: that of the EasyChat mirrors and of a self-hosted NextChat. */
const nextChatPath = "/api/openai/v1/chat/completions"

/** The URL of a server: a `Server`'s `url`, or the text before its `;attributes` (`--server`, `EASYCHAT_SERVERS`). */
const urlOf = (server: Presets.ServerOption): URL | undefined => {
  try {
    return new URL(typeof server === "string" ? server.split(";", 1)[0]!.trim() : server.url)
  } catch {
    return undefined
  }
}

const easyChatMirrors = new Set(Presets.easyChatServers.map((server) => urlOf(server)!.origin))

/**
 * The preset when `--preset` is not given. Browser-like headers go only to
 * the mirrors they were made for: `easychat` when the pool is the EasyChat
 * preset's own mirrors (no servers given, or only those); `openai` when the
 * path is not NextChat's or a server URL has a path (`http://host:11434/v1`);
 * `nextchat` for any other server, the embedded mirror of `--local` included.
 * @since 0.2.0 @category presets
 */
export const defaultPreset = (pool: {
  readonly servers: ReadonlyArray<Presets.ServerOption>
  readonly path: string | undefined
}): PresetName => {
  if (pool.path !== undefined && pool.path !== nextChatPath) return "openai"
  const urls = pool.servers.map(urlOf)
  if (urls.some((url) => url !== undefined && url.pathname !== "/")) return "openai"
  if (urls.every((url) => url !== undefined && easyChatMirrors.has(url.origin))) return "easychat"
  return "nextchat"
}

/**
 * The core preset of a name. `nextchat` and `openai` are built on the first
 * server (`openai` takes its path from it: `http://host/v1` gives
 * `/v1/chat/completions`); the caller replaces their `servers` with the pool.
 */
const presetOptions = (
  preset: PresetName,
  servers: ReadonlyArray<Presets.ServerOption>
): Effect.Effect<Presets.Options, UsageError> => {
  if (preset === "easychat") return Effect.succeed(Presets.easyChat)
  if (servers.length === 0) {
    return Effect.fail(
      new UsageError({
        reason: `the ${preset} preset needs servers: give --server URL (or EASYCHAT_SERVERS), or --local`
      })
    )
  }
  // A server that is not a URL is core's to report, with its index: any URL builds the preset meanwhile.
  const first = servers.map(urlOf).find((url) => url !== undefined)?.href ?? "http://localhost"
  return Effect.succeed(preset === "nextchat" ? Presets.nextChat(first) : Presets.openAICompatible(first))
}

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
 * `--hedge-after`: `auto`, a duration (`300ms`, `2s`) or a bare number of milliseconds.
 * @since 0.4.0 @category parsing
 */
export const parseHedgeAfter = (text: string): Effect.Effect<number | "auto", UsageError> => {
  const value = text.trim().toLowerCase()
  if (value === "auto") return Effect.succeed("auto")
  const millis = /^\d+$/.test(value) ? Number(value) : parseDuration(value)
  return millis !== undefined && millis > 0
    ? Effect.succeed(millis)
    : Effect.fail(new UsageError({ reason: `--hedge-after ${text}: expected a duration such as 300ms or 2s, or auto` }))
}

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
