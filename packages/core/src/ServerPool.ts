/**
 * The pool of servers a call may use: which one to try next (pinned, or as
 * its `Strategy` chooses among the usable ones of the best priority tier), a
 * circuit breaker per server, what it has measured of each (time to first
 * delta, failure rate), and their health.
 *
 * @since 0.1.0
 */
import { isNonEmptyArray } from "effect/Array"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { AttemptError, InvalidRequest } from "./Errors.js"
import { isRequestFault } from "./internal/policy.js"
import { pinnedServer, resolve, type Settings } from "./internal/settings.js"
import type { Options } from "./Presets.js"
import type { Candidate } from "./Strategy.js"

/**
 * `closed`: in use. `open`: skipped until its cooldown (or a 429's
 * `Retry-After`) has passed. `half-open`: the cooldown has passed and one
 * probe call is let through; it closes the circuit or opens it again.
 * @since 0.1.0 @category models
 */
export type CircuitState = "closed" | "open" | "half-open"

/** @since 0.1.0 @category models */
export interface ServerHealth {
  readonly server: string
  readonly state: CircuitState
  /** Consecutive failures. */
  readonly failures: number
  /** Milliseconds until the headers of the last successful attempt. */
  readonly lastLatencyMs: number | undefined
  /** When an open circuit lets a probe through (epoch ms). */
  readonly openUntil: number | undefined
  /** The tag of the last failure, e.g. `HttpStatusError`. */
  readonly lastError: string | undefined
  /**
   * A moving average (EWMA) of the time to first delta of its successful
   * attempts, in milliseconds (a whole reply: its response); `undefined`
   * until one has succeeded.
   */
  readonly estimateMs: number | undefined
  /**
   * A moving average of its attempts' failures, from 0 (none lately) to 1;
   * failures that are the request's fault do not count.
   */
  readonly failureRate: number
  /** Its share of the choices within its tier (the `servers` option; default 1). */
  readonly weight: number
  /** Its tier (the `servers` option; default 0): lower is preferred. */
  readonly priority: number
}

/** @since 0.1.0 @category models */
export interface Service {
  readonly servers: ReadonlyArray<string>
  /** The name of the pool's strategy, for logs and spans. */
  readonly strategyName: string
  /**
   * The `q` quantile (0 to 1) of the time to first delta, in milliseconds,
   * over the pool's recent successful attempts on any server (the last
   * 256); `undefined` until 20 have been measured.
   */
  readonly firstDeltaQuantile: (q: number) => number | undefined
  /**
   * The next server for a call, as the strategy chooses among those not in
   * `tried` whose circuit is not open, of the best (lowest) priority tier
   * that has any. A pinned server is chosen once, unless its circuit is open.
   * When every circuit is open, the first attempt of a call goes to the
   * server whose circuit reopens first. `None` when no server is left.
   */
  readonly choose: (tried: ReadonlySet<string>, pinned: string | undefined) => Effect.Effect<Option.Option<string>>
  /** Resolves a per-call `activeServer` (index or URL). */
  readonly pin: (active: number | string) => Either.Either<string, InvalidRequest>
  /**
   * Records an attempt that ended well: `latencyMs` until its response's
   * headers, `firstDeltaMs` until its first delta (a whole reply: its response).
   */
  readonly onSuccess: (server: string, latencyMs: number, firstDeltaMs: number) => Effect.Effect<void>
  /** Records a failure; errors that are the request's fault do not count. */
  readonly onFailure: (server: string, error: AttemptError) => Effect.Effect<void>
  /** Frees a half-open server whose probe was interrupted. */
  readonly release: (server: string) => Effect.Effect<void>
  readonly health: Effect.Effect<ReadonlyArray<ServerHealth>>
}

/** @since 0.1.0 @category tags */
export class ServerPool extends Context.Tag("@easychat/core/ServerPool")<ServerPool, Service>() {}

interface Circuit {
  failures: number
  openUntil: number | undefined
  probing: boolean
  lastLatencyMs: number | undefined
  lastError: string | undefined
  estimateMs: number | undefined
  failureRate: number
}

/**
 * How much one success moves a server's `estimateMs`: `estimate += 0.3 ×
 * (sample − estimate)` (a sample's weight halves in about two later ones).
 * @since 0.4.0 @category constants
 */
export const estimateSmoothing = 0.3

/**
 * How much one attempt moves a server's `failureRate`: towards 1 by 0.2 of
 * the way on a failure, towards 0 on a success.
 * @since 0.4.0 @category constants
 */
export const failureSmoothing = 0.2

// The window of `firstDeltaQuantile`, and how many samples it needs before it answers.
const MAX_SAMPLES = 256
const MIN_SAMPLES = 20

/**
 * Options of `make` and `layer` beyond the pool's own.
 * @since 0.5.0 @category models
 */
export interface MakeOptions {
  /**
   * What another pool measured (its `health`), to start from: a server of
   * this pool found in it keeps its circuit (state, failures, when it
   * reopens), last latency, last error, estimate and failure rate, so that a
   * pool rebuilt with new options (a reloaded configuration) neither forgets
   * a server it knows to be down nor its latency. Servers not in it start
   * fresh; a half-open probe in flight is not carried over.
   */
  readonly seed?: ReadonlyArray<ServerHealth>
}

/** @internal */
export const fromSettings = (settings: Settings, extra: MakeOptions = {}): Service => {
  const seeded = new Map((extra.seed ?? []).map((h) => [h.server, h]))
  const circuits = new Map<string, Circuit>(
    settings.servers.map((s) => {
      const seed = seeded.get(s)
      return [
        s,
        {
          failures: seed?.failures ?? 0,
          openUntil: seed?.openUntil,
          probing: false,
          lastLatencyMs: seed?.lastLatencyMs,
          lastError: seed?.lastError,
          estimateMs: seed?.estimateMs,
          failureRate: seed?.failureRate ?? 0
        }
      ]
    })
  )
  const cooldown = Duration.toMillis(settings.breaker.cooldown)
  const maxRetryAfter = Duration.toMillis(settings.breaker.maxRetryAfter)
  const strategy = settings.strategy
  const routingOf = (server: string) => settings.routing.get(server) ?? { weight: 1, priority: 0 }
  let previous: string | undefined
  const stateOf = (c: Circuit, now: number): CircuitState =>
    c.openUntil === undefined ? "closed" : now < c.openUntil ? "open" : "half-open"
  const healthOf = (server: string, now: number): ServerHealth => {
    const c = circuits.get(server)!
    return {
      server,
      state: stateOf(c, now),
      failures: c.failures,
      lastLatencyMs: c.lastLatencyMs,
      openUntil: c.openUntil,
      lastError: c.lastError,
      estimateMs: c.estimateMs,
      failureRate: c.failureRate,
      ...routingOf(server)
    }
  }
  const usable = (server: string, now: number) => {
    const c = circuits.get(server)!
    const state = stateOf(c, now)
    return state === "closed" || (state === "half-open" && !c.probing)
  }
  const claim = (server: string, now: number) => {
    const c = circuits.get(server)!
    if (stateOf(c, now) === "half-open") c.probing = true
    return Option.some(server)
  }
  const samples: Array<number> = []
  let nextSample = 0
  return {
    servers: settings.servers,
    strategyName: strategy.name,
    firstDeltaQuantile: (q) => {
      if (samples.length < MIN_SAMPLES) return undefined
      const sorted = [...samples].sort((a, b) => a - b)
      const rank = Math.ceil(Math.min(Math.max(q, 0), 1) * sorted.length) - 1
      return sorted[Math.max(rank, 0)]
    },
    pin: (active) => pinnedServer(settings.servers, active, "activeServer"),
    choose: (tried, pinned) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        // A pinned call honours its server's circuit as any call does: an open circuit is not tried.
        if (pinned !== undefined) return tried.has(pinned) || !usable(pinned, now) ? Option.none() : claim(pinned, now)
        // Only the best tier that has a usable, untried server: lower tiers wait until it has none.
        let candidates: Array<Candidate> = []
        for (const [index, server] of settings.servers.entries()) {
          if (tried.has(server) || !usable(server, now)) continue
          const priority = routingOf(server).priority
          if (candidates.length > 0 && priority > candidates[0]!.priority) continue
          if (candidates.length > 0 && priority < candidates[0]!.priority) candidates = []
          candidates.push({ ...healthOf(server, now), index })
        }
        if (!isNonEmptyArray(candidates)) {
          // Every circuit is open and the call has not tried anything yet: rather than
          // failing without a request (a one-server pool would refuse every call for a
          // whole cooldown), try the server whose circuit reopens first.
          if (tried.size > 0) return Option.none()
          const soonest = [...settings.servers].sort(
            (a, b) => (circuits.get(a)!.openUntil ?? 0) - (circuits.get(b)!.openUntil ?? 0)
          )[0]
          return soonest === undefined ? Option.none() : Option.some(soonest)
        }
        const chosen = yield* strategy.choose({ candidates, servers: settings.servers, previous })
        const server = (chosen as Candidate | undefined)?.server
        if (server === undefined || !candidates.some((c) => c.server === server)) {
          // A bug in the strategy: a server it may not use would bypass the breakers.
          return yield* Effect.dieMessage(
            `The ${strategy.name} strategy chose ${String(server)}, which is not one of its candidates (${candidates.map((c) => c.server).join(", ")})`
          )
        }
        previous = server
        return claim(server, now)
      }),
    onSuccess: (server, latencyMs, firstDeltaMs) =>
      Effect.sync(() => {
        const c = circuits.get(server)
        if (c === undefined) return
        if (Number.isFinite(firstDeltaMs) && firstDeltaMs >= 0) {
          samples[nextSample] = firstDeltaMs
          nextSample = (nextSample + 1) % MAX_SAMPLES
          c.estimateMs =
            c.estimateMs === undefined ? firstDeltaMs : c.estimateMs + estimateSmoothing * (firstDeltaMs - c.estimateMs)
        }
        c.failureRate *= 1 - failureSmoothing
        c.failures = 0
        c.openUntil = undefined
        c.probing = false
        c.lastLatencyMs = latencyMs
        c.lastError = undefined
      }),
    onFailure: (server, error) =>
      Effect.gen(function* () {
        const c = circuits.get(server)
        if (c === undefined) return
        c.probing = false
        if (isRequestFault(error)) return
        const now = yield* Clock.currentTimeMillis
        c.failures++
        c.failureRate += failureSmoothing * (1 - c.failureRate)
        c.lastError = error._tag
        if (error._tag === "HttpStatusError" && error.status === 429 && error.retryAfter !== undefined) {
          c.openUntil = now + Math.min(error.retryAfter * 1000, maxRetryAfter)
        } else if (c.failures >= settings.breaker.failures || c.openUntil !== undefined) {
          // A failed half-open probe opens the circuit again for a whole cooldown.
          c.openUntil = now + cooldown
        }
      }),
    release: (server) =>
      Effect.sync(() => {
        const c = circuits.get(server)
        if (c !== undefined) c.probing = false
      }),
    health: Effect.map(Clock.currentTimeMillis, (now) => settings.servers.map((server) => healthOf(server, now)))
  }
}

/**
 * Builds a pool from the same options as `EasyChat.layer`.
 * @since 0.1.0 @category constructors
 */
export const make = (options?: Options, extra?: MakeOptions): Effect.Effect<Service, InvalidRequest> =>
  Effect.map(resolve(options), (settings) => fromSettings(settings, extra))

/** @since 0.1.0 @category layers */
export const layer = (options?: Options, extra?: MakeOptions): Layer.Layer<ServerPool, InvalidRequest> =>
  Layer.effect(ServerPool, make(options, extra))
