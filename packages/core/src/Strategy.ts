/**
 * How a pool chooses the next server of a call, as values: `random`,
 * `roundRobin`, `latency`, or a strategy of your own. The pool keeps the
 * rules that hold whatever the strategy (open circuits skipped, one probe per
 * half-open circuit, servers already tried in the call, pinning, priority
 * tiers) and hands a strategy only the servers it may use, of one tier.
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
 * reports it: its circuit, its `weight` and `priority`, and what the pool has
 * measured (`estimateMs`, `failureRate`).
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
  /**
   * The servers of the pool that are usable and not yet tried in this call,
   * of the best (lowest) priority tier that has any, in pool order.
   */
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

/** One of `candidates` with a chance proportional to its weight. */
const weighted = (candidates: ReadonlyArray<Candidate>): Effect.Effect<Candidate> => {
  const first = candidates[0]!
  // Equal weights draw as the unweighted strategy always did: the same seed, the same servers.
  if (candidates.every((c) => c.weight === first.weight)) {
    return Effect.map(Random.nextIntBetween(0, candidates.length), (i) => candidates[i]!)
  }
  const total = candidates.reduce((sum, c) => sum + c.weight, 0)
  return Effect.map(Random.next, (u) => {
    let left = u * total
    for (const c of candidates) {
      left -= c.weight
      if (left < 0) return c
    }
    return candidates[candidates.length - 1]!
  })
}

/**
 * Random over the candidates, each with a chance proportional to its weight
 * (uniform when the weights are equal), through Effect's `Random` (seed it in
 * tests): every usable server, unlike the original that never chose its last
 * mirror.
 * @since 0.3.0 @category strategies
 */
export const random: Strategy = {
  name: "random",
  choose: ({ candidates }) => weighted(candidates)
}

/**
 * The next candidate in pool order after the previous choice, wrapping
 * around: servers that cannot be used are skipped, not waited for. Weights
 * do not apply.
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

/**
 * The share of `latency`'s choices made uniformly at random, so that a server
 * that became fast again is measured again.
 * @since 0.4.0 @category constants
 */
export const latencyExploration = 0.05

/**
 * The failure rate beyond which `latency` inflates an estimate no further
 * (`estimateMs / (1 − 0.9)`: ten times).
 * @since 0.4.0 @category constants
 */
export const latencyMaxFailureRate = 0.9

/**
 * What `latency` compares, lower is better: the estimated time to first
 * delta inflated by the failure rate. A server that has only failed has no
 * estimate and scores `Infinity`.
 * @since 0.4.0 @category strategies
 */
export const latencyScore = (candidate: Candidate): number =>
  candidate.estimateMs === undefined
    ? Number.POSITIVE_INFINITY
    : candidate.estimateMs / (1 - Math.min(candidate.failureRate, latencyMaxFailureRate))

const measured = (c: Candidate) => c.estimateMs !== undefined || c.failureRate > 0

/**
 * The fastest by the pool's measures, without herding: servers never measured
 * (no success, no failure) are chosen first, weighted at random; otherwise two
 * candidates are drawn by weight (power of two choices) and the one with the
 * lower `latencyScore` wins. A `latencyExploration` share of choices is
 * uniform over the candidates instead. Randomness is Effect's `Random`.
 * @since 0.4.0 @category strategies
 */
export const latency: Strategy = {
  name: "latency",
  choose: ({ candidates }) =>
    Effect.gen(function* () {
      const fresh = candidates.filter((c) => !measured(c))
      if (fresh.length > 0) return yield* weighted(fresh)
      if (candidates.length === 1) return candidates[0]
      if ((yield* Random.next) < latencyExploration) {
        return candidates[yield* Random.nextIntBetween(0, candidates.length)]!
      }
      const one = yield* weighted(candidates)
      const two = yield* weighted(candidates.filter((c) => c !== one))
      return latencyScore(two) < latencyScore(one) ? two : one
    })
}

const named = { random, "round-robin": roundRobin, latency }

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
