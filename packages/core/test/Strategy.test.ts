import { describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as TestClock from "effect/TestClock"
import { EasyChat, ServerPool, Strategy, TransportError } from "../src/index.js"

const servers = ["http://a.test", "http://b.test", "http://c.test", "http://d.test"]
const [a, b, c, d] = servers as [string, string, string, string]
const none = new Set<string>()
const refused = (server: string) => new TransportError({ server, detail: "ECONNREFUSED" })
const choose = (pool: ServerPool.Service, tried = none, pinned?: string) =>
  Effect.map(pool.choose(tried, pinned), Option.getOrUndefined)
/** Opens a server's circuit (a pool built with `breaker.failures: 1`). */
const open = (pool: ServerPool.Service, server: string) => pool.onFailure(server, refused(server))

/** A strategy that records what it was given and answers with `pick`. */
const recording = (pick: (choice: Strategy.Choice) => Strategy.Candidate) => {
  const seen: Array<Strategy.Choice> = []
  const strategy: Strategy.Strategy = {
    name: "recording",
    choose: (choice) =>
      Effect.sync(() => {
        seen.push(choice)
        return pick(choice)
      })
  }
  return { seen, strategy }
}

describe("names", () => {
  it("one list, each name its built-in strategy", () => {
    expect(Strategy.names).toEqual(["random", "round-robin", "latency"])
    for (const name of Strategy.names) expect(Strategy.fromName(name).name).toBe(name)
    expect(Strategy.fromName("random")).toBe(Strategy.random)
    expect(Strategy.fromName("round-robin")).toBe(Strategy.roundRobin)
    expect(Strategy.fromName("latency")).toBe(Strategy.latency)
    expect(Strategy.isName("fastest")).toBe(false)
  })

  it.effect("the strategy option takes a name or a value; anything else is InvalidRequest", () =>
    Effect.gen(function* () {
      for (const strategy of [...Strategy.names, Strategy.random, Strategy.roundRobin, Strategy.latency]) {
        yield* ServerPool.make({ servers, strategy })
      }
      for (const strategy of ["fastest", {}, 1] as Array<any>) {
        const error = yield* Effect.flip(ServerPool.make({ servers, strategy }))
        expect(error).toMatchObject({
          _tag: "InvalidRequest",
          field: "strategy",
          rule: "must be random, round-robin or latency, or a Strategy"
        })
      }
    })
  )

  it.effect("EASYCHAT_STRATEGY takes the same names", () =>
    Effect.gen(function* () {
      const read = (value: string) =>
        EasyChat.options().pipe(
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["EASYCHAT_STRATEGY", value]])))
        )
      for (const name of Strategy.names) expect((yield* read(name)).strategy).toBe(name)
      expect(Exit.isFailure(yield* Effect.exit(read("fastest")))).toBe(true)
    })
  )
})

describe("random", () => {
  it.effect("is uniform over the usable candidates, never an open circuit", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers, breaker: { failures: 1 } })
      yield* open(pool, b)
      const counts = new Map<string, number>()
      for (let i = 0; i < 3000; i++) {
        const s = (yield* choose(pool))!
        counts.set(s, (counts.get(s) ?? 0) + 1)
      }
      expect([...counts.keys()].sort()).toEqual([a, c, d])
      for (const n of counts.values()) expect(n).toBeGreaterThan(900)
    }).pipe(Effect.withRandom(Random.make("uniform")))
  )

  it.effect("the same seed chooses the same servers", () =>
    Effect.gen(function* () {
      const run = Effect.gen(function* () {
        const pool = yield* ServerPool.make({ servers })
        const order: Array<string | undefined> = []
        for (let i = 0; i < 20; i++) order.push(yield* choose(pool))
        return order
      })
      const first = yield* Effect.withRandom(run, Random.make(42))
      expect(yield* Effect.withRandom(run, Random.make(42))).toEqual(first)
      expect(new Set(first).size).toBeGreaterThan(1)
    })
  )
})

describe("round-robin", () => {
  it.effect("rotates in pool order, skipping open circuits, and takes a server back once half-open", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({
        servers,
        strategy: "round-robin",
        breaker: { failures: 1, cooldown: "10 seconds" }
      })
      yield* open(pool, b)
      const order: Array<string | undefined> = []
      for (let i = 0; i < 5; i++) order.push(yield* choose(pool))
      expect(order).toEqual([a, c, d, a, c])
      yield* TestClock.adjust("10 seconds")
      // The cursor is after c: d, then a; b is half-open and usable again on its turn.
      expect([yield* choose(pool), yield* choose(pool), yield* choose(pool)]).toEqual([d, a, b])
    })
  )

  it.effect("within a call, the next untried server after the previous choice", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers, strategy: "round-robin" })
      expect(yield* choose(pool)).toBe(a)
      // Another call chose a; this one already tried b and c.
      expect(yield* choose(pool, new Set([b, c]))).toBe(d)
      expect(yield* choose(pool, new Set([a, b]))).toBe(c)
    })
  )

  it.effect("one value, a cursor per pool", () =>
    Effect.gen(function* () {
      const one = yield* ServerPool.make({ servers, strategy: Strategy.roundRobin })
      const two = yield* ServerPool.make({ servers, strategy: Strategy.roundRobin })
      expect([yield* choose(one), yield* choose(one)]).toEqual([a, b])
      expect(yield* choose(two)).toBe(a)
    })
  )
})

describe("a strategy of one's own", () => {
  it.effect("is given the usable, untried servers with their health, and its choice is used", () =>
    Effect.gen(function* () {
      const { seen, strategy } = recording(({ candidates }) => candidates[candidates.length - 1]!)
      const pool = yield* ServerPool.make({ servers, strategy, breaker: { failures: 2 } })
      yield* open(pool, c)
      yield* open(pool, c)
      yield* pool.onFailure(d, refused(d))
      yield* pool.onSuccess(b, 42, 42)
      expect(yield* choose(pool, new Set([a]))).toBe(d)
      expect(seen).toHaveLength(1)
      expect(seen[0]!.servers).toEqual(servers)
      expect(seen[0]!.previous).toBeUndefined()
      expect(seen[0]!.candidates).toEqual([
        {
          server: b,
          index: 1,
          state: "closed",
          failures: 0,
          lastLatencyMs: 42,
          openUntil: undefined,
          lastError: undefined,
          estimateMs: 42,
          failureRate: 0,
          weight: 1,
          priority: 0
        },
        {
          server: d,
          index: 3,
          state: "closed",
          failures: 1,
          lastLatencyMs: undefined,
          openUntil: undefined,
          lastError: "TransportError",
          estimateMs: undefined,
          failureRate: 0.2,
          weight: 1,
          priority: 0
        }
      ])
      expect(yield* choose(pool)).toBe(d)
      expect(seen[1]!.previous).toBe(d)
      expect(seen[1]!.candidates.map((c) => c.server)).toEqual([a, b, d])
    })
  )

  it.effect("is not asked for a pinned call, nor when every circuit is open", () =>
    Effect.gen(function* () {
      const { seen, strategy } = recording(({ candidates }) => candidates[0])
      const pool = yield* ServerPool.make({ servers: [a, b], strategy, breaker: { failures: 1 } })
      expect(yield* choose(pool, none, b)).toBe(b)
      yield* open(pool, a)
      yield* open(pool, b)
      expect(yield* choose(pool)).toBe(a)
      expect(seen).toHaveLength(0)
    })
  )

  it.effect("choosing a half-open server claims its one probe", () =>
    Effect.gen(function* () {
      const { seen, strategy } = recording(({ candidates }) => candidates[0])
      const pool = yield* ServerPool.make({ servers: [a, b], strategy, breaker: { failures: 1 } })
      yield* open(pool, a)
      yield* TestClock.adjust("30 seconds")
      expect(yield* choose(pool)).toBe(a)
      expect(seen[0]!.candidates.map((c) => [c.server, c.state])).toEqual([
        [a, "half-open"],
        [b, "closed"]
      ])
      // The probe is under way: a is no candidate until it ends.
      expect(yield* choose(pool)).toBe(b)
      expect(seen[1]!.candidates.map((c) => c.server)).toEqual([b])
    })
  )

  it.effect("a choice outside the candidates is a defect that names the strategy and the server", () =>
    Effect.gen(function* () {
      const outsider = (server: string | undefined) =>
        recording(({ candidates }) => ({ ...candidates[0], server }) as Strategy.Candidate).strategy
      const cases: Array<[string | undefined, ReadonlySet<string>]> = [
        ["http://elsewhere.test", none],
        [a, new Set([a])], // already tried in this call
        [b, none], // open circuit
        [undefined, none]
      ]
      for (const [server, tried] of cases) {
        const pool = yield* ServerPool.make({ servers, strategy: outsider(server), breaker: { failures: 1 } })
        yield* open(pool, b)
        const exit = yield* Effect.exit(pool.choose(tried, undefined))
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        const defect = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
        expect(String((defect as Error).message)).toBe(
          `The recording strategy chose ${server}, which is not one of its candidates (${[a, c, d]
            .filter((s) => !tried.has(s))
            .join(", ")})`
        )
      }
    })
  )
})
