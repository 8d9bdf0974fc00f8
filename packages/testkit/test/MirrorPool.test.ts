import * as http from "node:http"
import { afterEach, describe, expect, it } from "vitest"
import { MirrorPool } from "../src/index.js"
import { chatPath, messages, post } from "./helpers.js"

let pool: MirrorPool.MirrorPool | undefined
afterEach(async () => {
  await pool?.close()
  pool = undefined
})

describe("MirrorPool", () => {
  it("starts n servers with shared options", async () => {
    pool = await MirrorPool.start(3, { reply: "same" })
    expect(pool.servers).toHaveLength(3)
    expect(new Set(pool.urls).size).toBe(3)
    for (const url of pool.urls) {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      const body = (await (await post(`${url}${chatPath}`, { messages })).json()) as any
      expect(body.choices[0].message.content).toBe("same")
    }
  })

  it("starts one server per options entry, each with its own faults and cookies", async () => {
    pool = await MirrorPool.start([{ fault: { kind: "status", status: 503 } }, { reply: "two" }], { reply: "base" })
    const [a, b] = pool.urls
    expect((await post(`${a}${chatPath}`, { messages })).status).toBe(503)
    const body = (await (await post(`${b}${chatPath}`, { messages })).json()) as any
    expect(body.choices[0].message.content).toBe("two")
    expect(pool.servers[0]!.cookies["session"]).not.toBe(pool.servers[1]!.cookies["session"])
    expect(pool.servers[0]!.requests).toHaveLength(1)
    expect(pool.servers[1]!.requests).toHaveLength(1)
  })

  it("aggregates open connections", async () => {
    pool = await MirrorPool.start(2)
    const agent = new http.Agent({ keepAlive: true })
    for (const url of pool.urls) {
      await new Promise<void>((resolve) => http.get(`${url}/`, { agent }, (res) => res.resume().on("end", resolve)))
    }
    expect(pool.openConnections()).toBe(2)
    agent.destroy()
    await pool.waitForConnectionsClosed(1000)
    expect(pool.openConnections()).toBe(0)
    await pool.reset()
    expect(pool.servers.every((server) => server.requests.length === 0)).toBe(true)
  })

  it("closes the servers it started when one fails to start", async () => {
    pool = await MirrorPool.start(1)
    const taken = pool.servers[0]!.port
    await expect(MirrorPool.start([{}, { port: taken }])).rejects.toThrow(/EADDRINUSE/)
  })
})
