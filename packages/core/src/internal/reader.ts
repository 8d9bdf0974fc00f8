import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as BodyReader from "../BodyReader.js"
import type { ChatDelta } from "../Chat.js"
import {
  type AttemptError,
  DecodeError,
  isEasyChatError,
  type Phase,
  StreamInterrupted,
  type Timeout,
  TransportError
} from "../Errors.js"
import * as Sse from "../Sse.js"
import { DONE, stepOf } from "./chunk.js"
import { type Delta, isActivity } from "./delta.js"
import type { Delivered, Limit } from "./limits.js"
import { describeCause } from "./send.js"
import type { Watchdog } from "./watchdog.js"

/**
 * Takes what a body has decoded so far without Effect (`poll`), or waits for
 * the next read with a plain callback (`wait`). The Promise facade uses these
 * between reads; the end of an attempt, failures and failover go through `pull`.
 */
export interface Waiting<A> {
  readonly poll: () => Chunk.Chunk<A> | undefined
  /**
   * Calls `wake` once when `poll` or `pull` has something. `false` when the
   * caller must `pull` instead: something is ready already, the body has
   * stopped, or no watchdog guards the wait yet.
   */
  readonly wait: (wake: () => void) => boolean
  /** Forgets a `wait` (the caller gave up). */
  readonly unwait: () => void
}

/** What an attempt yields: `pull` takes the items decoded so far, or waits for the next read; `None` at the end. */
export interface Reader<A> extends Waiting<A> {
  readonly pull: Effect.Effect<Chunk.Chunk<A>, Option.Option<AttemptError>>
  /** Stops reading; an unfinished body's connection is closed. */
  readonly close: () => void
}

/** A reader of one item: an attempt whose answer is whole (a reply, a forwarded response's head). */
export const single = <A>(item: A): Reader<A> => {
  let taken = false
  const take = () => {
    taken = true
    return Chunk.of(item)
  }
  return {
    pull: Effect.suspend(() => (taken ? Effect.fail(Option.none()) : Effect.succeed(take()))),
    poll: () => (taken ? undefined : take()),
    wait: () => false,
    unwait: () => {},
    close: () => {
      taken = true
    }
  }
}

/** What every reader of one client shares. */
export interface ReaderContext {
  readonly maxEventSize: number
  readonly secretsOf: (server: string) => ReadonlyArray<string>
  readonly timeoutOf: (server: string, phase: Phase) => Timeout
  readonly bodyReader: BodyReader.Service
}

/** The end of a body, once its queue is empty. */
const END: Effect.Effect<never, Option.Option<never>> = Effect.fail(Option.none())

/**
 * How many bytes of a body are decoded ahead of the caller before the body
 * pauses. At 64 KiB an Effect `Stream` caller kept batches alive long enough
 * to be promoted, and RSS grew with a stream's length in some runs.
 */
const HIGH_WATER = 16 * 1024

/**
 * Decodes one response body. Each network read is decoded as it arrives, in
 * one synchronous batch (SSE, JSON, content), into a queue that the caller
 * takes whole at each pull; the body pauses while the caller is more than
 * `HIGH_WATER` bytes behind. Deltas decoded before a fault reach the caller
 * before the fault does. The reader is made first and attached to the body
 * once it arrives: a stream makes it while the server works on the request.
 */
export const makeReader = (
  context: ReaderContext,
  server: string,
  delivered: Delivered,
  limit: Limit,
  clock: Clock.Clock,
  watchdog: Watchdog,
  every: boolean
): { readonly attach: (response: HttpClientResponse.HttpClientResponse) => Effect.Effect<Reader<ChatDelta>> } => {
  const { maxEventSize, secretsOf, timeoutOf, bodyReader } = context
  const decoder = Sse.makeDecoder({ maxEventSize })
  // Read when the body arrives: a 401 or 403 before it re-initialises the server's cookies.
  let secrets: ReadonlyArray<string> = []
  type Pull = Reader<ChatDelta>["pull"]
  let queue: Array<ChatDelta> = []
  let behind = 0
  let paused = false
  let finished = false
  // What the caller gets once the queue is empty: the end, a failure or a defect.
  let stop: Pull | undefined
  let waiting: ((pull: Pull) => void) | undefined
  let deadline = 0
  let phase: Phase = "firstToken"
  let body: BodyReader.Body | undefined

  const take = (): Chunk.Chunk<ChatDelta> => {
    const out = queue
    queue = []
    behind = 0
    if (paused) {
      paused = false
      body?.resume()
    }
    return Chunk.unsafeFromArray(out)
  }
  // The queue is taken when the woken fiber runs, not when it is woken:
  // reads that arrive in between join the same batch.
  const ready: Pull = Effect.suspend(() => (queue.length > 0 ? Effect.succeed(take()) : (stop ?? END)))
  const wake = () => {
    const resume = waiting
    if (resume === undefined || (queue.length === 0 && stop === undefined)) return
    waiting = undefined
    resume(ready)
  }
  /** Ends the body for good: what the caller gets once the queue is empty, and the connection closed. */
  const halt = (end: Pull): Pull => {
    stop = end
    body?.cancel()
    return end
  }
  const failWith = (error: unknown) =>
    halt(
      isEasyChatError(error) && error._tag !== "AllServersFailed"
        ? Effect.fail(
            Option.some(
              error._tag === "DecodeError" && error.server === undefined ? new DecodeError({ ...error, server }) : error
            )
          )
        : Effect.die(error)
    )
  // Deltas that are no piece of the reply (usage alone; with `every`, those that carry nothing) wait
  // here until one that is: an attempt that fails before its first piece leaves nothing with the caller.
  let held: Array<ChatDelta> | undefined
  // The choices that have begun and not finished: a cut stream ended only when none is left.
  const open = new Set<number>()
  const deliver = (delta: Delta) => {
    const piece = isActivity(delta)
    if (!piece && delivered.deltas === 0) {
      ;(held ??= []).push(delta)
      return
    }
    if (held !== undefined) flush()
    if (delta.finishReason !== undefined) {
      finished = true
      open.delete(delta.choice)
    } else if (piece) open.add(delta.choice)
    delivered.deltas++
    delivered.characters += delta.content.length
    queue.push(delta)
  }
  // Returns true at `[DONE]`.
  const run = (events: ReadonlyArray<Sse.SseEvent>): boolean => {
    for (let i = 0; i < events.length; i++) {
      const step = stepOf(server, events[i]!, secrets, every)
      if (step === undefined) continue
      if (step === DONE) return true
      if (Array.isArray(step)) for (const delta of step) deliver(delta)
      else deliver(step)
    }
    return false
  }
  /** What is held reaches the caller: a piece arrived, or the reply ended whole. */
  const flush = () => {
    if (held !== undefined) {
      for (const h of held) {
        delivered.deltas++
        queue.push(h)
      }
    }
    held = undefined
  }
  const sink: BodyReader.Sink = {
    chunk: (bytes) => {
      if (stop !== undefined) return
      try {
        // `push` throws at an oversize event and its chunk's earlier events would be lost with it:
        // a read larger than `maxEventSize` goes in slices of at most that size, so an event
        // completed before the overflow was always returned by an earlier slice.
        for (let at = 0; at < bytes.length; at += maxEventSize) {
          const slice = bytes.length <= maxEventSize ? bytes : bytes.subarray(at, at + maxEventSize)
          if (run(decoder.push(slice))) {
            // `[DONE]`: the rest of the body is read and dropped so that the connection is reused.
            flush()
            stop = END
            body?.release()
            break
          }
        }
      } catch (error) {
        failWith(error)
      }
      behind += bytes.length
      if (waiting !== undefined) wake()
      // Only with deltas queued: `take` is what resumes the body, and a caller
      // with nothing to take would wait on a body that never reads again.
      else if (behind >= HIGH_WATER && queue.length > 0 && !paused && stop === undefined) {
        paused = true
        body?.pause()
      }
    },
    end: () => {
      if (stop !== undefined) return
      try {
        const done = run(decoder.end())
        // Without `[DONE]`, the reply ended whole only when every choice that began has finished.
        const whole = done || (finished && open.size === 0)
        if (whole) flush()
        stop = whole
          ? END
          : Effect.fail(
              Option.some(
                new StreamInterrupted({
                  server,
                  ...delivered,
                  detail: "the stream ended without [DONE] or a finish_reason"
                })
              )
            )
      } catch (error) {
        failWith(error)
      }
      wake()
    },
    fail: (cause) => {
      if (stop !== undefined) return
      const detail = describeCause(cause, "the connection failed")
      stop = Effect.fail(
        Option.some(
          delivered.deltas > 0
            ? new StreamInterrupted({ server, ...delivered, detail })
            : new TransportError({ server, detail })
        )
      )
      wake()
    }
  }
  const close = () => {
    waiting = undefined
    if (stop === END) return
    stop ??= Effect.interrupt
    body?.cancel()
  }

  // The attempt's watchdog fails a wait that outlives its limit.
  const expire = (): void => {
    const resume = waiting
    if (resume === undefined) return
    waiting = undefined
    resume(halt(Effect.fail(Option.some(timeoutOf(server, phase)))))
  }
  const wait: Pull = Effect.async<Chunk.Chunk<ChatDelta>, Option.Option<AttemptError>>((resume) => {
    waiting = resume
    return Effect.sync(() => {
      waiting = undefined
    })
  })

  /** Starts a wait: its deadline, or `undefined` when its limit has already passed. */
  const startWait = (): number | undefined => {
    const next = limit()
    phase = next.phase
    if (next.ms <= 0) return undefined
    deadline = clock.unsafeCurrentTimeMillis() + next.ms
    return deadline
  }
  const pull = Effect.suspend((): Pull => {
    if (queue.length > 0) return Effect.succeed(take())
    if (stop !== undefined) return stop
    if (startWait() === undefined) return halt(Effect.fail(Option.some(timeoutOf(server, phase))))
    const arming = watchdog.arm(deadline, expire)
    return arming === undefined ? wait : Effect.zipRight(arming, wait)
  })
  const poll = () => (queue.length > 0 ? take() : undefined)
  const waitFor = (wake: () => void): boolean => {
    if (queue.length > 0 || stop !== undefined) return false
    if (startWait() === undefined || !watchdog.wakesBy(deadline)) return false
    watchdog.arm(deadline, expire)
    waiting = wake
    return true
  }
  const unwait = () => {
    waiting = undefined
  }
  const reader: Reader<ChatDelta> = { pull, close, poll, wait: waitFor, unwait }
  return {
    attach: (response) =>
      Effect.suspend(() => {
        secrets = secretsOf(server)
        return Effect.map(bodyReader.open(response, sink), (opened) => {
          body = opened
          return reader
        })
      })
  }
}
