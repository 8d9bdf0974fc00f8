// Time to first delta, stalls and cuts by chance: what routing tests and the
// benchmark ask of a pool of mirrors.
import { setupServer } from "msw/node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { MirrorServer } from "../src/index.js"
import { drawMillis } from "../src/internal/mirror.js"
import { mirrorHandlers } from "../src/msw.js"
import { chatPath, contentOf, messages, parseSse, post, raw } from "./helpers.js"

/** A seeded uniform source (mulberry32). */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/** Reads a streamed answer, noting when the role chunk and the first content delta arrived. */
const timed = async (url: string) => {
  const start = Date.now()
  const response = await post(url, { messages, stream: true })
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  let text = ""
  let role: number | undefined
  let first: number | undefined
  let error: unknown
  try {
    while (true) {
      const { done, value } = await reader.read()
      if (done) break
      text += decoder.decode(value, { stream: true })
      role ??= text.includes('"role"') ? Date.now() - start : undefined
      first ??= contentOf(parseSse(text.slice(0, text.lastIndexOf("\n\n") + 2))) === "" ? undefined : Date.now() - start
    }
  } catch (e) {
    error = e
  }
  return { text, role, first, error }
}

describe("drawMillis", () => {
  it("a number, a list to draw from, or a log-normal { median, p99 }", () => {
    const random = seeded(7)
    expect(drawMillis(undefined, random)).toBe(0)
    expect(drawMillis(120, random)).toBe(120)
    const listed = new Set(Array.from({ length: 200 }, () => drawMillis([10, 20, 30], random)))
    expect([...listed].sort()).toEqual([10, 20, 30])
    const draws = Array.from({ length: 20_000 }, () => drawMillis({ median: 50, p99: 400 }, random)).sort(
      (a, b) => a - b
    )
    expect(draws[10_000]! / 50).toBeGreaterThan(0.95)
    expect(draws[10_000]! / 50).toBeLessThan(1.05)
    expect(draws[19_800]! / 400).toBeGreaterThan(0.85)
    expect(draws[19_800]! / 400).toBeLessThan(1.15)
    expect(draws[0]).toBeGreaterThan(0)
    // p99 not above the median: the median, fixed.
    expect(drawMillis({ median: 50, p99: 50 }, random)).toBe(50)
  })
})

describe("MirrorServer", () => {
  it("firstDeltaMs: headers and role at once, the first content delta that long after; whole replies wait too", async () => {
    const server = await MirrorServer.start({ firstDeltaMs: 250 })
    try {
      const got = await timed(`${server.url}${chatPath}`)
      expect(got.error).toBeUndefined()
      expect(got.role!).toBeLessThan(200)
      expect(got.first!).toBeGreaterThanOrEqual(240)
      expect(got.text.endsWith("data: [DONE]\n\n")).toBe(true)
      const start = Date.now()
      const whole = await post(`${server.url}${chatPath}`, { messages })
      expect(whole.status).toBe(200)
      await whole.json()
      expect(Date.now() - start).toBeGreaterThanOrEqual(240)
    } finally {
      await server.close()
    }
  })

  it("a client that leaves during the pause closes the connection at once", async () => {
    const server = await MirrorServer.start({ firstDeltaMs: 60_000 })
    try {
      const left = await raw(`${server.url}${chatPath}`, { body: { messages, stream: true }, timeoutMs: 200 })
      expect(left.status).toBe(200)
      expect(left.error?.message).toBe("test timeout")
      await server.waitForConnectionsClosed(1000)
      expect((await server.requests[0]!.closed).finished).toBe(false)
    } finally {
      await server.close()
    }
  })

  it("stallChance 1: the role chunk, then nothing; a whole request gets no answer", async () => {
    const server = await MirrorServer.start({ stallChance: 1 })
    try {
      const abort = new AbortController()
      const response = await post(`${server.url}${chatPath}`, { messages, stream: true }, { signal: abort.signal })
      const reader = response.body!.getReader()
      const { value } = await reader.read()
      expect(new TextDecoder().decode(value)).toContain('"role":"assistant"')
      const next = await Promise.race([reader.read(), new Promise((resolve) => setTimeout(resolve, 300, "stalled"))])
      expect(next).toBe("stalled")
      abort.abort()
      const whole = await Promise.race([
        post(`${server.url}${chatPath}`, { messages }, { signal: AbortSignal.timeout(300) }).catch(() => "stalled"),
        new Promise((resolve) => setTimeout(resolve, 1000, "hung"))
      ])
      expect(whole).toBe("stalled")
    } finally {
      await server.close()
    }
  })

  it("cutChance 1: every stream is cut after at least one delta and before the last; whole replies are not", async () => {
    const server = await MirrorServer.start({ cutChance: 1, reply: "abcdefghij", chunkSize: 1, random: seeded(3) })
    try {
      const cutAfter: Array<number> = []
      for (let i = 0; i < 20; i++) {
        const got = await timed(`${server.url}${chatPath}`)
        expect(got.error).toBeDefined()
        const content = contentOf(parseSse(got.text.slice(0, got.text.lastIndexOf("\n\n") + 2)))
        expect("abcdefghij".startsWith(content)).toBe(true)
        cutAfter.push(content.length)
      }
      expect(Math.min(...cutAfter)).toBeGreaterThanOrEqual(1)
      expect(Math.max(...cutAfter)).toBeLessThanOrEqual(9)
      expect(new Set(cutAfter).size).toBeGreaterThan(3)
      const whole = await post(`${server.url}${chatPath}`, { messages })
      expect((await whole.json()).choices[0].message.content).toBe("abcdefghij")
    } finally {
      await server.close()
    }
  })

  it("chances are per request, repeatable with a seeded random, and a planned fault wins", async () => {
    const run = async () => {
      const server = await MirrorServer.start({
        cutChance: 0.3,
        random: seeded(11),
        fault: [{ kind: "status", status: 503 }]
      })
      try {
        const outcomes: Array<string> = []
        for (let i = 0; i < 30; i++) {
          const response = await post(`${server.url}${chatPath}`, { messages, stream: true })
          if (response.status !== 200) outcomes.push(String(response.status))
          else
            outcomes.push(
              await response.text().then(
                () => "whole",
                () => "cut"
              )
            )
        }
        return outcomes
      } finally {
        await server.close()
      }
    }
    const first = await run()
    expect(first[0]).toBe("503")
    const cuts = first.filter((o) => o === "cut").length
    expect(cuts).toBeGreaterThan(3)
    expect(cuts).toBeLessThan(18)
    expect(await run()).toEqual(first)
  })
})

describe("msw", () => {
  const slow = mirrorHandlers("https://slow.test", { firstDeltaMs: [200], reply: "abc" })
  const server = setupServer(...slow.handlers)
  beforeAll(() => server.listen({ onUnhandledRequest: "error" }))
  afterAll(() => server.close())

  it("honours firstDeltaMs as the node server does", async () => {
    const got = await timed(`https://slow.test${chatPath}`)
    expect(got.role!).toBeLessThan(150)
    expect(got.first!).toBeGreaterThanOrEqual(190)
    expect(contentOf(parseSse(got.text))).toBe("abc")
  })
})
