/**
 * How a pool chooses the next server of a call, as values: `random`,
 * `roundRobin`, or a strategy of your own. The pool keeps the rules that hold
 * whatever the strategy (open circuits skipped, one probe per half-open
 * circuit, servers already tried in the call, pinning) and hands a strategy
 * only the servers it may use.
 *
 * @example
 * // The server with the fewest consecutive failures, the first of them in pool order.
 * const steadiest: Strategy.Strategy = {
 *   name: "steadiest",
 *   choose: ({ candidates }) =>
 *     Effect.succeed(candidates.reduce((best, c) => (c.failures < best.failures ? c : best)))
 * }
 * EasyChat.layer({ servers, strategy: steadiest })
 * @since 0.3.0
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import type { ServerHealth } from "./ServerPool.js"

/**
 * A server a strategy may choose, with its health as `ServerPool.health`
 * reports it.
 * @since 0.3.0 @category models
 */
export interface Candidate extends ServerHealth {
  /** Its place in the pool's `servers`. */
  readonly index: number
}

/**
 * What a strategy chooses from.
 * @since 0.3.0 @category models
 */
export interface Choice {
  /** The servers of the pool that are usable and not yet tried in this call, in pool order. */
  readonly candidates: NonEmptyReadonlyArray<Candidate>
  /** Every server of the pool, in order. */
  readonly servers: ReadonlyArray<string>
  /** The server this pool's strategy chose last, by any call (`undefined` before the first). */
  readonly previous: string | undefined
}

/**
 * Chooses one of `choice.candidates`. Returning anything else is a bug in
 * the strategy: the call dies with a message that says so.
 * @since 0.3.0 @category models
 */
export interface Strategy {
  /** For logs and spans. */
  readonly name: string
  readonly choose: (choice: Choice) => Effect.Effect<Candidate>
}

/**
 * Uniform over the candidates, through Effect's `Random` (seed it in tests):
 * every usable server, unlike the original that never chose its last mirror.
 * @since 0.3.0 @category strategies
 */
export const random: Strategy = {
  name: "random",
  choose: ({ candidates }) => Effect.map(Random.nextIntBetween(0, candidates.length), (i) => candidates[i]!)
}

/**
 * The next candidate in pool order after the previous choice, wrapping
 * around: servers that cannot be used are skipped, not waited for.
 * @since 0.3.0 @category strategies
 */
export const roundRobin: Strategy = {
  name: "round-robin",
  choose: ({ candidates, servers, previous }) => {
    const start = previous === undefined ? 0 : servers.indexOf(previous) + 1
    // Candidates are in pool order: the first at or after `start`, else the first of all.
    return Effect.succeed(candidates.find((c) => c.index >= start) ?? candidates[0])
  }
}

const named = { random, "round-robin": roundRobin }

/**
 * The name of a built-in strategy, as the `strategy` option,
 * `EASYCHAT_STRATEGY` and the CLI's `--strategy` take it.
 * @since 0.3.0 @category models
 */
export type Name = keyof typeof named

/**
 * Every built-in strategy's name: the one list that options, configuration
 * and command lines are checked against.
 * @since 0.3.0 @category names
 */
export const names = Object.keys(named) as ReadonlyArray<Name>

/**
 * The built-in strategy of a name.
 * @since 0.3.0 @category names
 */
export const fromName = (name: Name): Strategy => named[name]

/**
 * Whether a value is a `Name`.
 * @since 0.3.0 @category guards
 */
export const isName = (u: unknown): u is Name => typeof u === "string" && (names as ReadonlyArray<string>).includes(u)

/**
 * Whether a value can serve as a strategy.
 * @since 0.3.0 @category guards
 */
export const isStrategy = (u: unknown): u is Strategy =>
  typeof u === "object" && u !== null && typeof (u as { choose?: unknown }).choose === "function"
