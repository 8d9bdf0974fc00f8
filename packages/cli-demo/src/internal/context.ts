// What `Cli.run` provides to the commands. Kept apart from the commands so that
// the command line can be parsed (and `--help` shown) before any of them loads.
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"

/** Whether the command line had `--`: prompt words that look like options are then meant. */
export class LiteralPrompt extends Context.Reference<LiteralPrompt>()("@easychat/cli-demo/LiteralPrompt", {
  defaultValue: () => false
}) {}

/**
 * The first SIGINT or SIGTERM, for a command that stops cleanly on it (the
 * gateway drains, then exits 0). `Cli.run` provides it: while the command
 * waits on it, the first signal resolves it instead of interrupting the
 * command; a second signal still exits at once. Without `Cli.run`: never.
 */
export class FirstSignal extends Context.Reference<FirstSignal>()("@easychat/cli-demo/FirstSignal", {
  defaultValue: (): Effect.Effect<"SIGINT" | "SIGTERM"> => Effect.never
}) {}
