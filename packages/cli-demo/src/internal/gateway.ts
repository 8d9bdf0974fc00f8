// `easychat gateway`: the OpenAI-compatible gateway of `@easychat/gateway` in
// front of the pool, until the first SIGINT or SIGTERM, which drains it.
import * as fs from "node:fs"
import { ServerPool } from "@easychat/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as ExitCode from "../ExitCode.js"
import * as PoolOptions from "../PoolOptions.js"
import { FirstSignal } from "./context.js"
import { reportError } from "./report.js"
import { bold, dim } from "./terminal.js"
import * as Verbose from "./verbose.js"

export interface Parsed extends PoolOptions.Parsed {
  readonly port: number
  readonly host: string
  readonly keys: ReadonlyArray<string>
  readonly keyFile: Option.Option<string>
  readonly cors: ReadonlyArray<string>
  readonly hostnames: ReadonlyArray<string>
  readonly allowRouting: boolean
  readonly noPage: boolean
  readonly maxBodyBytes: Option.Option<number>
  readonly maxConcurrent: Option.Option<number>
  readonly bodyTimeout: Option.Option<string>
  readonly sendTimeout: Option.Option<string>
  readonly grace: Option.Option<string>
  readonly metrics: "keyed" | "open" | "off"
  readonly logFormat: "text" | "json" | "off"
  /** `--config`: routes from a file instead of the pool options. */
  readonly config: Option.Option<string>
}

/** 127.0.0.0/8, ::1 and localhost (in any case): reachable from this machine only. */
export const isLoopback = (host: string): boolean => {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "")
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}

/** A key and where it came from, to name in an error (never the key itself). */
interface SourcedKey {
  readonly key: string
  readonly source: string
}

/** `EASYCHAT_GATEWAY_KEYS`: keys separated by commas or line ends. */
const keysFromEnv = (): ReadonlyArray<SourcedKey> =>
  (process.env.EASYCHAT_GATEWAY_KEYS ?? "")
    .split(/[,\r\n]/)
    .map((k) => k.trim())
    .filter((k) => k !== "")
    .map((key, i) => ({ key, source: `EASYCHAT_GATEWAY_KEYS (key ${i + 1})` }))

/** A key file: one key a line; blank lines and lines starting with `#` are skipped. */
const keysFromFile = (path: string): Effect.Effect<ReadonlyArray<SourcedKey>, ExitCode.UsageError> =>
  Effect.try({
    try: () =>
      fs
        .readFileSync(path, "utf8")
        .split(/\r?\n/)
        .flatMap((line, i) => {
          const key = line.trim()
          return key === "" || key.startsWith("#") ? [] : [{ key, source: `--key-file ${path} (line ${i + 1})` }]
        }),
    catch: (error) =>
      new ExitCode.UsageError({
        reason: `cannot read --key-file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`
      })
  })

/** The keys: --key and --key-file together, else EASYCHAT_GATEWAY_KEYS. */
const keysOf = (parsed: Parsed): Effect.Effect<ReadonlyArray<SourcedKey>, ExitCode.UsageError> =>
  Effect.map(Option.match(parsed.keyFile, { onNone: () => Effect.succeed([]), onSome: keysFromFile }), (fromFile) => {
    const given = [...parsed.keys.map((key, i) => ({ key, source: `--key (number ${i + 1})` })), ...fromFile]
    return given.length > 0 || Option.isSome(parsed.keyFile) ? given : keysFromEnv()
  })

/** `10s`, `2m`, `500ms` (and `0` where `zero` allows it) in milliseconds. */
const durationOf = (
  flag: string,
  value: Option.Option<string>,
  zero: boolean
): Effect.Effect<number | undefined, ExitCode.UsageError> => {
  if (Option.isNone(value)) return Effect.succeed(undefined)
  const text = value.value.trim()
  if (zero && /^0+(ms|s|m|h)?$/i.test(text)) return Effect.succeed(0)
  const millis = PoolOptions.parseDuration(text)
  return millis === undefined
    ? Effect.fail(
        new ExitCode.UsageError({
          reason: `${flag} ${text}: expected a duration such as 500ms, 30s or 2m${zero ? " (0: at once)" : ""}`
        })
      )
    : Effect.succeed(millis)
}

const positive = (
  flag: string,
  value: Option.Option<number>
): Effect.Effect<number | undefined, ExitCode.UsageError> =>
  Option.isNone(value)
    ? Effect.succeed(undefined)
    : value.value > 0
      ? Effect.succeed(value.value)
      : Effect.fail(new ExitCode.UsageError({ reason: `${flag} must be a positive integer` }))

const seconds = (ms: number) => `${ms / 1000}s`

export const run = (parsed: Parsed): Effect.Effect<void, ExitCode.Exit> => {
  const attempts: Verbose.Attempts = { failed: 0 }
  return Effect.scoped(
    Effect.gen(function* () {
      // Loaded on demand: the other commands do not pay for the HTTP server.
      const { Gateway } = yield* Effect.promise(() => import("@easychat/gateway"))
      const sourced = yield* keysOf(parsed)
      for (const { key, source } of sourced) {
        const problem = Gateway.keyProblem(key)
        if (problem !== undefined) return yield* new ExitCode.UsageError({ reason: `${source}: a key ${problem}` })
      }
      const keys = sourced.map((k) => k.key)
      if (Option.isSome(parsed.config)) return yield* serveConfig(parsed, parsed.config.value, keys)
      if (keys.length === 0 && !isLoopback(parsed.host)) {
        return yield* new ExitCode.UsageError({
          reason: `refusing to serve on ${parsed.host} without a key: set EASYCHAT_GATEWAY_KEYS or give --key-file PATH (or --key), or keep --host 127.0.0.1`
        })
      }
      if (!Number.isInteger(parsed.port) || parsed.port < 0 || parsed.port > 65535) {
        return yield* new ExitCode.UsageError({ reason: "--port must be from 0 to 65535" })
      }
      const bodyTimeout = yield* durationOf("--body-timeout", parsed.bodyTimeout, false)
      const sendTimeout = yield* durationOf("--send-timeout", parsed.sendTimeout, false)
      const grace = (yield* durationOf("--grace", parsed.grace, true)) ?? 10_000
      const maxBodyBytes = yield* positive("--max-body-bytes", parsed.maxBodyBytes)
      const maxConcurrent = yield* positive("--max-concurrent", parsed.maxConcurrent)
      const pool = yield* PoolOptions.resolve(parsed)
      if (pool.local !== undefined) process.stderr.write(dim(`· local mirror on ${pool.local.url}\n`))
      // A gateway forwards what its clients sent: no preset's sampling defaults are added to their requests.
      // Built by the gateway's `layerChat`: its attempts are counted in /metrics and the access log.
      const chat = Gateway.layerChat({ ...pool.options, defaults: {} }).pipe(Layer.provide(pool.transport))
      const gateway = Gateway.layer({
        port: parsed.port,
        host: parsed.host,
        keys,
        cors: parsed.cors,
        hostnames: parsed.hostnames,
        allowRouting: parsed.allowRouting,
        page: !parsed.noPage,
        metrics: parsed.metrics,
        accessLog: parsed.logFormat,
        drainTimeout: grace,
        ...(bodyTimeout === undefined ? {} : { bodyTimeout }),
        ...(sendTimeout === undefined ? {} : { sendTimeout }),
        ...(maxBodyBytes === undefined ? {} : { maxBodyBytes }),
        ...(maxConcurrent === undefined ? {} : { maxConcurrent }),
        // /v1/models lists the model the pool asks for (e.g. --model llama3.2).
        models: [pool.options.model ?? "gpt-3.5-turbo"],
        onListen: (url) => {
          process.stdout.write(
            `Gateway listening on ${bold(url)}\n` +
              dim(
                `  ${pool.options.servers?.length ?? 0} upstream server(s); ${keys.length > 0 ? `${keys.length} key(s) required` : "no key required"}${parsed.cors.length > 0 ? `; CORS for ${parsed.cors.join(", ")}` : ""}\n  Ctrl-C stops it (open requests get ${seconds(grace)} to finish).\n`
              )
          )
        }
      })
      const context = yield* Layer.build(chat)
      if (parsed.verbose) {
        // Breakers change inside the gateway's calls: watch the pool's health.
        yield* Effect.forkScoped(watchBreakers(Context.get(context, ServerPool.ServerPool)))
      }
      const serving = Layer.launch(Layer.provide(gateway, Layer.succeedContext(context))).pipe(
        Effect.mapError((error) =>
          error._tag === "ServeError"
            ? new Error(`cannot listen on ${parsed.host}:${parsed.port}: ${describe(error.cause)}`)
            : error
        )
      )
      return yield* untilSignal(serving, grace)
    })
  ).pipe(
    Effect.catchAll((error) =>
      error instanceof ExitCode.Exit
        ? Effect.fail(error)
        : Effect.fail(new ExitCode.Exit({ code: reportError(error, parsed.verbose) }))
    ),
    Effect.provide(Verbose.layer(parsed.verbose, attempts))
  )
}

/** The pool options given on the command line, which `--config` replaces. */
const poolFlags = (parsed: Parsed): ReadonlyArray<string> =>
  [
    parsed.servers.length > 0 && "--server",
    Option.isSome(parsed.preset) && "--preset",
    Option.isSome(parsed.pin) && "--pin",
    Option.isSome(parsed.strategy) && "--strategy",
    Option.isSome(parsed.model) && "--model",
    Option.isSome(parsed.path) && "--path",
    parsed.timeouts.length > 0 && "--timeout",
    Option.isSome(parsed.apiKey) && "--api-key",
    Option.isSome(parsed.accessCode) && "--access-code",
    parsed.local && "--local",
    parsed.hedgeAfter !== undefined && Option.isSome(parsed.hedgeAfter) && "--hedge-after",
    parsed.continueAfterCut === true && "--continue-after-cut"
  ].filter((flag): flag is string => typeof flag === "string")

/**
 * `--config FILE`: the routes of the file, its gateway settings under the
 * flags given (`--port` and `--host` when they differ from their defaults;
 * keys from --key, --key-file or EASYCHAT_GATEWAY_KEYS over the file's), the
 * transport of `--transport`/`--proxy`; SIGHUP (and a change of the file)
 * reloads the routes.
 */
const serveConfig = (parsed: Parsed, file: string, keys: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const { Config, Gateway } = yield* Effect.promise(() => import("@easychat/gateway"))
    const given = poolFlags(parsed)
    if (given.length > 0) {
      return yield* new ExitCode.UsageError({
        reason: `--config describes the pools: ${given.join(", ")} cannot be given with it (put them in the file's routes)`
      })
    }
    const config = yield* Effect.mapError(
      Config.load(file),
      (error) => new ExitCode.UsageError({ reason: error.message })
    )
    const host = parsed.host !== "127.0.0.1" ? parsed.host : (config.gateway.host ?? "127.0.0.1")
    const port = parsed.port !== 8080 ? parsed.port : (config.gateway.port ?? 8080)
    if (keys.length === 0 && config.gateway.keys.length === 0 && !isLoopback(host)) {
      return yield* new ExitCode.UsageError({
        reason: `refusing to serve on ${host} without a key: set keysEnv or keysFile in ${file}, EASYCHAT_GATEWAY_KEYS or --key-file PATH, or keep host 127.0.0.1`
      })
    }
    const bodyTimeout = yield* durationOf("--body-timeout", parsed.bodyTimeout, false)
    const sendTimeout = yield* durationOf("--send-timeout", parsed.sendTimeout, false)
    const grace = (yield* durationOf("--grace", parsed.grace, true)) ?? config.gateway.drainTimeout ?? 10_000
    const maxBodyBytes = yield* positive("--max-body-bytes", parsed.maxBodyBytes)
    const maxConcurrent = yield* positive("--max-concurrent", parsed.maxConcurrent)
    // Only the transport of the pool options applies: the routes are the file's.
    const { transport } = yield* PoolOptions.resolve(parsed)
    const gateway = Gateway.layerConfig({
      config,
      watch: true,
      port,
      host,
      drainTimeout: grace,
      page: !parsed.noPage,
      metrics: parsed.metrics,
      accessLog: parsed.logFormat,
      ...(keys.length > 0 ? { keys } : {}),
      ...(parsed.cors.length > 0 ? { cors: parsed.cors } : {}),
      ...(parsed.hostnames.length > 0 ? { hostnames: parsed.hostnames } : {}),
      ...(parsed.allowRouting ? { allowRouting: true } : {}),
      ...(bodyTimeout === undefined ? {} : { bodyTimeout }),
      ...(sendTimeout === undefined ? {} : { sendTimeout }),
      ...(maxBodyBytes === undefined ? {} : { maxBodyBytes }),
      ...(maxConcurrent === undefined ? {} : { maxConcurrent }),
      onListen: (url) => {
        const routes = config.routes.map((r) => `${r.name} (${r.models.join(", ")})`).join("; ")
        process.stdout.write(
          `Gateway listening on ${bold(url)}\n` +
            dim(
              `  ${config.routes.length} route(s) from ${file}: ${routes}\n  kill -HUP ${process.pid} or saving the file reloads them; Ctrl-C stops it (open requests get ${seconds(grace)} to finish).\n`
            )
        )
      }
    })
    // SIGHUP reloads the routes; a bad file is reported and the routes in use stay.
    const hangUp = Layer.scopedDiscard(
      Effect.gen(function* () {
        const routes = yield* Gateway.Routes
        const run = Runtime.runFork(yield* Effect.runtime<never>())
        const onHangUp = () => {
          process.stderr.write(dim(`SIGHUP: reloading ${file}\n`))
          run(
            Effect.match(routes.reload(), {
              onFailure: (error) => process.stderr.write(`${error.message}\nThe routes in use stay.\n`),
              onSuccess: (next) => process.stderr.write(dim(`Routes: ${next.routes.map((r) => r.name).join(", ")}\n`))
            })
          )
        }
        yield* Effect.acquireRelease(
          Effect.sync(() => process.on("SIGHUP", onHangUp)),
          () => Effect.sync(() => process.off("SIGHUP", onHangUp))
        )
      })
    )
    const serving = Layer.launch(hangUp.pipe(Layer.provide(gateway), Layer.provide(transport))).pipe(
      Effect.mapError((error) =>
        error._tag === "ServeError"
          ? new Error(`cannot listen on ${host}:${port}: ${describe(error.cause)}`)
          : error._tag === "InvalidConfig"
            ? new ExitCode.UsageError({ reason: error.message })
            : error
      )
    )
    return yield* untilSignal(serving, grace)
  })

/**
 * Serves until the first signal, which ends the race: the gateway's scope
 * closes, which drains it (for `grace`); then exit 0.
 */
const untilSignal = <E, R>(serving: Effect.Effect<never, E, R>, grace: number) =>
  Effect.flatMap(FirstSignal, (first) =>
    Effect.raceFirst(
      serving,
      Effect.flatMap(first, (signal) =>
        Effect.sync(() => {
          process.stderr.write(
            dim(
              grace === 0
                ? `${signal}: stopping at once.\n`
                : `${signal}: no new connections; open requests get ${seconds(grace)} to finish (again to stop at once).\n`
            )
          )
        })
      )
    )
  )

const watchBreakers = (pool: ServerPool.Service): Effect.Effect<never> =>
  Effect.gen(function* () {
    let before = yield* pool.health
    while (true) {
      yield* Effect.sleep("500 millis")
      const after = yield* pool.health
      Verbose.printBreakerChanges(before, after)
      before = after
    }
  })

const describe = (e: unknown): string =>
  e instanceof Error ? ((e as NodeJS.ErrnoException).code ?? e.message) : String(e)
