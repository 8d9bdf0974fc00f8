import type * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { type AttemptError, type Phase, Timeout } from "../Errors.js"
import type { Settings } from "./settings.js"

/** How much of one call's stream has reached the caller. */
export interface Delivered {
  deltas: number
  characters: number
}

/** How long the next wait of an attempt may take, and the phase that ends when it runs out. */
export type Limit = () => { readonly ms: number; readonly phase: Phase }

/** The phase limits of one client, in milliseconds, and the errors they end with. */
export interface Limits {
  readonly millis: { readonly [P in Phase]: number }
  readonly timeoutOf: (server: string, phase: Phase) => Timeout
  /**
   * The limit of an attempt's next wait: the first token (counted from the
   * attempt's start) until a delta arrived, then the idle gap; never past the
   * call's end.
   */
  readonly limitFor: (clock: Clock.Clock, attemptStart: number, callEnd: number, delivered: Delivered) => Limit
  /** What a watchdog sleeps through when nothing is armed: the next wait's limit. */
  readonly nextWait: (limit: Limit) => () => number
  /** Bounds `effect` by what is left of `limit` (when given). */
  readonly within: <A>(
    server: string,
    limit: Limit | undefined,
    effect: Effect.Effect<A, AttemptError>
  ) => Effect.Effect<A, AttemptError>
  /** Bounds `effect` by the headers timeout: a request other than the chat request, a drain, an error page. */
  readonly headers: <A, R>(
    server: string,
    effect: Effect.Effect<A, AttemptError, R>
  ) => Effect.Effect<A, AttemptError, R>
}

export const makeLimits = (settings: Settings): Limits => {
  const { timeouts } = settings
  const millis = {
    headers: Duration.toMillis(timeouts.headers),
    firstToken: Duration.toMillis(timeouts.firstToken),
    idle: Duration.toMillis(timeouts.idle),
    total: Duration.toMillis(timeouts.total)
  } as const
  const timeoutOf = (server: string, phase: Phase) => new Timeout({ server, phase, millis: millis[phase] })
  return {
    millis,
    timeoutOf,
    limitFor: (clock, attemptStart, callEnd, delivered) => () => {
      const now = clock.unsafeCurrentTimeMillis()
      const own =
        delivered.deltas > 0
          ? { ms: millis.idle, phase: "idle" as const }
          : { ms: attemptStart + millis.firstToken - now, phase: "firstToken" as const }
      const total = callEnd - now
      return total < own.ms ? { ms: total, phase: "total" } : own
    },
    nextWait: (limit) => () => Math.max(limit().ms, 0) || millis.idle,
    within: (server, limit, effect) =>
      limit === undefined
        ? effect
        : Effect.suspend(() => {
            const { ms, phase } = limit()
            return ms <= 0
              ? Effect.fail(timeoutOf(server, phase))
              : Effect.timeoutFail(effect, { duration: ms, onTimeout: () => timeoutOf(server, phase) })
          }),
    headers: (server, effect) =>
      Effect.timeoutFail(effect, { duration: timeouts.headers, onTimeout: () => timeoutOf(server, "headers") })
  }
}
