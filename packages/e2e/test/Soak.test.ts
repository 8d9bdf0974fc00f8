// Issue 7's pool soak: 1,000 calls, 50 at a time, against seven local mirrors
// of which five fail in rotating ways. Every call succeeds, breakers open and
// close as configured, and no connection is left behind. Run twice: with the
// Node transport directly, and through the gateway with the `openai` client.
import { EasyChat, type ServerPool } from "@easychat/core"
import { Gateway } from "@easychat/gateway"
import { type Fault, MirrorPool } from "@easychat/testkit"
import * as NodeTransport from "@easychat/transport-node"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import * as Stream from "effect/Stream"
import OpenAI from "openai"
import { afterAll, describe, expect, it } from "vitest"
import { echo, messages } from "./support.js"

const CALLS = 1000
const CONCURRENCY = 50
const WINDOW_MS = 400
const kinds: ReadonlyArray<Fault.Fault> = [
  { kind: "refuse" },
  { kind: "status", status: 503 },
  { kind: "status", status: 429, headers: { "Retry-After": "1" } },
  { kind: "html-200" },
  { kind: "stall-before-headers" }
]
const chat = {
  strategy: "random" as const,
  breaker: { failures: 3, cooldown: 300 },
  timeouts: { headers: 3000, firstToken: 5000, idle: 5000, total: 60_000 }
}

/** Five mirrors that alternate between bad and good windows, each bad window with the next kind of fault. */
const startPool = () => {
  const t0 = Date.now()
  const rotating = (i: number) => (): Fault.Fault | undefined => {
    const window = Math.floor((Date.now() - t0) / WINDOW_MS)
    return (window + i) % 2 === 0 ? kinds[(i + window) % kinds.length] : undefined
  }
  return MirrorPool.start([0, 1, 2, 3, 4].map((i) => ({ fault: rotating(i) })).concat([{}, {}] as any))
}

/** Polls the breakers and records each server's sequence of states. */
const watch = (health: () => Promise<ReadonlyArray<ServerPool.ServerHealth>>) => {
  const states = new Map<string, Array<string>>()
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      for (const h of await health()) {
        const seen = states.get(h.server) ?? []
        if (seen.at(-1) !== h.state) seen.push(h.state)
        states.set(h.server, seen)
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  return {
    states,
    stop: async () => {
      stopped = true
      await loop
    }
  }
}

const report: Array<string> = []
afterAll(() => console.log(report.join("\n")))

const figures = (
  name: string,
  pool: MirrorPool.MirrorPool,
  ms: number,
  states: Map<string, Array<string>>,
  calls: number
) => {
  const posts = pool.servers.map((s) => s.requests.filter((r) => r.method === "POST").length)
  const opens = pool.urls.map((u) => (states.get(u) ?? []).filter((s) => s === "open").length)
  report.push(
    `### ${name}`,
    `${CALLS} calls, ${CONCURRENCY} at a time, in ${(ms / 1000).toFixed(1)} s (${Math.round((CALLS / ms) * 1000)} calls/s), ` +
      `then ${calls - CALLS} more until every breaker had closed again; ${posts.reduce((a, b) => a + b, 0) - calls} failovers`,
    "| mirror | chat requests | times its circuit opened |",
    "| --- | --- | --- |",
    ...pool.urls.map(
      (_, i) => `| ${i < 5 ? `rotating faults ${i + 1}` : `healthy ${i - 4}`} | ${posts[i]} | ${opens[i]} |`
    ),
    ""
  )
}

const reopenedAndClosed = (seen: ReadonlyArray<string>) =>
  seen.includes("open") && seen.lastIndexOf("closed") > seen.indexOf("open")

/**
 * The watcher polls every 20 ms, so a breaker that closed and opened again in
 * between is not seen closed; a mirror whose breaker opened late in the run may
 * not have closed before the last call. Until every rotating mirror has been
 * seen to close again (at most 15 s), a few more calls drive the half-open probes.
 */
const untilRecovered = async (
  pool: MirrorPool.MirrorPool,
  states: Map<string, Array<string>>,
  call: () => Promise<string>,
  texts: Array<string>
) => {
  const deadline = Date.now() + 15_000
  const pending = () => pool.urls.slice(0, 5).some((url) => !reopenedAndClosed(states.get(url) ?? []))
  while (pending() && Date.now() < deadline) {
    texts.push(...(await Promise.all(Array.from({ length: 5 }, call))))
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const expectBreakersWorked = (pool: MirrorPool.MirrorPool, states: Map<string, Array<string>>) => {
  for (const [i, url] of pool.urls.entries()) {
    const seen = states.get(url) ?? []
    if (i < 5) {
      // Opened by its faults, and closed again (through a half-open probe) in a good window.
      expect(seen, `breaker of mirror ${i}`).toContain("open")
      expect(seen.lastIndexOf("closed"), `breaker of mirror ${i} never closed again`).toBeGreaterThan(
        seen.indexOf("open")
      )
    } else {
      expect(seen, `healthy mirror ${i}`).toEqual(["closed"])
    }
  }
}

const noLeaks = async (pool: MirrorPool.MirrorPool) => {
  for (const server of pool.servers) await Promise.all(server.requests.map((r) => r.closed))
  await pool.waitForConnectionsClosed(2000)
  expect(pool.openConnections()).toBe(0)
}

describe("pool soak", () => {
  it("1,000 calls through the Node transport: every call succeeds", async () => {
    const pool = await startPool()
    const started = Date.now()
    let watcher: ReturnType<typeof watch> | undefined
    let ms = 0
    const texts = await Effect.runPromise(
      Effect.gen(function* () {
        const easy = yield* EasyChat.EasyChat
        watcher = watch(() => Effect.runPromise(easy.pool.health))
        const call = Stream.runFold(easy.stream({ messages }), "", (text, d) => text + d.content).pipe(
          Effect.catchAll((e) => Effect.succeed(`FAILED ${e._tag}: ${e.message}`))
        )
        const texts = yield* Effect.forEach(Array.from({ length: CALLS }), () => call, { concurrency: CONCURRENCY })
        ms = Date.now() - started
        const runtime = yield* Effect.runtime<never>()
        yield* Effect.promise(() =>
          untilRecovered(pool, watcher!.states, () => Runtime.runPromise(runtime)(call), texts)
        )
        return texts
      }).pipe(
        Effect.provide(EasyChat.layer({ ...chat, servers: pool.urls })),
        Effect.provide(NodeTransport.layer({ connections: 64 }))
      )
    )
    await watcher!.stop()
    expect(texts.filter((t) => t !== echo)).toEqual([])
    expectBreakersWorked(pool, watcher!.states)
    await noLeaks(pool)
    figures("Node transport", pool, ms, watcher!.states, texts.length)
    await pool.close()
  }, 90_000)

  it("1,000 calls through the gateway with the openai client: every call succeeds", async () => {
    const pool = await startPool()
    const gateway = await Gateway.start({ port: 0, maxConcurrent: 256, chat: { ...chat, servers: pool.urls } })
    const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "not-needed", maxRetries: 0, timeout: 30_000 })
    const health = async () => ((await (await fetch(`${gateway.url}/health`)).json()) as any).servers
    const watcher = watch(health)
    const started = Date.now()
    let next = 0
    const texts: Array<string> = []
    const call = async () => {
      try {
        const stream = await client.chat.completions.create({ model: "gpt-3.5-turbo", messages, stream: true })
        let text = ""
        for await (const part of stream) text += part.choices[0]?.delta?.content ?? ""
        return text
      } catch (error) {
        return `FAILED ${(error as Error).message}`
      }
    }
    const worker = async () => {
      while (next < CALLS) {
        next++
        texts.push(await call())
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    const ms = Date.now() - started
    expect(texts).toHaveLength(CALLS)
    await untilRecovered(pool, watcher.states, call, texts)
    await watcher.stop()
    expect(texts.filter((t) => t !== echo)).toEqual([])
    expectBreakersWorked(pool, watcher.states)
    await gateway.close()
    // Mirror side: the gateway's pool closed every connection; client side: the gateway cut its own.
    await noLeaks(pool)
    figures("Through the gateway (openai client)", pool, ms, watcher.states, texts.length)
    await pool.close()
  }, 120_000)
})
