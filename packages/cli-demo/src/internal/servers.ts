// `easychat servers`: each server of the pool, checked on its own (cookie
// initialisation plus a one-token request), as a table.
import { EasyChat, type EasyChatError } from "@easychat/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ExitCode from "../ExitCode.js"
import * as PoolOptions from "../PoolOptions.js"
import { reportError } from "./report.js"
import { dim, green, red } from "./terminal.js"
import * as Verbose from "./verbose.js"

export interface Parsed extends PoolOptions.Parsed {
  readonly json: boolean
}

export interface Check {
  readonly server: string
  readonly ok: boolean
  /** Milliseconds for the whole check: cookies, request and reply. */
  readonly latencyMs: number
  readonly error: { readonly _tag: string; readonly message: string } | undefined
}

/** A pinned call fails with `AllServersFailed` holding its one attempt: show that attempt's error. */
const attemptError = (error: EasyChatError): EasyChatError =>
  error._tag === "AllServersFailed" && error.attempts.length === 1 ? error.attempts[0]!.error : error

export const check = (chat: EasyChat.Service, server: string): Effect.Effect<Check> =>
  Effect.gen(function* () {
    const start = Date.now()
    const result = yield* Effect.either(
      chat.complete({ messages: [{ role: "user", content: "ping" }], max_tokens: 1, activeServer: server })
    )
    const latencyMs = Date.now() - start
    if (result._tag === "Right") return { server, ok: true, latencyMs, error: undefined }
    const error = attemptError(result.left)
    return { server, ok: false, latencyMs, error: { _tag: error._tag, message: error.message } }
  })

/** Columns padded to their widest cell; the last column is left as long as it is. */
export const table = (
  rows: ReadonlyArray<ReadonlyArray<string>>,
  paint?: (row: number, col: number, cell: string) => string
): string => {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((r) => r[col]!.length)))
  return rows
    .map((row, r) =>
      row
        .map((cell, c) => {
          const padded = c === row.length - 1 ? cell : cell.padEnd(widths[c]!)
          return paint === undefined ? padded : paint(r, c, padded)
        })
        .join("  ")
        .trimEnd()
    )
    .join("\n")
}

export const run = (parsed: Parsed): Effect.Effect<void, ExitCode.Exit> => {
  const attempts: Verbose.Attempts = { failed: 0 }
  return Effect.scoped(
    Effect.gen(function* () {
      const pool = yield* PoolOptions.resolve(parsed)
      // One attempt per check: each server is judged on its own.
      const { activeServer, ...rest } = pool.options
      const options = { ...rest, maxAttempts: 1 }
      const context = yield* Layer.build(EasyChat.layer(options).pipe(Layer.provide(pool.transport)))
      const chat = Context.get(context, EasyChat.EasyChat)
      // `--pin`: check that server only (an index or one of the pool's URLs, as for `chat`).
      const servers = activeServer === undefined ? chat.pool.servers : [yield* chat.pool.pin(activeServer)]
      const checks = yield* Effect.forEach(servers, (server) => check(chat, server), { concurrency: 8 })
      if (parsed.json) {
        process.stdout.write(`${JSON.stringify(checks)}\n`)
      } else {
        const rows = [
          ["SERVER", "STATUS", "LATENCY", "ERROR"],
          ...checks.map((c) => [
            c.server,
            c.ok ? "ok" : "failed",
            `${c.latencyMs} ms`,
            c.error === undefined ? "" : `${c.error._tag}: ${c.error.message}`
          ])
        ]
        process.stdout.write(
          `${table(rows, (r, c, cell) => (r === 0 ? dim(cell) : c === 1 ? (cell.startsWith("ok") ? green(cell) : red(cell)) : cell))}\n`
        )
        const working = checks.filter((c) => c.ok).length
        process.stdout.write(`${dim(`${working} of ${checks.length} working`)}\n`)
      }
      if (!checks.some((c) => c.ok)) return yield* new ExitCode.Exit({ code: ExitCode.allServersFailed })
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
