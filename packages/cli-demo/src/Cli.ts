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
import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import * as Descriptor from "@effect/cli/CommandDescriptor"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as ExitCode from "./ExitCode.js"
import { FirstSignal, LiteralPrompt } from "./internal/context.js"
import * as Help from "./internal/help.js"
import * as PoolOptions from "./internal/poolOptions.js"
import { bold, decorated, stripAnsi } from "./internal/terminal.js"

// This module is dist/Cli.js, or in the bundled command a chunk in dist/chunks/.
const version: string = createRequire(import.meta.url)(
  /\/chunks\/[^/]*$/.test(import.meta.url) ? "../../package.json" : "../package.json"
).version

/**
 * A command's handler, loaded when the command runs: `--help`, parsing and
 * the other commands do not pay for its modules (the client, the gateway,
 * the test mirror).
 */
const lazy =
  <A, E>(load: () => Promise<{ readonly run: (parsed: A) => Effect.Effect<void, E> }>) =>
  (parsed: A): Effect.Effect<void, E> =>
    Effect.flatMap(Effect.promise(load), (command) => command.run(parsed))

const about = {
  easychat: "Chat with OpenAI-compatible mirrors and servers, with failover across a pool.",
  chat: "Stream one reply to a prompt (an argument, or stdin when piped); with no prompt on a terminal, an interactive session with /reset and /exit.",
  serve: "Run the local test mirror (NextChat-style, with fault injection) until Ctrl-C.",
  servers:
    "Check each server of the pool (cookies, then a one-token request) and print a table; exit 3 when none works.",
  gateway:
    "Serve an OpenAI-compatible API (/v1/chat/completions, /v1/models, /health) in front of the pool until SIGTERM or Ctrl-C, which drain it (exit 0)."
} as const

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
    system: Options.text("system").pipe(
      Options.withPseudoName("TEXT"),
      Options.withDescription("A system prompt."),
      Options.optional
    ),
    temperature: Options.float("temperature").pipe(
      Options.withPseudoName("NUMBER"),
      Options.withAlias("t"),
      Options.withDescription("Sampling temperature, 0 to 2 (default: the server's; 0.5 with --preset easychat)."),
      Options.optional
    ),
    topP: Options.float("top-p").pipe(
      Options.withPseudoName("NUMBER"),
      Options.withDescription("Nucleus sampling, 0 to 1 (default: the server's; 1 with --preset easychat)."),
      Options.optional
    ),
    presencePenalty: Options.float("presence-penalty").pipe(
      Options.withPseudoName("NUMBER"),
      Options.withDescription("-2 to 2 (default: the server's; 0 with --preset easychat)."),
      Options.optional
    ),
    frequencyPenalty: Options.float("frequency-penalty").pipe(
      Options.withPseudoName("NUMBER"),
      Options.withDescription("-2 to 2 (default: the server's; 0 with --preset easychat)."),
      Options.optional
    ),
    maxTokens: Options.integer("max-tokens").pipe(
      Options.withPseudoName("N"),
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
  lazy(() => import("./internal/chat.js"))
).pipe(Command.withDescription(about.chat))

const serve = Command.make(
  "serve",
  {
    port: Options.integer("port").pipe(
      Options.withPseudoName("PORT"),
      Options.withAlias("p"),
      Options.withDescription("The port (default 8787; 0 picks a free one)."),
      Options.withDefault(8787)
    ),
    host: Options.text("host").pipe(
      Options.withPseudoName("HOST"),
      Options.withDescription("The address to listen on (default 127.0.0.1)."),
      Options.withDefault("127.0.0.1")
    ),
    reply: Options.text("reply").pipe(
      Options.withPseudoName("TEXT"),
      Options.withDescription('The reply text (default: "Echo: <your message>" and a sentence).'),
      Options.optional
    ),
    delay: Options.integer("delay").pipe(
      Options.withPseudoName("MS"),
      Options.withDescription("Milliseconds between two streamed chunks (default 20)."),
      Options.withDefault(20)
    ),
    chunkSize: Options.integer("chunk-size").pipe(
      Options.withPseudoName("N"),
      Options.withDescription("Characters per streamed delta (default 4)."),
      Options.optional
    ),
    fault: Options.text("fault").pipe(
      Options.withPseudoName("KIND[:N]"),
      Options.withDescription(
        `A fault for every chat request: KIND or KIND:N (N: the status of "status", the deltas before a mid-stream fault). KIND: ${Fault.kinds.join(", ")}.`
      ),
      Options.optional
    ),
    accessCode: Options.redacted("access-code").pipe(
      Options.withPseudoName("CODE"),
      Options.withDescription("Require this NextChat access code (Bearer nk-<code>)."),
      Options.optional
    ),
    verbose: PoolOptions.options.verbose
  },
  lazy(() => import("./internal/serve.js"))
).pipe(Command.withDescription(about.serve))

const servers = Command.make(
  "servers",
  {
    ...PoolOptions.options,
    json: Options.boolean("json").pipe(Options.withDescription("Print the checks as a JSON array."))
  },
  lazy(() => import("./internal/servers.js"))
).pipe(Command.withDescription(about.servers))

const gateway = Command.make(
  "gateway",
  {
    ...PoolOptions.options,
    config: Options.file("config").pipe(
      Options.withPseudoName("FILE"),
      Options.withDescription(
        "Routes from model names to pools, in YAML or JSON (see the gateway's README, Config file); it replaces the pool options (--server, --preset, ...). Reloaded on SIGHUP and when the file changes; a bad file is refused and the routes in use stay."
      ),
      Options.optional
    ),
    port: Options.integer("port").pipe(
      Options.withPseudoName("PORT"),
      Options.withAlias("p"),
      Options.withDescription("The port (default 8080; 0 picks a free one)."),
      Options.withDefault(8080)
    ),
    host: Options.text("host").pipe(
      Options.withPseudoName("HOST"),
      Options.withDescription("The address to listen on (default 127.0.0.1); anything but loopback needs --key."),
      Options.withDefault("127.0.0.1")
    ),
    keys: Options.text("key").pipe(
      Options.withPseudoName("KEY"),
      Options.withDescription(
        "A key clients must send as Authorization: Bearer <key>; repeatable. Visible to other users in ps: prefer --key-file or EASYCHAT_GATEWAY_KEYS (keys separated by commas or line ends), the default when neither --key nor --key-file is given. A key has at least 16 printable ASCII characters, no spaces."
      ),
      Options.repeated
    ),
    keyFile: Options.text("key-file").pipe(
      Options.withPseudoName("PATH"),
      Options.withDescription("A file of keys, one a line (blank lines and lines starting with # are skipped)."),
      Options.optional
    ),
    cors: Options.text("cors").pipe(
      Options.withPseudoName("ORIGIN"),
      Options.withDescription("An origin allowed by CORS (e.g. http://localhost:3000); repeatable."),
      Options.repeated
    ),
    hostnames: Options.text("hostname").pipe(
      Options.withPseudoName("NAME"),
      Options.withDescription(
        "A Host name served without a key besides loopback ones (e.g. gateway.lan); repeatable. Others are refused (DNS rebinding)."
      ),
      Options.repeated
    ),
    allowRouting: Options.boolean("allow-routing").pipe(
      Options.withDescription("Let clients choose the server (activeServer in the request body); ignored by default.")
    ),
    noPage: Options.boolean("no-page").pipe(
      Options.withDescription(
        "Do not serve the chat page at GET / (served by default, without a key: it holds no data)."
      )
    ),
    maxBodyBytes: Options.integer("max-body-bytes").pipe(
      Options.withPseudoName("BYTES"),
      Options.withDescription("The largest request body, in bytes (default 1048576); over it: 413."),
      Options.optional
    ),
    maxConcurrent: Options.integer("max-concurrent").pipe(
      Options.withPseudoName("N"),
      Options.withDescription("Requests to the pool served at once (default 64); over it: 429."),
      Options.optional
    ),
    bodyTimeout: Options.text("body-timeout").pipe(
      Options.withPseudoName("DURATION"),
      Options.withDescription("How long a client may take to send its request body (default 30s); over it: 408."),
      Options.optional
    ),
    sendTimeout: Options.text("send-timeout").pipe(
      Options.withPseudoName("DURATION"),
      Options.withDescription(
        "How long a client may read nothing while its answer waits (default 60s); then its connection is closed and its upstream request cancelled."
      ),
      Options.optional
    ),
    grace: Options.text("grace").pipe(
      Options.withPseudoName("DURATION"),
      Options.withDescription(
        "On SIGTERM or Ctrl-C: how long open requests may finish (default 10s; 0: at once); streams still open then end with an error event. A second signal stops at once."
      ),
      Options.optional
    ),
    metrics: Options.choice("metrics", ["keyed", "open", "off"]).pipe(
      Options.withDescription(
        "GET /metrics (Prometheus text format): behind the keys (keyed, the default), without a key (open), or not served (off)."
      ),
      Options.withDefault("keyed" as const)
    ),
    logFormat: Options.choice("log-format", ["text", "json", "off"]).pipe(
      Options.withDescription(
        "The access log on stdout, one line per request (never a key or a cookie): key=value pairs (text, the default), JSON objects (json), or none (off)."
      ),
      Options.withDefault("text" as const)
    )
  },
  lazy(() => import("./internal/gateway.js"))
).pipe(Command.withDescription(about.gateway))

const commands = { chat, serve, servers, gateway }

type Name = keyof typeof commands

const usage: Record<Name, string> = {
  chat: "easychat chat [options] [<prompt>...]",
  serve: "easychat serve [options]",
  servers: "easychat servers [options]",
  gateway: "easychat gateway [options]"
}

const examples: Record<Name | "easychat", Help.Page["examples"]> = {
  easychat: [
    ["One reply from the embedded test mirror (no network)", 'easychat chat --local "Hello, easychat"'],
    [
      "A reply from your own server, OpenAI-compatible",
      'easychat chat --server http://localhost:11434/v1 -m llama3 "Hi"'
    ],
    ["Which servers of the pool work", "easychat servers"]
  ],
  chat: [
    ["One reply from the embedded test mirror (no network)", 'easychat chat --local "Hello, easychat"'],
    [
      "A pool of two servers, the second only when the first fails",
      "easychat chat --server 'http://10.0.0.1:8080' --server 'http://10.0.0.2:8080;priority=1' \"Hi\""
    ],
    ["The prompt from stdin, JSON lines out", 'echo "Summarise this" | easychat chat --local --json'],
    ["An interactive session (on a terminal, no prompt)", 'easychat chat --local --system "Be brief."'],
    ["A prompt that starts with -", "easychat chat --local -- -1 is less than 0?"]
  ],
  serve: [
    ["The mirror on port 8787", "easychat serve"],
    ["A mirror whose every chat request fails with HTTP 503", "easychat serve --port 8788 --fault status:503"]
  ],
  servers: [
    ["The EasyChat preset's public mirrors", "easychat servers"],
    ["Your own pool, as JSON", "easychat servers --server http://10.0.0.1:8080 --server http://10.0.0.2:8080 --json"],
    [
      "One server of the pool only",
      "easychat servers --server http://10.0.0.1:8080 --server http://10.0.0.2:8080 --pin 1"
    ]
  ],
  gateway: [
    ["On loopback, in front of the embedded test mirror", "easychat gateway --local"],
    ["Routes from model names to pools, from a config file", "easychat gateway --config easychat.yaml"],
    [
      "On every interface, with keys from the environment",
      'EASYCHAT_GATEWAY_KEYS="$(openssl rand -hex 24)" easychat gateway --host 0.0.0.0'
    ]
  ]
}

/** Options that @effect/cli gives every command. */
const builtInOptions: ReadonlyArray<Help.Entry> = [
  ["-h, --help", "Show this help."],
  ["--version", "Print the version."]
]

// @effect/cli's own options are listed by `builtInOptions`, in fewer words.
const helpConfig = CliConfig.make({ showBuiltIns: false })

const page = (name: Name | "easychat"): Help.Page => {
  if (name === "easychat") {
    return {
      usage: "easychat <command> [options]",
      description: about.easychat,
      commands: Object.keys(commands).map((command) => [command, about[command as Name]]),
      options: [...builtInOptions, ["--completions sh|bash|fish|zsh", "Print a completion script for the shell."]],
      examples: examples.easychat,
      exitCodes: ExitCode.table,
      note: "`easychat <command> --help` lists the options of a command."
    }
  }
  // Only read: the type of what the command parses does not matter here.
  const help = Descriptor.getHelp(commands[name].descriptor as Descriptor.Command<unknown>, helpConfig)
  return {
    usage: usage[name],
    description: about[name],
    arguments: Help.section(help, "ARGUMENTS"),
    options: [...Help.section(help, "OPTIONS"), ...builtInOptions],
    examples: examples[name],
    exitCodes: ExitCode.table
  }
}

/**
 * What `--help` and `--version` print, as data: the build writes it to
 * dist/help.json, from which the bundled `easychat` answers them without
 * loading the command.
 * @since 0.4.0 @category help
 */
export const helpPages = (): Help.Pages => ({
  version,
  pages: Object.fromEntries(
    (["easychat", ...Object.keys(commands)] as ReadonlyArray<Name | "easychat">).map((name) => [name, page(name)])
  )
})

const printHelp = (name: Name | "easychat"): void => Help.print(helpPages(), { help: name }, bold)

const root = Command.make("easychat").pipe(
  Command.withDescription(about.easychat),
  // `easychat` with options but no command.
  Command.withHandler(() => Effect.sync(() => printHelp("easychat"))),
  Command.withSubcommands([chat, serve, servers, gateway])
)

const cli = Command.run(root, { name: "easychat", version })

/**
 * Runs the command on `argv` (as `process.argv`: runtime and script first)
 * and resolves with the exit code. SIGINT interrupts the run (its
 * connections close) and gives 130, SIGTERM 143; a command waiting on
 * `FirstSignal` (the gateway, which drains and gives 0) gets the first
 * signal instead. A second signal exits at once.
 * @since 0.1.0 @category running
 */
export const run = (argv: ReadonlyArray<string>): Promise<number> => {
  // Answered without parsing, so that they print at once.
  const asked = Help.requested(argv.slice(2))
  if (asked !== undefined) {
    Help.print(helpPages(), asked, bold)
    return Promise.resolve(ExitCode.ok)
  }
  return new Promise((resolve) => {
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
        Effect.provideService(LiteralPrompt, argv.includes("--")),
        Effect.provideService(FirstSignal, firstSignal),
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
}

const exitCode = (
  exit: Exit.Exit<void, unknown>,
  signal: "SIGINT" | "SIGTERM" | undefined,
  verbose: boolean
): number | Promise<number> => {
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
  // Rare: its module loads only then.
  return import("./internal/report.js").then((report) => report.reportDefect(exit.cause, verbose))
}
