import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"

/**
 * Reading a streamed body outside Effect's `Stream`: one callback per network
 * read. A `Stream` step per read (latches, channel steps, a race for the
 * timeout) cost more than decoding the read itself (DESIGN, "Performance
 * notes"), so the engine decodes each read as it arrives and hands the caller
 * whole batches.
 */

/** Where a body's reads go. Called synchronously from the runtime's I/O callbacks. */
export interface Sink {
  readonly chunk: (bytes: Uint8Array) => void
  readonly end: () => void
  readonly fail: (cause: unknown) => void
}

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

const DRAIN_BYTES = 64 * 1024
const DRAIN_MILLIS = 1000

/** What Node's `Readable` (undici's body, `IncomingMessage`) offers, without importing `node:stream`. */
interface Readable {
  on(event: string, listener: (...args: Array<any>) => void): unknown
  off(event: string, listener: (...args: Array<any>) => void): unknown
  pause(): unknown
  resume(): unknown
  destroy(error?: Error): unknown
  readonly readableEnded?: boolean
}

const isReadable = (u: unknown): u is Readable =>
  typeof u === "object" &&
  u !== null &&
  typeof (u as Readable).on === "function" &&
  typeof (u as Readable).pause === "function" &&
  typeof (u as Readable).resume === "function" &&
  typeof (u as Readable).destroy === "function"

const isWebStream = (u: unknown): u is ReadableStream<Uint8Array> =>
  typeof u === "object" && u !== null && typeof (u as ReadableStream).getReader === "function"

/** A timer that does not keep Node alive; plain in other runtimes. */
const drainTimer = (f: () => void) => {
  const timer: unknown = setTimeout(f, DRAIN_MILLIS)
  ;(timer as { unref?: () => void }).unref?.()
  return timer as ReturnType<typeof setTimeout>
}

/**
 * The raw body behind `@effect/platform`'s responses: undici's `ResponseData.body`,
 * Node's `IncomingMessage`, or a web `Response`'s `ReadableStream`. Any other
 * `HttpClient` is read through its `stream`.
 */
const rawBodyOf = (
  response: HttpClientResponse.HttpClientResponse
): Readable | ReadableStream<Uint8Array> | undefined => {
  const original = (response as { original?: unknown }).original ?? response
  const source = (original as { source?: unknown }).source
  if (typeof source !== "object" || source === null) return undefined
  const body = (source as { body?: unknown }).body
  if (isReadable(body) || isWebStream(body)) return body
  if (isReadable(source)) return source
  return undefined
}

/** The `AbortController` `@effect/platform`'s `HttpClient.make` keeps for each response. */
/**
 * The reason every abandoned body is aborted with, made once: a fresh
 * `AbortError` per abort captures the stack it is thrown from, which V8 keeps
 * (closures and receivers) until the stack is read; `@effect/platform` keeps
 * the controller, and with it that error, as long as the response lives, so
 * each interrupted response stayed in memory.
 */
const ABANDONED = new DOMException("easychat: the body was abandoned", "AbortError")

const abortOf = (response: HttpClientResponse.HttpClientResponse) => () =>
  (response as { controller?: { abort?: (reason: unknown) => void } }).controller?.abort?.(ABANDONED)

const fromReadable = (readable: Readable, sink: Sink, abort: () => void): Body => {
  let state: "open" | "draining" | "closed" = "open"
  let drained = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  const detach = () => {
    state = "closed"
    if (timer !== undefined) clearTimeout(timer)
    readable.off("data", onData)
    readable.off("end", onEnd)
    readable.off("error", onError)
  }
  const cancel = () => {
    if (state === "closed") return
    const unfinished = readable.readableEnded !== true
    detach()
    if (unfinished) {
      readable.destroy()
      abort()
    }
  }
  function onData(bytes: Uint8Array) {
    if (state === "open") return sink.chunk(bytes)
    drained += bytes.length
    if (drained > DRAIN_BYTES) cancel()
  }
  function onEnd() {
    const wasOpen = state === "open"
    detach()
    if (wasOpen) sink.end()
  }
  function onError(cause: unknown) {
    const wasOpen = state === "open"
    detach()
    if (wasOpen) sink.fail(cause)
  }
  readable.on("error", onError)
  readable.on("end", onEnd)
  readable.on("data", onData)
  return {
    pause: () => {
      if (state === "open") readable.pause()
    },
    resume: () => {
      if (state === "open") readable.resume()
    },
    cancel,
    release: () => {
      if (state !== "open") return
      if (readable.readableEnded === true) return detach()
      state = "draining"
      timer = drainTimer(cancel)
      readable.resume()
    }
  }
}

const fromWebStream = (stream: ReadableStream<Uint8Array>, sink: Sink, abort: () => void): Body => {
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

/** Closes the connection of a response nobody will read (its caller gave up while it arrived). */
export const abandon = (response: HttpClientResponse.HttpClientResponse): void => {
  const raw = rawBodyOf(response)
  if (raw !== undefined && isReadable(raw)) raw.destroy()
  else if (raw !== undefined) raw.cancel().catch(() => {})
  abortOf(response)()
}

/** Starts reading `response`'s body into `sink`; reads begin at once. */
export const open = (response: HttpClientResponse.HttpClientResponse, sink: Sink): Effect.Effect<Body> =>
  Effect.suspend(() => {
    const raw = rawBodyOf(response)
    const abort = abortOf(response)
    if (raw !== undefined && isReadable(raw)) return Effect.succeed(fromReadable(raw, sink, abort))
    if (raw !== undefined) return Effect.succeed(fromWebStream(raw, sink, abort))
    return Effect.map(Stream.toReadableStreamEffect(response.stream), (stream) => fromWebStream(stream, sink, abort))
  })
