import type { MirrorServer } from "@easychat/testkit"
import * as Effect from "effect/Effect"
import { afterEach, describe, expect, it, vi } from "vitest"
import { makeKeyCheck, redact } from "../src/internal/auth.js"
import { chatRequests, messages, postJson, raw, withGateway } from "./fixtures.js"
import { connect, head, isWhole, parseResponse, pump, sleep, withApp } from "./hostile.js"

const KEY = "gw-key-0123456789abcdef"
const chatBody = JSON.stringify({ model: "m", messages })
const json = { "content-type": "application/json" }

/** How long `run` takes `count` times in a row, in ms. */
const timeOf = async (count: number, run: () => unknown): Promise<number> => {
  const start = performance.now()
  for (let i = 0; i < count; i++) await run()
  return performance.now() - start
}

/**
 * The time of `count` runs, stopping early once `limit` ms are spent (a
 * quadratic parse would otherwise take minutes).
 */
const boundedTimeOf = async (count: number, limit: number, run: () => unknown): Promise<number> => {
  const start = performance.now()
  for (let i = 0; i < count && performance.now() - start <= limit; i++) await run()
  return performance.now() - start
}

/** `Authorization` values that a backtracking parse takes quadratic time over (`size` characters each). */
const hostileAuthorizations = (size: number) => [
  `Bearer a${" ".repeat(size)}b`,
  `Bearer a${"\t".repeat(size)}b`,
  `bearer a${" \t".repeat(size / 2)}b`,
  `Bearer${" ".repeat(size)}a${" ".repeat(8)}b`
]

/** Log lines written while `body` runs (Effect's default logger writes with `console.log`). */
const capturingLogs = async <A>(body: (lines: () => string) => Promise<A>): Promise<A> => {
  const lines: Array<string> = []
  const capture = (...args: Array<unknown>) => {
    lines.push(args.map(String).join(" "))
  }
  vi.spyOn(console, "log").mockImplementation(capture)
  vi.spyOn(console, "error").mockImplementation(capture)
  vi.spyOn(console, "warn").mockImplementation(capture)
  return body(() => lines.join("\n"))
}

afterEach(() => {
  vi.restoreAllMocks()
})

describe("the Authorization header", () => {
  it("is checked in linear time: a 64 kB hostile header costs what a normal one of that size does", async () => {
    const check = makeKeyCheck([KEY])
    const normal = `Bearer ${"a".repeat(64 * 1024)}`
    for (let i = 0; i < 20; i++) check(normal)
    const normalTime = await timeOf(100, () => check(normal))
    for (const hostile of hostileAuthorizations(64 * 1024)) {
      expect(check(hostile)).not.toBe("ok")
      const hostileTime = await boundedTimeOf(100, 20 * normalTime, () => check(hostile))
      expect(hostileTime / normalTime).toBeLessThan(20)
    }
  })

  it("costs a keyed gateway no more than a normal one, as large as Node lets headers be", async () => {
    await withGateway(1, { keys: [KEY] }, async ({ gateway }) => {
      const ask = (authorization: string) => async () => {
        const response = await raw(`${gateway.url}/v1/models`, { headers: { authorization } })
        expect(response.status).toBe(401)
      }
      const normal = ask("Bearer sk-wrong-key-0123456789")
      await timeOf(10, normal)
      const normalTime = await timeOf(10, normal)
      // Node refuses headers over 16 KiB (431) before the gateway sees them.
      for (const hostile of hostileAuthorizations(15 * 1024)) {
        const hostileTime = await boundedTimeOf(10, 20 * normalTime, ask(hostile))
        expect(hostileTime / normalTime).toBeLessThan(20)
      }
    })
  })
})

describe("request bodies", () => {
  it("ends a body shorter than its Content-Length at the body deadline: 408, OpenAI's shape, connection closed", async () => {
    await withApp(1, { bodyTimeoutMs: 400 }, async ({ url, pool }) => {
      const connection = await connect(url)
      connection.socket.write(
        head("POST", "/v1/chat/completions", { host: "127.0.0.1", ...json, "content-length": chatBody.length + 100 })
      )
      connection.socket.write(chatBody)
      const start = Date.now()
      const answer = parseResponse(await connection.waitFor(isWhole, 5_000))
      expect(Date.now() - start).toBeGreaterThanOrEqual(350)
      expect(answer.status).toBe(408)
      expect(answer.headers.connection).toBe("close")
      expect(JSON.parse(answer.body)).toEqual({
        error: {
          message: "The request body did not arrive within 400 ms",
          type: "invalid_request_error",
          param: null,
          code: "request_timeout"
        }
      })
      await Promise.race([connection.closed, sleep(2_000)])
      expect(connection.isClosed()).toBe(true)
      expect(chatRequests(pool.servers[0]!)).toHaveLength(0)
    })
  })

  it("never holds a place for a slow body: maxConcurrent slow senders do not make a normal request 429", async () => {
    await withApp(1, { maxConcurrent: 2, bodyTimeoutMs: 1_500 }, async ({ url }) => {
      const slow = await Promise.all(Array.from({ length: 4 }, () => connect(url)))
      for (const connection of slow) {
        connection.socket.write(
          head("POST", "/v1/chat/completions", { host: "127.0.0.1", ...json, "content-length": 500 })
        )
      }
      // One byte a tenth of a second each: every one of them still sending when the normal request comes.
      const drip = setInterval(() => {
        for (const connection of slow) if (!connection.isClosed()) connection.socket.write(" ")
      }, 100)
      try {
        await sleep(300)
        for (let i = 0; i < 3; i++) {
          const response = await postJson(`${url}/v1/chat/completions`, { model: "m", messages })
          expect(response.status).toBe(200)
        }
        for (const connection of slow) {
          expect(parseResponse(await connection.waitFor(isWhole, 5_000)).status).toBe(408)
        }
      } finally {
        clearInterval(drip)
        for (const connection of slow) connection.socket.destroy()
      }
    })
  })

  it("refuses a declared body over maxBodyBytes before reading it: 413, connection closed, the body left unread", async () => {
    await withGateway(1, {}, async ({ gateway, pool }) => {
      const connection = await connect(gateway.url)
      const total = 100 * 1024 * 1024
      connection.socket.write(
        head("POST", "/v1/chat/completions", { host: "127.0.0.1", ...json, "content-length": total })
      )
      const written = pump(connection, total, false)
      const answer = parseResponse(await connection.waitFor(isWhole, 5_000))
      expect(answer.status).toBe(413)
      expect(answer.headers.connection).toBe("close")
      expect(JSON.parse(answer.body).error.code).toBe("request_too_large")
      await Promise.race([connection.closed, sleep(3_000)])
      expect(connection.isClosed()).toBe(true)
      expect(await written).toBeLessThan(total / 2)
      expect(chatRequests(pool.servers[0]!)).toHaveLength(0)
    })
  })

  it("stops reading a chunked body once it passes maxBodyBytes: 413, connection closed", async () => {
    await withGateway(1, {}, async ({ gateway }) => {
      const connection = await connect(gateway.url)
      const total = 100 * 1024 * 1024
      connection.socket.write(
        head("POST", "/v1/embeddings", { host: "127.0.0.1", ...json, "transfer-encoding": "chunked" })
      )
      const written = pump(connection, total, true)
      const answer = parseResponse(await connection.waitFor(isWhole, 5_000))
      expect(answer.status).toBe(413)
      expect(answer.headers.connection).toBe("close")
      expect(JSON.parse(answer.body).error.code).toBe("request_too_large")
      await Promise.race([connection.closed, sleep(3_000)])
      expect(connection.isClosed()).toBe(true)
      expect(await written).toBeLessThan(total / 2)
    })
  })

  it("answers Expect: 100-continue with 413 for a declared body over the limit, and 100 Continue otherwise", async () => {
    await withApp(1, { maxBodyBytes: 4096 }, async ({ url }) => {
      const refused = await connect(url)
      refused.socket.write(
        head("POST", "/v1/chat/completions", {
          host: "127.0.0.1",
          ...json,
          expect: "100-continue",
          "content-length": 100 * 1024 * 1024
        })
      )
      const text = await refused.waitFor(isWhole, 5_000)
      expect(text.startsWith("HTTP/1.1 413 ")).toBe(true)
      expect(parseResponse(text).headers.connection).toBe("close")
      await Promise.race([refused.closed, sleep(3_000)])
      expect(refused.isClosed()).toBe(true)

      const accepted = await connect(url)
      accepted.socket.write(
        head("POST", "/v1/chat/completions", {
          host: "127.0.0.1",
          ...json,
          expect: "100-continue",
          "content-length": chatBody.length
        })
      )
      await accepted.waitFor((t) => t.startsWith("HTTP/1.1 100 Continue\r\n\r\n"), 5_000)
      accepted.socket.write(chatBody)
      const whole = await accepted.waitFor((t) => isWhole(t.slice(t.indexOf("\r\n\r\n") + 4)), 5_000)
      expect(parseResponse(whole.slice(whole.indexOf("\r\n\r\n") + 4)).status).toBe(200)
      accepted.socket.destroy()

      // Refused for another reason (here its content type), a waiting client is never asked for its body.
      const unasked = await connect(url)
      unasked.socket.write(
        head("POST", "/v1/chat/completions", {
          host: "127.0.0.1",
          "content-type": "text/plain",
          expect: "100-continue",
          "content-length": 1000
        })
      )
      expect((await unasked.waitFor(isWhole, 5_000)).startsWith("HTTP/1.1 415 ")).toBe(true)
      unasked.socket.destroy()
    })
  })

  it("refuses JSON nested deeper than 64 levels with a 400 naming the limit, never an empty 500", async () => {
    await withGateway(1, {}, async ({ gateway, pool }) => {
      const nested = (depth: number) =>
        `{"model":"m","messages":${JSON.stringify(messages)},"x":${"[".repeat(depth)}${"]".repeat(depth)}}`
      // About 10 kB, 5,000 levels.
      for (const path of ["/v1/chat/completions", "/v1/embeddings"]) {
        const response = await raw(`${gateway.url}${path}`, { method: "POST", headers: json, body: nested(5_000) })
        expect(response.status).toBe(400)
        expect(JSON.parse(response.text)).toEqual({
          error: {
            message: "The request body nests JSON deeper than 64 levels",
            type: "invalid_request_error",
            param: null,
            code: "json_too_deep"
          }
        })
      }
      expect(chatRequests(pool.servers[0]!)).toHaveLength(0)
      // The top-level object is the first level: 63 more are still served, and brackets in strings do not count.
      const deepest = nested(63).replace('"model":"m"', `"model":"m","s":"${"[{".repeat(100)}"`)
      const served = await raw(`${gateway.url}/v1/chat/completions`, { method: "POST", headers: json, body: deepest })
      expect(served.status).toBe(200)
      const refused = await raw(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: json,
        body: nested(64)
      })
      expect(refused.status).toBe(400)
    })
  })

  it("answers anything unforeseen (a defect) with a logged 500 in OpenAI's shape, the client's key masked", async () => {
    await capturingLogs(async (logs) => {
      await withApp(
        1,
        {
          keys: [KEY],
          service: (service) => ({ ...service, complete: () => Effect.die(new Error(`unforeseen, near ${KEY}`)) })
        },
        async ({ url }) => {
          const response = await postJson(
            `${url}/v1/chat/completions`,
            { messages },
            { authorization: `Bearer ${KEY}` }
          )
          expect(response.status).toBe(500)
          expect(JSON.parse(response.text)).toEqual({
            error: {
              message: "The gateway failed to answer this request; its log says why",
              type: "server_error",
              param: null,
              code: "internal_error"
            }
          })
          expect(logs()).toContain("unforeseen, near [redacted]")
          expect(logs()).not.toContain(KEY)
        }
      )
    })
  })
})

describe("the bodies being read, all together", () => {
  it("hold at most 2 × maxConcurrent × maxBodyBytes: a body that would pass it is a 503; small requests still pass", async () => {
    const KiB = 1024
    await withApp(1, { maxConcurrent: 1, maxBodyBytes: 64 * KiB, bodyTimeoutMs: 3_000 }, async ({ url }) => {
      const hold = async (bytes: number) => {
        const connection = await connect(url)
        connection.socket.write(
          head("POST", "/v1/chat/completions", { host: "127.0.0.1", ...json, "content-length": 64 * KiB })
        )
        connection.socket.write(" ".repeat(bytes))
        return connection
      }
      const a = await hold(60 * KiB)
      const b = await hold(60 * KiB)
      await sleep(200)
      const c = await hold(20 * KiB)
      try {
        const refused = parseResponse(await c.waitFor(isWhole, 3_000))
        expect(refused.status).toBe(503)
        expect(JSON.parse(refused.body).error.code).toBe("too_many_request_bodies")
        // 120 KiB held of 128: a small request still fits.
        const response = await postJson(`${url}/v1/chat/completions`, { model: "m", messages })
        expect(response.status).toBe(200)
      } finally {
        for (const connection of [a, b, c]) connection.socket.destroy()
      }
    })
  })
})

describe("a loopback address other than the usual three", () => {
  it("is served without keys when the gateway is bound to it (127.0.0.2)", async () => {
    await withGateway(1, { host: "127.0.0.2" }, async ({ gateway }) => {
      expect(gateway.url).toContain("127.0.0.2")
      const response = await raw(`${gateway.url}/v1/models`)
      expect(response.status).toBe(200)
    })
  })
})

describe("routing", () => {
  it("drops activeServer and active_server from clients' bodies: the operator's pin holds", async () => {
    await withGateway(2, { chat: { activeServer: 0 } }, async ({ gateway, pool }) => {
      for (const field of ["activeServer", "active_server"]) {
        const response = await postJson(`${gateway.url}/v1/chat/completions`, { messages, [field]: 1 })
        expect(response.status).toBe(200)
      }
      expect(chatRequests(pool.servers[1]!)).toHaveLength(0)
      const sent = chatRequests(pool.servers[0]!)
      expect(sent).toHaveLength(2)
      for (const request of sent)
        expect(Object.keys(request.body as object).sort()).toEqual(["messages", "model", "stream"])
    })
  })

  it("lets clients choose the server when the operator allows routing", async () => {
    await withApp(2, { allowRouting: true, chat: { activeServer: 0 } }, async ({ url, pool }) => {
      expect((await postJson(`${url}/v1/chat/completions`, { messages, activeServer: 1 })).status).toBe(200)
      expect(chatRequests(pool.servers[1]!)).toHaveLength(1)
      expect(chatRequests(pool.servers[0]!)).toHaveLength(0)
    })
  })
})

describe("what a web page can reach", () => {
  it("without keys, serves only loopback Host values and the configured hostnames (403 otherwise)", async () => {
    await withGateway(1, {}, async ({ gateway, pool }) => {
      const port = new URL(gateway.url).port
      for (const host of [`127.0.0.1:${port}`, "127.0.0.1", "LOCALHOST:80", "localhost", "[::1]:1", "[::1]"]) {
        expect((await raw(`${gateway.url}/health`, { headers: { host } })).status, host).toBe(200)
      }
      for (const host of [
        "evil.example",
        `evil.example:${port}`,
        "127.0.0.1.nip.io",
        "localhost.evil.example",
        "127.0.0.2",
        "localhost:80@evil.example"
      ]) {
        const response = await raw(`${gateway.url}/health`, { headers: { host } })
        expect(response.status, host).toBe(403)
        expect(JSON.parse(response.text).error).toMatchObject({
          type: "invalid_request_error",
          code: "host_not_allowed"
        })
      }
      // No Host at all (HTTP/1.0), or an empty one.
      for (const request of ["GET /health HTTP/1.0\r\n\r\n", "GET /health HTTP/1.1\r\nhost: \r\n\r\n"]) {
        const connection = await connect(gateway.url)
        connection.socket.write(request)
        expect(parseResponse(await connection.waitFor(isWhole, 5_000)).status, request).toBe(403)
        connection.socket.destroy()
      }
      const rebound = await postJson(`${gateway.url}/v1/chat/completions`, { messages }, { host: "evil.example" })
      expect(rebound.status).toBe(403)
      expect(chatRequests(pool.servers[0]!)).toHaveLength(0)
    })
    await withApp(1, { hostnames: ["gateway.lan"] }, async ({ url }) => {
      for (const host of ["gateway.lan", "GATEWAY.lan:8080"]) {
        expect((await raw(`${url}/health`, { headers: { host } })).status, host).toBe(200)
      }
      expect((await raw(`${url}/health`, { headers: { host: "other.lan" } })).status).toBe(403)
    })
    // With keys, the key is what protects it: any host.
    await withGateway(1, { keys: [KEY] }, async ({ gateway }) => {
      const response = await raw(`${gateway.url}/health`, {
        headers: { host: "gateway.example.com", authorization: `Bearer ${KEY}` }
      })
      expect(response.status).toBe(200)
    })
  })

  it("takes only application/json request bodies (415 otherwise), with or without keys; preflights still work", async () => {
    const origin = "https://app.example"
    for (const keys of [[], [KEY]]) {
      await withGateway(1, { keys, cors: [origin] }, async ({ gateway, pool }) => {
        const auth: Record<string, string> = keys.length > 0 ? { authorization: `Bearer ${KEY}` } : {}
        for (const type of [
          "text/plain",
          "application/x-www-form-urlencoded",
          "multipart/form-data; boundary=x",
          undefined
        ]) {
          for (const path of ["/v1/chat/completions", "/v1/embeddings"]) {
            const headers = { ...auth, ...(type === undefined ? {} : { "content-type": type }) }
            const response = await raw(`${gateway.url}${path}`, { method: "POST", headers, body: chatBody })
            expect(response.status, `${type} ${path}`).toBe(415)
            expect(JSON.parse(response.text).error).toMatchObject({
              type: "invalid_request_error",
              code: "unsupported_media_type"
            })
          }
        }
        expect(chatRequests(pool.servers[0]!)).toHaveLength(0)
        for (const type of ["application/json; charset=utf-8", "Application/JSON"]) {
          const headers = { ...auth, "content-type": type }
          const response = await raw(`${gateway.url}/v1/chat/completions`, { method: "POST", headers, body: chatBody })
          expect(response.status, type).toBe(200)
        }
        const preflight = await raw(`${gateway.url}/v1/chat/completions`, {
          method: "OPTIONS",
          headers: {
            origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type"
          }
        })
        expect(preflight.status).toBe(204)
        expect(preflight.headers["access-control-allow-origin"]).toBe(origin)
      })
    }
  })

  it("answers CORS with Vary: Origin when the origins are a list, preflights and other origins included", async () => {
    const [a, b] = ["https://a.example", "https://b.example"]
    for (const cors of [[a, b], [a]]) {
      await withGateway(1, { cors }, async ({ gateway }) => {
        const preflight = await raw(`${gateway.url}/v1/chat/completions`, {
          method: "OPTIONS",
          headers: {
            origin: a,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"
          }
        })
        expect(preflight.headers.vary).toMatch(/\bOrigin\b/)
        expect(preflight.headers.vary).toMatch(/Access-Control-Request-Headers/)
        for (const origin of [a, "https://other.example"]) {
          const response = await raw(`${gateway.url}/health`, { headers: { origin } })
          expect(response.headers.vary, origin).toBe("Origin")
        }
        expect((await raw(`${gateway.url}/v1/nothing`, { headers: { origin: a } })).headers.vary).toBe("Origin")
      })
    }
  })
})

describe("secrets", () => {
  it("leaves no beginning of a client's key where core's excerpt was cut", () => {
    const key = "gw-KEY-0123456789abcdef"
    expect(redact(`upstream said: ${"x".repeat(180)}${key.slice(0, 16)}…`, [key])).toBe(
      `upstream said: ${"x".repeat(180)}[redacted]…`
    )
    expect(redact(`a ${key} b`, [key])).toBe("a [redacted] b")
  })

  /** A mirror that quotes the request's `user` field back in an error of `status`. */
  const echoing = (status: number) => ({
    fault: (request: { body: unknown }): MirrorServer.Fault => ({
      kind: "status",
      status,
      body: { error: { message: `user ${(request.body as { user?: string }).user} is not allowed` } }
    })
  })

  it("never puts a client's key in an error body or a log line, whatever the upstream echoes", async () => {
    await capturingLogs(async (logs) => {
      for (const status of [400, 500]) {
        // The gateway's key, and (without keys) the token a client presented, often its own OpenAI key.
        for (const [keys, secret] of [
          [[KEY], KEY],
          [[], "sk-client-own-key-0123456789"]
        ] as const) {
          await withGateway([echoing(status)], { keys }, async ({ gateway }) => {
            const authorization = `Bearer ${secret}`
            for (const stream of [false, true]) {
              const response = await postJson(
                `${gateway.url}/v1/chat/completions`,
                { messages, user: secret, stream },
                { authorization }
              )
              expect(response.status).toBe(status === 400 ? 400 : 502)
              expect(response.text).toContain("[redacted]")
              expect(response.text).not.toContain(secret)
            }
          })
          expect(logs()).not.toContain(secret)
        }
      }
      expect(logs()).toContain("[redacted]")
    })
  })
})

describe("an upstream that never ends", () => {
  it("a whole request answered with an endless event stream ends at maxReplySize: a 502, the upstream closed, memory bounded", async () => {
    const { createServer } = await import("node:http")
    const chunk = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: "x".repeat(1000) } }] })}\n\n`
    let closed = 0
    const upstream = createServer((_, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" })
      const write = () => {
        while (res.write(chunk)) if (res.writableLength > 1 << 20) break
      }
      res.on("drain", write)
      res.on("close", () => closed++)
      write()
    })
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve))
    const url = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`
    const { Gateway } = await import("../src/index.js")
    const gateway = await Gateway.start({
      port: 0,
      chat: { servers: [url], cookieInit: "off", path: "/v1/chat/completions", maxReplySize: 4 * 1024 * 1024 }
    })
    try {
      globalThis.gc?.()
      const before = process.memoryUsage().heapUsed
      const response = await postJson(`${gateway.url}/v1/chat/completions`, { model: "m", messages })
      expect(response.status).toBe(502)
      const body = JSON.parse(response.text)
      expect(body.error.code).toBe("AllServersFailed")
      expect(body.error.message).toContain("maxReplySize")
      // The upstream's endless answer was closed, not read on.
      await vi.waitFor(() => expect(closed).toBe(1), { timeout: 2000 })
      expect(process.memoryUsage().heapUsed - before).toBeLessThan(64 * 1024 * 1024)
    } finally {
      await gateway.close()
      upstream.closeAllConnections()
      await new Promise((resolve) => upstream.close(resolve))
    }
  })
})
