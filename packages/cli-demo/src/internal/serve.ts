// `easychat serve`: the testkit's mirror on a port until interrupted.
import { Fault, MirrorServer } from "@easychat/testkit"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as ExitCode from "../ExitCode.js"
import { reportError } from "./report.js"
import { bold, dim, errorLine } from "./terminal.js"

export interface Parsed {
  readonly port: number
  readonly host: string
  readonly reply: Option.Option<string>
  readonly delay: number
  readonly chunkSize: Option.Option<number>
  readonly fault: Option.Option<string>
  readonly accessCode: Option.Option<Redacted.Redacted>
  readonly verbose: boolean
}

/** `status:429`, `close-mid-stream:3`, `html-200`. */
export const parseFault = (text: string): Fault.Fault | ExitCode.UsageError => {
  const [kind = "", arg] = text.split(":", 2)
  const usage = (reason: string) => new ExitCode.UsageError({ reason: `--fault ${text}: ${reason}` })
  if (!(Fault.kinds as ReadonlyArray<string>).includes(kind)) {
    return usage(`unknown fault; one of ${Fault.kinds.join(", ")}`)
  }
  const n = arg === undefined ? undefined : Number(arg)
  if (arg !== undefined && (!Number.isInteger(n) || n! < 0)) return usage("the value after : must be an integer")
  if (kind === "status") {
    const status = n ?? 503
    if (status < 100 || status > 599) return usage("the status must be from 100 to 599")
    return { kind: "status", status }
  }
  if (Fault.takesAfterDeltas[kind as Fault.FaultKind])
    return { kind, ...(n === undefined ? {} : { afterDeltas: n }) } as Fault.Fault
  if (arg !== undefined) return usage(`${kind} takes no value`)
  return { kind } as Fault.Fault
}

export const run = (parsed: Parsed): Effect.Effect<void, ExitCode.Exit> =>
  Effect.gen(function* () {
    const fault = Option.isSome(parsed.fault) ? parseFault(parsed.fault.value) : undefined
    if (fault instanceof ExitCode.UsageError) return yield* fault
    if (parsed.delay < 0) return yield* new ExitCode.UsageError({ reason: "--delay must be ≥ 0" })
    if (Option.isSome(parsed.chunkSize) && parsed.chunkSize.value < 1) {
      return yield* new ExitCode.UsageError({ reason: "--chunk-size must be ≥ 1" })
    }
    const options: MirrorServer.MirrorServerOptions = {
      port: parsed.port,
      host: parsed.host,
      delayMs: parsed.delay,
      ...(Option.isSome(parsed.reply) ? { reply: parsed.reply.value } : {}),
      ...(Option.isSome(parsed.chunkSize) ? { chunkSize: parsed.chunkSize.value } : {}),
      ...(fault !== undefined ? { fault } : {}),
      ...(Option.isSome(parsed.accessCode) ? { accessCode: Redacted.value(parsed.accessCode.value) } : {})
    }
    const server = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => MirrorServer.start(options),
        catch: (e) => new Error(`cannot listen on ${parsed.host}:${parsed.port}: ${describe(e)}`)
      }),
      (server) => Effect.promise(() => server.close())
    )
    const faultNote = Option.match(parsed.fault, { onNone: () => "", onSome: (text) => ` Fault: ${text}.` })
    process.stdout.write(
      `Mirror listening on ${bold(server.url)}\n` +
        dim(`  try: easychat chat --server ${server.url} "Hello"\n  Ctrl-C stops it.${faultNote}\n`)
    )
    // The mirror records every request: show them with --verbose, and forget
    // them now and then so that a long-running server does not grow.
    let seen = 0
    const timer = setInterval(
      () => {
        if (parsed.verbose) {
          for (const r of server.requests.slice(seen)) {
            const body = r.body as { stream?: unknown } | undefined
            errorLine(dim(`· ${r.method} ${r.path}${body?.stream === true ? " (stream)" : ""}`))
          }
        }
        seen = server.requests.length
        if (seen > 1000) {
          seen = 0
          void server.reset()
        }
      },
      parsed.verbose ? 50 : 1000
    )
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(timer)))
    return yield* Effect.never
  }).pipe(
    Effect.scoped,
    Effect.catchAll((error) => Effect.fail(new ExitCode.Exit({ code: reportError(error, parsed.verbose) })))
  )

const describe = (e: unknown): string =>
  e instanceof Error ? ((e as NodeJS.ErrnoException).code ?? e.message) : String(e)
