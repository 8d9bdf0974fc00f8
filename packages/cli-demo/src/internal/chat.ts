// `easychat chat`: one reply for a prompt (argument or stdin), or an
// interactive session on a terminal.
import { Chat, type ChatCompletion, type ChatDelta, EasyChat, type EasyChatError, type Message } from "@easychat/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as ExitCode from "../ExitCode.js"
import * as PoolOptions from "../PoolOptions.js"
import { LiteralPrompt } from "./context.js"
import { runSession } from "./interactive.js"
import * as Printer from "./printer.js"
import { errorJson, reportError } from "./report.js"
import { dim, errorLine, spinner, styledStdout } from "./terminal.js"
import * as Verbose from "./verbose.js"

export interface Parsed extends PoolOptions.Parsed {
  readonly prompt: ReadonlyArray<string>
  readonly system: Option.Option<string>
  readonly temperature: Option.Option<number>
  readonly topP: Option.Option<number>
  readonly presencePenalty: Option.Option<number>
  readonly frequencyPenalty: Option.Option<number>
  readonly maxTokens: Option.Option<number>
  readonly noStream: boolean
  readonly noReasoning: boolean
  readonly json: boolean
}

/** What each call needs besides the messages. */
export interface Turn {
  readonly chat: EasyChat.Service
  readonly fields: Record<string, unknown>
  readonly stream: boolean
  /** Show the reasoning (not `--no-reasoning`). */
  readonly reasoning: boolean
  readonly verbose: boolean
  readonly attempts: Verbose.Attempts
}

/** The embedded mirror of `--local`: a little delay per delta so streaming shows (about 70 ms for its usual reply). */
const localMirror: PoolOptions.LocalMirror = { delayMs: 10, chunkSize: 8 }

export const run = (parsed: Parsed): Effect.Effect<void, ExitCode.Exit> => {
  const attempts: Verbose.Attempts = { failed: 0 }
  return Effect.scoped(
    Effect.gen(function* () {
      const pool = yield* PoolOptions.resolve(parsed, localMirror)
      if (pool.local !== undefined && parsed.verbose) errorLine(dim(`· local mirror on ${pool.local.url}`))
      const context = yield* Layer.build(EasyChat.layer(pool.options).pipe(Layer.provide(pool.transport)))
      const turn: Turn = {
        chat: Context.get(context, EasyChat.EasyChat),
        fields: requestFields(parsed),
        stream: !parsed.noStream,
        reasoning: !parsed.noReasoning,
        verbose: parsed.verbose,
        attempts
      }
      const system: ReadonlyArray<Message> = Option.isSome(parsed.system)
        ? [{ role: "system", content: parsed.system.value }]
        : []
      const literal = yield* LiteralPrompt
      const option = literal ? undefined : parsed.prompt.find((word) => /^--?[A-Za-z]/.test(word))
      if (option !== undefined) {
        // @effect/cli hands unknown options to the prompt: a typo must not become a question to a public mirror.
        return yield* new ExitCode.UsageError({
          reason: `unknown option ${option.split("=")[0]} (put -- before a prompt that starts with -)`
        })
      }
      if (parsed.prompt.length > 0) return yield* oneShot(turn, [...system, user(parsed.prompt.join(" "))], parsed.json)
      if (process.stdin.isTTY) {
        if (parsed.json) return yield* new ExitCode.UsageError({ reason: "--json needs a prompt (argument or stdin)" })
        const code = yield* runSession(turn, system)
        if (code !== ExitCode.ok) return yield* new ExitCode.Exit({ code })
        return
      }
      const piped = yield* Effect.promise(readStdin)
      if (piped.trim() === "") {
        return yield* new ExitCode.UsageError({
          reason: "no prompt: give one as an argument, pipe it on stdin, or run on a terminal for a session"
        })
      }
      return yield* oneShot(turn, [...system, user(piped.trim())], parsed.json)
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

const user = (content: string): Message => ({ role: "user", content })

const requestFields = (parsed: Parsed): Record<string, unknown> => {
  const fields: Record<string, unknown> = {}
  if (Option.isSome(parsed.temperature)) fields.temperature = parsed.temperature.value
  if (Option.isSome(parsed.topP)) fields.top_p = parsed.topP.value
  if (Option.isSome(parsed.presencePenalty)) fields.presence_penalty = parsed.presencePenalty.value
  if (Option.isSome(parsed.frequencyPenalty)) fields.frequency_penalty = parsed.frequencyPenalty.value
  if (Option.isSome(parsed.maxTokens)) fields.max_tokens = parsed.maxTokens.value
  return fields
}

const readStdin = async (): Promise<string> => {
  const chunks: Array<Buffer> = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString("utf8")
}

const json = (value: unknown): void => {
  process.stdout.write(`${JSON.stringify(value)}\n`)
}

/** A printer of replies on stdout, for a person. */
export const printer = (turn: Turn): Printer.ReplyPrinter =>
  Printer.make({ write: (text) => process.stdout.write(text), styled: styledStdout(), reasoning: turn.reasoning })

/** One reply for one prompt; errors are printed here (and as JSON with `--json`). */
const oneShot = (turn: Turn, messages: ReadonlyArray<Message>, asJson: boolean): Effect.Effect<void, ExitCode.Exit> =>
  Effect.suspend(() => {
    const print = printer(turn)
    // Ctrl-C or an error mid-line: what follows starts on a line of its own.
    const endLine = () => {
      if (!asJson) print.endLine()
    }
    return reply(turn, messages, {
      // `chunk` is a getter, which spreading leaves out.
      onDelta: (delta) => (asJson ? json({ type: "delta", ...delta, chunk: delta.chunk }) : print.delta(delta)),
      onDone: (result) => (asJson ? json({ type: "result", ...result }) : print.done(result, turn.stream))
    }).pipe(
      Effect.onInterrupt(() => Effect.sync(endLine)),
      Effect.catchAll(({ error }) => {
        endLine()
        const code = reportError(error, turn.verbose)
        if (asJson) json({ type: "error", exitCode: code, error: errorJson(error) })
        return new ExitCode.Exit({ code })
      })
    )
  })

/** A failed call. */
export interface Failed {
  readonly error: EasyChatError
}

/**
 * One call, streamed or whole: a spinner until the first token, then each
 * delta to `onDelta`, and the whole reply to `onDone` (for a stream, the
 * reply its deltas add up to); `--verbose` lines about attempts and breakers
 * around it.
 */
export const reply = (
  turn: Turn,
  messages: ReadonlyArray<Message>,
  handlers: { readonly onDelta: (delta: ChatDelta) => void; readonly onDone: (result: ChatCompletion) => void }
): Effect.Effect<ChatCompletion, Failed> =>
  Effect.gen(function* () {
    const { chat } = turn
    const before = yield* chat.pool.health
    turn.attempts.failed = 0
    const spin = spinner("waiting for a reply")
    const request = { ...turn.fields, messages }
    const call: Effect.Effect<ChatCompletion, EasyChatError> = turn.stream
      ? Effect.suspend(() => {
          const whole = Chat.accumulator()
          return chat.stream(request).pipe(
            Stream.runForEachChunk((chunk) =>
              Effect.sync(() => {
                spin.stop()
                for (const delta of chunk) {
                  whole.add(delta)
                  handlers.onDelta(delta)
                }
              })
            ),
            Effect.map(() => whole.get())
          )
        })
      : chat.complete(request)
    const result = yield* call.pipe(
      Effect.ensuring(Effect.sync(spin.stop)),
      Effect.mapError((error): Failed => ({ error })),
      Effect.ensuring(
        Effect.flatMap(chat.pool.health, (after) =>
          Effect.sync(() => {
            if (turn.verbose) Verbose.printBreakerChanges(before, after)
          })
        )
      )
    )
    handlers.onDone(result)
    if (turn.verbose) Verbose.success(result.server, turn.attempts, yield* chat.pool.health)
    return result
  })
