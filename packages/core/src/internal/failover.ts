import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import { AllServersFailed, type AttemptError, type EasyChatError, type Attempt as Failed } from "../Errors.js"
import type * as ServerPool from "../ServerPool.js"
import type { Attempt } from "./attempt.js"
import type { Delivered, Limits } from "./limits.js"
import { verdictOf } from "./policy.js"
import type { Reader, Waiting } from "./reader.js"
import type { Settings } from "./settings.js"
import { makeWatchdog, type Watchdog } from "./watchdog.js"

/** One pull of a call: the items decoded since the last pull; `None` at the end. */
export type Pull<A> = Effect.Effect<Chunk.Chunk<A>, Option.Option<EasyChatError>>

/** A call being driven: `pull`, and between reads the current attempt's `Waiting`. */
export interface Call<A> extends Waiting<A> {
  readonly pull: Pull<A>
  /**
   * Opens the call (failing over as `pull` does) and succeeds with an empty
   * batch once an attempt's reader is there, its watchdog running: the
   * caller then takes the first batch with `poll` and `wait`, as every later one.
   */
  readonly start: Pull<A>
  /** The server of the latest attempt (`""` before the first). */
  readonly server: () => string
}

/** What a call runs: the attempt to make on each server chosen, and the server it is pinned to, if any. */
export interface Plan<A> {
  readonly attempt: Attempt<A>
  readonly pinned: string | undefined
}

/**
 * Effect's own tracer, which records nothing: with it in place a call makes
 * no spans (each costs a few Effect operations and random ids).
 */
const silentTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/**
 * Runs a call's attempts until one ends well: the one place where servers are
 * chosen, attempts started and ended, failures judged (`policy`) and recorded,
 * and `AllServersFailed` made. A call is one pull over its attempts: it reads
 * the current attempt's reader and, when the policy allows, opens the next
 * one. One `Stream` step per batch and no operator per attempt: the fixed
 * cost of a call is most of its time to first delta.
 */
export const drive = <A>(
  deps: { readonly settings: Settings; readonly pool: ServerPool.Service; readonly limits: Limits },
  name: string,
  plan: Either.Either<Plan<A>, EasyChatError>,
  scope: Scope.Scope,
  delivered: Delivered
): Effect.Effect<Call<A>> =>
  Effect.gen(function* () {
    const { settings, pool, limits } = deps
    const clock = yield* Effect.clock
    const traced = (yield* Effect.tracer) !== silentTracer
    // Made and registered in one step, so that an interrupt cannot leave a span that never ends.
    const callSpan = traced
      ? yield* Effect.uninterruptible(
          Effect.tap(Effect.makeSpan(name, { captureStackTrace: false }), (span) =>
            Scope.addFinalizerExit(scope, (exit) => Effect.sync(() => span.end(clock.unsafeCurrentTimeNanos(), exit)))
          )
        )
      : undefined
    // The call's total counts from its first pull (a `ChatCall` may be made before it is read).
    let callEnd = Number.POSITIVE_INFINITY
    const tried = new Set<string>()
    const attempts: Array<Failed> = []
    let last = ""
    interface Current {
      readonly server: string
      readonly number: number
      readonly span: Tracer.Span | undefined
      readonly watchdog: Watchdog
      readonly start: number
      reader: Reader<A> | undefined
      latency: number
      /** Milliseconds from the attempt's start to its first item, once it came. */
      firstItem: number | undefined
    }
    let current: Current | undefined
    // Set by `start`: an opened attempt returns an empty batch instead of waiting for its first read.
    let openOnly = false
    const failed = (error: EasyChatError): Pull<A> => Effect.fail(Option.some(error))

    /** Ends the current attempt: its reader, its span (with `easychat.outcome`) and its claim on the server. */
    const endAttempt = (outcome: string | undefined, exit: Exit.Exit<unknown, unknown>) =>
      Effect.suspend(() => {
        const ended = current
        if (ended === undefined) return Effect.void
        current = undefined
        ended.reader?.close()
        ended.watchdog.stop()
        if (outcome !== undefined) ended.span?.attribute("easychat.outcome", outcome)
        ended.span?.end(clock.unsafeCurrentTimeNanos(), exit)
        return pool.release(ended.server)
      })
    yield* Scope.addFinalizerExit(scope, (exit) => endAttempt(undefined, exit))

    const onAttemptError = (error: AttemptError): Pull<A> =>
      Effect.suspend(() => {
        const { server, number } = current!
        const ended = endAttempt(error._tag, Exit.fail(error))
        const recorded = pool.onFailure(server, error)
        if (verdictOf(error, delivered.deltas) === "fail")
          return Effect.zipRight(Effect.zipRight(recorded, ended), failed(error))
        attempts.push({ server, error })
        const logged = Effect.logDebug("easychat: attempt failed, failing over").pipe(
          Effect.annotateLogs({ server, attempt: number, error: error._tag, reason: error.message })
        )
        return Effect.zipRight(Effect.zipRight(Effect.zipRight(recorded, logged), ended), next)
      })
    const onAttemptEnd: Pull<A> = Effect.suspend(() => {
      const { server, latency, firstItem } = current!
      return Effect.zipRight(
        Effect.zipRight(pool.onSuccess(server, latency, firstItem ?? latency), endAttempt("ok", Exit.void)),
        Effect.fail(Option.none())
      )
    })
    /** Notes when the attempt's first item came (what a latency estimate learns from). */
    const noted = (batch: Chunk.Chunk<A>) => {
      const attempt = current
      if (attempt !== undefined && attempt.firstItem === undefined && batch.length > 0) {
        attempt.firstItem = clock.unsafeCurrentTimeMillis() - attempt.start
      }
      return batch
    }
    const read: Pull<A> = Effect.catchAll(
      Effect.suspend(() => Effect.map(current!.reader!.pull, noted)),
      (error): Pull<A> => (Option.isNone(error) ? onAttemptEnd : onAttemptError(error.value))
    )
    const open = (server: string, attempt: Attempt<A>, span: Tracer.Span | undefined): Pull<A> => {
      const start = clock.unsafeCurrentTimeMillis()
      const limit = limits.limitFor(clock, start, callEnd, delivered)
      const watchdog = makeWatchdog(clock, scope, limits.nextWait(limit))
      const number = attempts.length + 1
      current = { server, number, span, watchdog, start, reader: undefined, latency: 0, firstItem: undefined }
      const attempting = attempt({ server, number, clock, start, limit, watchdog, span, delivered })
      // Under a tracer, what the attempt makes (the cookie request's spans, log lines) is the attempt's.
      return Effect.matchEffect(span === undefined ? attempting : Effect.withParentSpan(attempting, span), {
        onFailure: onAttemptError,
        onSuccess: (opened): Pull<A> => {
          current!.reader = opened.reader
          current!.latency = opened.latency
          return openOnly ? Effect.succeed(Chunk.empty()) : read
        }
      })
    }
    const next: Pull<A> = Effect.suspend(() => {
      if (Either.isLeft(plan)) return failed(plan.left)
      if (last === "") callEnd = clock.unsafeCurrentTimeMillis() + limits.millis.total
      if (last !== "" && clock.unsafeCurrentTimeMillis() >= callEnd) return failed(limits.timeoutOf(last, "total"))
      if (attempts.length >= settings.maxAttempts) return failed(new AllServersFailed({ attempts }))
      const { attempt, pinned } = plan.right
      return Effect.flatMap(pool.choose(tried, pinned), (chosen): Pull<A> => {
        if (Option.isNone(chosen)) return failed(new AllServersFailed({ attempts }))
        const server = chosen.value
        tried.add(server)
        last = server
        if (callSpan === undefined) return open(server, attempt, undefined)
        const span = Effect.makeSpan("easychat.attempt", {
          parent: callSpan,
          attributes: { "easychat.server": server, "easychat.attempt": attempts.length + 1 },
          captureStackTrace: false
        })
        return Effect.flatMap(span, (span) => open(server, attempt, span))
      })
    })
    const pull: Pull<A> = Effect.suspend(() => (current?.reader !== undefined ? read : next))
    return {
      pull,
      start: Effect.suspend(() => {
        openOnly = true
        return pull
      }),
      poll: () => {
        const batch = current?.reader?.poll()
        return batch === undefined ? undefined : noted(batch)
      },
      wait: (wake) => current?.reader?.wait(wake) ?? false,
      unwait: () => current?.reader?.unwait(),
      server: () => last
    }
  })

/**
 * The one item of a call whose attempts each yield one (a whole reply, a
 * forwarded response's head), the call pulled to its end so that the
 * attempt that yielded it is recorded as a success.
 */
export const one = <A>(call: Call<A>): Effect.Effect<A, EasyChatError> =>
  Effect.gen(function* () {
    let item: Option.Option<A> = Option.none()
    while (true) {
      const step = yield* Effect.either(call.pull)
      if (Either.isLeft(step)) {
        if (Option.isSome(step.left)) return yield* Effect.fail(step.left.value)
        break
      }
      if (Option.isNone(item) && Chunk.isNonEmpty(step.right)) item = Option.some(Chunk.unsafeHead(step.right))
    }
    if (Option.isNone(item)) return yield* Effect.dieMessage("easychat: a call ended without its item")
    return item.value
  })
