// Issue 22's routing against real local mirrors (testkit's MirrorPool, each
// with its own time to first delta) on the Node transport: the latency
// strategy against random, priority tiers and weights.
import type { EasyChat, Presets } from "@easychat/core"
import { MirrorPool } from "@easychat/testkit"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Stream from "effect/Stream"
import { afterEach, describe, expect, it } from "vitest"
import { echo, messages, posts, run } from "./support.js"

let pool: MirrorPool.MirrorPool | undefined
afterEach(async () => {
  await pool?.close()
  pool = undefined
})

/** One streamed call: the server that answered it (every delta names the same one). */
const call = (chat: EasyChat.Service) =>
  Effect.map(Stream.runCollect(chat.stream({ messages })), (chunk) => {
    const deltas = Chunk.toReadonlyArray(chunk)
    expect(deltas.map((d) => d.content).join("")).toBe(echo)
    return deltas[0]!.server
  })

/** `n` calls one after the other, the pool's draws seeded: the server of each. */
const calls = (options: Presets.Options, n: number) =>
  run(options, (chat) =>
    Effect.gen(function* () {
      const servers: Array<string> = []
      for (let i = 0; i < n; i++) servers.push(yield* call(chat))
      return { servers, health: yield* chat.pool.health }
    }).pipe(Effect.withRandom(Random.make("routing")))
  )

/** Four fast mirrors and one whose first delta comes 300 ms after its headers. */
const fourFastOneSlow = async () => {
  pool = await MirrorPool.start([{}, {}, {}, {}, { firstDeltaMs: 300 }], { firstDeltaMs: 5 })
  return pool
}

describe("latency against random, four fast mirrors and one slow", () => {
  it("latency tries each mirror once, then picks the slow one in under 10% of 100 calls", async () => {
    const p = await fourFastOneSlow()
    const slow = p.urls[4]!
    const { servers, health } = await calls({ servers: p.urls, strategy: "latency", cookieInit: "off" }, 105)
    // Never measured first: the first five calls went to five different mirrors.
    expect(new Set(servers.slice(0, 5)).size).toBe(5)
    const slowAfterWarmUp = servers.slice(5).filter((s) => s === slow).length
    expect(slowAfterWarmUp).toBeLessThan(10)
    const byServer = new Map(health.map((h) => [h.server, h]))
    expect(byServer.get(slow)!.estimateMs!).toBeGreaterThanOrEqual(280)
    for (const url of p.urls.slice(0, 4)) expect(byServer.get(url)!.estimateMs!).toBeLessThan(150)
    expect(health.every((h) => h.failureRate === 0 && h.weight === 1 && h.priority === 0)).toBe(true)
  })

  it("random picks the slow one about a fifth of the time", async () => {
    const p = await fourFastOneSlow()
    const slow = p.urls[4]!
    const { servers } = await calls({ servers: p.urls, strategy: "random", cookieInit: "off" }, 100)
    const slowShare = servers.filter((s) => s === slow).length / 100
    expect(slowShare).toBeGreaterThan(0.07)
    expect(slowShare).toBeLessThan(0.36)
  })
})

describe("tiers and weights", () => {
  it("the second tier serves only while the first is down or already tried", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "status", status: 503 } }, {}, {}])
    const [down, backup, spare] = pool.urls as [string, string, string]
    const { servers } = await calls(
      {
        servers: [`${down};priority=0`, { url: backup, priority: 1 }, `${spare};priority=2`],
        breaker: { failures: 1, cooldown: "1 minute" },
        cookieInit: "off"
      },
      10
    )
    // The first call tried the first tier and failed over to the second; its breaker then kept the first tier out.
    expect(servers).toEqual(Array.from({ length: 10 }, () => backup))
    expect(posts(pool.servers[0]!)).toBe(1)
    expect(posts(pool.servers[2]!)).toBe(0)
  })

  it("random follows the weights: 1 to 4", async () => {
    pool = await MirrorPool.start(2)
    const [light, heavy] = pool.urls as [string, string]
    const { servers, health } = await calls(
      { servers: [light, `${heavy};weight=4`], strategy: "random", cookieInit: "off" },
      100
    )
    const heavyShare = servers.filter((s) => s === heavy).length / 100
    expect(heavyShare).toBeGreaterThan(0.65)
    expect(heavyShare).toBeLessThan(0.93)
    expect(health.map((h) => h.weight)).toEqual([1, 4])
  })
})
