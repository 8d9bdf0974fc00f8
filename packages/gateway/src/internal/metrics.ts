// The gateway's metrics: a small registry (counters, gauges read at scrape time, histograms) written in
// Prometheus' text exposition format 0.0.4, the metrics the gateway keeps, and the pool wrapper that counts
// upstream attempts. No dependency: the format is a few lines of text per sample.

import { Errors, ServerPool } from "@easychat/core"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

/** The content type of the text format, as Prometheus asks for it. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

type Labels = Readonly<Record<string, string>>

/** A label value in the text format: backslash, double quote and line feed escaped. */
export const escapeLabelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")

/** A `# HELP` text: backslash and line feed escaped. */
const escapeHelp = (text: string): string => text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

/** A sample value: Go's float forms for the special values (`+Inf`, `-Inf`, `NaN`). */
export const formatValue = (value: number): string =>
  Number.isNaN(value) ? "NaN" : value === Infinity ? "+Inf" : value === -Infinity ? "-Inf" : String(value)

const labelText = (names: ReadonlyArray<string>, values: ReadonlyArray<string>, extra = ""): string => {
  const pairs = names.map((name, i) => `${name}="${escapeLabelValue(values[i] ?? "")}"`)
  if (extra !== "") pairs.push(extra)
  return pairs.length === 0 ? "" : `{${pairs.join(",")}}`
}

interface Family {
  readonly name: string
  readonly help: string
  readonly type: "counter" | "gauge" | "histogram"
  readonly labelNames: ReadonlyArray<string>
  /** Its sample lines, without the `# HELP` and `# TYPE` lines. */
  readonly samples: (out: Array<string>) => void
}

/** A series' label values, in the family's order, and their key in the family's map. */
const valuesOf = (names: ReadonlyArray<string>, labels: Labels): ReadonlyArray<string> =>
  names.map((name) => labels[name] ?? "")
// A unit separator cannot be confused with any character of a label value.
const keyOf = (values: ReadonlyArray<string>) => values.join("\u001f")

export interface Counter {
  readonly inc: (labels: Labels, by?: number) => void
  /** The value of one series (0 when it has none), for tests and logs. */
  readonly get: (labels: Labels) => number
}

export interface Gauge {
  readonly set: (labels: Labels, value: number) => void
  readonly add: (labels: Labels, by: number) => void
  readonly get: (labels: Labels) => number
}

export interface Histogram {
  readonly observe: (labels: Labels, value: number) => void
}

/** A gauge whose samples are read when scraped (the pool's health). */
export type Collect = () => Effect.Effect<ReadonlyArray<readonly [Labels, number]>>

/** The families of a registry, in the order they were declared, and the text of all of them. */
export interface Registry {
  readonly counter: (name: string, help: string, labelNames: ReadonlyArray<string>) => Counter
  readonly gauge: (name: string, help: string, labelNames: ReadonlyArray<string>) => Gauge
  readonly histogram: (
    name: string,
    help: string,
    labelNames: ReadonlyArray<string>,
    buckets: ReadonlyArray<number>
  ) => Histogram
  readonly collected: (name: string, help: string, labelNames: ReadonlyArray<string>, collect: Collect) => void
  /** The text exposition of every family (gauges read at scrape time included). */
  readonly exposition: Effect.Effect<string>
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/

export const makeRegistry = (): Registry => {
  const families: Array<Family> = []
  const collectors: Array<{ readonly family: Omit<Family, "samples">; readonly collect: Collect }> = []
  const declare = (name: string, labelNames: ReadonlyArray<string>) => {
    // A bad name is a bug here, not a runtime condition: the exposition would not parse.
    if (!METRIC_NAME.test(name)) throw new Error(`invalid metric name ${name}`)
    for (const label of labelNames) {
      if (!LABEL_NAME.test(label) || label.startsWith("__") || label === "le") throw new Error(`invalid label ${label}`)
    }
    if (families.some((f) => f.name === name) || collectors.some((c) => c.family.name === name))
      throw new Error(`metric ${name} declared twice`)
  }
  const scalar = (name: string, help: string, labelNames: ReadonlyArray<string>, type: "counter" | "gauge") => {
    declare(name, labelNames)
    const series = new Map<string, { readonly values: ReadonlyArray<string>; value: number }>()
    const cell = (labels: Labels) => {
      const values = valuesOf(labelNames, labels)
      const key = keyOf(values)
      let found = series.get(key)
      if (found === undefined) series.set(key, (found = { values, value: 0 }))
      return found
    }
    families.push({
      name,
      help,
      type,
      labelNames,
      samples: (out) => {
        for (const { values, value } of series.values())
          out.push(`${name}${labelText(labelNames, values)} ${formatValue(value)}`)
      }
    })
    return {
      cell,
      get: (labels: Labels) => series.get(keyOf(valuesOf(labelNames, labels)))?.value ?? 0
    }
  }
  return {
    counter: (name, help, labelNames) => {
      const { cell, get } = scalar(name, help, labelNames, "counter")
      return {
        inc: (labels, by = 1) => {
          // A counter only goes up.
          if (by > 0) cell(labels).value += by
        },
        get
      }
    },
    gauge: (name, help, labelNames) => {
      const { cell, get } = scalar(name, help, labelNames, "gauge")
      return {
        set: (labels, value) => {
          cell(labels).value = value
        },
        add: (labels, by) => {
          cell(labels).value += by
        },
        get
      }
    },
    histogram: (name, help, labelNames, buckets) => {
      declare(name, labelNames)
      const bounds = [...buckets].sort((a, b) => a - b).filter((b) => Number.isFinite(b))
      const series = new Map<
        string,
        { readonly values: ReadonlyArray<string>; readonly counts: Array<number>; sum: number; count: number }
      >()
      families.push({
        name,
        help,
        type: "histogram",
        labelNames,
        samples: (out) => {
          for (const { values, counts, sum, count } of series.values()) {
            // Buckets are cumulative: each counts the observations at or below its bound.
            let cumulative = 0
            bounds.forEach((bound, i) => {
              cumulative += counts[i]!
              out.push(`${name}_bucket${labelText(labelNames, values, `le="${formatValue(bound)}"`)} ${cumulative}`)
            })
            out.push(`${name}_bucket${labelText(labelNames, values, 'le="+Inf"')} ${count}`)
            out.push(`${name}_sum${labelText(labelNames, values)} ${formatValue(sum)}`)
            out.push(`${name}_count${labelText(labelNames, values)} ${count}`)
          }
        }
      })
      return {
        observe: (labels, value) => {
          if (Number.isNaN(value)) return
          const values = valuesOf(labelNames, labels)
          const key = keyOf(values)
          let found = series.get(key)
          if (found === undefined) series.set(key, (found = { values, counts: bounds.map(() => 0), sum: 0, count: 0 }))
          // Counted in its own bucket only; the exposition adds them up.
          const at = bounds.findIndex((bound) => value <= bound)
          if (at >= 0) found.counts[at]!++
          found.sum += value
          found.count++
        }
      }
    },
    collected: (name, help, labelNames, collect) => {
      declare(name, labelNames)
      collectors.push({ family: { name, help, type: "gauge", labelNames }, collect })
    },
    exposition: Effect.gen(function* () {
      const out: Array<string> = []
      const head = (family: Omit<Family, "samples">) => {
        out.push(`# HELP ${family.name} ${escapeHelp(family.help)}`)
        out.push(`# TYPE ${family.name} ${family.type}`)
      }
      for (const family of families) {
        head(family)
        family.samples(out)
      }
      for (const { family, collect } of collectors) {
        head(family)
        for (const [labels, value] of yield* collect()) {
          out.push(
            `${family.name}${labelText(family.labelNames, valuesOf(family.labelNames, labels))} ${formatValue(value)}`
          )
        }
      }
      return `${out.join("\n")}\n`
    })
  }
}

/** Seconds: Prometheus' base unit of time. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
const FIRST_DELTA_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60]

/** How a request ended, as the metrics and the access log name it. */
export type Outcome = "ok" | "client_error" | "error" | "cut" | "aborted"

/** The route of a request no pool served: the gateway's own endpoints, and requests refused before routing. */
export const NO_ROUTE = "none"

/** The route of the gateway's one pool, until routes are configured. */
export const DEFAULT_ROUTE = "default"

/**
 * The gateway's metrics, one set per gateway, and the pools whose health is
 * read at scrape time.
 */
export interface Metrics {
  readonly requests: Counter
  readonly duration: Histogram
  readonly firstDelta: Histogram
  readonly streamsOpen: Gauge
  readonly attempts: Counter
  readonly failures: Counter
  readonly failovers: Counter
  /** The pools `instrument` wrapped, by route: their health is what `/metrics` reports. */
  readonly pools: Map<string, ServerPool.Service>
  readonly registry: Registry
}

const STATES: ReadonlyArray<ServerPool.CircuitState> = ["closed", "half-open", "open"]

/**
 * The metrics of a gateway. `poolsNow` gives the pools to report the health
 * of when scraped: the instrumented ones, or the one in the context.
 */
export const makeMetrics = (): Metrics => {
  const registry = makeRegistry()
  const pools = new Map<string, ServerPool.Service>()
  const requests = registry.counter(
    "easychat_gateway_requests_total",
    "Requests answered, by route (none: the gateway's own endpoints and requests refused before routing), HTTP status and outcome (ok, client_error, error, cut, aborted).",
    ["route", "status", "outcome"]
  )
  const duration = registry.histogram(
    "easychat_gateway_request_duration_seconds",
    "Time from a request's arrival to the end of its answer (the last byte of a stream handed to the socket).",
    ["route"],
    DURATION_BUCKETS
  )
  const firstDelta = registry.histogram(
    "easychat_gateway_first_delta_seconds",
    "Time from a streamed request's arrival to its first event sent (for a chat stream: its first delta).",
    ["route"],
    FIRST_DELTA_BUCKETS
  )
  const streamsOpen = registry.gauge("easychat_gateway_streams_open", "Event streams being sent to clients now.", [
    "route"
  ])
  const attempts = registry.counter(
    "easychat_upstream_attempts_total",
    "Upstream attempts that ended, by route, server and outcome (ok or error); attempts cancelled (a client that left, a hedge that lost) are not counted.",
    ["route", "server", "outcome"]
  )
  const failures = registry.counter(
    "easychat_upstream_failures_total",
    "Failed upstream attempts, by route, server and error tag (HttpStatusError, TransportError, Timeout, ...).",
    ["route", "server", "error"]
  )
  const failovers = registry.counter(
    "easychat_upstream_failovers_total",
    "Failed upstream attempts after which the call went on to another server, by route, the server that failed and its error tag.",
    ["route", "server", "error"]
  )
  const health =
    (read: (h: ServerPool.ServerHealth) => ReadonlyArray<readonly [Labels, number]>): Collect =>
    () =>
      Effect.map(
        Effect.forEach([...pools], ([route, pool]) =>
          Effect.map(pool.health, (servers) =>
            servers.flatMap((h) =>
              read(h).map(([labels, value]) => [{ route, server: h.server, ...labels }, value] as const)
            )
          )
        ),
        (all) => all.flat()
      )
  registry.collected(
    "easychat_upstream_circuit_state",
    "Each server's circuit breaker: 1 for its current state (closed, half-open or open), 0 for the others.",
    ["route", "server", "state"],
    health((h) => STATES.map((state) => [{ state }, h.state === state ? 1 : 0] as const))
  )
  registry.collected(
    "easychat_upstream_consecutive_failures",
    "Each server's consecutive failed attempts (its breaker opens at the pool's threshold).",
    ["route", "server"],
    health((h) => [[{}, h.failures]])
  )
  registry.collected(
    "easychat_upstream_first_delta_estimate_seconds",
    "Each server's moving estimate of its time to first delta (absent until an attempt on it succeeded).",
    ["route", "server"],
    health((h) => (h.estimateMs === undefined ? [] : [[{}, h.estimateMs / 1000]]))
  )
  registry.collected(
    "easychat_upstream_failure_rate",
    "Each server's moving failure rate, from 0 to 1.",
    ["route", "server"],
    health((h) => [[{}, h.failureRate]])
  )
  return { requests, duration, firstDelta, streamsOpen, attempts, failures, failovers, pools, registry }
}

/**
 * What the gateway learns of one request while it is served: set by the
 * handlers (route, model) and by the instrumented pool (attempts), read when
 * the answer ends, for the metrics and the access log.
 */
export interface Exchange {
  /** The route that serves it (`NO_ROUTE` until a handler picks one). */
  route: string
  /** The `model` of its body, when it had one. */
  model: string | undefined
  /** Upstream attempts begun for it. */
  attempts: number
  /**
   * Its latest failed attempt not yet followed by another: a failover once
   * the next one begins, counted under the failed attempt's route (the next
   * may be on a fallback route).
   */
  failed: { readonly route: string; readonly server: string; readonly error: string } | undefined
}

/** The request being served, in the context of its handler and of its answer's body. */
export class CurrentExchange extends Context.Tag("@easychat/gateway/CurrentExchange")<CurrentExchange, Exchange>() {}

/**
 * Notes what a handler knows of its request (the route it picked, the model
 * asked for) for the metrics and the access log; nothing outside a request.
 */
export const annotate = (fields: { readonly route?: string; readonly model?: unknown }): Effect.Effect<void> =>
  Effect.map(Effect.serviceOption(CurrentExchange), (current) => {
    if (Option.isNone(current)) return
    if (fields.route !== undefined) current.value.route = fields.route
    // A model name only: never a whole value a client could fill with anything.
    if (typeof fields.model === "string") current.value.model = fields.model.slice(0, 200)
  })

/**
 * The pool of `route`, its attempts counted in `metrics`: every attempt of
 * a call begins with a `choose` that names a server, and ends with
 * `onSuccess` or `onFailure` (core's `failover.ts`), unless it is cancelled
 * (its client left, its hedge lost). Its health is reported at scrape time.
 * Give the pool this returns to `EasyChat.make` (as its `ServerPool`).
 */
export const instrument = (pool: ServerPool.Service, metrics: Metrics, route: string): ServerPool.Service => {
  metrics.pools.set(route, pool)
  const exchange = Effect.serviceOption(CurrentExchange)
  const counted: ServerPool.Service = {
    ...pool,
    choose: (tried, pinned) =>
      Effect.flatMap(
        pool.choose(tried, pinned),
        (chosen): Effect.Effect<Option.Option<string>> =>
          Option.isNone(chosen)
            ? Effect.succeed(chosen)
            : Effect.map(exchange, (current) => {
                if (Option.isSome(current)) {
                  const ex = current.value
                  ex.attempts++
                  if (ex.failed !== undefined) {
                    metrics.failovers.inc(ex.failed)
                    ex.failed = undefined
                  }
                }
                return chosen
              })
      ),
    onSuccess: (server, latencyMs, firstDeltaMs) =>
      Effect.zipRight(
        Effect.sync(() => metrics.attempts.inc({ route, server, outcome: "ok" })),
        pool.onSuccess(server, latencyMs, firstDeltaMs)
      ),
    onFailure: (server, error) =>
      Effect.zipRight(
        Effect.flatMap(exchange, (current) =>
          Effect.sync(() => {
            metrics.attempts.inc({ route, server, outcome: "error" })
            metrics.failures.inc({ route, server, error: error._tag })
            // The request's own fault (400, 422) ends the call: no other server is asked.
            if (Option.isSome(current) && !Errors.isRequestFault(error))
              current.value.failed = { route, server, error: error._tag }
          })
        ),
        pool.onFailure(server, error)
      )
  }
  registries.set(counted, metrics)
  return counted
}

/** The metrics an instrumented pool counts its attempts in. */
const registries = new WeakMap<ServerPool.Service, Metrics>()

/** The metrics `pool` counts its attempts in, when `instrument` made it: a gateway over it reports those. */
export const metricsOf = (pool: ServerPool.Service): Metrics | undefined => registries.get(pool)

/**
 * `GET /metrics`: the text exposition. Without instrumented pools (a pool of
 * the caller's, given to `Gateway.layer`), the health reported is that of
 * the pool in the context, as the default route's.
 */
export const scrape = (metrics: Metrics) =>
  Effect.flatMap(ServerPool.ServerPool, (pool) => {
    if (metrics.pools.size === 0) metrics.pools.set(DEFAULT_ROUTE, pool)
    return Effect.map(metrics.registry.exposition, (text) =>
      HttpServerResponse.text(text, { contentType: CONTENT_TYPE, headers: { "cache-control": "no-store" } })
    )
  })
