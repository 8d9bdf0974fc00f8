import * as Cause from "effect/Cause"
import type * as Chunk from "effect/Chunk"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Queue from "effect/Queue"
import type * as Scope from "effect/Scope"
import type { AttemptError, EasyChatError } from "../Errors.js"
import type { Running } from "./failover.js"

/** What a race of attempts needs from the driver that runs it. */
export interface Contest<A> {
  readonly clock: Clock.Clock
  readonly scope: Scope.Scope
  /**
   * Chooses a server and begins an attempt on it (`hedge`: started because
   * the others are slow), or fails with why none can start (no server or
   * attempt left, the call's time spent).
   */
  readonly launch: (hedge: boolean) => Effect.Effect<Running<A>, EasyChatError>
  /** Records an attempt that failed before any delivered: `undefined` when the call goes on, else its error. */
  readonly settle: (running: Running<A>, error: AttemptError) => Effect.Effect<EasyChatError | undefined>
  /** Ends an attempt that lost the race: its request aborted or its body cancelled. */
  readonly lose: (running: Running<A>) => Effect.Effect<void>
  /** The attempts begun and not yet ended, for the call's finalizer. */
  readonly racing: Set<Running<A>>
}

/** The attempt that delivered first and its first batch (`undefined`: it ended well with nothing). */
export interface Won<A> {
  readonly running: Running<A>
  readonly batch: Chunk.Chunk<A> | undefined
  /** How many attempts started as hedges in this race. */
  readonly hedges: number
  /** How many attempts still running were cancelled when it won. */
  readonly cancelled: number
}

interface Event<A> {
  readonly running: Running<A>
  readonly exit: Exit.Exit<Chunk.Chunk<A>, Option.Option<AttemptError>>
}

/**
 * Runs attempts until one delivers its first item: each in a fiber of its
 * own, another started whenever the newest has gone `after` milliseconds
 * without one (while fewer than `max` run), and at once in place of one that
 * fails (as a failover would). The first to deliver wins; every other is
 * interrupted and ended before the winner's batch goes anywhere, so nothing
 * of a loser reaches the caller. A failure the policy calls final ends the
 * race, and the call, with that error.
 */
export const race = <A>(contest: Contest<A>, after: number, max: number): Effect.Effect<Won<A>, EasyChatError> =>
  Effect.gen(function* () {
    const { clock, racing } = contest
    const events = yield* Queue.unbounded<Event<A>>()
    const fibers = new Map<Running<A>, Fiber.RuntimeFiber<void>>()
    // Whether another attempt may still start, and when the newest did.
    let more = true
    let latest = 0
    let hedges = 0

    // The reader is kept on the attempt even when an interrupt comes as it opens: the loser's body is then closed.
    const contend = (running: Running<A>): Effect.Effect<void> =>
      Effect.uninterruptibleMask((restore) =>
        restore(Effect.mapError(running.attempting, Option.some)).pipe(
          Effect.flatMap((opened) => {
            running.reader = opened.reader
            running.latency = opened.latency
            return restore(opened.reader.pull)
          }),
          Effect.exit,
          Effect.flatMap((exit) =>
            Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
              ? Effect.void
              : Queue.offer(events, { running, exit })
          )
        )
      )
    /** Starts an attempt; `undefined`, or why none could start. */
    const start = (hedge: boolean): Effect.Effect<EasyChatError | undefined> =>
      Effect.matchEffect(contest.launch(hedge), {
        onFailure: (why) => {
          more = false
          return Effect.succeed(why)
        },
        onSuccess: (running) => {
          racing.add(running)
          latest = clock.unsafeCurrentTimeMillis()
          if (hedge) hedges++
          return Effect.map(Effect.forkIn(contend(running), contest.scope), (fiber) => {
            fibers.set(running, fiber)
            return undefined
          })
        }
      })
    /** Interrupts and ends every attempt still running. */
    const cancel = Effect.suspend(() => {
      const others = [...fibers]
      fibers.clear()
      return Effect.forEach(
        others,
        ([running, fiber]) => {
          racing.delete(running)
          return Effect.zipRight(Fiber.interrupt(fiber), contest.lose(running))
        },
        { discard: true }
      )
    })
    /** The next event; `None` when it is time for a hedge. */
    const nextEvent = (): Effect.Effect<Option.Option<Event<A>>> => {
      if (!more || fibers.size >= max) return Effect.map(Queue.take(events), Option.some)
      const wait = latest + after - clock.unsafeCurrentTimeMillis()
      return wait <= 0 ? Queue.poll(events) : Effect.timeoutOption(Queue.take(events), wait)
    }

    const first = yield* start(false)
    if (first !== undefined) return yield* Effect.fail(first)
    while (true) {
      const event = yield* nextEvent()
      if (Option.isNone(event)) {
        yield* start(true)
        continue
      }
      const { running, exit } = event.value
      fibers.delete(running)
      racing.delete(running)
      const failure = Exit.isSuccess(exit) ? undefined : Cause.failureOption(exit.cause)
      if (failure === undefined || (Option.isSome(failure) && Option.isNone(failure.value))) {
        const cancelled = fibers.size
        yield* cancel
        return { running, batch: Exit.isSuccess(exit) ? exit.value : undefined, hedges, cancelled }
      }
      if (Option.isNone(failure)) {
        // A defect of the attempt: the others go, the defect stays.
        yield* cancel
        return yield* Effect.die(Cause.squash(Exit.isFailure(exit) ? exit.cause : Cause.empty))
      }
      const ending = yield* contest.settle(running, (failure.value as Option.Some<AttemptError>).value)
      if (ending !== undefined) {
        yield* cancel
        return yield* Effect.fail(ending)
      }
      // In place of the failed attempt, as a failover; with none running, the call ends when none can start.
      if (more || fibers.size === 0) {
        const why = yield* start(false)
        if (why !== undefined && fibers.size === 0) return yield* Effect.fail(why)
      }
    }
  })
