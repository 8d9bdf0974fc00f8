/**
 * The Promise and async-iterator face of easychat, for code that does not
 * use Effect. Transport packages export `createClient(options)` pre-wired
 * with their layer; this module builds it from any `HttpClient` layer.
 *
 * @since 0.1.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { ChatCompletion, ChatDelta, ChatRequestInput } from "./Chat.js"
import * as EasyChat from "./EasyChat.js"
import { resolve } from "./internal/settings.js"
import type { Options } from "./Presets.js"
import type { ServerHealth } from "./ServerPool.js"

/** @since 0.1.0 @category models */
export interface CallOptions {
  /** Aborting cancels the call and closes its HTTP connection. */
  readonly signal?: AbortSignal
}

/** @since 0.1.0 @category models */
export interface Client {
  /** The whole reply; rejects with the tagged error itself (`_tag`, `message`). */
  readonly complete: (request: ChatRequestInput, options?: CallOptions) => Promise<ChatCompletion>
  /** The reply's text pieces as they arrive. `break` closes the connection. */
  readonly stream: (request: ChatRequestInput, options?: CallOptions) => AsyncIterable<string>
  /** The reply's `ChatDelta` objects (text, `finishReason`, `usage`, `server`). */
  readonly streamDeltas: (request: ChatRequestInput, options?: CallOptions) => AsyncIterable<ChatDelta>
  /** Each server's circuit state, consecutive failures and last latency. */
  readonly health: () => Promise<ReadonlyArray<ServerHealth>>
  /** Closes the transport's connections. */
  readonly close: () => Promise<void>
}

const abortError = (signal: AbortSignal | undefined): unknown =>
  signal?.reason ?? new DOMException("The operation was aborted", "AbortError")

/** Rejects with the typed error itself, not a wrapper around it. */
const unwrap = <A>(exit: Exit.Exit<A, unknown>, signal: AbortSignal | undefined): A => {
  if (Exit.isSuccess(exit)) return exit.value
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) throw failure.value
  if (Cause.isInterruptedOnly(exit.cause)) throw abortError(signal)
  throw Cause.squash(exit.cause)
}

/**
 * Builds a client on a transport layer. Invalid options throw
 * `InvalidRequest` at once.
 * @since 0.1.0 @category constructors
 */
export const make = (options: Options, transport: Layer.Layer<HttpClient.HttpClient>): Client => {
  const checked = resolve(options)
  if (Either.isLeft(checked)) throw checked.left
  const runtime = ManagedRuntime.make(Layer.orDie(EasyChat.layer(options)).pipe(Layer.provide(transport)))
  const chat = EasyChat.EasyChat

  const streamDeltas = (request: ChatRequestInput, call: CallOptions = {}): AsyncIterable<ChatDelta> => ({
    async *[Symbol.asyncIterator]() {
      const { signal } = call
      if (signal?.aborted) throw abortError(signal)
      const scope = Effect.runSync(Scope.make())
      try {
        // One pull per network read: each batch of deltas crosses into Promise land once.
        const pull = await runtime.runPromise(
          Effect.flatMap(chat, (c) => Stream.toPull(c.stream(request))).pipe(Scope.extend(scope))
        )
        while (true) {
          const exit = await runtime.runPromiseExit(pull, signal ? { signal } : undefined)
          if (Exit.isFailure(exit)) {
            const failure = Cause.failureOption(exit.cause)
            if (Option.isSome(failure) && Option.isNone(failure.value)) return
            unwrap(Exit.failCause(Cause.map(exit.cause, (e) => Option.getOrUndefined(e))), signal)
          } else {
            const batch = Chunk.toReadonlyArray(exit.value)
            for (let i = 0; i < batch.length; i++) {
              // An abort between two deltas of one batch stops the iteration at once.
              if (signal?.aborted) throw abortError(signal)
              yield batch[i]!
            }
          }
        }
      } finally {
        // Closing the scope interrupts the stream and closes its connection.
        await Effect.runPromise(Scope.close(scope, Exit.void))
      }
    }
  })

  return {
    complete: async (request, call = {}) => {
      const { signal } = call
      if (signal?.aborted) throw abortError(signal)
      const exit = await runtime.runPromiseExit(
        Effect.flatMap(chat, (c) => c.complete(request)),
        signal ? { signal } : undefined
      )
      return unwrap(exit, signal)
    },
    streamDeltas,
    stream: (request, call) => ({
      async *[Symbol.asyncIterator]() {
        for await (const delta of streamDeltas(request, call)) if (delta.content !== "") yield delta.content
      }
    }),
    health: () => runtime.runPromise(Effect.flatMap(chat, (c) => c.pool.health)),
    close: () => runtime.dispose()
  }
}
