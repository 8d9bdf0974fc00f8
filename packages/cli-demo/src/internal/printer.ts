// How a reply reaches a person: the reasoning first (dimmed on a terminal,
// else each line prefixed with "[reasoning] "), then the answer, then a line
// per tool call the model asked for and its refusal. Choice 0 only: the
// others are in `--json`.
import type { ChatCompletion, ChatDelta } from "@easychat/core"

export interface ReplyPrinter {
  /** A streamed delta: its reasoning and text as they arrive. */
  readonly delta: (delta: ChatDelta) => void
  /** The reply, once whole: its reasoning and text when it was not streamed, then its tool calls and refusal. */
  readonly done: (reply: ChatCompletion, streamed: boolean) => void
  /** Ends the line in progress (before an error, or after Ctrl-C). */
  readonly endLine: () => void
}

export interface PrinterOptions {
  readonly write: (text: string) => void
  /** Dim the reasoning (a terminal that allows colour) instead of prefixing its lines. */
  readonly styled: boolean
  /** `--no-reasoning` turns this off. */
  readonly reasoning: boolean
}

export const reasoningPrefix = "[reasoning] "

export const make = ({ write, styled, reasoning }: PrinterOptions): ReplyPrinter => {
  let section: "none" | "reasoning" | "content" = "none"
  let atLineStart = true
  let wrote = false
  const out = (text: string) => {
    if (text === "") return
    write(text)
    wrote = true
    atLineStart = text.endsWith("\n")
  }
  const endLine = () => {
    if (!atLineStart) out("\n")
  }
  const writeReasoning = (text: string) => {
    if (!reasoning || text === "") return
    if (section !== "reasoning") endLine()
    section = "reasoning"
    // Closed after each piece: a reply cut short leaves the terminal as it was.
    if (styled) return out(`\x1b[2m${text}\x1b[22m`)
    text.split("\n").forEach((line, i) => {
      if (i > 0) out(atLineStart ? `${reasoningPrefix.trimEnd()}\n` : "\n")
      if (line !== "") out(atLineStart ? `${reasoningPrefix}${line}` : line)
    })
  }
  const writeContent = (text: string) => {
    if (text === "") return
    if (section === "reasoning") {
      endLine()
      // Dimmed reasoning has no label: a blank line sets the answer apart.
      if (styled) out("\n")
    }
    section = "content"
    out(text)
  }
  return {
    delta: (delta) => {
      if (delta.choice !== 0) return
      if (delta.reasoning !== undefined) writeReasoning(delta.reasoning)
      writeContent(delta.content)
    },
    done: (reply, streamed) => {
      if (!streamed) {
        if (reply.reasoning !== undefined) writeReasoning(reply.reasoning)
        writeContent(reply.content)
      }
      const calls = reply.toolCalls ?? []
      if (calls.length > 0 || reply.refusal !== undefined) endLine()
      for (const call of calls) out(`[tool call] ${call.function.name}(${call.function.arguments})\n`)
      if (reply.refusal !== undefined) out(`[refusal] ${reply.refusal}\n`)
      // A reply that ends without a line end would run into the shell prompt.
      if (!wrote) out("\n")
      endLine()
    },
    endLine
  }
}
