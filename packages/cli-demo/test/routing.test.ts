// `--server URL;weight=N;priority=N` and `--strategy latency`: parsed into the
// pool's options, checked by core with the field named, and shown by the
// gateway's /health.
import { ServerPool } from "@easychat/core"
import { MirrorServer } from "@easychat/testkit"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { describe, expect, it } from "vitest"
import { defaultPreset, type Parsed, resolve } from "../src/PoolOptions.js"
import { chatRequests, run, start, stop } from "./helpers.js"

const parsed = (servers: ReadonlyArray<string>, strategy?: "latency"): Parsed => ({
  servers,
  preset: Option.none(),
  pin: Option.none(),
  strategy: Option.fromNullable(strategy),
  model: Option.none(),
  path: Option.none(),
  timeouts: [],
  transport: "fetch",
  proxy: Option.none(),
  apiKey: Option.none(),
  accessCode: Option.none(),
  local: false,
  verbose: false
})

describe("--server URL;weight=N;priority=N", () => {
  it("the attributes reach the pool; the URL alone chooses the preset", async () => {
    const health = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const pool = yield* resolve(
            parsed(["http://a.test:8080;weight=3;priority=0", "http://b.test;priority=1"], "latency")
          )
          expect(pool.preset).toBe("nextchat")
          expect(pool.options.strategy).toBe("latency")
          const servers = yield* ServerPool.make(pool.options)
          expect(servers.strategyName).toBe("latency")
          return yield* servers.health
        })
      )
    )
    expect(health.map((h) => [h.server, h.weight, h.priority])).toEqual([
      ["http://a.test:8080", 3, 0],
      ["http://b.test", 1, 1]
    ])
    expect(defaultPreset({ servers: ["http://localhost:11434/v1;weight=2"], path: undefined })).toBe("openai")
    expect(defaultPreset({ servers: ["https://chat9.fastgpt.me;priority=1"], path: undefined })).toBe("easychat")
    expect(defaultPreset({ servers: [{ url: "https://chat9.fastgpt.me", weight: 2 }], path: undefined })).toBe(
      "easychat"
    )
  })

  it.concurrent("a bad attribute is a usage error (exit 2) naming the field, before any request", async () => {
    const mirror = await MirrorServer.start()
    try {
      const cases = [
        [`${mirror.url};weight=0`, "servers.0.weight must be a positive finite number"],
        [`${mirror.url};priority=-1`, "servers.0.priority must be an integer ≥ 0"],
        [`${mirror.url};speed=2`, 'servers.0 has an unknown attribute "speed"']
      ] as const
      const results = await Promise.all(cases.map(([server]) => run(["chat", "--server", server, "hi"])))
      results.forEach((result, i) => {
        expect(result.code, cases[i]![0]).toBe(2)
        expect(result.stderr).toContain(cases[i]![1])
      })
      expect(chatRequests(mirror.requests)).toHaveLength(0)
    } finally {
      await mirror.close()
    }
  })

  it.concurrent("chat uses the first tier, and the second when the first is down", async () => {
    const first = await MirrorServer.start()
    const second = await MirrorServer.start()
    try {
      const args = ["chat", "--strategy", "latency", "--server", `${first.url};priority=0`]
      const ok = await run([...args, "--server", `${second.url};weight=5;priority=1`, "tiers"])
      expect(ok.code).toBe(0)
      expect(chatRequests(first.requests)).toHaveLength(1)
      expect(chatRequests(second.requests)).toHaveLength(0)
      first.setFault({ kind: "status", status: 503 })
      const over = await run([...args, "--server", `${second.url};weight=5;priority=1`, "tiers"])
      expect(over.code).toBe(0)
      expect(chatRequests(second.requests)).toHaveLength(1)
    } finally {
      await first.close()
      await second.close()
    }
  })

  it.concurrent("the gateway takes them (and EASYCHAT_SERVERS the same text); /health shows weight, tier and estimate", async () => {
    const a = await MirrorServer.start({ firstDeltaMs: 20 })
    const b = await MirrorServer.start()
    const gateway = start(["gateway", "--port", "0", "--strategy", "latency"], {
      env: { EASYCHAT_SERVERS: `${a.url};weight=2,${b.url};priority=1` }
    })
    try {
      const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/127\.0\.0\.1:\d+)/)
      const chat = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], stream: true })
      })
      expect(chat.status).toBe(200)
      await chat.text()
      const health = await (await fetch(`${url}/health`)).json()
      expect(health.servers).toEqual([
        {
          server: a.url,
          state: "closed",
          failures: 0,
          lastLatencyMs: expect.any(Number),
          openUntil: null,
          lastError: null,
          estimateMs: expect.any(Number),
          failureRate: 0,
          weight: 2,
          priority: 0
        },
        {
          server: b.url,
          state: "closed",
          failures: 0,
          lastLatencyMs: null,
          openUntil: null,
          lastError: null,
          estimateMs: null,
          failureRate: 0,
          weight: 1,
          priority: 1
        }
      ])
      expect(health.servers[0].estimateMs).toBeGreaterThanOrEqual(15)
    } finally {
      await stop(gateway)
      await a.close()
      await b.close()
    }
  })
})
