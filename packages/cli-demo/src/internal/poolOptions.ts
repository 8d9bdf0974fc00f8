// The pool options as `@effect/cli` options, apart from `PoolOptions.resolve`
// and the client it needs, so that the command line can be parsed (and
// `--help` shown) without loading the client.
import type { Strategy } from "@easychat/core"
import * as Options from "@effect/cli/Options"

/** The presets `--preset` chooses from. */
export type PresetName = "easychat" | "nextchat" | "openai"

const presetNames: ReadonlyArray<PresetName> = ["easychat", "nextchat", "openai"]

/** Core's `Strategy.names`, written out (a test compares them): importing core here would load the client with `--help`. */
export const strategyNames: ReadonlyArray<Strategy.Name> = ["random", "round-robin", "latency"]

/** The options, to spread into a command's config. */
export const options = {
  servers: Options.text("server").pipe(
    Options.withPseudoName("URL"),
    Options.withAlias("s"),
    Options.withDescription(
      "A server base URL, optionally with ;weight=N (its share within its tier, default 1) and ;priority=N (its tier, default 0, lower first), e.g. --server 'http://a:8080;weight=3;priority=0'; repeat for a pool. Default: EASYCHAT_SERVERS (comma-separated, same syntax), or the EasyChat preset's seven mirrors."
    ),
    Options.repeated
  ),
  preset: Options.choice("preset", presetNames).pipe(
    Options.withDescription(
      "What the servers are: easychat (the public mirrors: browser-like headers, cookies from GET /, and in chat its sampling defaults), nextchat (a self-hosted NextChat: plain headers, access code) or openai (an OpenAI-compatible server: plain headers, /v1/chat/completions). Default: openai when --path (or EASYCHAT_PATH) is not NextChat's or a --server URL has a path such as /v1; else easychat for the EasyChat mirrors (no --server); else nextchat (--local included)."
    ),
    Options.optional
  ),
  pin: Options.text("pin").pipe(
    Options.withPseudoName("N|URL"),
    Options.withDescription(
      "Use only this server of the pool: an index (0-based) or one of its URLs (servers: check only that one)."
    ),
    Options.optional
  ),
  strategy: Options.choice("strategy", strategyNames).pipe(
    Options.withDescription(
      "How the next server is chosen: random (weighted), round-robin (ignores weights) or latency (the fastest measured time to first delta, with a little exploration). Default random; EASYCHAT_STRATEGY."
    ),
    Options.optional
  ),
  model: Options.text("model").pipe(
    Options.withPseudoName("NAME"),
    Options.withAlias("m"),
    Options.withDescription("The model to ask for (default gpt-3.5-turbo; EASYCHAT_MODEL)."),
    Options.optional
  ),
  path: Options.text("path").pipe(
    Options.withPseudoName("PATH"),
    Options.withDescription(
      "The chat completions path on each server (default: the preset's, /api/openai/v1/chat/completions or /v1/chat/completions; a path other than NextChat's chooses --preset openai when none is given)."
    ),
    Options.optional
  ),
  timeouts: Options.text("timeout").pipe(
    Options.withPseudoName("PHASE=DURATION"),
    Options.withDescription(
      "A phase limit as phase=duration: headers, first-token, idle or total, e.g. --timeout idle=10s --timeout total=2m (units ms, s, m, h)."
    ),
    Options.repeated
  ),
  transport: Options.choice("transport", ["node", "fetch"]).pipe(
    Options.withDescription(
      "The HTTP client: node (undici, keep-alive pool, proxies; the default) or fetch (Node's global fetch)."
    ),
    Options.withDefault("node" as const)
  ),
  proxy: Options.text("proxy").pipe(
    Options.withPseudoName("URL|env"),
    Options.withDescription(
      "A proxy URL (http, https, socks5), or env to use HTTP_PROXY, HTTPS_PROXY and NO_PROXY. Node transport only."
    ),
    Options.optional
  ),
  apiKey: Options.redacted("api-key").pipe(
    Options.withPseudoName("KEY"),
    Options.withDescription("Sent as Authorization: Bearer <key>; never printed. Prefer EASYCHAT_API_KEY."),
    Options.optional
  ),
  accessCode: Options.redacted("access-code").pipe(
    Options.withPseudoName("CODE"),
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
  ),
  hedgeAfter: Options.text("hedge-after").pipe(
    Options.withPseudoName("DURATION|auto"),
    Options.withDescription(
      "Hedge slow first requests: when an attempt has no first delta after this long (300ms, 2s; a bare number is milliseconds) or after the pool's measured 95th percentile (auto), another starts on another server; the first to answer wins, the other is cancelled."
    ),
    Options.optional
  ),
  continueAfterCut: Options.boolean("continue-after-cut").pipe(
    Options.withDescription(
      "Continue a stream cut after its first delta on another server, asked to go on from the text so far (another generation; never once a tool call has begun)."
    )
  )
} as const
