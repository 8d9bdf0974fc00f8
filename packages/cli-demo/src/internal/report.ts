// How errors reach a person (one readable line on stderr) and a script (a JSON object).
import { Errors } from "@easychat/core"
import * as Cause from "effect/Cause"
import * as ExitCode from "../ExitCode.js"
import { bold, errorLine, red } from "./terminal.js"

/** Prints one readable line (plus the attempts of `AllServersFailed`) and gives the exit code. */
export const reportError = (error: unknown, verbose: boolean): number => {
  if (Errors.isEasyChatError(error)) {
    errorLine(`${red(bold("error:"))} ${error.message}`)
    return ExitCode.of(error)
  }
  if (error instanceof ExitCode.UsageError) {
    errorLine(`${red(bold("error:"))} ${error.reason}`)
    errorLine("Run `easychat --help` for the options.")
    return ExitCode.usage
  }
  errorLine(`${red(bold("error:"))} ${messageOf(error)}`)
  if (verbose && error instanceof Error && error.stack) errorLine(error.stack)
  return ExitCode.failure
}

/** Prints a defect: its message, and its stack trace only with `--verbose`. */
export const reportDefect = (cause: Cause.Cause<unknown>, verbose: boolean): number => {
  const defect = Cause.squash(cause)
  errorLine(`${red(bold("error:"))} unexpected failure: ${messageOf(defect)}`)
  if (verbose) errorLine(Cause.pretty(cause))
  else errorLine("Run again with --verbose for details.")
  return ExitCode.failure
}

export const messageOf = (error: unknown): string => {
  if (error instanceof Error) return error.message || error.name
  if (typeof error === "object" && error !== null && "message" in error) return String(error.message)
  return String(error)
}

/** A plain object of an error's fields, `_tag` and `message` first; nested errors too. */
export const errorJson = (error: unknown): Record<string, unknown> => {
  if (typeof error !== "object" || error === null) return { message: String(error) }
  const out: Record<string, unknown> = {}
  if ("_tag" in error) out._tag = error._tag
  out.message = messageOf(error)
  for (const [key, value] of Object.entries(error)) {
    if (key === "_tag" || key === "message" || key === "stack") continue
    out[key] = Array.isArray(value) ? value.map(plain) : plain(value)
  }
  return out
}

const plain = (value: unknown): unknown => {
  if (typeof value !== "object" || value === null) return value
  if (value instanceof Error) return errorJson(value)
  if (Array.isArray(value)) return value.map(plain)
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]))
}
