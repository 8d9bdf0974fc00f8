/**
 * Runs one conformance case on a transport and reduces what the caller got to
 * a plain `Outcome`. Browser-safe: it knows only core, a transport's layer and
 * its `createClient`, so the same code runs in Node and in Chromium.
 *
 * @since 0.1.0
 */
import type { ChatDelta, ChatRequestInput, Client, Presets } from "@easychat/core"
import { EasyChat, Errors } from "@easychat/core"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Cause from "effect/Cause"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import type { Api, Case, ErrorInfo, Outcome, Probe } from "./cases.js"

/**
 * A transport as the suite sees it: its layer, for the Effect face, and its
 * `createClient`, for the Promise face.
 * @since 0.1.0 @category models
 */
export interface Transport {
  readonly layer: () => Layer.Layer<HttpClient.HttpClient>
  readonly createClient: (options: Presets.Options) => Client.Client
}

/**
 * Hooks of the harness, which alone sees the mirror.
 * @since 0.1.0 @category models
 */
export interface Hooks {
  /** Runs after the call ended and before the client is closed. */
  readonly probe?: () => Promise<Probe>
  /** Resolves once the mirror has received the chat request (for `onceReceived` cancels). */
  readonly received?: () => Promise<void>
}

const received = (hooks: Hooks): Promise<void> =>
  hooks.received === undefined ? Promise.reject(new Error("this case needs the `received` hook")) : hooks.received()

const errorFields = [
  "server",
  "status",
  "statusText",
  "body",
  "retryAfter",
  "contentType",
  "expected",
  "detail",
  "code",
  "reason",
  "phase",
  "millis",
  "deltas",
  "characters",
  "field",
  "rule"
] as const

/**
 * An error as plain data: the tagged error's fields, its attempts, its
 * message; anything else by its name (`AbortError`).
 * @since 0.1.0 @category constructors
 */
export const errorInfo = (error: unknown): ErrorInfo => {
  if (Errors.isEasyChatError(error)) {
    const source = error as unknown as Record<string, unknown>
    const out: Record<string, unknown> = { _tag: error._tag, typed: true, message: error.message }
    for (const key of errorFields) if (source[key] !== undefined) out[key] = source[key]
    if (error._tag === "AllServersFailed") {
      out.attempts = error.attempts.map((attempt) => ({ server: attempt.server, error: errorInfo(attempt.error) }))
    }
    return out as unknown as ErrorInfo
  }
  if (error instanceof Error || (typeof DOMException !== "undefined" && error instanceof DOMException)) {
    return { _tag: error.name, typed: false, message: error.message }
  }
  return { _tag: "Unknown", typed: false, message: String(error) }
}

const defaultMessages = [{ role: "user", content: "Conformance check" }]

/** What a run has received so far. */
class Received {
  pieces: Array<string> = []
  deltas = 0
  finishReason: string | undefined
  servers = new Set<string>()
  cancelled = false
  /** Deltas that still arrived after the run cancelled (not recorded as pieces). */
  afterCancel = 0

  delta(delta: ChatDelta): void {
    if (this.cancelled) {
      this.afterCancel++
      return
    }
    this.deltas++
    this.servers.add(delta.server)
    if (delta.content !== "") this.pieces.push(delta.content)
    if (delta.finishReason !== undefined) this.finishReason = delta.finishReason
  }

  /** A text piece from the Promise face's `stream` (no `ChatDelta`, so no server or finish reason). */
  piece(text: string): void {
    if (this.cancelled) this.afterCancel++
    else this.pieces.push(text)
  }

  outcome(error: unknown | undefined, probe: Probe | undefined): Outcome {
    return {
      ok: error === undefined,
      text: this.pieces.join(""),
      pieces: this.pieces,
      deltas: this.deltas,
      ...(this.finishReason === undefined ? {} : { finishReason: this.finishReason }),
      servers: [...this.servers],
      cancelled: this.cancelled,
      afterCancel: this.afterCancel,
      ...(error === undefined ? {} : { error: errorInfo(error) }),
      ...(probe === undefined ? {} : { probe })
    }
  }
}

/** The Effect face: `EasyChat.layer` over the transport's layer. */
const viaEffect = (
  c: Case,
  options: Presets.Options,
  request: ChatRequestInput,
  transport: Transport,
  hooks: Hooks
) => {
  const got = new Received()
  const cancel = c.cancel
  const call = Effect.gen(function* () {
    const chat = yield* EasyChat.EasyChat
    if (c.mode === "complete") {
      const fiber = yield* Effect.fork(chat.complete(request))
      if (cancel !== undefined && "onceReceived" in cancel) {
        // Cancels once the mirror has the request, unless the call ended first.
        yield* Effect.raceFirst(
          Effect.promise(() => received(hooks)),
          Effect.ignore(Fiber.await(fiber))
        )
        if (Option.isNone(yield* Fiber.poll(fiber))) {
          got.cancelled = true
          yield* Fiber.interrupt(fiber)
          return
        }
      }
      const reply = yield* Fiber.join(fiber)
      got.servers.add(reply.server)
      if (reply.content !== "") got.pieces.push(reply.content)
      if (reply.finishReason !== undefined) got.finishReason = reply.finishReason
      return
    }
    const enough = yield* Deferred.make<void>()
    const limit = cancel !== undefined && "afterPieces" in cancel ? cancel.afterPieces : Number.POSITIVE_INFINITY
    const fiber = yield* chat.stream(request).pipe(
      Stream.runForEach((delta) =>
        Effect.sync(() => {
          got.delta(delta)
          // From here on the run has stopped listening, though the fiber may still see a few deltas before the
          // interrupt lands.
          if (got.pieces.length >= limit && !got.cancelled) {
            got.cancelled = true
            Deferred.unsafeDone(enough, Exit.void)
          }
        })
      ),
      Effect.fork
    )
    // Ends when enough pieces arrived (then the fiber is interrupted) or the stream ended first.
    yield* Effect.raceFirst(Deferred.await(enough), Effect.ignore(Fiber.await(fiber)))
    if (yield* Deferred.isDone(enough)) {
      yield* Fiber.interrupt(fiber)
      return
    }
    yield* Fiber.join(fiber)
  })
  return Effect.gen(function* () {
    const exit = yield* Effect.exit(call)
    // Probed before the layer is released: releasing it closes the transport's connections.
    const probe = hooks.probe === undefined ? undefined : yield* Effect.promise(hooks.probe)
    return got.outcome(Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined, probe)
  }).pipe(
    Effect.provide(EasyChat.layer(options)),
    Effect.provide(transport.layer()),
    // Options the layer refuses (`InvalidRequest`) are an outcome too.
    Effect.catchAllCause((cause) => Effect.succeed(got.outcome(Cause.squash(cause), undefined))),
    Effect.runPromise
  )
}

/** The Promise face: the transport's `createClient`. */
const viaPromise = async (
  c: Case,
  options: Presets.Options,
  request: ChatRequestInput,
  transport: Transport,
  hooks: Hooks
): Promise<Outcome> => {
  const got = new Received()
  const cancel = c.cancel
  const controller = new AbortController()
  const client = transport.createClient(options)
  let error: unknown
  try {
    if (c.mode === "complete") {
      if (cancel !== undefined && "onceReceived" in cancel) {
        received(hooks).then(
          () => {
            got.cancelled = true
            controller.abort()
          },
          () => {}
        )
      }
      const reply = await client.complete(request, { signal: controller.signal })
      got.servers.add(reply.server)
      if (reply.content !== "") got.pieces.push(reply.content)
      if (reply.finishReason !== undefined) got.finishReason = reply.finishReason
    } else {
      const limit = cancel !== undefined && "afterPieces" in cancel ? cancel.afterPieces : Number.POSITIVE_INFINITY
      const call = { signal: controller.signal }
      const items: AsyncIterable<ChatDelta | string> =
        c.iterate === "text" ? client.stream(request, call) : client.streamDeltas(request, call)
      for await (const item of items) {
        if (typeof item === "string") got.piece(item)
        else got.delta(item)
        if (got.pieces.length >= limit && !got.cancelled) {
          got.cancelled = true
          if (cancel?.via === "break") break
          // `abort`: keep iterating; the next pull rejects with the signal's reason.
          controller.abort()
        }
      }
    }
  } catch (e) {
    error = e
  }
  try {
    return got.outcome(error, hooks.probe === undefined ? undefined : await hooks.probe())
  } finally {
    await client.close()
  }
}

/**
 * Runs `c` against the mirror at `mirrorUrl` through one face of `transport`.
 * Never rejects: anything that goes wrong is in the outcome.
 * @since 0.1.0 @category runners
 */
export const runCase = async (
  c: Case,
  mirrorUrl: string,
  transport: Transport,
  api: Api,
  hooks: Hooks = {}
): Promise<Outcome> => {
  const options: Presets.Options = { ...c.options, servers: [mirrorUrl] }
  const request = { messages: defaultMessages, ...c.request } as ChatRequestInput
  try {
    return await (api === "effect"
      ? viaEffect(c, options, request, transport, hooks)
      : viaPromise(c, options, request, transport, hooks))
  } catch (error) {
    return new Received().outcome(new Error(`the runner failed: ${errorInfo(error).message}`), undefined)
  }
}
