/**
 * The gateway's configuration file (`easychat gateway --config easychat.yaml`,
 * YAML or JSON): routes from model names to pools of servers, each with its
 * own preset, headers, key, strategy, timeouts, hedging and continuation,
 * an optional fallback route, and the gateway's own settings. Checked with
 * Effect `Schema`, then with core's own rules: every error names its place
 * in the file (`routes[1].servers[0].weight`) and the rule it breaks, and
 * never a key's value.
 *
 * @example
 * ```yaml
 * routes:
 *   - models: [llama3.2]
 *     servers: ["http://127.0.0.1:11434"]
 * ```
 *
 * @since 0.5.0
 */
import * as fs from "node:fs/promises"
import * as nodePath from "node:path"
import type { Presets } from "@easychat/core"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import type * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { check } from "./internal/configCheck.js"
import { issuesOf, syntax } from "./internal/configSyntax.js"

const rule = (message: string) => ({ message: () => message })
/** For unions and literals: one rule instead of one message per member. */
const only = (message: string) => ({ message: () => ({ message, override: true }) })
const optional = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })

const Text = Schema.String.annotations(rule("must be text")).pipe(Schema.nonEmptyString(rule("must not be empty")))
const Texts = Schema.Array(Text).annotations(rule("must be a list"))
const Bool = Schema.Boolean.annotations(rule("must be true or false"))
const PositiveInt = Schema.Number.annotations(rule("must be a number")).pipe(
  Schema.int(rule("must be a whole number")),
  Schema.positive(rule("must be a positive whole number"))
)
const EnvName = Text.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/, rule("must be the name of an environment variable, e.g. VLLM_KEY"))
)

/** `500ms`, `30s`, `2m`, `1h`, Effect's `30 seconds`, or a number of milliseconds. */
const millisOf = (input: number | string): number | undefined => {
  if (typeof input === "number") return Number.isFinite(input) && input >= 0 ? input : undefined
  const short = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/i.exec(input)
  if (short !== null) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[short[2]!.toLowerCase() as "ms" | "s" | "m" | "h"]
    return Number(short[1]) * unit
  }
  const decoded = Duration.decodeUnknown(input)
  return decoded._tag === "Some" && Duration.isFinite(decoded.value) ? Duration.toMillis(decoded.value) : undefined
}

const durationOf = (zero: boolean) => {
  const expected = `must be a duration such as 500ms, 30s or 2m, or a number of milliseconds${zero ? " (0: at once)" : " above 0"}`
  return Schema.transformOrFail(Schema.Union(Schema.Number, Schema.String).annotations(only(expected)), Schema.Number, {
    strict: true,
    decode: (input, _, ast) => {
      const millis = millisOf(input)
      return millis === undefined || (!zero && millis === 0)
        ? ParseResult.fail(new ParseResult.Type(ast, input, expected))
        : ParseResult.succeed(millis)
    },
    encode: ParseResult.succeed
  })
}
const Millis = durationOf(false)

/**
 * A server of a route: its URL, or `{ url, weight?, priority? }`, or the
 * text form `url;weight=3;priority=1` (core's `servers` option).
 * @since 0.5.0 @category schemas
 */
export const Server = Schema.Union(
  Schema.String.annotations(rule("must be a URL, url;weight=…;priority=…, or { url, weight?, priority? }")),
  Schema.Struct({
    url: Text,
    weight: optional(
      Schema.Number.annotations(rule("must be a number")).pipe(Schema.positive(rule("must be a positive number")))
    ),
    priority: optional(
      Schema.Number.annotations(rule("must be a number")).pipe(
        Schema.int(rule("must be a whole number ≥ 0")),
        Schema.nonNegative(rule("must be a whole number ≥ 0"))
      )
    )
  })
)

/**
 * One route of the file: the models it serves and the pool that serves them.
 * @since 0.5.0 @category schemas
 */
export const RouteFile = Schema.Struct({
  /** Its name, for `fallback`, `/health` and logs. Default: its first model. */
  name: optional(Text),
  /** Model names, or patterns with `*` (`qwen*`, `*`). */
  models: Texts.pipe(Schema.minItems(1, rule("must name at least one model"))),
  /** How the servers are spoken to (default `openai-compatible`; `easychat` without servers: the public mirrors). */
  preset: optional(
    Schema.Literal("openai-compatible", "easychat", "nextchat").annotations(
      only("must be openai-compatible, easychat or nextchat")
    )
  ),
  servers: optional(Schema.Array(Server).annotations(rule("must be a list of servers"))),
  path: optional(Text),
  /** The model asked for when a request names none. Default: the route's first model without `*`. */
  model: optional(Text),
  headers: optional(
    Schema.Record({ key: Schema.String, value: Schema.String.annotations(rule("must be text")) }).annotations(
      rule("must be a map of header names to values")
    )
  ),
  /** The environment variable holding the servers' API key (sent as `Authorization: Bearer …`). */
  apiKeyEnv: optional(EnvName),
  /** The environment variable holding a NextChat access code. */
  accessCodeEnv: optional(EnvName),
  cookieInit: optional(
    Schema.Literal("best-effort", "required", "off").annotations(only("must be best-effort, required or off"))
  ),
  strategy: optional(
    Schema.Literal("random", "round-robin", "latency").annotations(only("must be random, round-robin or latency"))
  ),
  maxAttempts: optional(PositiveInt),
  breaker: optional(
    Schema.Struct({ failures: optional(PositiveInt), cooldown: optional(Millis), maxRetryAfter: optional(Millis) })
  ),
  timeouts: optional(
    Schema.Struct({
      headers: optional(Millis),
      firstToken: optional(Millis),
      idle: optional(Millis),
      total: optional(Millis)
    })
  ),
  hedge: optional(
    Schema.Struct({
      after: Schema.Union(Schema.Literal("auto"), Millis).annotations(
        only('must be a duration such as 500ms or 2s, or "auto"')
      ),
      max: optional(PositiveInt)
    })
  ),
  continueAfterCut: optional(Bool),
  maxEventSize: optional(PositiveInt),
  maxReplySize: optional(PositiveInt),
  /** The route whose pool answers when this one's whole pool failed (`AllServersFailed`). */
  fallback: optional(Text)
})

/**
 * The file as written: routes, and the gateway's own settings.
 * @since 0.5.0 @category schemas
 */
export const File = Schema.Struct({
  routes: Schema.Array(RouteFile)
    .annotations(rule("must be a list of routes"))
    .pipe(Schema.minItems(1, rule("must hold at least one route"))),
  host: optional(Text),
  port: optional(
    Schema.Number.annotations(rule("must be a number")).pipe(
      Schema.int(rule("must be a whole number from 0 to 65535")),
      Schema.between(0, 65535, rule("must be a whole number from 0 to 65535"))
    )
  ),
  /** The environment variable holding the keys clients must send (separated by commas or line ends). */
  keysEnv: optional(EnvName),
  /** A file of keys clients must send, one a line (`#` comments), relative to the configuration file. */
  keysFile: optional(Text),
  hostnames: optional(Texts),
  cors: optional(Texts),
  maxBodyBytes: optional(PositiveInt),
  maxConcurrent: optional(PositiveInt),
  bodyTimeout: optional(Millis),
  sendTimeout: optional(Millis),
  drainTimeout: optional(durationOf(true)),
  allowRouting: optional(Bool)
})

/**
 * The file as written, decoded: durations in milliseconds.
 * @since 0.5.0 @category models
 */
export type File = typeof File.Type

/**
 * A route, ready to build: its name, what it serves, its pool's options
 * (keys apart) and its keys, read from the environment and kept redacted.
 * @since 0.5.0 @category models
 */
export interface Route {
  readonly name: string
  /** Model names and patterns (`*` matches any text). */
  readonly models: ReadonlyArray<string>
  readonly fallback: string | undefined
  /** Core's options for the pool: the preset's values and the route's over them, without keys. */
  readonly pool: Presets.Options
  readonly apiKey: Redacted.Redacted<string> | undefined
  readonly accessCode: Redacted.Redacted<string> | undefined
}

/**
 * A checked configuration: its routes, in order, and the gateway's settings.
 * @since 0.5.0 @category models
 */
export interface Config {
  readonly routes: ReadonlyArray<Route>
  readonly gateway: {
    readonly host?: string
    readonly port?: number
    readonly keys: ReadonlyArray<Redacted.Redacted<string>>
    readonly hostnames?: ReadonlyArray<string>
    readonly cors?: ReadonlyArray<string>
    readonly maxBodyBytes?: number
    readonly maxConcurrent?: number
    readonly bodyTimeout?: number
    readonly sendTimeout?: number
    readonly drainTimeout?: number
    readonly allowRouting?: boolean
  }
  /** The file it was read from, when it was. */
  readonly file: string | undefined
}

/**
 * One thing wrong with a configuration: where (`routes[1].servers[0].weight`;
 * empty for the file as a whole) and the rule it breaks.
 * @since 0.5.0 @category models
 */
export const Issue = Schema.Struct({ path: Schema.String, rule: Schema.String })
/** @since 0.5.0 @category models */
export type Issue = typeof Issue.Type

/**
 * A configuration refused, with every issue found.
 * @since 0.5.0 @category errors
 */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>("@easychat/gateway/InvalidConfig")(
  "InvalidConfig",
  { file: Schema.optional(Schema.String), issues: Schema.Array(Issue) }
) {
  override get message(): string {
    const where = this.file ?? "the configuration"
    const lines = this.issues.map((i) => `  ${i.path === "" ? "" : `${i.path}: `}${i.rule}`)
    return `${where} is invalid:\n${lines.join("\n")}`
  }
}

/**
 * How a configuration's text is written.
 * @since 0.5.0 @category models
 */
export type Format = "yaml" | "json"

/**
 * Where keys and files are looked up: `env` (default `process.env`) and
 * `dir`, the folder `keysFile` is relative to (default: the file's, or the
 * working directory).
 * @since 0.5.0 @category models
 */
export interface ParseOptions {
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly dir?: string
  /** The file's name, for messages. */
  readonly file?: string
}

/**
 * Whether `pattern` (`*` for any text) matches `model`.
 * @since 0.5.0 @category utils
 */
export const matches = (pattern: string, model: string): boolean => {
  if (!pattern.includes("*")) return pattern === model
  const parts = pattern.split("*")
  const escaped = parts.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
  return new RegExp(`^${escaped.join(".*")}$`, "s").test(model)
}

const fileField = (options: ParseOptions) => (options.file === undefined ? {} : { file: options.file })

const decodeFile = Schema.decodeUnknownEither(File, { errors: "all", onExcessProperty: "error" })

/**
 * Checks a configuration's text: its syntax, the schema (unknown keys are
 * errors, with the likely key named), then what spans routes (names, models
 * served twice, fallbacks that name no route or make a cycle), the
 * environment (`apiKeyEnv`, `keysEnv`: a variable that is not set), and
 * core's rules for each pool. Fails with every issue found.
 * @since 0.5.0 @category constructors
 */
export const parse = (text: string, format: Format, options: ParseOptions = {}): Effect.Effect<Config, InvalidConfig> =>
  Effect.suspend(() => {
    const value = syntax(text, format)
    if (Either.isLeft(value)) return Effect.fail(new InvalidConfig({ ...fileField(options), issues: [value.left] }))
    if (value.right === null || value.right === undefined) {
      return Effect.fail(
        new InvalidConfig({ ...fileField(options), issues: [{ path: "", rule: "is empty: it needs routes" }] })
      )
    }
    const decoded = decodeFile(value.right)
    return Either.isLeft(decoded)
      ? Effect.fail(new InvalidConfig({ ...fileField(options), issues: issuesOf(decoded.left) }))
      : Effect.mapError(check(decoded.right, options), (issues) => new InvalidConfig({ ...fileField(options), issues }))
  })

/**
 * The format a file name suggests: `.json` is JSON, anything else YAML.
 * @since 0.5.0 @category utils
 */
export const formatOf = (path: string): Format => (path.toLowerCase().endsWith(".json") ? "json" : "yaml")

/**
 * Reads and checks a configuration file (see `parse`); `keysFile` is
 * relative to its folder.
 * @since 0.5.0 @category constructors
 */
export const load = (
  path: string,
  options: Omit<ParseOptions, "file" | "dir"> = {}
): Effect.Effect<Config, InvalidConfig> =>
  Effect.flatMap(
    Effect.tryPromise({
      try: () => fs.readFile(path, "utf8"),
      catch: (error) =>
        new InvalidConfig({
          file: path,
          issues: [{ path: "", rule: `cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})` }]
        })
    }),
    (text) => parse(text, formatOf(path), { ...options, file: path, dir: nodePath.dirname(path) })
  )
