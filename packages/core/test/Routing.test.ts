// Routing (issue 22): servers with weights and priority tiers, the `latency`
// strategy's estimates and choices, and the pool's quantile of time to first
// delta. Seeded `Random` and the TestClock; the driver part runs on the
// scripted in-memory transport. No sockets.
import { describe, expect, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as TestClock from "effect/TestClock"
import { EasyChat, HttpStatusError, type Presets, ServerPool, Strategy, TransportError } from "../src/index.js"
import { chunk, DONE, finish } from "./fixtures.js"
import * as Scripted from "./scripted.js"

const [a, b, c, d] = ["http://a.test", "http://b.test", "http://c.test", "http://d.test"] as const
const none = new Set<string>()
const refused = (server: string) => new TransportError({ server, detail: "ECONNREFUSED" })
const choose = (pool: ServerPool.Service, tried: ReadonlySet<string> = none, pinned?: string) =>
  Effect.map(pool.choose(tried, pinned), Option.getOrUndefined)
/** How often each server is chosen in `n` choices (nothing recorded in between). */
const counts = (pool: ServerPool.Service, n: number, tried: ReadonlySet<string> = none) =>
  Effect.gen(function* () {
    const out = new Map<string, number>()
    for (let i = 0; i < n; i++) {
      const s = (yield* choose(pool, tried))!
      out.set(s, (out.get(s) ?? 0) + 1)
    }
    return out
  })
const invalid = (servers: ReadonlyArray<Presets.ServerOption>) => Effect.flip(ServerPool.make({ servers }))
/** Pearson's chi-square of observed counts against expected shares. */
const chiSquare = (observed: ReadonlyArray<number>, shares: ReadonlyArray<number>) => {
  const n = observed.reduce((x, y) => x + y, 0)
  return observed.reduce((sum, o, i) => sum + (o - n * shares[i]!) ** 2 / (n * shares[i]!), 0)
}

describe("servers as objects and text", () => {
  it.effect("a URL, url;weight=…;priority=…, or { url, weight, priority }; health shows them", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({
        servers: [`${a}/;weight=3;priority=1`, { url: `${b}/v1`, weight: 0.5 }, c, { url: d, priority: 2 }]
      })
      expect(pool.servers).toEqual([a, b, c, d])
      expect((yield* pool.health).map((h) => [h.server, h.weight, h.priority])).toEqual([
        [a, 3, 1],
        [b, 0.5, 0],
        [c, 1, 0],
        [d, 1, 2]
      ])
    })
  )

  it.effect("attribute names ignore case and spaces; a server given twice keeps its first entry", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: [`${a} ; Weight = 2 ;PRIORITY=4`, `${a};weight=9`, b] })
      expect(pool.servers).toEqual([a, b])
      expect((yield* pool.health)[0]).toMatchObject({ weight: 2, priority: 4 })
    })
  )

  it.effect("each bad entry is InvalidRequest naming its field", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [Presets.ServerOption, string, string]> = [
        [`${c};weight=0`, "servers.2.weight", "must be a positive finite number"],
        [`${c};weight=-1`, "servers.2.weight", "must be a positive finite number"],
        [`${c};weight=`, "servers.2.weight", "must be a positive finite number"],
        [`${c};weight=x`, "servers.2.weight", "must be a positive finite number"],
        [`${c};weight=Infinity`, "servers.2.weight", "must be a positive finite number"],
        [{ url: c, weight: Number.NaN }, "servers.2.weight", "must be a positive finite number"],
        [{ url: c, weight: "2" as unknown as number }, "servers.2.weight", "must be a positive finite number"],
        [`${c};priority=1.5`, "servers.2.priority", "must be an integer ≥ 0"],
        [`${c};priority=-1`, "servers.2.priority", "must be an integer ≥ 0"],
        [{ url: c, priority: 0.5 }, "servers.2.priority", "must be an integer ≥ 0"],
        [`${c};wieght=2`, "servers.2", 'has an unknown attribute "wieght" (weight and priority are known)'],
        ["ftp://c.test;weight=2", "servers.2", "must be an http or https URL"],
        [{ url: "nope" }, "servers.2.url", "must be an http or https URL"],
        [{} as Presets.Server, "servers.2.url", "must be an http or https URL"],
        [42 as unknown as string, "servers.2", "must be a URL or { url, weight?, priority? }"]
      ]
      for (const [server, field, rule] of cases) {
        expect(yield* invalid([a, b, server])).toMatchObject({ _tag: "InvalidRequest", field, rule })
      }
    })
  )

  it.effect("EASYCHAT_SERVERS takes the same text, comma-separated", () =>
    Effect.gen(function* () {
      const env = new Map([["EASYCHAT_SERVERS", `${a};weight=3;priority=1, ${b} ,${c};priority=0`]])
      const options = yield* EasyChat.options().pipe(Effect.withConfigProvider(ConfigProvider.fromMap(env)))
      const pool = yield* ServerPool.make(options)
      expect((yield* pool.health).map((h) => [h.server, h.weight, h.priority])).toEqual([
        [a, 3, 1],
        [b, 1, 0],
        [c, 1, 0]
      ])
    })
  )
})

describe("priority tiers", () => {
  const tiered = [a, b, `${c};priority=1`, `${d};priority=2`]

  it.effect("only the best tier with a usable, untried server is handed to the strategy", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: tiered, breaker: { failures: 1 } })
      expect([...(yield* counts(pool, 300)).keys()].sort()).toEqual([a, b])
      // b open, a tried: tier 1.
      yield* pool.onFailure(b, refused(b))
      expect(yield* choose(pool, new Set([a]))).toBe(c)
      // Tier 0 and 1 tried or open: tier 2.
      expect(yield* choose(pool, new Set([a, c]))).toBe(d)
      expect(yield* choose(pool, new Set([a, c, d]))).toBeUndefined()
      // a untried and closed: tier 0 again.
      expect([...(yield* counts(pool, 50)).keys()]).toEqual([a])
    }).pipe(Effect.withRandom(Random.make("tiers")))
  )

  it.effect("a tier is left while its servers are open, and taken back once one is half-open", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: tiered, breaker: { failures: 1, cooldown: "10 seconds" } })
      yield* pool.onFailure(a, refused(a))
      yield* pool.onFailure(b, refused(b))
      expect([...(yield* counts(pool, 50)).keys()]).toEqual([c])
      yield* TestClock.adjust("10 seconds")
      // a and b are half-open: the first choice claims one's probe, the next the other's, then tier 1.
      const probes = [yield* choose(pool), yield* choose(pool)]
      expect(probes.sort()).toEqual([a, b])
      expect(yield* choose(pool)).toBe(c)
    }).pipe(Effect.withRandom(Random.make("half-open")))
  )

  it.effect("pinning, round-robin and the soonest-reopening fallback keep their rules", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: tiered, strategy: "round-robin", breaker: { failures: 1 } })
      expect(yield* choose(pool, none, d)).toBe(d)
      expect([yield* choose(pool), yield* choose(pool), yield* choose(pool)]).toEqual([a, b, a])
      for (const s of [c, a, b, d]) {
        yield* TestClock.adjust("1 second")
        yield* pool.onFailure(s, refused(s))
      }
      // Every circuit open: the one that reopens first, whatever its tier.
      expect(yield* choose(pool)).toBe(c)
    })
  )
})

describe("weights", () => {
  it.effect("random draws in proportion to the weights, within the tier", () =>
    Effect.gen(function* () {
      for (const seed of [1, 2, 3]) {
        const pool = yield* ServerPool.make({
          servers: [a, `${b};weight=2`, `${c};weight=5`, `${d};weight=100;priority=1`]
        })
        const n = yield* Effect.withRandom(counts(pool, 8000), Random.make(seed))
        expect(n.get(d)).toBeUndefined()
        // 2 degrees of freedom: 13.8 is the 0.1% tail.
        expect(chiSquare([n.get(a) ?? 0, n.get(b) ?? 0, n.get(c) ?? 0], [1 / 8, 2 / 8, 5 / 8])).toBeLessThan(13.8)
      }
    })
  )

  it.effect("round-robin ignores them", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: [`${a};weight=9`, b, c], strategy: "round-robin" })
      expect([yield* choose(pool), yield* choose(pool), yield* choose(pool), yield* choose(pool)]).toEqual([a, b, c, a])
    })
  )

  it.effect("latency, among equal estimates, follows the weights", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: [`${a};weight=3`, b, c], strategy: "latency" })
      for (const s of [a, b, c]) yield* pool.onSuccess(s, 5, 40)
      const n = yield* Effect.withRandom(counts(pool, 6000), Random.make("weights"))
      // Ties go to the first drawn (weighted): 0.95 × 3/5 + 0.05 × 1/3 ≈ 0.587.
      expect(n.get(a)! / 6000).toBeGreaterThan(0.56)
      expect(n.get(a)! / 6000).toBeLessThan(0.62)
    })
  )
})

describe("latency", () => {
  it.effect("keeps an EWMA of the time to first delta and of the failure rate, shown by health", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: [a, b], strategy: "latency" })
      expect((yield* pool.health)[0]).toMatchObject({ estimateMs: undefined, failureRate: 0, weight: 1, priority: 0 })
      yield* pool.onSuccess(a, 10, 100)
      expect((yield* pool.health)[0]).toMatchObject({ estimateMs: 100, lastLatencyMs: 10 })
      yield* pool.onSuccess(a, 10, 200)
      expect((yield* pool.health)[0]!.estimateMs).toBeCloseTo(100 + ServerPool.estimateSmoothing * 100)
      yield* pool.onFailure(a, refused(a))
      expect((yield* pool.health)[0]!.failureRate).toBeCloseTo(ServerPool.failureSmoothing)
      yield* pool.onSuccess(a, 10, 130)
      expect((yield* pool.health)[0]!.failureRate).toBeCloseTo(
        ServerPool.failureSmoothing * (1 - ServerPool.failureSmoothing)
      )
      // A request's own fault says nothing of the server.
      yield* pool.onFailure(b, refused(b))
      yield* pool.onFailure(b, new HttpStatusError({ server: b, status: 400, statusText: "", body: "" }))
      expect((yield* pool.health)[1]!.failureRate).toBeCloseTo(ServerPool.failureSmoothing)
    })
  )

  it.effect("a server never measured is chosen first; one that has only failed is measured", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: [a, b, c, d], strategy: "latency" })
      yield* pool.onSuccess(a, 1, 1)
      yield* pool.onFailure(b, refused(b))
      expect([...(yield* counts(pool, 200)).keys()].sort()).toEqual([c, d])
      yield* pool.onSuccess(c, 1, 1)
      expect([...(yield* counts(pool, 50)).keys()]).toEqual([d])
    }).pipe(Effect.withRandom(Random.make("fresh")))
  )

  it.effect("power of two choices: the lower score wins; the slowest only through exploration", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: [a, b, c, d], strategy: "latency" })
      for (const [s, ms] of [
        [a, 50],
        [b, 60],
        [c, 70],
        [d, 300]
      ] as const)
        yield* pool.onSuccess(s, ms, ms)
      const n = yield* Effect.withRandom(counts(pool, 4000), Random.make("p2c"))
      // d: only the exploration share's quarter (1.25%); a wins every draw it is in.
      expect((n.get(d) ?? 0) / 4000).toBeLessThan(0.025)
      expect(n.get(a)! > n.get(b)! && n.get(b)! > n.get(c)!).toBe(true)
      expect(n.get(a)! / 4000).toBeGreaterThan(0.45)
    })
  )

  it.effect("the scripted draws: explore, then two drawn and the faster kept", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: [a, b, c, d], strategy: "latency" })
      for (const [s, ms] of [
        [a, 50],
        [b, 50],
        [c, 50],
        [d, 300]
      ] as const)
        yield* pool.onSuccess(s, ms, ms)
      // Below the exploration share: uniform, index 3.
      expect(yield* Effect.withRandom(choose(pool), Random.fixed([0.01, 3]))).toBe(d)
      // Otherwise d is drawn first, then a among the rest: a wins.
      expect(yield* Effect.withRandom(choose(pool), Random.fixed([0.5, 3, 0]))).toBe(a)
      expect(yield* Effect.withRandom(choose(pool), Random.fixed([0.5, 1, 2]))).toBe(b)
    })
  )

  it.effect("failures inflate the estimate: fast but failing loses to slower and steady", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: [a, b], strategy: "latency" })
      yield* pool.onSuccess(a, 1, 50)
      yield* pool.onSuccess(b, 1, 80)
      for (let i = 0; i < 3; i++) yield* pool.onFailure(a, refused(a))
      // a: 50 / (1 − 0.488) ≈ 98 > 80.
      expect(Strategy.latencyScore({ ...(yield* pool.health)[0]!, index: 0 })).toBeGreaterThan(80)
      expect(yield* Effect.withRandom(choose(pool), Random.fixed([0.5, 0, 0]))).toBe(b)
      expect(
        Strategy.latencyScore({ ...(yield* pool.health)[0]!, failureRate: 1, estimateMs: 10, index: 0 })
      ).toBeCloseTo(100)
    })
  )

  it.effect("a slow server that became fast again is noticed through exploration", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: [a, b, c], strategy: "latency" })
      yield* pool.onSuccess(a, 1, 100)
      yield* pool.onSuccess(b, 1, 100)
      yield* pool.onSuccess(c, 1, 2000)
      // Every choice is recorded as its server answers now: c has become the fastest.
      const now = new Map<string, number>([
        [a, 100],
        [b, 100],
        [c, 10]
      ])
      const chosen: Array<string> = []
      for (let i = 0; i < 600; i++) {
        const s = (yield* choose(pool))!
        chosen.push(s)
        yield* pool.onSuccess(s, 1, now.get(s)!)
      }
      const late = chosen.slice(-200).filter((s) => s === c).length
      expect(late / 200).toBeGreaterThan(0.5)
    }).pipe(Effect.withRandom(Random.make("explore")))
  )
})

describe("firstDeltaQuantile and strategyName", () => {
  it.effect("undefined under 20 samples, then a quantile of the last 256 successes of any server", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: [a, b], strategy: "latency" })
      expect(pool.strategyName).toBe("latency")
      for (let i = 1; i <= 19; i++) yield* pool.onSuccess(i % 2 ? a : b, 1, i)
      expect(pool.firstDeltaQuantile(0.95)).toBeUndefined()
      yield* pool.onSuccess(a, 1, 20)
      expect(pool.firstDeltaQuantile(0.95)).toBe(19)
      expect(pool.firstDeltaQuantile(0.5)).toBe(10)
      expect(pool.firstDeltaQuantile(1)).toBe(20)
      expect(pool.firstDeltaQuantile(0)).toBe(1)
      // 300 more at 1000 ms: the first 20 have left the window.
      for (let i = 0; i < 300; i++) yield* pool.onSuccess(b, 1, 1000)
      expect(pool.firstDeltaQuantile(0)).toBe(1000)
      expect((yield* ServerPool.make({ servers: [a] })).strategyName).toBe("random")
    })
  )
})

describe("through the driver", () => {
  const CHAT = "/api/openai/v1/chat/completions"
  /** A stream whose first delta comes `ms` after its headers. */
  const streamAfter = (ms: number) => Scripted.sse([{ data: chunk("Hi"), delay: ms }, finish(), DONE])

  it.effect("latency learns each server's time to first delta from real calls and prefers the faster", () =>
    Effect.gen(function* () {
      const calls = 60
      const transport = Scripted.make({
        [a]: Array.from({ length: calls }, () => streamAfter(40)),
        [b]: Array.from({ length: calls }, () => streamAfter(40)),
        [c]: Array.from({ length: calls }, () => streamAfter(400))
      })
      const layer = EasyChat.layer({ servers: [a, b, c], strategy: "latency", cookieInit: "off" }).pipe(
        Layer.provide(transport.layer),
        Layer.orDie
      )
      const servers = yield* Effect.gen(function* () {
        const chat = yield* EasyChat.EasyChat
        const out: Array<string> = []
        for (let i = 0; i < calls; i++) {
          const fiber = yield* Effect.fork(chat.complete({ messages: [{ role: "user", content: "hi" }] }))
          yield* TestClock.adjust("1 second")
          out.push((yield* Fiber.join(fiber)).server)
        }
        const health = yield* chat.pool.health
        expect(health.map((h) => h.estimateMs)).toEqual([40, 40, 400])
        return out
      }).pipe(Effect.provide(layer), Effect.withRandom(Random.make("driver")))
      // Each server once (never measured first), then c only by exploration.
      expect(new Set(servers.slice(0, 3))).toEqual(new Set([a, b, c]))
      expect(servers.slice(3).filter((s) => s === c).length).toBeLessThan(6)
      expect(transport.asked().every((x) => x.endsWith(CHAT))).toBe(true)
    })
  )
})
