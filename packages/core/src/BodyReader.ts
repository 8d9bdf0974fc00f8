/**
 * How a response body reaches core's decoder: one callback per network read.
 * A transport provides its fast reader (undici's body in
 * `@easychat/transport-node`, the web `ReadableStream` in
 * `@easychat/transport-fetch`); any other `HttpClient` layer is read through
 * `@effect/platform`'s `response.stream` by `fromStream`.
 *
 * A `Stream` step per read (latches, channel steps, a race for the timeout)
 * cost more than decoding the read itself, so core decodes each read as it
 * arrives and hands the caller whole batches.
 *
 * @since 0.3.0
 */
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Cause from "effect/Cause"
import type * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"

/**
 * Where a body's reads go. Called synchronously from the runtime's I/O
 * callbacks, in order; after `end` or `fail`, or once the body is cancelled
 * or released, nothing more is called.
 * @since 0.3.0 @category models
 */
export interface Sink {
  readonly chunk: (bytes: Uint8Array) => void
  readonly end: () => void
  readonly fail: (cause: unknown) => void
}

/**
 * A body being read into a `Sink`.
 * @since 0.3.0 @category models
 */
export interface Body {
  /** Stops the reads until `resume`: the caller is behind. */
  readonly pause: () => void
  readonly resume: () => void
  /** Stops for good and closes the connection if the body is unfinished. Idempotent. */
  readonly cancel: () => void
  /**
   * Stops delivering and reads what is left of a finished reply (at most
   * `DRAIN_BYTES`, for at most `DRAIN_MILLIS`) so that the connection is
   * reused instead of closed; past either bound it cancels. Idempotent.
   */
  readonly release: () => void
}

/** @since 0.3.0 @category models */
export interface Service {
  /** Names the reader (`"undici"`, `"fetch"`, `"stream"`): tests check which one a layer uses. */
  readonly name: string
  /** Starts reading `response`'s body into `sink`; reads begin at once. */
  readonly open: (response: HttpClientResponse.HttpClientResponse, sink: Sink) => Effect.Effect<Body>
  /** Closes the connection of a response nobody will read (its caller gave up while it arrived). */
  readonly abandon: (response: HttpClientResponse.HttpClientResponse) => void
}

/** @since 0.3.0 @category tags */
export class BodyReader extends Context.Tag("@easychat/core/BodyReader")<BodyReader, Service>() {}

/**
 * What is left of a finished reply that is still read to reuse its connection.
 * @since 0.3.0 @category constants
 */
export const DRAIN_BYTES = 256 * 1024
/** @since 0.3.0 @category constants */
export const DRAIN_MILLIS = 1000

/** A timer that does not keep Node alive; plain in other runtimes. */
const drainTimer = (f: () => void) => {
  const timer: unknown = setTimeout(f, DRAIN_MILLIS)
  ;(timer as { unref?: () => void }).unref?.()
  return timer as ReturnType<typeof setTimeout>
}

/**
 * Reads a web `ReadableStream` into `sink`. `abort` closes the connection
 * behind the stream when it is cancelled (some bodies never settle `cancel()`).
 * @since 0.3.0 @category constructors
 */
export const fromWebStream = (stream: ReadableStream<Uint8Array>, sink: Sink, abort: () => void = () => {}): Body => {
  const reader = stream.getReader()
  let state: "open" | "draining" | "closed" = "open"
  let paused = false
  let reading = false
  let drained = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  const close = () => {
    state = "closed"
    if (timer !== undefined) clearTimeout(timer)
  }
  const cancel = () => {
    if (state === "closed") return
    close()
    // Some bodies (msw's) never settle `cancel()`: nothing waits for it.
    reader.cancel().catch(() => {})
    abort()
  }
  const pump = () => {
    if (reading || state === "closed" || (paused && state === "open")) return
    reading = true
    reader.read().then(
      (result) => {
        reading = false
        if (state === "closed") return
        if (result.done) {
          const wasOpen = state === "open"
          close()
          if (wasOpen) sink.end()
          return
        }
        if (state === "draining") {
          if ((drained += result.value.length) > DRAIN_BYTES) return cancel()
          return pump()
        }
        // The next read is asked for first: when it is already queued, it is delivered before a
        // consumer woken by this one runs, and both go in one batch.
        pump()
        sink.chunk(result.value)
      },
      (cause: unknown) => {
        reading = false
        if (state === "closed") return
        const wasOpen = state === "open"
        close()
        if (wasOpen) sink.fail(cause)
      }
    )
  }
  pump()
  return {
    pause: () => {
      paused = true
    },
    resume: () => {
      paused = false
      pump()
    },
    cancel,
    release: () => {
      if (state !== "open") return
      state = "draining"
      timer = drainTimer(cancel)
      pump()
    }
  }
}

/**
 * Reads an Effect `Stream` of bytes into `sink` from a fiber of its own:
 * each batch the stream pulls is handed over as it comes, with no web
 * stream in between (turning `response.stream` into one cost about 20 µs
 * of CPU per read). Pausing holds the fiber before its next pull.
 */
const fromEffectStream = (stream: Stream.Stream<Uint8Array, unknown>, sink: Sink): Body => {
  let state: "open" | "draining" | "closed" = "open"
  let paused = false
  let wake: (() => void) | undefined
  let drained = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  const close = () => {
    state = "closed"
    if (timer !== undefined) clearTimeout(timer)
    wake?.()
  }
  const held = Effect.async<void>((resume) => {
    if (!paused || state !== "open") return resume(Effect.void)
    wake = () => {
      wake = undefined
      resume(Effect.void)
    }
  })
  const deliver = (chunk: Chunk.Chunk<Uint8Array>): Effect.Effect<void> => {
    for (const bytes of chunk) {
      if (state === "closed") break
      if (state === "draining") {
        if ((drained += bytes.length) > DRAIN_BYTES) cancel()
        continue
      }
      sink.chunk(bytes)
    }
    return state === "closed" ? Effect.interrupt : paused && state === "open" ? held : Effect.void
  }
  // Started after a turn, so that no read reaches the sink before `open` has returned.
  let started = false
  const begun = Stream.suspend(() => {
    started = true
    return stream
  })
  const fiber = Effect.runFork(Effect.zipRight(Effect.yieldNow(), Stream.runForEachChunk(begun, deliver)))
  fiber.addObserver((exit) => {
    if (state !== "open") return close()
    close()
    if (Exit.isSuccess(exit)) sink.end()
    else if (!Cause.isInterruptedOnly(exit.cause)) sink.fail(Cause.squash(exit.cause))
  })
  const cancel = () => {
    if (state === "closed") return
    close()
    fiber.unsafeInterruptAsFork(fiber.id())
    // Interrupted before its turn, the fiber never started the stream, whose finalizers abort the request.
    if (!started) abandonStream(stream)
  }
  return {
    pause: () => {
      paused = true
    },
    resume: () => {
      paused = false
      wake?.()
    },
    cancel,
    release: () => {
      if (state !== "open") return
      state = "draining"
      timer = drainTimer(cancel)
      wake?.()
    }
  }
}

/** Starts `stream` and interrupts it at once, for its finalizers (a request's abort) to run. */
const abandonStream = (stream: Stream.Stream<Uint8Array, unknown>) => {
  // The stream must start for its finalizers to run: `Stream.take(stream, 0)` never starts it.
  // Forked without a turn, it has started (and waits for its first read) when it is interrupted.
  const fiber = Effect.runFork(Stream.runDrain(stream))
  fiber.unsafeInterruptAsFork(fiber.id())
}

/**
 * The reader for any `HttpClient`: `@effect/platform`'s `response.stream`,
 * run in a fiber of its own. Cancelling interrupts that fiber, which closes
 * the body and, for a client made with `HttpClient.make`, aborts the request;
 * `abandon` starts the stream and cancels it at once, for the same effect.
 * @since 0.3.0 @category constructors
 */
export const fromStream: Service = {
  name: "stream",
  open: (response, sink) => Effect.sync(() => fromEffectStream(response.stream, sink)),
  abandon: (response) => abandonStream(response.stream)
}

/**
 * The reader in use: the transport's, or `fromStream`.
 * @since 0.3.0 @category constructors
 */
export const current: Effect.Effect<Service> = Effect.map(Effect.serviceOption(BodyReader), (o) =>
  o._tag === "Some" ? o.value : fromStream
)
