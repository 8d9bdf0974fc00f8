// Issue 4's rules against real local mirrors (testkit's MirrorPool) on the
// Node transport: failover, breakers, per-origin cookies, timeouts by phase.
import { MirrorPool, type MirrorServer } from "@easychat/testkit"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { afterEach, describe, expect, it } from "vitest"
import { echo, failure, gets, messages, posts, run, transports } from "./support.js"

let pool: MirrorPool.MirrorPool | undefined
afterEach(async () => {
  await pool?.close()
  pool = undefined
})

const fast = { headers: 400, firstToken: 800, idle: 400, total: 10_000 }

/** Seven mirrors: six broken in the ways real mirrors break, the last healthy. */
const sevenMirrors = async () => {
  pool = await MirrorPool.start([
    { fault: { kind: "refuse" } },
    { fault: { kind: "status", status: 503, body: "upstream down" } },
    { fault: { kind: "status", status: 429, headers: { "Retry-After": "30" } } },
    { fault: { kind: "html-200" } },
    { fault: { kind: "stall-before-headers" } },
    { fault: { kind: "stall-mid-stream", afterDeltas: 0 } },
    {}
  ])
  return pool
}

const text = (stream: Stream.Stream<{ content: string }, unknown>) =>
  Effect.map(Stream.runCollect(stream), (c) =>
    Chunk.toReadonlyArray(c)
      .map((d) => d.content)
      .join("")
  )

describe("failover across a pool of seven", () => {
  it("every call succeeds on the healthy mirror, streamed and whole", async () => {
    const p = await sevenMirrors()
    const options = { servers: p.urls, timeouts: fast, strategy: "round-robin" as const }
    await run(options, (chat) =>
      Effect.gen(function* () {
        expect(yield* text(chat.stream({ messages }))).toBe(echo)
        const whole = yield* chat.complete({ messages })
        // The mid-stream staller answers whole replies well: either may serve this one.
        expect(whole.content).toBe(echo)
        expect([p.urls[5], p.urls[6]]).toContain(whole.server)
      })
    )
  })

  it("AllServersFailed lists every attempt, with its server and typed error, in order", async () => {
    const p = await sevenMirrors()
    const urls = p.urls.slice(0, 6)
    const error = await failure({ servers: urls, timeouts: fast, strategy: "round-robin" }, (chat) =>
      Stream.runDrain(chat.stream({ messages }))
    )
    expect(error._tag).toBe("AllServersFailed")
    expect(error.attempts.map((a: any) => [a.server, a.error._tag, a.error.status ?? a.error.phase])).toEqual([
      [urls[0], "TransportError", undefined],
      [urls[1], "HttpStatusError", 503],
      [urls[2], "HttpStatusError", 429],
      [urls[3], "UnexpectedContentType", undefined],
      [urls[4], "Timeout", "headers"],
      [urls[5], "Timeout", "firstToken"]
    ])
    expect(error.attempts[2].error.retryAfter).toBe(30)
    expect(error.message).toContain(`3. ${urls[2]}: HttpStatusError: HTTP 429 Too Many Requests`)
  })

  it("maxAttempts bounds the attempts of a call", async () => {
    const p = await sevenMirrors()
    const error = await failure({ servers: p.urls.slice(0, 5), timeouts: fast, maxAttempts: 2 }, (chat) =>
      chat.complete({ messages })
    )
    expect(error.attempts).toHaveLength(2)
  })

  it("after the first delta there is no failover: StreamInterrupted, every delta delivered, no other server asked", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "close-mid-stream", afterDeltas: 3 }, chunkSize: 2 }, {}])
    const [cut, healthy] = pool.servers as [MirrorServer.MirrorServer, MirrorServer.MirrorServer]
    const seen: Array<string> = []
    const error = await failure({ servers: pool.urls, activeServer: 0 }, (chat) =>
      Stream.runForEach(chat.stream({ messages }), (d) => Effect.sync(() => seen.push(d.content)))
    )
    expect(seen).toEqual(["Ec", "ho", ": "])
    expect(error).toMatchObject({ _tag: "StreamInterrupted", server: cut.url, deltas: 3, characters: 6 })
    expect(posts(healthy)).toBe(0)
  })

  it("a 400 does not fail over", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "status", status: 400 } }, {}])
    const error = await failure({ servers: pool.urls, strategy: "round-robin" }, (chat) => chat.complete({ messages }))
    expect(error).toMatchObject({ _tag: "HttpStatusError", status: 400, server: pool.urls[0] })
    expect(posts(pool.servers[1]!)).toBe(0)
  })
})

describe("circuit breakers over many calls", () => {
  it("failing mirrors are skipped once their circuit opens; a 429 opens it at once", async () => {
    const p = await sevenMirrors()
    await run({ servers: p.urls, timeouts: fast }, (chat) =>
      Effect.gen(function* () {
        for (let i = 0; i < 30; i++) expect(yield* text(chat.stream({ messages }))).toBe(echo)
        const health = yield* chat.pool.health
        expect(health.map((h) => h.state)).toEqual(["open", "open", "open", "open", "open", "open", "closed"])
        expect(health[6]!.lastLatencyMs).toBeGreaterThanOrEqual(0)
      })
    )
    // Three failures open a circuit; the 429 opened it at its first answer.
    for (const i of [1, 3]) expect(posts(p.servers[i]!)).toBeLessThanOrEqual(3)
    expect(posts(p.servers[2]!)).toBe(1)
    expect(posts(p.servers[6]!)).toBe(30)
  })
})

describe("cookies per origin", () => {
  it("follows the same-origin redirect of GET / and sends the cookies of every hop", async () => {
    pool = await MirrorPool.start([{ redirect: true, requireCookies: true }])
    const server = pool.servers[0]!
    const reply = await run({ servers: pool.urls }, (chat) => chat.complete({ messages }))
    expect(reply.content).toBe(echo)
    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      "GET /",
      "GET /welcome",
      "POST /api/openai/v1/chat/completions"
    ])
    const sent = server.requests[2]!.cookies
    expect(sent).toEqual(server.cookies)
    expect(Object.keys(sent).length).toBeGreaterThanOrEqual(2)
  })

  it("never sends one mirror's cookies to another on the same host", async () => {
    pool = await MirrorPool.start([{ cookies: ["a=one; Path=/"] }, { cookies: ["b=two; Path=/"] }])
    await run({ servers: pool.urls, strategy: "round-robin" }, (chat) =>
      Effect.zip(chat.complete({ messages }), chat.complete({ messages }))
    )
    const [a, b] = pool.servers as [MirrorServer.MirrorServer, MirrorServer.MirrorServer]
    expect(a.requests.find((r) => r.method === "POST")!.headers.cookie).toBe("a=one")
    expect(b.requests.find((r) => r.method === "POST")!.headers.cookie).toBe("b=two")
  })

  it("honours Path and Domain: a cookie for another path or domain is not sent", async () => {
    pool = await MirrorPool.start([
      { cookies: ["kept=1; Path=/", "other=2; Path=/elsewhere", "foreign=3; Domain=example.com; Path=/"] }
    ])
    await run({ servers: pool.urls }, (chat) => chat.complete({ messages }))
    expect(pool.servers[0]!.requests[1]!.headers.cookie).toBe("kept=1")
  })

  it("re-uses cookies until they expire, then initialises again", async () => {
    pool = await MirrorPool.start([{ cookies: ["short=1; Path=/; Max-Age=1"] }])
    const server = pool.servers[0]!
    await run({ servers: pool.urls }, (chat) =>
      Effect.gen(function* () {
        yield* chat.complete({ messages })
        yield* chat.complete({ messages })
        expect(gets(server)).toBe(1)
        yield* Effect.sleep("1100 millis")
        yield* chat.complete({ messages })
      })
    )
    expect(gets(server)).toBe(2)
    expect(server.requests.filter((r) => r.method === "POST").map((r) => r.headers.cookie)).toEqual([
      "short=1",
      "short=1",
      "short=1"
    ])
  })

  it("a 403 re-initialises the server's cookies once, then the same server answers", async () => {
    pool = await MirrorPool.start([{ fault: [{ kind: "status", status: 403 }] }])
    const server = pool.servers[0]!
    const reply = await run({ servers: pool.urls }, (chat) => chat.complete({ messages }))
    expect(reply.content).toBe(echo)
    expect(server.requests.map((r) => r.method)).toEqual(["GET", "POST", "GET", "POST"])
  })

  it("cookieInit: best-effort ignores a failed GET /, required fails over on it, off never asks", async () => {
    pool = await MirrorPool.start([{ cookieFault: { kind: "status", status: 500 } }])
    const server = pool.servers[0]!
    expect((await run({ servers: pool.urls }, (chat) => chat.complete({ messages }))).content).toBe(echo)
    const error = await failure({ servers: pool.urls, cookieInit: "required" }, (chat) => chat.complete({ messages }))
    expect(error.attempts[0].error).toMatchObject({ _tag: "HttpStatusError", status: 500 })
    await server.reset()
    await run({ servers: pool.urls, cookieInit: "off" }, (chat) => chat.complete({ messages }))
    expect(server.requests.map((r) => r.method)).toEqual(["POST"])
  })
})

describe("timeouts by phase", () => {
  it("headers: fails over to the next server", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "stall-before-headers" } }, {}])
    const reply = await run({ servers: pool.urls, strategy: "round-robin", timeouts: { headers: 200 } }, (chat) =>
      chat.complete({ messages })
    )
    expect(reply.server).toBe(pool.urls[1])
  })

  for (const [name, layer] of transports) {
    it(`headers: the stalled request itself is aborted when its timeout passes, streamed and whole (${name} transport)`, async () => {
      pool = await MirrorPool.start([{ fault: { kind: "stall-before-headers" } }])
      const stalled = pool.servers[0]!
      const settled = (promise: Promise<unknown>) =>
        Promise.race([promise.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 1000))])
      await run(
        { servers: pool.urls, timeouts: { headers: 200 } },
        (chat) =>
          Effect.gen(function* () {
            for (const call of [Stream.runDrain(chat.stream({ messages })), chat.complete({ messages })]) {
              const error: any = yield* Effect.flip(call)
              expect(error.attempts[0].error).toMatchObject({ _tag: "Timeout", phase: "headers", millis: 200 })
              // While the transport and its connection pool live on: the request was cut, not left hanging.
              const post = stalled.requests.filter((r) => r.method === "POST").at(-1)!
              expect(yield* Effect.promise(() => settled(post.closed))).toBe(true)
            }
          }),
        layer()
      )
      expect(posts(stalled)).toBe(2)
    })
  }

  it("firstToken: a stream that never sends text fails over", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "stall-mid-stream", afterDeltas: 0 } }, {}])
    const error = await failure(
      { servers: pool.urls, activeServer: 0, timeouts: { firstToken: 200, idle: 5000 } },
      (chat) => Stream.runDrain(chat.stream({ messages }))
    )
    expect(error.attempts[0].error).toMatchObject({ _tag: "Timeout", phase: "firstToken", millis: 200 })
    const reply = await run(
      { servers: pool.urls, strategy: "round-robin", timeouts: { firstToken: 200, idle: 5000 } },
      (chat) => text(chat.stream({ messages }))
    )
    expect(reply).toBe(echo)
  })

  it("idle: a stream that stalls after its first delta ends with Timeout(idle), deltas kept", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "stall-mid-stream", afterDeltas: 2 } }, {}])
    const seen: Array<string> = []
    const error = await failure({ servers: pool.urls, strategy: "round-robin", timeouts: { idle: 200 } }, (chat) =>
      Stream.runForEach(chat.stream({ messages }), (d) => Effect.sync(() => seen.push(d.content)))
    )
    expect(seen).toEqual(["Echo", ": He"])
    expect(error).toMatchObject({ _tag: "Timeout", phase: "idle", millis: 200, server: pool.urls[0] })
    expect(posts(pool.servers[1]!)).toBe(0)
  })

  it("total: bounds the whole call", async () => {
    pool = await MirrorPool.start([{ delayMs: 50 }])
    const error = await failure({ servers: pool.urls, timeouts: { total: 300 } }, (chat) =>
      Stream.runDrain(chat.stream({ messages }))
    )
    expect(error).toMatchObject({ _tag: "Timeout", phase: "total", millis: 300, server: pool.urls[0] })
  })
})
