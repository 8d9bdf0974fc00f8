import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Mirror, MirrorPool } from "@easychat/testkit"
import OpenAI from "openai"
import { describe, expect, it, vi } from "vitest"
import { Gateway } from "../src/index.js"
import { chatRequests, expectedReply, messages, postJson, raw } from "./fixtures.js"
import { list, parse } from "./routes.js"

const route = (name: string, models: ReadonlyArray<string>, servers: ReadonlyArray<string>, extra = "") => `
  - name: ${name}
    models: ${list(models)}
    servers: ${list(servers)}${extra}`

const routes = (...entries: ReadonlyArray<string>) => `routes:${entries.join("")}\n`

const clientOf = (gateway: Gateway.Running) =>
  new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "unused", maxRetries: 0 })

const healthOf = async (gateway: Gateway.Running) => JSON.parse((await raw(`${gateway.url}/health`)).text)

describe("reload", () => {
  it("lets a stream started before a reload finish whole on the old route, and sends new requests to the new one", async () => {
    // A slow stream: 20 deltas, 40 ms apart.
    const pool = await MirrorPool.start([{ delayMs: 40, chunkSize: 2 }, {}])
    const [a, b] = pool.urls as [string, string]
    const gateway = await Gateway.start({ port: 0, config: await parse(routes(route("m", ["m"], [a]))) })
    try {
      const client = clientOf(gateway)
      const stream = await client.chat.completions.create({ model: "m", messages, stream: true })
      const iterator = stream[Symbol.asyncIterator]()
      let text = ""
      const first = await iterator.next()
      text += first.value?.choices[0]?.delta.content ?? ""
      const slow = chatRequests(pool.servers[0]!)[0]!
      let closedAt: number | undefined
      void slow.closed.then((closed) => (closedAt = closed.at))
      await gateway.reload!(await parse(routes(route("m", ["m"], [b]))))
      // After the reload: the new route's server.
      const after = await client.chat.completions.create({ model: "m", messages })
      expect(after.choices[0]?.message.content).toContain("Echo: Hello gateway")
      expect(chatRequests(pool.servers[1]!)).toHaveLength(1)
      // The slow stream was still open all that time.
      expect(closedAt).toBeUndefined()
      let done = false
      while (!done) {
        const next = await iterator.next()
        done = next.done === true
        if (!done) text += next.value.choices[0]?.delta.content ?? ""
      }
      // The old stream was not cut: every delta, then the end.
      expect(text).toBe(`Echo: Hello gateway\n${Mirror.defaultSentence}`)
      expect((await slow.closed).finished).toBe(true)
      expect(chatRequests(pool.servers[0]!)).toHaveLength(1)
    } finally {
      await gateway.close({ drainTimeout: 0 })
      await pool.close()
    }
  })

  it("lets streams finish whole on a route the reload removes and on one it rebuilds; the removed model is then a 404", async () => {
    // Two slow streams: 20 deltas, 40 ms apart.
    const pool = await MirrorPool.start([{ delayMs: 40, chunkSize: 2 }, { delayMs: 40, chunkSize: 2 }, {}])
    const [a, c, b] = pool.urls as [string, string, string]
    const gateway = await Gateway.start({
      port: 0,
      config: await parse(routes(route("m", ["m"], [a]), route("gone", ["g"], [c])))
    })
    try {
      const client = clientOf(gateway)
      const open = await Promise.all(
        ["m", "g"].map(async (model) => {
          const iterator = (await client.chat.completions.create({ model, messages, stream: true }))[
            Symbol.asyncIterator
          ]()
          const first = await iterator.next()
          return { iterator, text: first.value?.choices[0]?.delta.content ?? "" }
        })
      )
      await gateway.reload!(await parse(routes(route("m", ["m"], [b]))))
      expect((await postJson(`${gateway.url}/v1/chat/completions`, { model: "g", messages })).status).toBe(404)
      expect((await postJson(`${gateway.url}/v1/chat/completions`, { model: "m", messages })).status).toBe(200)
      expect(chatRequests(pool.servers[2]!)).toHaveLength(1)
      const texts = await Promise.all(
        open.map(async ({ iterator, text }) => {
          for (let next = await iterator.next(); next.done !== true; next = await iterator.next()) {
            text += next.value.choices[0]?.delta.content ?? ""
          }
          return text
        })
      )
      expect(texts).toEqual([expectedReply, expectedReply])
      for (const server of pool.servers.slice(0, 2)) {
        expect(chatRequests(server)).toHaveLength(1)
        expect((await chatRequests(server)[0]!.closed).finished).toBe(true)
      }
    } finally {
      await gateway.close({ drainTimeout: 0 })
      await pool.close()
    }
  })

  it("keeps the breaker state and estimates of servers that stay, whether their route is unchanged or rebuilt", async () => {
    const pool = await MirrorPool.start([{ fault: { kind: "status", status: 503 } }, {}, {}, {}])
    const [bad, good, third, other] = pool.urls as [string, string, string, string]
    const breaker = "\n    breaker: { failures: 1, cooldown: 1m }\n    strategy: round-robin"
    const gateway = await Gateway.start({
      port: 0,
      config: await parse(routes(route("r", ["m"], [bad, good], breaker), route("s", ["n"], [other])))
    })
    try {
      const client = clientOf(gateway)
      await client.chat.completions.create({ model: "m", messages })
      await client.chat.completions.create({ model: "n", messages })
      const before = await healthOf(gateway)
      expect(before.routes[0].servers[0]).toMatchObject({ server: bad, state: "open", failures: 1 })
      const estimate = before.routes[1].servers[0].estimateMs
      expect(estimate).toEqual(expect.any(Number))
      // Route r gains a server (its pool is rebuilt); route s is unchanged.
      await gateway.reload!(
        await parse(routes(route("r", ["m"], [bad, good, third], breaker), route("s", ["n"], [other])))
      )
      const after = await healthOf(gateway)
      expect(after.routes[0].servers).toEqual([
        expect.objectContaining({ server: bad, state: "open", failures: 1, lastError: "HttpStatusError" }),
        expect.objectContaining({ server: good, state: "closed", estimateMs: expect.any(Number) }),
        expect.objectContaining({ server: third, state: "closed", estimateMs: null })
      ])
      expect(after.routes[1].servers[0].estimateMs).toBe(estimate)
      // The open circuit is honoured by the new pool: the bad server gets no request for a while.
      for (let i = 0; i < 4; i++) await client.chat.completions.create({ model: "m", messages })
      expect(chatRequests(pool.servers[0]!)).toHaveLength(1)
      // A server that moves to another route keeps what was measured of it too.
      await gateway.reload!(await parse(routes(route("t", ["m", "n"], [bad, other]))))
      const moved = await healthOf(gateway)
      expect(moved.routes[0].servers).toEqual([
        expect.objectContaining({ server: bad, state: "open", failures: 1 }),
        expect.objectContaining({ server: other, estimateMs: estimate })
      ])
    } finally {
      await gateway.close({ drainTimeout: 0 })
      await pool.close()
    }
  })

  it("refuses a bad file, naming the path and rule, and keeps the routes in use; a watched file reloads by itself", async () => {
    const pool = await MirrorPool.start(2)
    const [a, b] = pool.urls as [string, string]
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "easychat-reload-"))
    const file = path.join(dir, "easychat.yaml")
    fs.writeFileSync(file, routes(route("m", ["m"], [a])))
    const gateway = await Gateway.start({ port: 0, config: file, watch: true })
    try {
      const client = clientOf(gateway)
      fs.writeFileSync(file, routes(route("m", ["m"], [b], "\n    weight: 3")))
      await expect(gateway.reload!()).rejects.toMatchObject({
        _tag: "InvalidConfig",
        file,
        issues: [{ path: "routes[0].weight", rule: expect.stringMatching(/^is not a known key/) }]
      })
      await client.chat.completions.create({ model: "m", messages })
      expect(chatRequests(pool.servers[0]!)).toHaveLength(1)
      // A good file, written while the gateway watches it: the new route is in use within moments.
      fs.writeFileSync(file, routes(route("m", ["m"], [a]), route("n", ["n"], [b])))
      const deadline = Date.now() + 5000
      let status = 404
      while (status === 404 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50))
        status = (await postJson(`${gateway.url}/v1/chat/completions`, { model: "n", messages })).status
      }
      expect(status).toBe(200)
      expect(chatRequests(pool.servers[1]!)).toHaveLength(1)
    } finally {
      await gateway.close({ drainTimeout: 0 })
      await pool.close()
      fs.rmSync(dir, { recursive: true })
    }
  })
})

describe("reload's log", () => {
  it("names the path and rule of a refused file, never a key pasted in it", async () => {
    const HEX = "a3f9c2e4b1d07f6e5a8c9b2d4e6f8a0b1c3d5e7f9a2b4c6d"
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "easychat-reload-log-"))
    const file = path.join(dir, "easychat.json")
    fs.writeFileSync(file, JSON.stringify({ routes: [{ models: ["m"], servers: ["http://127.0.0.1:9"] }] }))
    const gateway = await Gateway.start({ port: 0, config: file })
    const lines: Array<string> = []
    const spies = (["log", "info", "warn", "error"] as const).map((method) =>
      vi.spyOn(console, method).mockImplementation((...args: Array<unknown>) => {
        lines.push(args.map(String).join(" "))
      })
    )
    try {
      // A key pasted where its variable's name belongs, and a JSON error next to a key.
      fs.writeFileSync(
        file,
        JSON.stringify({ routes: [{ models: ["m"], servers: ["http://127.0.0.1:9"], apiKeyEnv: HEX }] })
      )
      await expect(gateway.reload!()).rejects.toMatchObject({ issues: [{ path: "routes[0].apiKeyEnv" }] })
      fs.writeFileSync(file, `{ "routes": [{ "models": ["m"], "apiKey": sk-pasted-${HEX} }] }`)
      await expect(gateway.reload!()).rejects.toMatchObject({ issues: [{ path: "" }] })
    } finally {
      for (const spy of spies) spy.mockRestore()
      await gateway.close({ drainTimeout: 0 })
      fs.rmSync(dir, { recursive: true })
    }
    const warnings = lines.filter((line) => line.includes("the routes in use stay"))
    expect(warnings).toHaveLength(2)
    expect(warnings[0]).toContain("routes[0].apiKeyEnv: does not look like a variable name")
    expect(warnings[1]).toMatch(/line 1, column \d+: not valid JSON/)
    expect(lines.join("\n")).not.toContain(HEX)
    expect(lines.join("\n")).not.toContain("sk-pasted")
  })
})

describe("start from a file", () => {
  it("refuses to start on a bad file, naming each path and rule; nothing listens", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "easychat-start-"))
    const file = path.join(dir, "easychat.yaml")
    fs.writeFileSync(file, `port: 0\n${routes(route("m", ["m"], ["ftp://a"], "\n    maxAttempts: 0"))}`)
    let listened = false
    try {
      await expect(Gateway.start({ config: file, onListen: () => (listened = true) })).rejects.toMatchObject({
        _tag: "InvalidConfig",
        file,
        issues: [{ path: "routes[0].maxAttempts", rule: "must be a positive whole number" }]
      })
      fs.writeFileSync(file, `port: 0\n${routes(route("m", ["m"], ["ftp://a"]))}`)
      const refused = await Gateway.start({ config: file }).catch((error: unknown) => error)
      expect(refused).toMatchObject({
        _tag: "InvalidConfig",
        issues: [{ path: "routes[0].servers[0]", rule: "must be an http or https URL" }]
      })
      expect(String((refused as Error).message)).toBe(
        `${file} is invalid:\n  routes[0].servers[0]: must be an http or https URL`
      )
      expect(listened).toBe(false)
    } finally {
      fs.rmSync(dir, { recursive: true })
    }
  })
})
