// Issue 22's driver part against real local mirrors (testkit's MirrorPool) on
// the Node transport: a hedge answers for a mirror that stalls before its
// first delta, and a continuation completes a stream that a mirror cuts.
import type { ChatDelta } from "@easychat/core"
import { MirrorPool, type MirrorServer } from "@easychat/testkit"
import * as NodeTransport from "@easychat/transport-node"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { afterEach, describe, expect, it } from "vitest"
import { echo, failure, messages, posts, run } from "./support.js"

let pool: MirrorPool.MirrorPool | undefined
afterEach(async () => {
  await pool?.close()
  pool = undefined
})

const deltasOf = (stream: Stream.Stream<ChatDelta, unknown>) =>
  Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)
const textOf = (deltas: ReadonlyArray<ChatDelta>) => deltas.map((d) => d.content).join("")

/** Resolves when the mirror's last request has ended (answered or its connection closed); rejects after `ms`. */
const lastClosed = (server: MirrorServer.MirrorServer, ms = 2000) =>
  Promise.race([
    server.requests.at(-1)!.closed,
    new Promise((_, reject) => setTimeout(() => reject(new Error("the request was never closed")), ms))
  ])

describe("hedged first requests on real mirrors", () => {
  it("a mirror that stalls before its first delta: a hedge answers from another, the stalled request is closed", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "stall-mid-stream", afterDeltas: 0 } }, {}])
    const [stalled, healthy] = pool.servers as [MirrorServer.MirrorServer, MirrorServer.MirrorServer]
    const began = Date.now()
    const deltas = await run(
      { servers: pool.urls, strategy: "round-robin", hedge: { after: 100 }, timeouts: { firstToken: 10_000 } },
      (chat) => deltasOf(chat.stream({ messages }))
    )
    expect(Date.now() - began).toBeLessThan(3000)
    expect(textOf(deltas)).toBe(echo)
    expect(new Set(deltas.map((d) => d.server))).toEqual(new Set([healthy.url]))
    expect([posts(stalled), posts(healthy)]).toEqual([1, 1])
    await lastClosed(stalled)
  })

  it("a whole reply: the mirror that never answers is left for the one that does", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "stall-before-headers" } }, {}])
    const [stalled, healthy] = pool.servers as [MirrorServer.MirrorServer, MirrorServer.MirrorServer]
    const reply = await run(
      { servers: pool.urls, strategy: "round-robin", hedge: { after: 100 }, timeouts: { headers: 10_000 } },
      (chat) => chat.complete({ messages })
    )
    expect(reply).toMatchObject({ content: echo, server: healthy.url })
    await lastClosed(stalled)
  })

  it("through the Promise facade, as many calls in a row", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "stall-mid-stream", afterDeltas: 0 } }, {}, {}])
    const client = NodeTransport.createClient({
      servers: pool.urls,
      strategy: "round-robin",
      hedge: { after: 50 },
      timeouts: { firstToken: 10_000 }
    })
    try {
      for (let i = 0; i < 6; i++) {
        let text = ""
        for await (const piece of client.stream({ messages })) text += piece
        expect(text).toBe(echo)
      }
    } finally {
      await client.close()
    }
  })
})

describe("continuation after a cut on real mirrors", () => {
  /** The second mirror answers a continuation with the rest of the reply. */
  const rest = ", continued elsewhere."
  const continuing = (request: { readonly body: unknown }) => {
    const sent = (request.body as { messages?: ReadonlyArray<{ role: string }> }).messages ?? []
    return sent.some((m) => m.role === "assistant") ? rest : echo
  }

  it("a mirror that cuts mid-stream: the continuation completes the reply as one stream", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "close-mid-stream", afterDeltas: 2 } }, { reply: continuing }])
    const [cut, other] = pool.servers as [MirrorServer.MirrorServer, MirrorServer.MirrorServer]
    const deltas = await run({ servers: pool.urls, strategy: "round-robin", continueAfterCut: true }, (chat) =>
      deltasOf(chat.stream({ messages }))
    )
    // Four characters per delta: two of them before the cut.
    const prefix = echo.slice(0, 8)
    expect(textOf(deltas)).toBe(prefix + rest)
    const first = deltas.findIndex((d) => d.server === other.url)
    expect(deltas[first]!.continuedFrom).toEqual({ server: cut.url, deltas: 2, characters: 8 })
    expect(deltas.filter((d) => d.continuedFrom !== undefined)).toHaveLength(1)
    expect(deltas.at(-1)!.finishReason).toBe("stop")
    const resent = other.requests.find((r) => r.method === "POST")!.body as { messages: ReadonlyArray<unknown> }
    expect(resent.messages.slice(0, 2)).toEqual([messages[0], { role: "assistant", content: prefix }])
    expect(resent.messages[2]).toMatchObject({ role: "user" })
  })

  it("without it, the same cut ends the call with StreamInterrupted", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "close-mid-stream", afterDeltas: 2 } }, {}])
    const error = await failure({ servers: pool.urls, strategy: "round-robin" }, (chat) =>
      Stream.runDrain(chat.stream({ messages }))
    )
    expect(error).toMatchObject({ _tag: "StreamInterrupted", server: pool.urls[0], deltas: 2, characters: 8 })
    expect(posts(pool.servers[1]!)).toBe(0)
  })
})
