import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Random from "effect/Random"
import * as TestClock from "effect/TestClock"
import { HttpStatusError, Presets, ServerPool, TransportError } from "../src/index.js"

const servers = ["http://a.test", "http://b.test", "http://c.test"]
const none = new Set<string>()
const refused = (server: string) => new TransportError({ server, detail: "ECONNREFUSED" })
const choose = (pool: ServerPool.Service, tried = none, pinned?: string) =>
  Effect.map(pool.choose(tried, pinned), Option.getOrUndefined)

describe("selection", () => {
  it.effect("random is uniform over the whole pool: each of the seven EasyChat mirrors is chosen", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make(Presets.easyChat)
      const counts = new Map<string, number>()
      for (let i = 0; i < 7000; i++) {
        const s = (yield* choose(pool))!
        counts.set(s, (counts.get(s) ?? 0) + 1)
      }
      expect([...counts.keys()].sort()).toEqual([...Presets.easyChatServers].sort())
      // The original's randint(0, 5) never chose the seventh mirror; here each gets about 1/7.
      for (const n of counts.values()) expect(n).toBeGreaterThan(850)
      expect(counts.get("https://gxos1h1ddt.fastgpt.me")).toBeGreaterThan(850)
    }).pipe(Effect.withRandom(Random.make("seed-7")))
  )

  it.effect("random never picks a server already tried in the call", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers })
      for (let i = 0; i < 50; i++) {
        expect(yield* choose(pool, new Set(["http://a.test", "http://c.test"]))).toBe("http://b.test")
      }
      expect(yield* choose(pool, new Set(servers))).toBeUndefined()
    }).pipe(Effect.withRandom(Random.make(1)))
  )

  it.effect("round-robin rotates in pool order", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers, strategy: "round-robin" })
      const order = []
      for (let i = 0; i < 5; i++) order.push(yield* choose(pool))
      expect(order).toEqual([servers[0], servers[1], servers[2], servers[0], servers[1]])
    })
  )

  it.effect("pinned by index or URL; an index out of range is InvalidRequest", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers })
      expect(pool.pin(2)).toEqual(Either.right("http://c.test"))
      expect(pool.pin("http://b.test/")).toEqual(Either.right("http://b.test"))
      const bad = pool.pin(6)
      expect(Either.isLeft(bad) && bad.left).toMatchObject({ _tag: "InvalidRequest", field: "activeServer" })
      expect(Either.isLeft(pool.pin("http://elsewhere.test"))).toBe(true)
      expect(yield* choose(pool, none, "http://c.test")).toBe("http://c.test")
      // A pinned call has one server: once tried, nothing is left.
      expect(yield* choose(pool, new Set(["http://c.test"]), "http://c.test")).toBeUndefined()
    })
  )

  it.effect("an activeServer option out of range fails building the pool", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(ServerPool.make({ servers, activeServer: 3 }))
      expect(error).toMatchObject({ _tag: "InvalidRequest", field: "activeServer" })
    })
  )
})

describe("circuit breaker", () => {
  it.effect("opens after 3 consecutive failures, lets one probe through after the cooldown, closes on success", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers, strategy: "round-robin" })
      const a = "http://a.test"
      yield* pool.onFailure(a, refused(a))
      yield* pool.onFailure(a, refused(a))
      expect((yield* pool.health)[0]).toMatchObject({ state: "closed", failures: 2 })
      yield* pool.onFailure(a, refused(a))
      expect((yield* pool.health)[0]).toMatchObject({
        server: a,
        state: "open",
        failures: 3,
        lastError: "TransportError"
      })
      for (let i = 0; i < 6; i++) expect(yield* choose(pool)).not.toBe(a)

      yield* TestClock.adjust("30 seconds")
      expect((yield* pool.health)[0]!.state).toBe("half-open")
      expect(yield* choose(pool, new Set(["http://b.test", "http://c.test"]))).toBe(a)
      // Only one probe at a time.
      expect(yield* choose(pool, new Set(["http://b.test", "http://c.test"]))).toBeUndefined()
      yield* pool.onSuccess(a, 12, 12)
      expect((yield* pool.health)[0]).toMatchObject({ state: "closed", failures: 0, lastLatencyMs: 12 })
    })
  )

  it.effect("when every circuit is open, a call's first attempt goes to the one that reopens first", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers, breaker: { failures: 1, cooldown: "10 seconds" } })
      const [a, b, c] = servers as [string, string, string]
      yield* pool.onFailure(b, refused(b))
      yield* TestClock.adjust("1 second")
      yield* pool.onFailure(a, refused(a))
      yield* pool.onFailure(c, refused(c))
      expect((yield* pool.health).map((h) => h.state)).toEqual(["open", "open", "open"])
      expect(yield* choose(pool)).toBe(b)
      // Once the call has tried a server, open circuits are skipped again.
      expect(yield* choose(pool, new Set([b]))).toBeUndefined()
    })
  )

  it.effect("a pinned call honours its server's open circuit, and probes it once half-open", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers, breaker: { failures: 1, cooldown: "10 seconds" } })
      const a = servers[0]!
      expect(yield* choose(pool, none, a)).toBe(a)
      yield* pool.onFailure(a, refused(a))
      // Open: not tried, pinned or not.
      expect(yield* choose(pool, none, a)).toBeUndefined()
      yield* TestClock.adjust("10 seconds")
      expect(yield* choose(pool, none, a)).toBe(a)
      // Only one probe at a time.
      expect(yield* choose(pool, none, a)).toBeUndefined()
    })
  )

  it.effect("a failed probe opens the circuit for another whole cooldown", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers, breaker: { failures: 1, cooldown: "10 seconds" } })
      const a = "http://a.test"
      yield* pool.onFailure(a, refused(a))
      yield* TestClock.adjust("10 seconds")
      expect(yield* choose(pool, new Set(["http://b.test", "http://c.test"]))).toBe(a)
      yield* pool.onFailure(a, refused(a))
      expect((yield* pool.health)[0]!.state).toBe("open")
      yield* TestClock.adjust("9 seconds")
      expect((yield* pool.health)[0]!.state).toBe("open")
      yield* TestClock.adjust("1 second")
      expect((yield* pool.health)[0]!.state).toBe("half-open")
    })
  )

  it.effect("an interrupted probe frees the half-open server", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers: ["http://a.test", "http://b.test"], breaker: { failures: 1 } })
      const elsewhere = new Set(["http://b.test"])
      yield* pool.onFailure("http://a.test", refused("http://a.test"))
      yield* TestClock.adjust("30 seconds")
      expect(yield* choose(pool, elsewhere)).toBe("http://a.test")
      expect(yield* choose(pool, elsewhere)).toBeUndefined()
      yield* pool.release("http://a.test")
      expect(yield* choose(pool, elsewhere)).toBe("http://a.test")
    })
  )

  it.effect("a 429's Retry-After opens the circuit at once for that long, capped at 60 s", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers })
      const [a, b] = servers as [string, string]
      const limited = (server: string, retryAfter: number) =>
        new HttpStatusError({ server, status: 429, statusText: "Too Many Requests", body: "", retryAfter })
      yield* pool.onFailure(a, limited(a, 5))
      yield* pool.onFailure(b, limited(b, 3600))
      expect((yield* pool.health).slice(0, 2).map((h) => h.state)).toEqual(["open", "open"])
      yield* TestClock.adjust("5 seconds")
      expect((yield* pool.health).slice(0, 2).map((h) => h.state)).toEqual(["half-open", "open"])
      yield* TestClock.adjust("55 seconds")
      expect((yield* pool.health)[1]!.state).toBe("half-open")
    })
  )

  it.effect("errors that are the request's fault (400, 422) do not count against the server", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers, breaker: { failures: 1 } })
      const a = "http://a.test"
      for (const status of [400, 422]) {
        yield* pool.onFailure(a, new HttpStatusError({ server: a, status, statusText: "", body: "" }))
      }
      expect((yield* pool.health)[0]).toMatchObject({ state: "closed", failures: 0 })
    })
  )

  it.effect("a success resets the consecutive failure count", () =>
    Effect.gen(function* () {
      const pool = yield* ServerPool.make({ servers })
      const a = "http://a.test"
      yield* pool.onFailure(a, refused(a))
      yield* pool.onFailure(a, refused(a))
      yield* pool.onSuccess(a, 5, 5)
      yield* pool.onFailure(a, refused(a))
      expect((yield* pool.health)[0]).toMatchObject({ state: "closed", failures: 1 })
    })
  )
})

describe("seed", () => {
  it.effect("a pool seeded with another's health keeps the circuits and estimates of the servers they share", () =>
    Effect.gen(function* () {
      const [a, b, c] = servers as [string, string, string]
      const old = yield* ServerPool.make({ servers: [a, b], breaker: { failures: 1, cooldown: "10 seconds" } })
      yield* old.onFailure(a, refused(a))
      yield* old.onSuccess(b, 12, 40)
      const pool = yield* ServerPool.make(
        { servers: [a, b, c], breaker: { failures: 1, cooldown: "10 seconds" } },
        { seed: yield* old.health }
      )
      const [ha, hb, hc] = yield* pool.health
      expect(ha).toMatchObject({ server: a, state: "open", failures: 1, lastError: "TransportError", failureRate: 0.2 })
      expect(hb).toMatchObject({ server: b, state: "closed", lastLatencyMs: 12, estimateMs: 40 })
      expect(hc).toMatchObject({ server: c, state: "closed", failures: 0, estimateMs: undefined, failureRate: 0 })
      // The open circuit is honoured: `a` is not chosen until its cooldown has passed.
      for (let i = 0; i < 20; i++) expect(yield* choose(pool)).not.toBe(a)
      yield* TestClock.adjust("10 seconds")
      expect((yield* pool.health)[0]!.state).toBe("half-open")
      // Unseeded, the same options start every server fresh.
      const fresh = yield* ServerPool.make({ servers: [a, b, c] })
      expect((yield* fresh.health).every((h) => h.state === "closed" && h.estimateMs === undefined)).toBe(true)
    })
  )
})
