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
import type { ChatCompletion, ChatDelta, ChatRequestInput } from "./Chat.js"
import * as Chat from "./Chat.js"
import type { ChatCall } from "./ChatCall.js"
import * as EasyChat from "./EasyChat.js"
import type { EasyChatError } from "./Errors.js"
import { resolve } from "./internal/settings.js"
import type { Options } from "./Presets.js"
import type { ServerHealth } from "./ServerPool.js"

/** @since 0.1.0 @category models */
export interface CallOptions {
  /** Aborting cancels the call and closes its HTTP connection. */
  readonly signal?: AbortSignal
}

/**
 * A streamed reply: iterate it, or ask for the whole reply it adds up to.
 * @since 0.2.0 @category models
 */
export interface ReplyStream<A> extends AsyncIterable<A> {
  /**
   * Reads the stream to its end and resolves the `ChatCompletion` its deltas
   * add up to (the same as `complete`'s), with the stream's typed error
   * otherwise. Use it instead of iterating; to do both, give each delta to a
   * `Chat.accumulator()` in the loop.
   */
  readonly final: () => Promise<ChatCompletion>
}

/** @since 0.1.0 @category models */
export interface Client {
  /** The whole reply; rejects with the tagged error itself (`_tag`, `message`). */
  readonly complete: (request: ChatRequestInput, options?: CallOptions) => Promise<ChatCompletion>
  /** The text pieces of choice 0 as they arrive. `break` closes the connection. */
  readonly stream: (request: ChatRequestInput, options?: CallOptions) => ReplyStream<string>
  /**
   * The reply's `ChatDelta` objects, one per piece and choice: text,
   * reasoning, tool-call fragments, refusal, logprobs, `finishReason`,
   * `usage`, the chunk and the `server`.
   */
  readonly streamDeltas: (request: ChatRequestInput, options?: CallOptions) => ReplyStream<ChatDelta>
  /** Each server's circuit state, consecutive failures and last latency. */
  readonly health: () => Promise<ReadonlyArray<ServerHealth>>
  /** Closes the transport's connections. */
  readonly close: () => Promise<void>
}

/**
 * Resolves when the call has something for `poll` or `pull`, or when `signal`
 * aborts; `undefined` when the call cannot wait this way (then `pull` waits).
 */
const waitFor = (call: ChatCall, signal: AbortSignal | undefined): Promise<void> | undefined => {
  let wake!: () => void
  const woken = new Promise<void>((resolve) => {
    wake = resolve
  })
  if (!call.wait(wake)) return undefined
  if (signal === undefined) return woken
  const onAbort = () => {
    call.unwait()
    wake()
  }
  signal.addEventListener("abort", onAbort, { once: true })
  return woken.then(() => signal.removeEventListener("abort", onAbort))
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
  // The call's handle, without a `Stream` between the reads and the caller.
  const openCall = (request: ChatRequestInput, scope: Scope.Scope) =>
    Effect.flatMap(chat, (c) => Scope.extend(c.call(request), scope))

  /**
   * One hand-written iterator per call: each network read's batch crosses into
   * Promise land once, then its items are served from an array (an async
   * generator would add a promise and a microtask turn per item, twice when
   * `stream` wrapped `streamDeltas`). Between reads the iterator takes the
   * batches or waits for them through the call's `poll` and `wait`, without
   * running an Effect; opening, the end, failures and failover run the call's
   * `pull`. `pick` maps a delta to what the caller iterates, or `undefined` to
   * skip it.
   */
  const iterate = <A>(
    request: ChatRequestInput,
    call: CallOptions,
    pick: (delta: ChatDelta) => A | undefined
  ): AsyncIterable<A> => ({
    [Symbol.asyncIterator](): AsyncIterator<A> {
      const { signal } = call
      let scope: Scope.CloseableScope | undefined
      let opened: ChatCall | undefined
      let batch: ReadonlyArray<ChatDelta> = []
      let index = 0
      let finished = false
      // Closing the scope interrupts the stream and closes its connection; `undefined` when already closed.
      const release = (): Effect.Effect<void> | undefined => {
        const open = scope
        scope = undefined
        return open === undefined ? undefined : Scope.close(open, Exit.void)
      }
      const close = async () => {
        finished = true
        const closing = release()
        if (closing !== undefined) await Effect.runPromise(closing)
      }
      // A step that fails (the end included) closes the call's scope in the same run: no run of its own.
      const closing = <A, E>(step: Effect.Effect<A, E, EasyChat.EasyChat>) =>
        Effect.onExit(step, (exit) => (Exit.isSuccess(exit) ? Effect.void : (release() ?? Effect.void)))
      const fail = async (error: unknown): Promise<never> => {
        await close()
        throw error
      }
      const next = async (): Promise<IteratorResult<A>> => {
        while (true) {
          while (index < batch.length) {
            // An abort between two deltas of one batch stops the iteration at once.
            if (signal?.aborted) return fail(abortError(signal))
            const value = pick(batch[index++]!)
            if (value !== undefined) return { value, done: false }
          }
          if (finished) return { value: undefined, done: true }
          if (signal?.aborted) return fail(abortError(signal))
          if (opened !== undefined) {
            const ready = opened.poll()
            if (ready !== undefined) {
              batch = Chunk.toReadonlyArray(ready)
              index = 0
              continue
            }
            const woken = waitFor(opened, signal)
            if (woken !== undefined) {
              await woken
              continue
            }
          }
          let step: Effect.Effect<Chunk.Chunk<ChatDelta>, Option.Option<EasyChatError>, EasyChat.EasyChat>
          if (opened !== undefined) step = opened.pull
          else {
            // The call, opened in one go; its first batch comes through `poll` and `wait` like the others.
            step = Effect.flatMap(Scope.make(), (callScope) => {
              scope = callScope
              return Effect.flatMap(openCall(request, callScope), (call) => {
                opened = call
                return call.start
              })
            })
          }
          const exit = await runtime.runPromiseExit(closing(step), signal ? { signal } : undefined)
          // `return()` came while the step ran (the first one may wait for the layer): close what it opened.
          if (finished) {
            await close()
            return { value: undefined, done: true }
          }
          if (Exit.isSuccess(exit)) {
            batch = Chunk.toReadonlyArray(exit.value)
            index = 0
            continue
          }
          const failure = Cause.failureOption(exit.cause)
          if (Option.isSome(failure) && Option.isNone(failure.value)) {
            await close()
            return { value: undefined, done: true }
          }
          try {
            unwrap(Exit.failCause(Cause.map(exit.cause, (e) => Option.getOrUndefined(e))), signal)
          } catch (error) {
            return fail(error)
          }
        }
      }
      return {
        next,
        return: async () => {
          await close()
          return { value: undefined, done: true }
        }
      }
    }
  })

  const replyStream = <A>(
    request: ChatRequestInput,
    call: CallOptions,
    pick: (delta: ChatDelta) => A | undefined
  ): ReplyStream<A> => {
    // Each iteration is a call of its own: one stream is read once, by a loop or by `final`.
    let used = false
    const once = () => {
      if (used) throw new Error("easychat: a reply stream is read once, by one for await or by final()")
      used = true
    }
    const deltas = iterate(request, call, pick)
    return {
      [Symbol.asyncIterator]: () => {
        once()
        return deltas[Symbol.asyncIterator]()
      },
      final: async () => {
        once()
        const reply = Chat.accumulator()
        for await (const delta of iterate(request, call, (delta) => delta)) reply.add(delta)
        return reply.get()
      }
    }
  }

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
    streamDeltas: (request, call = {}) => replyStream(request, call, (delta) => delta),
    stream: (request, call = {}) =>
      replyStream(request, call, (delta) => (delta.content === "" || delta.choice !== 0 ? undefined : delta.content)),
    health: () => runtime.runPromise(Effect.flatMap(chat, (c) => c.pool.health)),
    close: () => runtime.dispose()
  }
}
