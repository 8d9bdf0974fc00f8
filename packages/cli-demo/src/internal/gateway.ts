// `easychat gateway`: the OpenAI-compatible gateway of `@easychat/gateway` in
// front of the pool, until interrupted.
import { EasyChat, ServerPool } from "@easychat/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ExitCode from "../ExitCode.js"
import * as PoolOptions from "../PoolOptions.js"
import { reportError } from "./report.js"
import { bold, dim } from "./terminal.js"
import * as Verbose from "./verbose.js"

export interface Parsed extends PoolOptions.Parsed {
  readonly port: number
  readonly host: string
  readonly keys: ReadonlyArray<string>
  readonly cors: ReadonlyArray<string>
}

/** 127.0.0.0/8, ::1 and localhost: reachable from this machine only. */
export const isLoopback = (host: string): boolean => {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "")
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}

const keysFromEnv = (): ReadonlyArray<string> =>
  (process.env.EASYCHAT_GATEWAY_KEYS ?? "")
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k !== "")

export const run = (parsed: Parsed): Effect.Effect<void, ExitCode.Exit> => {
  const attempts: Verbose.Attempts = { failed: 0 }
  return Effect.scoped(
    Effect.gen(function* () {
      const keys = parsed.keys.length > 0 ? parsed.keys : keysFromEnv()
      if (keys.length === 0 && !isLoopback(parsed.host)) {
        return yield* new ExitCode.UsageError({
          reason: `refusing to serve on ${parsed.host} without a key: give --key (or EASYCHAT_GATEWAY_KEYS), or keep --host 127.0.0.1`
        })
      }
      if (!Number.isInteger(parsed.port) || parsed.port < 0 || parsed.port > 65535) {
        return yield* new ExitCode.UsageError({ reason: "--port must be from 0 to 65535" })
      }
      const pool = yield* PoolOptions.resolve(parsed)
      if (pool.local !== undefined) process.stderr.write(dim(`· local mirror on ${pool.local.url}\n`))
      // Loaded on demand: the other commands do not pay for the HTTP server.
      const { Gateway } = yield* Effect.promise(() => import("@easychat/gateway"))
      // A gateway forwards what its clients sent: no preset's sampling defaults are added to their requests.
      const chat = EasyChat.layer({ ...pool.options, defaults: {} }).pipe(Layer.provide(pool.transport))
      const gateway = Gateway.layer({
        port: parsed.port,
        host: parsed.host,
        keys,
        cors: parsed.cors,
        // /v1/models lists the model the pool asks for (e.g. --model llama3.2).
        models: [pool.options.model ?? "gpt-3.5-turbo"],
        onListen: (url) => {
          process.stdout.write(
            `Gateway listening on ${bold(url)}\n` +
              dim(
                `  ${pool.options.servers?.length ?? 0} upstream server(s); ${keys.length > 0 ? `${keys.length} key(s) required` : "no key required"}${parsed.cors.length > 0 ? `; CORS for ${parsed.cors.join(", ")}` : ""}\n  Ctrl-C stops it.\n`
              )
          )
        }
      })
      const context = yield* Layer.build(chat)
      if (parsed.verbose) {
        // Breakers change inside the gateway's calls: watch the pool's health.
        yield* Effect.forkScoped(watchBreakers(Context.get(context, ServerPool.ServerPool)))
      }
      return yield* Layer.launch(Layer.provide(gateway, Layer.succeedContext(context))).pipe(
        Effect.mapError((error) =>
          error._tag === "ServeError"
            ? new Error(`cannot listen on ${parsed.host}:${parsed.port}: ${describe(error.cause)}`)
            : error
        )
      )
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
