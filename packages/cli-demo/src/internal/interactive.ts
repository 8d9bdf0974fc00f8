// The interactive session: node:readline on the terminal, with line history
// (kept in ~/.easychat_history, or EASYCHAT_HISTORY; empty turns it off), a
// conversation that grows turn by turn, /reset and /exit. Ctrl-C during a
// reply cancels that reply (its connection closes); a second Ctrl-C exits.

import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import type { Message } from "@easychat/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as ExitCode from "../ExitCode.js"
import { printer, reply, type Turn } from "./chat.js"
import { reportDefect, reportError } from "./report.js"
import { bold, cyan, dim } from "./terminal.js"

type Input = { readonly _tag: "Line"; readonly text: string } | { readonly _tag: "Close" } | { readonly _tag: "CtrlC" }

const historyLimit = 500

const historyFile = (): string | undefined => {
  const configured = process.env.EASYCHAT_HISTORY
  if (configured !== undefined) return configured === "" ? undefined : configured
  return path.join(os.homedir(), ".easychat_history")
}

const loadHistory = (file: string | undefined): Array<string> => {
  if (file === undefined) return []
  try {
    // The file is oldest first; readline wants newest first.
    return fs
      .readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .reverse()
      .slice(0, historyLimit)
  } catch {
    return []
  }
}

const saveHistory = (file: string | undefined, history: ReadonlyArray<string>): void => {
  if (file === undefined) return
  try {
    fs.writeFileSync(file, `${[...history].reverse().join("\n")}\n`, { mode: 0o600 })
  } catch {
    // A history that cannot be saved must not end the session.
  }
}

/** Readline events as a queue, so lines typed during a reply wait their turn. */
class Terminal {
  readonly rl: readline.Interface
  private readonly queue: Array<Input> = []
  private waiter: ((input: Input) => void) | undefined
  /** Set while a reply runs: Ctrl-C cancels it instead of reaching the prompt. */
  onCtrlC: (() => void) | undefined

  constructor() {
    const file = historyFile()
    this.rl = readline.createInterface({
      input: process.stdin,
      output: process.stdout,
      // Line editing and history need a terminal on both sides; with stdout piped, the terminal's own echo serves.
      terminal: Boolean(process.stdout.isTTY),
      history: loadHistory(file),
      historySize: historyLimit,
      removeHistoryDuplicates: true,
      prompt: `${bold(cyan("›"))} `
    })
    this.rl.on("history", (history: Array<string>) => saveHistory(file, history))
    this.rl.on("line", (text) => this.push({ _tag: "Line", text }))
    this.rl.on("close", () => this.push({ _tag: "Close" }))
    this.rl.on("SIGINT", () => {
      if (this.onCtrlC !== undefined) this.onCtrlC()
      else this.push({ _tag: "CtrlC" })
    })
  }

  private push(input: Input): void {
    const waiter = this.waiter
    if (waiter !== undefined) {
      this.waiter = undefined
      waiter(input)
    } else {
      this.queue.push(input)
    }
  }

  readonly next: Effect.Effect<Input> = Effect.async<Input>((resume) => {
    const queued = this.queue.shift()
    if (queued !== undefined) return resume(Effect.succeed(queued))
    this.waiter = (input) => resume(Effect.succeed(input))
    return Effect.sync(() => {
      this.waiter = undefined
    })
  })

  /** Ctrl-C at the prompt: drop whatever was typed. */
  clearLine(): boolean {
    const had = this.rl.line !== ""
    if (had) {
      // @ts-expect-error `line` is read-only in the typings; readline itself resets it this way.
      this.rl.line = ""
      // @ts-expect-error `cursor` likewise.
      this.rl.cursor = 0
    }
    return had
  }
}

const help = [
  "/reset  start a new conversation (the system prompt is kept)",
  "/exit   leave (or Ctrl-D, or Ctrl-C twice)",
  "Ctrl-C  cancel the reply in progress"
].join("\n")

/** Runs the session; resolves with the exit code. */
export const runSession = (turn: Turn, system: ReadonlyArray<Message>): Effect.Effect<number> =>
  Effect.acquireUseRelease(
    Effect.sync(() => new Terminal()),
    (term) =>
      Effect.gen(function* () {
        const servers = turn.chat.pool.servers
        const where = servers.length === 1 ? servers[0] : `${servers.length} servers`
        process.stdout.write(`${dim(`easychat → ${where} · /help for commands, /exit to leave`)}\n`)
        let conversation: Array<Message> = [...system]
        // A Ctrl-C that cancelled a reply or was pressed at an empty prompt: the next one exits.
        let armed = false
        while (true) {
          term.rl.prompt()
          const input = yield* term.next
          if (input._tag === "Close") {
            process.stdout.write("\n")
            return ExitCode.ok
          }
          if (input._tag === "CtrlC") {
            if (term.clearLine()) {
              process.stdout.write("\n")
              armed = false
              continue
            }
            if (armed) {
              process.stdout.write("\n")
              return ExitCode.interrupted
            }
            armed = true
            process.stdout.write(`\n${dim("(press Ctrl-C again or type /exit to leave)")}\n`)
            continue
          }
          armed = false
          const text = input.text.trim()
          if (text === "") continue
          if (text === "/exit" || text === "/quit") return ExitCode.ok
          if (text === "/reset") {
            conversation = [...system]
            process.stdout.write(`${dim("(new conversation)")}\n`)
            continue
          }
          if (text === "/help") {
            process.stdout.write(`${dim(help)}\n`)
            continue
          }
          const messages: Array<Message> = [...conversation, { role: "user", content: text }]
          const print = printer(turn)
          const fiber = yield* Effect.fork(
            reply(turn, messages, {
              onDelta: print.delta,
              onDone: (result) => {
                print.done(result, turn.stream)
                process.stdout.write("\n")
              }
            })
          )
          term.onCtrlC = () => {
            Effect.runFork(Fiber.interrupt(fiber))
          }
          const exit = yield* Fiber.await(fiber)
          term.onCtrlC = undefined
          if (Exit.isSuccess(exit)) {
            conversation = [...messages, { role: "assistant", content: exit.value.content }]
          } else if (Exit.isInterrupted(exit)) {
            armed = true
            process.stdout.write(`\n${dim("(reply cancelled; press Ctrl-C again to leave)")}\n`)
          } else {
            const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
            print.endLine()
            if (failure !== undefined) reportError(failure.error, turn.verbose)
            else reportDefect(exit.cause, turn.verbose)
            process.stdout.write(`${dim("(this turn is not kept in the conversation)")}\n`)
          }
        }
      }),
    (term) => Effect.sync(() => term.rl.close())
  )
