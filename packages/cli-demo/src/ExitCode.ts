/**
 * The exit codes of the `easychat` command, and which error ends with which.
 *
 * @since 0.1.0
 */
import type { EasyChatError } from "@easychat/core"
import * as Data from "effect/Data"

/** @since 0.1.0 @category constants */
export const ok = 0
/** Any error without a code of its own (an HTTP 400, a decode error, an unexpected failure). @since 0.1.0 @category constants */
export const failure = 1
/** Invalid usage: an unknown option, a bad value, a request that breaks a rule. @since 0.1.0 @category constants */
export const usage = 2
/** Every server of the pool failed before replying (`AllServersFailed`). @since 0.1.0 @category constants */
export const allServersFailed = 3
/** The call ran out of time (`Timeout`: the total limit, or the idle limit once the reply had begun). @since 0.1.0 @category constants */
export const timeout = 4
/** The reply stopped halfway (`StreamInterrupted`): what arrived was printed. @since 0.1.0 @category constants */
export const streamInterrupted = 5
/** Interrupted by Ctrl-C (SIGINT). @since 0.1.0 @category constants */
export const interrupted = 130
/** Stopped by SIGTERM. @since 0.1.0 @category constants */
export const terminated = 143

/**
 * Each code with what it means, in the order `--help` and the README list them.
 * @since 0.1.0 @category constants
 */
export const table: ReadonlyArray<readonly [code: number, meaning: string]> = [
  [ok, "success"],
  [failure, "any other error (an HTTP 400, an undecodable reply, ...)"],
  [usage, "invalid usage: unknown option, bad value, invalid request"],
  [allServersFailed, "all servers failed (each attempt is listed)"],
  [timeout, "timed out (--timeout total, or idle once the reply had begun)"],
  [streamInterrupted, "the reply stream was cut after it began"],
  [interrupted, "interrupted by Ctrl-C"],
  [terminated, "stopped by SIGTERM (the gateway drains and gives 0)"]
]

/**
 * The code a core error ends the command with.
 * @since 0.1.0 @category constructors
 */
export const of = (error: EasyChatError): number => {
  switch (error._tag) {
    case "InvalidRequest":
      return usage
    case "AllServersFailed":
      return allServersFailed
    case "Timeout":
      return timeout
    case "StreamInterrupted":
      return streamInterrupted
    default:
      return failure
  }
}

/**
 * Ends the command with `code`; whatever needed saying has been printed.
 * @since 0.1.0 @category errors
 */
export class Exit extends Data.TaggedError("Exit")<{ readonly code: number }> {}

/**
 * Invalid usage found after parsing (a bad `--timeout`, a missing prompt, ...).
 * @since 0.1.0 @category errors
 */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}
