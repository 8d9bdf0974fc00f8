import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/**
 * One sleeper per attempt fails whatever wait outlives its deadline: the
 * response headers, then each read of the body. It sleeps until the armed
 * deadline or, with nothing armed, for as long as the next wait could last;
 * so arming costs a few stores, not a fiber or a race per wait.
 */
export interface Watchdog {
  /**
   * Runs `expire` once if `deadline` passes before `disarm` or another `arm`.
   * When the sleeper would wake too late and must be a fiber, returns the
   * Effect that starts one in time: run it before waiting.
   */
  readonly arm: (deadline: number, expire: () => void) => Effect.Effect<void> | undefined
  readonly disarm: () => void
  /** Whether the sleeper wakes by `deadline`, so that `arm` starts none. */
  readonly wakesBy: (deadline: number) => boolean
  /** The attempt is over: a timer is cleared, a fiber exits when it wakes (or with the call's scope). */
  readonly stop: () => void
}

/**
 * Effect's live clock, whose `sleep` is a `setTimeout`: on it the watchdog
 * sleeps with a timer of its own. Forking a sleeping fiber cost about 0.4 ms
 * of CPU per cold call, most of it before the first delta.
 */
export const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)
/** The longest delay `setTimeout` takes; a longer sleep never ends, as with Effect's `sleep`. */
const MAX_TIMER_MILLIS = 2 ** 31 - 1

/**
 * `nextMillis`: how long the next wait could last, slept through when nothing
 * is armed (> 0). A clock other than the live one (a `TestClock`) gets a fiber
 * asleep on it, forked in `scope`.
 */
export const makeWatchdog = (clock: Clock.Clock, scope: Scope.Scope, nextMillis: () => number): Watchdog => {
  let until = Number.POSITIVE_INFINITY
  let deadline = Number.POSITIVE_INFINITY
  let expire: (() => void) | undefined
  // A sleeper started for an earlier deadline replaces the one asleep; an old fiber exits when it wakes.
  let generation = 0
  let stopped = false
  let timer: ReturnType<typeof setTimeout> | undefined
  /** Fires a deadline that has passed; how long to sleep next, or `undefined` when this sleeper is done. */
  const wake = (own: number): number | undefined => {
    if (stopped || own !== generation) return undefined
    const now = clock.unsafeCurrentTimeMillis()
    if (expire !== undefined && now >= deadline) {
      const fire = expire
      expire = undefined
      fire()
      if (stopped) return undefined
    }
    const ms = expire !== undefined ? deadline - now : nextMillis()
    until = now + ms
    return ms
  }
  const loop = (own: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      const ms = wake(own)
      return ms === undefined ? Effect.void : Effect.flatMap(clock.sleep(Duration.millis(ms)), () => loop(own))
    })
  const sleep = (own: number, ms: number) => {
    if (timer !== undefined) clearTimeout(timer)
    timer =
      ms > MAX_TIMER_MILLIS
        ? undefined
        : setTimeout(
            () => {
              timer = undefined
              const next = wake(own)
              if (next !== undefined) sleep(own, next)
            },
            Math.max(ms, 0)
          )
  }
  return {
    arm: (at, onExpire) => {
      deadline = at
      expire = onExpire
      if (until <= at || stopped) return undefined
      until = at
      const own = ++generation
      if (clock !== liveClock) return Effect.asVoid(Effect.forkIn(loop(own), scope))
      sleep(own, at - clock.unsafeCurrentTimeMillis())
      return undefined
    },
    disarm: () => {
      expire = undefined
    },
    wakesBy: (at) => until <= at,
    stop: () => {
      stopped = true
      expire = undefined
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
    }
  }
}
