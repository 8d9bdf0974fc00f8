import * as http from "node:http"
import type { MirrorServer } from "@easychat/testkit"
import { describe, expect, it } from "vitest"
import { chatRequests, expectedReply, messages, postJson, raw, withGateway } from "./fixtures.js"

/** Polls until `condition` holds; fails the test after `timeoutMs`. */
const until = async (condition: () => boolean, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** The chat request and its connection, once both have closed on the mirror's side. */
const upstreamClosed = async (mirror: MirrorServer.MirrorServer) => {
  await until(() => chatRequests(mirror).length === 1)
  const request = chatRequests(mirror)[0]!
  const connection = mirror.connections.find((c) => c.id === request.connectionId)!
  const [response] = await Promise.all([request.closed, connection.closed])
  return { response, connection: mirror.connections.find((c) => c.id === request.connectionId)! }
}

// Long enough that a response still open at the end of a test was cut, not finished.
const slow = { deltas: 400, delayMs: 25 }

describe("client disconnects", () => {
  it("closes the upstream connection when an openai client breaks out of a stream", async () => {
    await withGateway([slow], {}, async ({ client, pool }) => {
      const received: Array<string> = []
      for await (const chunk of await client.chat.completions.create({ model: "m", messages, stream: true })) {
        const text = chunk.choices[0]?.delta.content
        if (text) received.push(text)
        if (received.length === 3) break
      }
      const { response, connection } = await upstreamClosed(pool.servers[0]!)
      expect(response.finished).toBe(false)
      expect(connection.closedAt).toBeDefined()
    })
  })

  it("closes the upstream connection when a raw client drops its socket mid-stream", async () => {
    await withGateway([slow], {}, async ({ gateway, pool }) => {
      await new Promise<void>((resolve, reject) => {
        const request = http.request(
          `${gateway.url}/v1/chat/completions`,
          { method: "POST", headers: { "content-type": "application/json" } },
          (response) => {
            response.once("data", () => {
              request.destroy()
              resolve()
            })
          }
        )
        request.on("error", (error) =>
          (error as NodeJS.ErrnoException).code === "ECONNRESET" ? undefined : reject(error)
        )
        request.end(JSON.stringify({ messages, stream: true }))
      })
      const { response } = await upstreamClosed(pool.servers[0]!)
      expect(response.finished).toBe(false)
    })
  })

  it("closes the upstream connection when a client gives up waiting for a whole reply", async () => {
    await withGateway([{ headersDelayMs: 10_000 }], { chat: { cookieInit: "off" } }, async ({ gateway, pool }) => {
      const controller = new AbortController()
      const call = fetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ messages }),
        signal: controller.signal
      }).catch((error: unknown) => error)
      await until(() => chatRequests(pool.servers[0]!).length === 1)
      controller.abort()
      expect(await call).toMatchObject({ name: "AbortError" })
      const { response } = await upstreamClosed(pool.servers[0]!)
      expect(response.finished).toBe(false)
    })
  })

  it("cuts open streams and their upstream connections when the gateway closes", async () => {
    await withGateway([slow], {}, async ({ client, gateway, pool }) => {
      const stream = await client.chat.completions.create({ model: "m", messages, stream: true })
      const iterator = stream[Symbol.asyncIterator]()
      await iterator.next()
      await gateway.close({ drainTimeout: 0 })
      const { response } = await upstreamClosed(pool.servers[0]!)
      expect(response.finished).toBe(false)
      await expect(
        (async () => {
          while (!(await iterator.next()).done) {}
        })()
      ).rejects.toThrow()
    })
  })
})

describe("limits", () => {
  it("refuses a body over maxBodyBytes with 413, declared or chunked, and serves the next request", async () => {
    await withGateway(1, { maxBodyBytes: 2048 }, async ({ gateway, pool, client }) => {
      const big = JSON.stringify({ messages: [{ role: "user", content: "x".repeat(4096) }] })
      for (const chunked of [false, true]) {
        const response = await raw(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: big,
          chunked
        })
        expect(response.status).toBe(413)
        expect(JSON.parse(response.text).error).toEqual({
          message: "The request body is larger than 2048 bytes",
          type: "invalid_request_error",
          param: null,
          code: "request_too_large"
        })
      }
      expect(chatRequests(pool.servers[0]!)).toHaveLength(0)
      const exact = JSON.stringify({ messages, pad: "" })
      const padded = JSON.stringify({ messages, pad: "p".repeat(2048 - exact.length) })
      expect(padded.length).toBe(2048)
      expect((await postJson(`${gateway.url}/v1/chat/completions`, JSON.parse(padded))).status).toBe(200)
      const reply = await client.chat.completions.create({ model: "m", messages })
      expect(reply.choices[0]?.message.content).toBe(expectedReply)
    })
  })

  it("refuses chat requests over maxConcurrent with 429 while the others carry on", async () => {
    await withGateway([{ deltas: 30, delayMs: 20 }], { maxConcurrent: 1 }, async ({ client, gateway }) => {
      const first = await client.chat.completions.create({ model: "m", messages, stream: true })
      const iterator = first[Symbol.asyncIterator]()
      const head = await iterator.next()

      const refused = await postJson(`${gateway.url}/v1/chat/completions`, { messages })
      expect(refused.status).toBe(429)
      expect(refused.headers["retry-after"]).toBe("1")
      expect(JSON.parse(refused.text).error).toMatchObject({
        type: "rate_limit_error",
        code: "too_many_concurrent_requests"
      })
      // Only chat requests count: health and models still answer.
      expect((await raw(`${gateway.url}/health`)).status).toBe(200)
      expect((await raw(`${gateway.url}/v1/models`)).status).toBe(200)

      const texts = [head.value?.choices[0]?.delta.content ?? ""]
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
        texts.push(next.value.choices[0]?.delta.content ?? "")
      }
      expect(texts.join("")).toBe(expectedReply.repeat(10).slice(0, texts.join("").length))
      expect(texts.filter((t) => t !== "")).toHaveLength(30)
      // The permit comes back once the response is fully written, a moment after the client read its end.
      let after = await postJson(`${gateway.url}/v1/chat/completions`, { messages })
      for (let i = 0; i < 100 && after.status === 429; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10))
        after = await postJson(`${gateway.url}/v1/chat/completions`, { messages })
      }
      expect(after.status).toBe(200)
    })
  })
})

describe("keep-alive", () => {
  /** A request on `agent`: its status, `Connection` header, and whether it went on a socket used before. */
  const onAgent = (
    agent: http.Agent,
    url: string,
    init: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}
  ) =>
    new Promise<{ status: number; connection: string | undefined; reused: boolean }>((resolve, reject) => {
      const request = http.request(
        url,
        { method: init.method ?? "GET", headers: init.headers ?? {}, agent },
        (response) => {
          response.resume()
          response.on("end", () =>
            resolve({
              status: response.statusCode ?? 0,
              connection: response.headers.connection,
              reused: request.reusedSocket
            })
          )
        }
      )
      // The gateway may close before the whole body is written: that is the point of a refusal.
      request.on("error", (error) => ((error as NodeJS.ErrnoException).code === "EPIPE" ? undefined : reject(error)))
      request.end(init.body)
    })

  it("keeps the connection of a request without a body, and closes one whose body was left unread", async () => {
    const key = "keep-alive-test-key-0123456789"
    await withGateway(1, { keys: [key] }, async ({ gateway }) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
      const sockets = new Set<unknown>()
      agent.on("free", (socket) => sockets.add(socket))
      try {
        const auth = { authorization: `Bearer ${key}` }
        // Answered at once, before Node marks the request complete: nothing is unread, the socket stays.
        const first = await onAgent(agent, `${gateway.url}/health`, { headers: auth })
        const second = await onAgent(agent, `${gateway.url}/health`, { headers: auth })
        const page = await onAgent(agent, `${gateway.url}/`)
        expect([first.status, second.status, page.status]).toEqual([200, 200, 200])
        expect([first.reused, second.reused, page.reused]).toEqual([false, true, true])
        expect([first.connection, second.connection, page.connection]).toEqual([
          "keep-alive",
          "keep-alive",
          "keep-alive"
        ])
        expect(sockets.size).toBe(1)
        // Refused before its 2 MiB body was read: the connection ends rather than drain the body.
        const refused = await onAgent(agent, `${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: Buffer.alloc(2 * 1024 * 1024, 0x20)
        })
        expect(refused.status).toBe(401)
        expect(refused.connection).toBe("close")
        expect(refused.reused).toBe(true)
        const after = await onAgent(agent, `${gateway.url}/health`, { headers: auth })
        expect(after).toEqual({ status: 200, connection: "keep-alive", reused: false })
      } finally {
        agent.destroy()
      }
    })
  })
})
