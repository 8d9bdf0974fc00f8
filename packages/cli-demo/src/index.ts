/**
 * The `easychat` command as a library: its commands, exit codes and the pool
 * options it shares between commands.
 *
 * @since 0.1.0
 */

/** The `easychat` command and `run(argv)`. */
export * as Cli from "./Cli.js"
/** The exit codes and which error gives which. */
export * as ExitCode from "./ExitCode.js"
/** The pool options shared by `chat`, `servers` and `gateway`. */
export * as PoolOptions from "./PoolOptions.js"
