import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import type { ContinuedFrom } from "../Chat.js"
import { AllServersFailed, type AttemptError, type EasyChatError, type Attempt as Failed } from "../Errors.js"
import type * as ServerPool from "../ServerPool.js"
import type { Attempt, Opened } from "./attempt.js"
import { type Continuation, type Cut, cutAt, endingOf } from "./continuation.js"
import { type Contest, race, type Won } from "./hedge.js"
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
   * caller then takes the first batch with `poll` and `wait`, as every later
   * one. A hedged call opens when its race is won: `poll` then gives the
   * winner's first batch.
   */
  readonly start: Pull<A>
  /** The server of the latest attempt (`""` before the first); once a race is won, the winner's. */
  readonly server: () => string
}

/**
 * What a call runs: the attempt to make on each server chosen, the server it
 * is pinned to, if any, and for a streamed call with `continueAfterCut`, what
 * continues its reply after a cut.
 */
export interface Plan<A> {
  readonly attempt: Attempt<A>
  readonly pinned: string | undefined
  readonly continuation?: Continuation<A> | undefined
}

/** One attempt of a call, from its start to its end. */
export interface Running<A> {
  readonly server: string
  readonly number: number
  readonly span: Tracer.Span | undefined
  readonly watchdog: Watchdog
  /** When it started (the clock's millis). */
  readonly start: number
  /** What it has delivered: its own count (a continuation starts from 0, with its own first-token limit). */
  readonly delivered: Delivered
  /** The attempt as an Effect, under its span. */
  readonly attempting: Effect.Effect<Opened<A>, AttemptError>
  /** Set on a continuation: where the reply it continues was cut. */
  readonly continuedFrom: ContinuedFrom | undefined
  reader: Reader<A> | undefined
  latency: number
  /** Milliseconds from the attempt's start to its first item, once it came. */
  firstItem: number | undefined
}

/**
 * Effect's own tracer, which records nothing: with it in place a call makes
 * no spans (each costs a few Effect operations and random ids).
 */
const silentTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/**
 * Runs a call's attempts until one ends well: the one place where servers are
 * chosen, attempts started and ended, failures judged (`policy`) and recorded,
 * and `AllServersFailed` made; hedged first requests (`hedge.ts`) and the
 * continuation of a cut reply (`continuation.ts`) run here too. A call is one
 * pull over its attempts: it reads the current attempt's reader and, when the
 * policy allows, opens the next one. One `Stream` step per batch and no
 * operator per attempt: the fixed cost of a call is most of its time to
 * first delta. Without `hedge`, no fiber or race is added to a call.
 */
export const drive = <A>(
  deps: { readonly settings: Settings; readonly pool: ServerPool.Service; readonly limits: Limits },
  name: string,
  plan: Either.Either<Plan<A>, EasyChatError>,
  scope: Scope.Scope
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
    const planned = Either.isRight(plan) ? plan.right : undefined
    const continuation = planned?.continuation
    const hedge = settings.hedge
    const strategy = planned?.pinned !== undefined ? "pinned" : pool.strategyName
    // The call's total counts from its first pull (a `ChatCall` may be made before it is read).
    let callEnd = Number.POSITIVE_INFINITY
    const tried = new Set<string>()
    const attempts: Array<Failed> = []
    let started = 0
    let last = ""
    let current: Running<A> | undefined
    // Set by `start`: an opened attempt returns an empty batch instead of waiting for its first read.
    let openOnly = false
    // A race's first batch taken by `start`, for the caller's next `poll` or `pull`.
    let pending: Chunk.Chunk<A> | undefined
    // What the next attempt asks: the request, or once a reply was cut, its continuation.
    let attemptNow = planned?.attempt
    // The cut being continued: the error the call ends with if no continuation delivers.
    let cut: Cut | undefined
    // The attempts of a race not yet ended (only a hedged call has one).
    let racing: Set<Running<A>> | undefined
    const failed = (error: EasyChatError): Pull<A> => Effect.fail(Option.some(error))
    const exhausted = (): EasyChatError => cut?.error ?? new AllServersFailed({ attempts })

    /** Ends an attempt: its reader, its span (with `easychat.outcome`) and its claim on the server. */
    const endAttempt = (ended: Running<A>, outcome: string | undefined, exit: Exit.Exit<unknown, unknown>) =>
      Effect.suspend(() => {
        if (current === ended) current = undefined
        ended.reader?.close()
        ended.watchdog.stop()
        if (outcome !== undefined) ended.span?.attribute("easychat.outcome", outcome)
        ended.span?.end(clock.unsafeCurrentTimeNanos(), exit)
        return pool.release(ended.server)
      })
    yield* Scope.addFinalizerExit(scope, (exit) =>
      Effect.suspend(() => {
        const ending = current === undefined ? Effect.void : endAttempt(current, undefined, exit)
        if (racing === undefined || racing.size === 0) return ending
        const others = [...racing]
        racing.clear()
        return Effect.zipRight(
          ending,
          Effect.forEach(others, (r) => endAttempt(r, "lost", exit), { discard: true })
        )
      })
    )

    /** Records a failed attempt and judges it: `undefined` when the call goes on, else the error that ends it. */
    const settle = (ended: Running<A>, error: AttemptError): Effect.Effect<EasyChatError | undefined> =>
      Effect.suspend(() => {
        const { server, number, delivered } = ended
        const recorded = Effect.zipRight(pool.onFailure(server, error), endAttempt(ended, error._tag, Exit.fail(error)))
        const verdict = verdictOf(error, delivered.deltas, continuation?.possible() === true)
        if (verdict === "fail") return Effect.as(recorded, endingOf(error, delivered, cut))
        attempts.push({ server, error })
        const annotations = { server, attempt: number, error: error._tag, reason: error.message, strategy }
        if (verdict === "failover") {
          const logged = Effect.annotateLogs(Effect.logDebug("easychat: attempt failed, failing over"), annotations)
          return Effect.as(Effect.zipRight(recorded, logged), undefined)
        }
        const from: ContinuedFrom = {
          server,
          deltas: (cut?.from.deltas ?? 0) + delivered.deltas,
          characters: (cut?.from.characters ?? 0) + delivered.characters
        }
        cut = cutAt(error, from)
        attemptNow = continuation!.attempt()
        callSpan?.attribute("easychat.continuation", `${from.characters} characters from ${server}`)
        const logged = Effect.annotateLogs(
          Effect.logDebug("easychat: stream cut after its first delta, continuing it on another server"),
          { ...annotations, deltas: from.deltas, characters: from.characters }
        )
        return Effect.as(Effect.zipRight(recorded, logged), undefined)
      })
    const onAttemptError = (error: AttemptError): Pull<A> =>
      Effect.flatMap(settle(current!, error), (end) => (end === undefined ? next : failed(end)))
    const onAttemptEnd: Pull<A> = Effect.suspend(() => {
      const ended = current!
      const { server, latency, firstItem } = ended
      return Effect.zipRight(
        Effect.zipRight(pool.onSuccess(server, latency, firstItem ?? latency), endAttempt(ended, "ok", Exit.void)),
        Effect.fail(Option.none())
      )
    })
    /** Notes when the attempt's first item came (what a latency estimate learns from), and what the reply holds. */
    const noted = (batch: Chunk.Chunk<A>) => {
      const attempt = current
      if (attempt !== undefined && attempt.firstItem === undefined && batch.length > 0) {
        attempt.firstItem = clock.unsafeCurrentTimeMillis() - attempt.start
        if (attempt.continuedFrom !== undefined) continuation!.mark(Chunk.unsafeHead(batch), attempt.continuedFrom)
      }
      if (continuation !== undefined) continuation.note(batch)
      return batch
    }
    const onReadError = (error: Option.Option<AttemptError>): Pull<A> =>
      Option.isNone(error) ? onAttemptEnd : onAttemptError(error.value)
    const read: Pull<A> = Effect.catchAll(
      Effect.suspend(() => Effect.map(current!.reader!.pull, noted)),
      onReadError
    )
    // Once the first item is noted and nothing follows the reply's text, a pull is the reader's own.
    const readPlain: Pull<A> = Effect.catchAll(
      Effect.suspend(() => current!.reader!.pull),
      onReadError
    )
    /** Begins an attempt on `server`, its first-token limit counted from now. */
    const begin = (server: string, span: Tracer.Span | undefined): Running<A> => {
      const start = clock.unsafeCurrentTimeMillis()
      const delivered: Delivered = { deltas: 0, characters: 0 }
      const limit = limits.limitFor(clock, start, callEnd, delivered)
      const watchdog = makeWatchdog(clock, scope, limits.nextWait(limit))
      const number = ++started
      const attempting = attemptNow!({ server, number, clock, start, limit, watchdog, span, delivered })
      return {
        server,
        number,
        span,
        watchdog,
        start,
        delivered,
        // Under a tracer, what the attempt makes (the cookie request's spans, log lines) is the attempt's.
        attempting: span === undefined ? attempting : Effect.withParentSpan(attempting, span),
        continuedFrom: cut?.from,
        reader: undefined,
        latency: 0,
        firstItem: undefined
      }
    }
    /** The attempt's span: its server, number, and why it was chosen (strategy, the server's estimate). */
    const attemptSpan = (parent: Tracer.Span, server: string, hedged: boolean) =>
      Effect.flatMap(pool.health, (all) => {
        const attributes: Record<string, unknown> = {
          "easychat.server": server,
          "easychat.attempt": started + 1,
          "easychat.strategy": strategy
        }
        const estimate = all.find((h) => h.server === server)?.estimateMs
        if (estimate !== undefined) attributes["easychat.estimate_ms"] = estimate
        if (hedged) attributes["easychat.hedge"] = true
        if (cut !== undefined) attributes["easychat.continuation"] = true
        return Effect.makeSpan("easychat.attempt", { parent, attributes, captureStackTrace: false })
      })
    /** Chooses the next server and begins an attempt on it, or says why the call cannot go on. */
    const launch = <X, E>(
      hedged: boolean,
      then: (running: Running<A>) => Effect.Effect<X, E>,
      orElse: (error: EasyChatError) => Effect.Effect<X, E>
    ): Effect.Effect<X, E> => {
      if (Either.isLeft(plan)) return orElse(plan.left)
      const now = clock.unsafeCurrentTimeMillis()
      if (last === "") callEnd = now + limits.millis.total
      else if (now >= callEnd) return orElse(limits.timeoutOf(last, "total"))
      if (started >= settings.maxAttempts) return orElse(exhausted())
      return Effect.flatMap(pool.choose(tried, plan.right.pinned), (chosen) => {
        if (Option.isNone(chosen)) return orElse(exhausted())
        const server = chosen.value
        tried.add(server)
        last = server
        if (callSpan === undefined) return then(begin(server, undefined))
        return Effect.flatMap(attemptSpan(callSpan, server, hedged), (span) => then(begin(server, span)))
      })
    }
    const open = (running: Running<A>): Pull<A> => {
      current = running
      return Effect.matchEffect(running.attempting, {
        onFailure: onAttemptError,
        onSuccess: (opened): Pull<A> => {
          running.reader = opened.reader
          running.latency = opened.latency
          return openOnly ? Effect.succeed(Chunk.empty()) : read
        }
      })
    }

    /** A hedged call's attempts until one delivers: a race (`hedge.ts`) on the driver's own steps. */
    const hedged = (after: number, max: number): Pull<A> => {
      const attemptsRacing = (racing ??= new Set())
      const won = ({ running, batch, hedges, cancelled }: Won<A>): Pull<A> => {
        current = running
        last = running.server
        let logged: Effect.Effect<void> = Effect.void
        if (hedges > 0) {
          callSpan?.attribute("easychat.hedge", `attempt ${running.number} won (${hedges} hedged)`)
          logged = Effect.annotateLogs(Effect.logDebug("easychat: hedged call answered"), {
            server: running.server,
            attempt: running.number,
            hedges,
            cancelled
          })
        }
        if (batch === undefined) return Effect.zipRight(logged, onAttemptEnd)
        noted(batch)
        if (!openOnly) return Effect.as(logged, batch)
        pending = batch
        return Effect.as(logged, Chunk.empty())
      }
      const contest: Contest<A> = {
        clock,
        scope,
        racing: attemptsRacing,
        launch: (hedged) =>
          launch(
            hedged,
            (running) => {
              if (!hedged) return Effect.succeed(running)
              const waiting = [...attemptsRacing].map((r) => r.server).join(", ")
              const logged = Effect.annotateLogs(
                Effect.logDebug("easychat: no first item in time, hedging on another server"),
                { server: running.server, attempt: running.number, strategy, waiting }
              )
              return Effect.as(logged, running)
            },
            Effect.fail
          ),
        settle,
        lose: (running) => endAttempt(running, "lost", Exit.void)
      }
      return Effect.matchEffect(race(contest, after, max), { onFailure: failed, onSuccess: won })
    }
    const next: Pull<A> = Effect.suspend(() => {
      const after =
        hedge === undefined ? undefined : hedge.after === "auto" ? pool.firstDeltaQuantile(0.95) : hedge.after
      if (after === undefined) return launch(false, open, failed)
      return hedged(after, hedge!.max)
    })
    const takePending = () => {
      const batch = pending!
      pending = undefined
      return batch
    }
    const pull: Pull<A> = Effect.suspend(() =>
      pending !== undefined
        ? Effect.succeed(takePending())
        : current?.reader === undefined
          ? next
          : current.firstItem === undefined || continuation !== undefined
            ? read
            : readPlain
    )
    return {
      pull,
      start: Effect.suspend(() => {
        openOnly = true
        return pull
      }),
      poll: () => {
        if (pending !== undefined) return takePending()
        const batch = current?.reader?.poll()
        return batch === undefined ? undefined : noted(batch)
      },
      wait: (wake) => pending === undefined && (current?.reader?.wait(wake) ?? false),
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
