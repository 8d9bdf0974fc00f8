import type * as Chunk from "effect/Chunk"
import type { ChatDelta, ChatRequest, ContinuedFrom, Message } from "../Chat.js"
import { type AttemptError, type EasyChatError, isRequestFault, StreamInterrupted } from "../Errors.js"
import type { Attempt } from "./attempt.js"
import type { Delivered } from "./limits.js"

/**
 * What the next server is asked after the reply so far, as a user message
 * that follows it: a trailing user message keeps the roles alternating, which
 * strict chat templates require, and every OpenAI-compatible server takes it.
 */
export const continuePrompt =
  "Your reply above was cut off. Continue it exactly where it stops, without repeating any of it and without any preface: what you write is appended to it as is."

/**
 * The request that continues a reply cut after `text`: the same request with
 * the text as the last assistant message and `continuePrompt` after it.
 * Without any text yet (the cut came after reasoning only), the same request.
 */
export const continuedRequest = (request: ChatRequest, text: string): ChatRequest =>
  text === ""
    ? request
    : {
        ...request,
        messages: [
          ...request.messages,
          { role: "assistant", content: text } as Message,
          { role: "user", content: continuePrompt } as Message
        ]
      }

/** What a streamed call keeps of its reply so that a cut can be continued on another server. */
export interface Continuation<A> {
  /** Sees each batch that reaches the caller. */
  readonly note: (batch: Chunk.Chunk<A>) => void
  /** Whether the reply so far can be continued: one choice, no tool call or refusal begun, not finished. */
  readonly possible: () => boolean
  /** An attempt that asks for the rest of the reply so far. */
  readonly attempt: () => Attempt<A>
  /** Marks the first item of a continuation with where it began. */
  readonly mark: (first: A, from: ContinuedFrom) => void
}

/**
 * The continuation of one streamed call, or `undefined` when its request
 * asks for several choices (`n` > 1), which cannot be continued as one text.
 * Only choice 0's `content` is kept: reasoning is not sent again.
 */
export const makeContinuation = (
  request: ChatRequest,
  attemptOf: (request: ChatRequest) => Attempt<ChatDelta>
): Continuation<ChatDelta> | undefined => {
  if (typeof request.n === "number" && request.n > 1) return undefined
  let text = ""
  let possible = true
  return {
    note: (batch) => {
      if (!possible) return
      for (const delta of batch) {
        if (
          delta.choice !== 0 ||
          delta.toolCalls !== undefined ||
          delta.functionCall !== undefined ||
          delta.refusal !== undefined ||
          delta.finishReason !== undefined
        ) {
          possible = false
          text = ""
          return
        }
        text += delta.content
      }
    },
    possible: () => possible,
    attempt: () => attemptOf(continuedRequest(request, text)),
    mark: (first, from) => {
      ;(first as { continuedFrom?: ContinuedFrom }).continuedFrom = from
    }
  }
}

/** A cut reply being continued: the error the call ends with if no continuation delivers, and where it was cut. */
export interface Cut {
  readonly error: AttemptError
  readonly from: ContinuedFrom
}

/** A cut at `from`: its error carries the whole call's counts. */
export const cutAt = (error: AttemptError, from: ContinuedFrom): Cut => ({
  error:
    error._tag === "StreamInterrupted"
      ? new StreamInterrupted({
          server: from.server,
          deltas: from.deltas,
          characters: from.characters,
          detail: error.detail
        })
      : error,
  from
})

/** The error a call ends with when an attempt's failure ends it (`delivered`: the attempt's own count). */
export const endingOf = (error: AttemptError, delivered: Delivered, cut: Cut | undefined): EasyChatError => {
  if (cut === undefined) return error
  // A server that refuses the continuation's request says nothing about the reply: the cut stands.
  if (isRequestFault(error)) return cut.error
  // The caller's counts: the deltas and characters before the continuation too.
  return error._tag === "StreamInterrupted" && delivered.deltas > 0
    ? new StreamInterrupted({
        server: error.server,
        deltas: cut.from.deltas + error.deltas,
        characters: cut.from.characters + error.characters,
        detail: error.detail
      })
    : error
}
