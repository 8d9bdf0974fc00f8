/**
 * The options every entry point takes (`EasyChat.layer`, the presets and
 * `createClient`), and the presets: filled-in sets of options for the
 * original EasyChat mirrors, a plain OpenAI-compatible server and a
 * self-hosted NextChat.
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import type { Name as StrategyName, Strategy as StrategyValue } from "./Strategy.js"

/**
 * How a server's cookies are initialised with `GET {server}/` before the first
 * chat request: `best-effort` ignores a non-2xx answer (a transport failure
 * still counts as a server failure), `required` fails over on it, `off` skips
 * the GET.
 * @since 0.1.0 @category models
 */
export type CookieInit = "best-effort" | "required" | "off"

/**
 * How the next server is chosen: a built-in strategy's name (`random`,
 * `round-robin`, `latency`) or a `Strategy` value, yours included.
 * @since 0.1.0 @category models
 */
export type Strategy = StrategyName | StrategyValue

/**
 * A server of the pool with how it is routed.
 * @since 0.4.0 @category models
 */
export interface Server {
  /** Its base URL (the origin is kept). */
  readonly url: string
  /**
   * Its share of the choices within its tier, for the `random` and `latency`
   * strategies (`round-robin` ignores it): a positive finite number, default 1.
   */
  readonly weight?: number
  /**
   * Its tier, an integer ≥ 0 (default 0); lower is preferred. A tier is used
   * only when every server of the tiers before it has an open circuit or has
   * already been tried in the call.
   */
  readonly priority?: number
}

/**
 * A server as the `servers` option takes it: a URL, a `Server`, or the same
 * as text, the URL followed by `;name=value` attributes:
 * `http://a:8080;weight=3;priority=1` (the syntax of `EASYCHAT_SERVERS` and
 * the CLI's `--server`).
 * @since 0.4.0 @category models
 */
export type ServerOption = string | Server

/** A number of milliseconds or an Effect duration such as `"30 seconds"`. */
export type DurationOption = number | Duration.DurationInput

/**
 * One set of options for every entry point. A preset is just a filled-in set;
 * anything given overrides it; with no preset the values of
 * `Presets.easyChat` apply.
 * @since 0.1.0 @category models
 */
export interface Options {
  /**
   * The pool: base URLs (origins), e.g. `https://chat9.fastgpt.me`, each
   * possibly with a weight and a priority (`ServerOption`).
   */
  readonly servers?: ReadonlyArray<ServerOption>
  /** The chat completions path on each server. */
  readonly path?: string
  readonly model?: string
  /** Extra headers; they override the preset's. */
  readonly headers?: Readonly<Record<string, string>>
  /** Sent as `Authorization: Bearer <apiKey>`; never logged. */
  readonly apiKey?: string
  /** A NextChat access code, sent as `Authorization: Bearer nk-<code>`; never logged. */
  readonly accessCode?: string
  readonly cookieInit?: CookieInit
  readonly strategy?: Strategy
  /** Pin every call to one server: an index into `servers` or one of its URLs. */
  readonly activeServer?: number | string
  /** Attempts per call, each on a server not yet tried in it (default: the pool size). */
  readonly maxAttempts?: number
  readonly breaker?: {
    /** Consecutive failures that open a server's circuit (default 3). */
    readonly failures?: number
    /** How long an open circuit stays open before one probe is let through (default 30 s). */
    readonly cooldown?: DurationOption
    /** The longest a 429's `Retry-After` keeps a circuit open (default 60 s). */
    readonly maxRetryAfter?: DurationOption
  }
  readonly timeouts?: {
    /** Until status and headers arrive (default 30 s). */
    readonly headers?: DurationOption
    /** Until the first delta (default 60 s). */
    readonly firstToken?: DurationOption
    /** The longest gap between two chunks (default 30 s). */
    readonly idle?: DurationOption
    /** The whole call, failovers included (default 10 min). */
    readonly total?: DurationOption
  }
  /** The largest SSE event accepted, in bytes (default 1 MiB). */
  readonly maxEventSize?: number
  /** The largest whole (non-stream) reply or error body read, in bytes (default 8 MiB). */
  readonly maxReplySize?: number
  /**
   * Body fields sent when the caller does not send them (a caller's `null`
   * leaves one out). The EasyChat preset sends the original's sampling
   * defaults; the other presets send nothing the caller did not send.
   */
  readonly defaults?: Readonly<Record<string, unknown>>
  /**
   * Headers that depend on the server (the browser-like `origin` and
   * `referer` of the EasyChat preset). `headers` override them.
   */
  readonly serverHeaders?: (server: string) => Readonly<Record<string, string>>
  /**
   * Opt-in: hedged first requests. When an attempt has not produced its
   * first item (a stream's first delta, a whole reply's response) within
   * `after`, another attempt starts on another server while it goes on; the
   * first to deliver wins and the others are cancelled. Off by default.
   */
  readonly hedge?: Hedge
  /**
   * Opt-in: a stream cut after its first delta (connection lost, idle
   * timeout, no `[DONE]` nor finish reason, an error event) is continued on
   * another server, asked to go on from the text delivered so far; never
   * once a tool call has begun, nor with `n` > 1. The continuation is
   * another generation. Default false.
   */
  readonly continueAfterCut?: boolean
}

/**
 * The `hedge` option.
 * @since 0.4.0 @category models
 */
export interface Hedge {
  /**
   * How long an attempt may go without its first item before another starts:
   * a duration, or `"auto"`, the pool's measured 95th percentile of the time
   * to first delta (no hedge until the pool has measured enough).
   */
  readonly after: DurationOption | "auto"
  /** The most attempts running at once, the first included (default 2). */
  readonly max?: number
}

/**
 * The seven mirrors of the original provider, in its order.
 * @since 0.1.0 @category constants
 */
export const easyChatServers: ReadonlyArray<string> = [
  "https://chat10.fastgpt.me",
  "https://chat9.fastgpt.me",
  "https://chat1.fastgpt.me",
  "https://chat2.fastgpt.me",
  "https://chat3.fastgpt.me",
  "https://chat4.fastgpt.me",
  "https://gxos1h1ddt.fastgpt.me"
]

/**
 * The original's browser-like headers, with its faults removed: one
 * `x-requested-with`, no HTTP/2 pseudo-header `authority` sent as a plain
 * header, and client hints written in their own structured syntax (brands and
 * platform are quoted strings) without extra quotes around whole values.
 * @since 0.1.0 @category constants
 */
export const browserHeaders = (server: string): Readonly<Record<string, string>> => ({
  accept: "text/event-stream",
  "accept-language": "en,fr-FR;q=0.9,fr;q=0.8,es-ES;q=0.7,es;q=0.6,en-US;q=0.5,am;q=0.4,de;q=0.3",
  "content-type": "application/json",
  origin: server,
  referer: `${server}/`,
  plugins: "0",
  "sec-ch-ua": '"Chromium";v="116", "Not)A;Brand";v="24", "Google Chrome";v="116"',
  "sec-ch-ua-mobile": "?0",
  "sec-ch-ua-platform": '"Windows"',
  "sec-fetch-dest": "empty",
  "sec-fetch-mode": "cors",
  "sec-fetch-site": "same-origin",
  "user-agent":
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0.0.0 Safari/537.36",
  usesearch: "false",
  "x-requested-with": "XMLHttpRequest"
})

/**
 * The original provider's sampling fields, sent by the EasyChat preset when
 * the caller does not send them.
 * @since 0.2.0 @category constants
 */
export const easyChatDefaults: Readonly<Record<string, unknown>> = {
  temperature: 0.5,
  presence_penalty: 0,
  frequency_penalty: 0,
  top_p: 1
}

/**
 * The original EasyChat provider: seven public mirrors, browser-like headers,
 * cookies from `GET /`, model `gpt-3.5-turbo`, and its sampling defaults
 * (`temperature` 0.5, penalties 0, `top_p` 1).
 * @since 0.1.0 @category presets
 */
export const easyChat: Options = {
  servers: easyChatServers,
  path: "/api/openai/v1/chat/completions",
  model: "gpt-3.5-turbo",
  cookieInit: "best-effort",
  strategy: "random",
  defaults: easyChatDefaults,
  serverHeaders: browserHeaders
}

const jsonHeaders = (): Readonly<Record<string, string>> => ({
  accept: "application/json, text/event-stream",
  "content-type": "application/json"
})

/**
 * A plain OpenAI-compatible server (vLLM, llama.cpp, Ollama, LM Studio, a
 * gateway): `{baseUrl}/v1/chat/completions` — or `{baseUrl}/chat/completions`
 * when `baseUrl` already ends in a path such as `/v1` —, an optional bearer
 * key, no cookie initialisation, no sampling defaults.
 * @since 0.1.0 @category presets
 */
export const openAICompatible = (baseUrl: string, options: Options = {}): Options => {
  const url = new URL(baseUrl)
  const prefix = url.pathname === "/" ? "/v1" : url.pathname.replace(/\/+$/, "")
  return {
    servers: [url.origin],
    path: `${prefix}/chat/completions`,
    model: "gpt-3.5-turbo",
    cookieInit: "off",
    strategy: "random",
    defaults: {},
    serverHeaders: jsonHeaders,
    ...options
  }
}

/**
 * A self-hosted NextChat. Its access code travels as
 * `Authorization: Bearer nk-<code>`; an `apiKey` (the user's own upstream
 * key) is sent as it is. No sampling defaults.
 * @since 0.1.0 @category presets
 */
export const nextChat = (baseUrl: string, options: Options = {}): Options => ({
  servers: [new URL(baseUrl).origin],
  path: "/api/openai/v1/chat/completions",
  model: "gpt-3.5-turbo",
  cookieInit: "off",
  strategy: "random",
  defaults: {},
  serverHeaders: jsonHeaders,
  ...options
})
