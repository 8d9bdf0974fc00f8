// `--verbose`: core logs each failed attempt at debug level ("easychat: attempt
// failed, failing over", annotated with server, attempt, error and reason);
// this logger prints those on stderr, and breaker changes are read from
// `ServerPool.health` before and after each call.
import type { ServerPool } from "@easychat/core"
import * as HashMap from "effect/HashMap"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import { dim, errorLine, green, red } from "./terminal.js"

/** Failed attempts seen since the last `reset`, so a success can say which attempt it was. */
export interface Attempts {
  failed: number
}

const text = (message: unknown): string => (Array.isArray(message) ? message.map(String).join(" ") : String(message))

/**
 * Every log line goes to stderr (never stdout, which carries the reply). Core's
 * attempt failures are shown with `--verbose`; otherwise only warnings and up.
 */
export const layer = (verbose: boolean, attempts: Attempts): Layer.Layer<never> =>
  Layer.merge(
    Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ annotations, logLevel, message }) => {
        const get = (key: string) => Option.getOrUndefined(HashMap.get(annotations, key))
        const server = get("server")
        if (server !== undefined && get("attempt") !== undefined) {
          attempts.failed++
          errorLine(
            dim(`· attempt ${String(get("attempt"))} on ${String(server)} failed: `) +
              red(String(get("error"))) +
              dim(`: ${String(get("reason"))}`)
          )
          return
        }
        errorLine(dim(`[${logLevel.label.toLowerCase()}] ${text(message)}`))
      })
    ),
    Logger.minimumLogLevel(verbose ? LogLevel.Debug : LogLevel.Warning)
  )

/** `· replied by X (attempt 2, headers in 12 ms)`. */
export const success = (server: string, attempts: Attempts, health: ReadonlyArray<ServerPool.ServerHealth>): void => {
  const latency = health.find((h) => h.server === server)?.lastLatencyMs
  const headers = latency === undefined ? "" : `, headers in ${latency} ms`
  errorLine(dim(`· `) + green(`replied by ${server}`) + dim(` (attempt ${attempts.failed + 1}${headers})`))
}

/** One line per server whose circuit changed state between two health reports. */
export const breakerChanges = (
  before: ReadonlyArray<ServerPool.ServerHealth>,
  after: ReadonlyArray<ServerPool.ServerHealth>,
  now: number = Date.now()
): ReadonlyArray<string> =>
  after.flatMap((h) => {
    const previous = before.find((b) => b.server === h.server)
    if (previous === undefined || previous.state === h.state) return []
    const detail =
      h.state === "open"
        ? ` after ${h.failures} consecutive failure${h.failures === 1 ? "" : "s"}${h.lastError ? ` (last: ${h.lastError})` : ""}` +
          (h.openUntil === undefined ? "" : `, skipped for ${Math.max(0, Math.ceil((h.openUntil - now) / 1000))} s`)
        : ""
    return [`· breaker ${h.server}: ${previous.state} → ${h.state}${detail}`]
  })

export const printBreakerChanges = (
  before: ReadonlyArray<ServerPool.ServerHealth>,
  after: ReadonlyArray<ServerPool.ServerHealth>
): void => {
  for (const line of breakerChanges(before, after)) errorLine(dim(line))
}
