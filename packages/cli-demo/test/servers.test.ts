import { MirrorPool, MirrorServer } from "@easychat/testkit"
import { describe, expect, it } from "vitest"
import { chatRequests, run } from "./helpers.js"

describe("easychat servers", () => {
  it.concurrent("checks each server and prints a table; exits 0 when one works", async () => {
    const pool = await MirrorPool.start([
      {},
      { fault: { kind: "status", status: 503 } },
      { fault: { kind: "html-200" } },
      { accessCode: "letmein" }
    ])
    const down = await MirrorServer.refusingUrl()
    try {
      const urls = [...pool.urls, down]
      const result = await run(["servers", ...urls.flatMap((url) => ["--server", url])])
      expect(result.code).toBe(0)
      expect(result.stderr).toBe("")
      const [header, ...rows] = result.stdout.trimEnd().split("\n")
      expect(header).toMatch(/^SERVER\s+STATUS\s+LATENCY\s+ERROR$/)
      expect(rows.at(-1)).toBe("1 of 5 working")
      const byServer = new Map(rows.slice(0, -1).map((row) => [row.split(/\s+/)[0], row]))
      expect([...byServer.keys()]).toEqual(urls)
      expect(byServer.get(urls[0])).toMatch(/^\S+\s+ok\s+\d+ ms$/)
      expect(byServer.get(urls[1])).toMatch(/failed\s+\d+ ms\s+HttpStatusError: HTTP 503 Service Unavailable from/)
      expect(byServer.get(urls[2])).toMatch(/failed\s+\d+ ms\s+UnexpectedContentType: Expected application\/json/)
      expect(byServer.get(urls[3])).toMatch(/failed\s+\d+ ms\s+HttpStatusError: HTTP 401 .*empty access code/)
      expect(byServer.get(urls[4])).toMatch(/failed\s+\d+ ms\s+TransportError: Cannot reach/)
      // One request for a single token (named servers are NextChats by default: no cookies first).
      const healthy = pool.servers[0]!.requests
      expect(healthy.map((r) => `${r.method} ${r.path}`)).toEqual(["POST /api/openai/v1/chat/completions"])
      expect(healthy[0]!.body).toMatchObject({ max_tokens: 1, stream: false })
      // Each server is checked once, never failed over to another.
      for (const server of pool.servers.slice(1)) expect(chatRequests(server.requests).length).toBeLessThanOrEqual(2)
    } finally {
      await pool.close()
    }
  })

  it.concurrent("--pin checks one server of the pool, by index or URL", async () => {
    const pool = await MirrorPool.start(3)
    try {
      const servers = pool.urls.flatMap((url) => ["--server", url])
      const byIndex = await run(["servers", ...servers, "--pin", "2", "--json"])
      expect(byIndex.code).toBe(0)
      expect(JSON.parse(byIndex.stdout).map((c: { server: string }) => c.server)).toEqual([pool.urls[2]])
      const byUrl = await run(["servers", ...servers, "--pin", `${pool.urls[0]}/`, "--json"])
      expect(JSON.parse(byUrl.stdout).map((c: { server: string }) => c.server)).toEqual([pool.urls[0]])
      expect(pool.servers.map((s) => chatRequests(s.requests).length)).toEqual([1, 0, 1])
      const wrong = await run(["servers", ...servers, "--pin", "3"])
      expect(wrong.code).toBe(2)
      expect(wrong.stderr).toContain("activeServer must be an index from 0 to 2")
    } finally {
      await pool.close()
    }
  })

  it.concurrent("--preset easychat initialises cookies before the check", async () => {
    const mirror = await MirrorServer.start()
    try {
      const result = await run(["servers", "--preset", "easychat", "--server", mirror.url])
      expect(result.code).toBe(0)
      expect(mirror.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
        "GET /",
        "POST /api/openai/v1/chat/completions"
      ])
    } finally {
      await mirror.close()
    }
  })

  it.concurrent("exits 3 when no server works; --json gives the checks", async () => {
    const pool = await MirrorPool.start([
      { fault: { kind: "status", status: 500 } },
      { fault: { kind: "reset-before-headers" } }
    ])
    try {
      const result = await run(["servers", "--json", ...pool.urls.flatMap((url) => ["--server", url])])
      expect(result.code).toBe(3)
      const checks = JSON.parse(result.stdout)
      expect(checks).toEqual([
        {
          server: pool.urls[0],
          ok: false,
          latencyMs: expect.any(Number),
          error: { _tag: "HttpStatusError", message: expect.stringContaining("HTTP 500") }
        },
        {
          server: pool.urls[1],
          ok: false,
          latencyMs: expect.any(Number),
          error: { _tag: "TransportError", message: expect.stringContaining(`Cannot reach ${pool.urls[1]}`) }
        }
      ])
    } finally {
      await pool.close()
    }
  })
})
