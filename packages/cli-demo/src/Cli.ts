/**
 * The `easychat` command: `chat`, `serve`, `servers` and `gateway`, built
 * with `@effect/cli`, and `run`, which runs it on a command line and resolves
 * with its exit code (Ctrl-C included).
 *
 * @since 0.1.0
 */

import { createRequire } from "node:module"
import { Fault } from "@easychat/testkit"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as ExitCode from "./ExitCode.js"
import * as Chat from "./internal/chat.js"
import * as Gateway from "./internal/gateway.js"
import { reportDefect } from "./internal/report.js"
import * as Serve from "./internal/serve.js"
import * as Servers from "./internal/servers.js"
import { decorated, stripAnsi } from "./internal/terminal.js"
import * as PoolOptions from "./PoolOptions.js"

const version: string = createRequire(import.meta.url)("../package.json").version

const chat = Command.make(
  "chat",
  {
    prompt: Args.text({ name: "prompt" }).pipe(
      Args.withDescription(
        "The prompt (several words are joined). Without it: the prompt is read from stdin when piped, or an interactive session starts on a terminal."
      ),
      Args.repeated
    ),
    ...PoolOptions.options,
    system: Options.text("system").pipe(Options.withDescription("A system prompt."), Options.optional),
    temperature: Options.float("temperature").pipe(
      Options.withAlias("t"),
      Options.withDescription("Sampling temperature, 0 to 2 (default: the server's; 0.5 with --preset easychat)."),
      Options.optional
    ),
    topP: Options.float("top-p").pipe(
      Options.withDescription("Nucleus sampling, 0 to 1 (default: the server's; 1 with --preset easychat)."),
      Options.optional
    ),
    presencePenalty: Options.float("presence-penalty").pipe(
      Options.withDescription("-2 to 2 (default: the server's; 0 with --preset easychat)."),
      Options.optional
    ),
    frequencyPenalty: Options.float("frequency-penalty").pipe(
      Options.withDescription("-2 to 2 (default: the server's; 0 with --preset easychat)."),
      Options.optional
    ),
    maxTokens: Options.integer("max-tokens").pipe(
      Options.withDescription("The longest reply, in tokens."),
      Options.optional
    ),
    noStream: Options.boolean("no-stream").pipe(
      Options.withDescription("Ask for the whole reply at once instead of a stream.")
    ),
    noReasoning: Options.boolean("no-reasoning").pipe(
      Options.withDescription(
        "Do not show the model's reasoning (shown before the answer: dimmed on a terminal, else as lines starting with [reasoning]). --json keeps it."
      )
    ),
    json: Options.boolean("json").pipe(
      Options.withDescription(
        'For scripts: one JSON object per line on stdout, {"type":"delta",...} per delta (with its chunk), then {"type":"result",...} (the whole reply: choices, tool calls, reasoning, raw body, ...) or {"type":"error",...}.'
      )
    )
  },
  Chat.run
).pipe(
  Command.withDescription(
    "Chat: stream one reply to a prompt, or (no prompt, on a terminal) an interactive session with /reset and /exit."
  )
)

const serve = Command.make(
  "serve",
  {
    port: Options.integer("port").pipe(
      Options.withAlias("p"),
      Options.withDescription("The port (0 picks a free one)."),
      Options.withDefault(8787)
    ),
    host: Options.text("host").pipe(
      Options.withDescription("The address to listen on."),
      Options.withDefault("127.0.0.1")
    ),
    reply: Options.text("reply").pipe(
      Options.withDescription('The reply text (default: "Echo: <your message>" and a sentence).'),
      Options.optional
    ),
    delay: Options.integer("delay").pipe(
      Options.withDescription("Milliseconds between two streamed chunks."),
      Options.withDefault(20)
    ),
    chunkSize: Options.integer("chunk-size").pipe(
      Options.withDescription("Characters per streamed delta (default 4)."),
      Options.optional
    ),
    fault: Options.text("fault").pipe(
      Options.withDescription(
        `A fault for every chat request: KIND or KIND:N (N: the status of "status", the deltas before a mid-stream fault). KIND: ${Fault.kinds.join(", ")}.`
      ),
      Options.optional
    ),
    accessCode: Options.redacted("access-code").pipe(
      Options.withDescription("Require this NextChat access code (Bearer nk-<code>)."),
      Options.optional
    ),
    verbose: PoolOptions.options.verbose
  },
  Serve.run
).pipe(Command.withDescription("Run the local test mirror (NextChat-style, with fault injection) until Ctrl-C."))

const servers = Command.make(
  "servers",
  {
    ...PoolOptions.options,
    json: Options.boolean("json").pipe(Options.withDescription("Print the checks as a JSON array."))
  },
  Servers.run
).pipe(
  Command.withDescription(
    "Check each server of the pool (cookies, then a one-token request) and print a table; exit 3 when none works."
  )
)

const gateway = Command.make(
  "gateway",
  {
    ...PoolOptions.options,
    port: Options.integer("port").pipe(
      Options.withAlias("p"),
      Options.withDescription("The port (0 picks a free one)."),
      Options.withDefault(8080)
    ),
    host: Options.text("host").pipe(
      Options.withDescription("The address to listen on; anything but loopback needs --key."),
      Options.withDefault("127.0.0.1")
    ),
    keys: Options.text("key").pipe(
      Options.withDescription(
        "A key clients must send as Authorization: Bearer <key>; repeatable. Visible to other users in ps: prefer --key-file or EASYCHAT_GATEWAY_KEYS (keys separated by commas or line ends), the default when neither --key nor --key-file is given. A key has at least 16 printable ASCII characters, no spaces."
      ),
      Options.repeated
    ),
    keyFile: Options.text("key-file").pipe(
      Options.withDescription("A file of keys, one a line (blank lines and lines starting with # are skipped)."),
      Options.optional
    ),
    cors: Options.text("cors").pipe(
      Options.withDescription("An origin allowed by CORS (e.g. http://localhost:3000); repeatable."),
      Options.repeated
    ),
    hostnames: Options.text("hostname").pipe(
      Options.withDescription(
        "A Host name served without a key besides loopback ones (e.g. gateway.lan); repeatable. Others are refused (DNS rebinding)."
      ),
      Options.repeated
    ),
    allowRouting: Options.boolean("allow-routing").pipe(
      Options.withDescription("Let clients choose the server (activeServer in the request body); ignored by default.")
    ),
    maxBodyBytes: Options.integer("max-body-bytes").pipe(
      Options.withDescription("The largest request body, in bytes (default 1048576); over it: 413."),
      Options.optional
    ),
    maxConcurrent: Options.integer("max-concurrent").pipe(
      Options.withDescription("Requests to the pool served at once (default 64); over it: 429."),
      Options.optional
    ),
    bodyTimeout: Options.text("body-timeout").pipe(
      Options.withDescription("How long a client may take to send its request body (default 30s); over it: 408."),
      Options.optional
    ),
    sendTimeout: Options.text("send-timeout").pipe(
      Options.withDescription(
        "How long a client may read nothing while its answer waits (default 60s); then its connection is closed and its upstream request cancelled."
      ),
      Options.optional
    ),
    grace: Options.text("grace").pipe(
      Options.withDescription(
        "On SIGTERM or Ctrl-C: how long open requests may finish (default 10s; 0: at once); streams still open then end with an error event. A second signal stops at once."
      ),
      Options.optional
    )
  },
  Gateway.run
).pipe(
  Command.withDescription(
    "Serve an OpenAI-compatible API (/v1/chat/completions, /v1/models, /health) in front of the pool until SIGTERM or Ctrl-C, which drain it (exit 0)."
  )
)

const root: Command.Command<"easychat", never, never, { readonly subcommand: Option.Option<unknown> }> = Command.make(
  "easychat"
).pipe(
  Command.withDescription("Chat with OpenAI-compatible mirrors and servers, with failover across a pool."),
  Command.withHandler(() => Effect.fail(ValidationError.helpRequested(root.descriptor))),
  Command.withSubcommands([chat, serve, servers, gateway])
) as never

const footer = HelpDoc.blocks([
  HelpDoc.h1("EXIT CODES"),
  ...ExitCode.table.map(([code, meaning]) => HelpDoc.p(`${String(code).padStart(3)}  ${meaning}`))
])

const cli = Command.run(root, { name: "easychat", version, footer })

/**
 * Runs the command on `argv` (as `process.argv`: runtime and script first)
 * and resolves with the exit code. SIGINT interrupts the run (its
 * connections close) and gives 130, SIGTERM 143; a command waiting on
 * `FirstSignal` (the gateway, which drains and gives 0) gets the first
 * signal instead. A second signal exits at once.
 * @since 0.1.0 @category running
 */
export const run = (argv: ReadonlyArray<string>): Promise<number> =>
  new Promise((resolve) => {
    const verbose = argv.includes("--verbose") || argv.includes("-v")
    let signal: "SIGINT" | "SIGTERM" | undefined
    // Set while a command waits for the first signal to stop by itself.
    let onFirstSignal: ((name: "SIGINT" | "SIGTERM") => void) | undefined
    const firstSignal = Effect.async<"SIGINT" | "SIGTERM">((resume) => {
      onFirstSignal = (name) => resume(Effect.succeed(name))
      return Effect.sync(() => {
        onFirstSignal = undefined
      })
    })
    const program = Effect.flatMap(Effect.console, (console) => {
      // @effect/cli prints help and errors with ANSI styles: keep them for people only.
      const plain = !decorated()
      const strip = (args: ReadonlyArray<unknown>) =>
        plain ? args.map((a) => (typeof a === "string" ? stripAnsi(a) : a)) : args
      const program = cli(argv).pipe(
        Effect.provideService(Chat.LiteralPrompt, argv.includes("--")),
        Effect.provideService(Gateway.FirstSignal, firstSignal),
        // Failures are reported once, by the command; fibers that lose a race are not news.
        Effect.withUnhandledErrorLogLevel(Option.none())
      )
      return Effect.withConsole(program, {
        ...console,
        log: (...args) => console.log(...strip(args)),
        error: (...args) => console.error(...strip(args))
      })
    }).pipe(Effect.provide(NodeContext.layer))
    const fiber = Effect.runFork(program)
    const onSignal = (name: "SIGINT" | "SIGTERM") => () => {
      if (signal !== undefined) {
        // The second signal: stop waiting for finalizers.
        process.exit(name === "SIGINT" ? ExitCode.interrupted : ExitCode.terminated)
      }
      signal = name
      if (onFirstSignal !== undefined) onFirstSignal(name)
      else Effect.runFork(Fiber.interrupt(fiber))
    }
    // `easychat chat ... | head -1`: the reader has what it wanted.
    const onStdoutError = (error: NodeJS.ErrnoException) => {
      if (error.code !== "EPIPE") throw error
      process.exit(ExitCode.ok)
    }
    process.stdout.on("error", onStdoutError)
    const onInt = onSignal("SIGINT")
    const onTerm = onSignal("SIGTERM")
    process.on("SIGINT", onInt)
    process.on("SIGTERM", onTerm)
    fiber.addObserver((exit) => {
      process.off("SIGINT", onInt)
      process.off("SIGTERM", onTerm)
      resolve(exitCode(exit, signal, verbose))
    })
  })

const exitCode = (
  exit: Exit.Exit<void, unknown>,
  signal: "SIGINT" | "SIGTERM" | undefined,
  verbose: boolean
): number => {
  if (Exit.isSuccess(exit)) return ExitCode.ok
  if (Cause.isInterruptedOnly(exit.cause)) {
    return signal === "SIGTERM" ? ExitCode.terminated : ExitCode.interrupted
  }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    if (error instanceof ExitCode.Exit) return error.code
    // @effect/cli has already printed its own message.
    if (ValidationError.isValidationError(error)) return ExitCode.usage
  }
  if (signal !== undefined) return signal === "SIGTERM" ? ExitCode.terminated : ExitCode.interrupted
  return reportDefect(exit.cause, verbose)
}
