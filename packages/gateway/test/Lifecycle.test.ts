// The gateway's server over its lifetime, against a real gateway on 127.0.0.1: the send deadline (a client
// that stops reading), the drain on close, the keys refused at start-up, and a loopback host in any case.
import * as http from "node:http"
import * as net from "node:net"
import { EasyChat, InvalidRequest } from "@easychat/core"
import { Mirror, MirrorServer } from "@easychat/testkit"
import * as NodeTransport from "@easychat/transport-node"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { Gateway } from "../src/index.js"
import { chatRequests, postJson, raw, sseEvents } from "./fixtures.js"

/** Polls until `condition` holds; fails the test after `timeoutMs`. */
const until = async (condition: () => boolean | Promise<boolean>, timeoutMs = 5000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** A streamed chat request on its own connection: resolves `started` with the first bytes, `ended` with all. */
const openStream = (url: string, content: string) => {
  let started!: () => void
  const first = new Promise<void>((resolve) => {
    started = resolve
  })
  const ended = new Promise<{ status: number; text: string; at: number }>((resolve, reject) => {
    const request = http.request(
      `${url}/v1/chat/completions`,
      { method: "POST", headers: { "content-type": "application/json" }, agent: false },
      (response) => {
        const parts: Array<Buffer> = []
        response.on("data", (part: Buffer) => {
          parts.push(part)
          started()
        })
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, text: Buffer.concat(parts).toString("utf8"), at: Date.now() })
        )
        response.on("error", reject)
      }
    )
    request.on("error", reject)
    request.end(JSON.stringify({ messages: [{ role: "user", content }], stream: true }))
  })
  return { started: first, ended }
}

const connectionRefused = (url: string) =>
  raw(`${url}/health`).then(
    () => false,
    (error: NodeJS.ErrnoException) => error.code === "ECONNREFUSED"
  )

describe("send deadline", () => {
  it("closes the connection of a client that reads nothing, which frees its slot and its upstream", async () => {
    // 16 MiB in deltas of 64 kB: far more than the socket buffers between the gateway and its client hold.
    const flood = "x".repeat(16 * 1024 * 1024)
    const mirror = await MirrorServer.start({
      reply: (request) => (JSON.stringify(request.body).includes("flood me") ? flood : "small"),
      chunkSize: 65_536
    })
    const gateway = await Gateway.start({
      port: 0,
      sendTimeout: 400,
      maxConcurrent: 1,
      chat: { servers: [mirror.url], cookieInit: "off" }
    })
    const port = new URL(gateway.url).port
    const socket = net.connect(Number(port), "127.0.0.1")
    socket.on("error", () => {})
    try {
      const body = JSON.stringify({ messages: [{ role: "user", content: "flood me" }], stream: true })
      socket.write(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
      )
      // Never read a byte.
      socket.pause()
      await until(() => chatRequests(mirror).length === 1)
      const started = Date.now()
      const closed = await Promise.race([
        chatRequests(mirror)[0]!.closed,
        new Promise<"still open">((resolve) => setTimeout(() => resolve("still open"), 8000))
      ])
      expect(closed).toMatchObject({ finished: false })
      // Within the deadline after the buffers filled, plus a sweep: not the 10-minute total timeout.
      expect(Date.now() - started).toBeLessThan(5000)
      // The one slot is free again.
      const next = await postJson(`${gateway.url}/v1/chat/completions`, { messages: [{ role: "user", content: "hi" }] })
      expect(next.status).toBe(200)
    } finally {
      socket.destroy()
      await gateway.close({ drainTimeout: 0 })
      await mirror.close()
    }
  })

  it("leaves alone a stream that waits for its upstream, and a client that reads now and then", async () => {
    const silent = await MirrorServer.start({ reply: "y".repeat(64), chunkSize: 16, headersDelayMs: 700 })
    // Up to 128 MiB in deltas of 64 kB, written only as fast as they are taken.
    const flood = await MirrorServer.start({ reply: "x".repeat(65_536), chunkSize: 65_536, deltas: 2000 })
    const gateway = await Gateway.start({
      port: 0,
      sendTimeout: 2500,
      chat: { servers: [silent.url, flood.url], strategy: "round-robin", cookieInit: "off" }
    })
    const port = Number(new URL(gateway.url).port)
    const socket = net.connect(port, "127.0.0.1")
    socket.on("error", () => {})
    try {
      // Silent upstream for longer than the deadline: nothing is buffered, nothing is cut.
      const waited = await openStream(gateway.url, "wait").ended
      expect(waited.status).toBe(200)
      expect(waited.text.trimEnd().endsWith("data: [DONE]")).toBe(true)
      expect(chatRequests(silent)).toHaveLength(1)

      // A reader that takes what has arrived for 20 ms every second: its buffers are full most of the time,
      // and it never leaves them full for the whole deadline.
      let received = 0
      socket.on("data", (part: Buffer) => (received += part.length))
      const body = JSON.stringify({ messages: [{ role: "user", content: "flood me" }], stream: true })
      socket.write(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
      )
      socket.pause()
      await until(() => chatRequests(flood).length === 1)
      // Cut by the gateway, the upstream response would close before its end.
      let upstreamClosed = false
      void chatRequests(flood)[0]!.closed.then(() => (upstreamClosed = true))
      for (let i = 0; i < 4; i++) {
        await new Promise((resolve) => setTimeout(resolve, 1000))
        socket.resume()
        await new Promise((resolve) => setTimeout(resolve, 20))
        socket.pause()
      }
      expect(received).toBeGreaterThan(0)
      // Still far from the end: the buffers were full between reads.
      expect(received).toBeLessThan(100 * 1024 * 1024)
      expect(upstreamClosed).toBe(false)
    } finally {
      socket.destroy()
      await gateway.close({ drainTimeout: 0 })
      await silent.close()
      await flood.close()
    }
  })
})

describe("Expect: 100-continue on the gateway's own server", () => {
  it("refuses an oversized declared body with 413 and no 100 Continue; asks for a body it accepts", async () => {
    const mirror = await MirrorServer.start()
    const gateway = await Gateway.start({ port: 0, maxBodyBytes: 4096, chat: { servers: [mirror.url] } })
    const port = Number(new URL(gateway.url).port)
    const exchange = (contentLength: number, body?: string) =>
      new Promise<string>((resolve) => {
        const socket = net.connect(port, "127.0.0.1")
        let text = ""
        socket.on("error", () => {})
        socket.on("data", (part: Buffer) => {
          text += part.toString("latin1")
          if (text.startsWith("HTTP/1.1 100 Continue\r\n\r\n") && body !== undefined) {
            socket.write(body)
            body = undefined
          }
          if (/\r\n\r\n[\s\S]*\}$/.test(text)) {
            socket.destroy()
            resolve(text)
          }
        })
        socket.on("close", () => resolve(text))
        socket.write(
          `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n` +
            `Expect: 100-continue\r\nContent-Length: ${contentLength}\r\n\r\n`
        )
      })
    try {
      const refused = await exchange(100 * 1024 * 1024)
      expect(refused.startsWith("HTTP/1.1 413 ")).toBe(true)
      expect(refused).not.toContain("100 Continue")
      const body = JSON.stringify({ messages: [{ role: "user", content: "go on" }] })
      const accepted = await exchange(Buffer.byteLength(body), body)
      expect(accepted.startsWith("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ")).toBe(true)
    } finally {
      await gateway.close()
      await mirror.close()
    }
  })
})

describe("large whole replies", () => {
  it("are written in slices (so that progress shows), intact and with their Content-Length", async () => {
    const text = "z".repeat(300_000)
    const mirror = await MirrorServer.start({ reply: text, chunkSize: 100_000 })
    const gateway = await Gateway.start({ port: 0, chat: { servers: [mirror.url], cookieInit: "off" } })
    try {
      const reply = await postJson(`${gateway.url}/v1/chat/completions`, {
        messages: [{ role: "user", content: "big" }]
      })
      expect(reply.status).toBe(200)
      expect(reply.headers["content-length"]).toBe(String(Buffer.byteLength(reply.text)))
      expect(reply.headers["content-type"]).toMatch(/^application\/json/)
      expect(JSON.parse(reply.text).choices[0].message.content).toBe(text)
    } finally {
      await gateway.close()
      await mirror.close()
    }
  })
})

describe("drain", () => {
  // 20 ms between deltas of 4 characters: "short" lasts about 0.4 s, anything else about 20 s.
  const slowMirror = () =>
    MirrorServer.start({
      delayMs: 20,
      reply: (request) => (JSON.stringify(request.body).includes('"short"') ? "s".repeat(80) : "l".repeat(4000))
    })

  it("refuses new connections, lets short streams finish, then ends the others with an error event", async () => {
    const mirror = await slowMirror()
    const gateway = await Gateway.start({
      port: 0,
      drainTimeout: 1500,
      chat: { servers: [mirror.url], cookieInit: "off" }
    })
    try {
      const long = openStream(gateway.url, "long")
      await long.started
      const short = openStream(gateway.url, "short")
      await short.started
      const closedAt = Date.now()
      const closing = gateway.close()
      await until(() => connectionRefused(gateway.url), 1000)

      const finished = await short.ended
      expect(finished.status).toBe(200)
      expect(sseEvents(finished.text).at(-1)).toEqual({ event: "message", data: "[DONE]" })
      expect(finished.at - closedAt).toBeLessThan(1500)

      const cut = await long.ended
      const events = sseEvents(cut.text)
      expect(events.some((e) => e.data === "[DONE]")).toBe(false)
      expect(events.at(-1)!.event).toBe("error")
      expect(JSON.parse(events.at(-1)!.data)).toEqual({
        error: {
          message: "The gateway is shutting down: this reply was cut before its end; send the request again",
          type: "server_error",
          param: null,
          code: "gateway_shutdown"
        }
      })
      // After the grace period, not before.
      expect(cut.at - closedAt).toBeGreaterThanOrEqual(1400)
      expect(cut.at - closedAt).toBeLessThan(4000)
      await closing
      const upstream = chatRequests(mirror).find((r) => JSON.stringify(r.body).includes('"long"'))!
      expect((await upstream.closed).finished).toBe(false)
      expect(mirror.openConnections()).toBe(0)
    } finally {
      await gateway.close()
      await mirror.close()
    }
  })

  it("answers a request still waiting for its upstream at the end of the grace period with a 503, never an empty reply", async () => {
    const mirror = await MirrorServer.start({ headersDelayMs: 10_000 })
    const gateway = await Gateway.start({
      port: 0,
      drainTimeout: 500,
      chat: { servers: [mirror.url], cookieInit: "off" }
    })
    try {
      const whole = postJson(`${gateway.url}/v1/chat/completions`, {
        model: "m",
        messages: [{ role: "user", content: "x" }]
      })
      await until(() => Promise.resolve(chatRequests(mirror).length === 1), 2000)
      const closing = gateway.close()
      const answer = await whole
      expect(answer.status).toBe(503)
      expect(JSON.parse(answer.text).error.code).toBe("gateway_shutdown")
      await closing
    } finally {
      await gateway.close()
      await mirror.close()
    }
  })

  it("closes at once with close({ drainTimeout: 0 }); the openai client raises the error event", async () => {
    const mirror = await slowMirror()
    const gateway = await Gateway.start({ port: 0, chat: { servers: [mirror.url], cookieInit: "off" } })
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "unused", maxRetries: 0 })
      const stream = await client.chat.completions.create({
        model: "m",
        messages: [{ role: "user", content: "long" }],
        stream: true
      })
      const iterator = stream[Symbol.asyncIterator]()
      await iterator.next()
      const before = Date.now()
      await gateway.close({ drainTimeout: 0 })
      expect(Date.now() - before).toBeLessThan(1500)
      const error = await (async () => {
        while (!(await iterator.next()).done) {}
      })().then(
        () => undefined,
        (e: unknown) => e
      )
      expect(error).toBeInstanceOf(OpenAI.APIError)
      expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe("gateway_shutdown")
    } finally {
      await mirror.close()
    }
  })

  it("closes at once when nothing is open, and refuses a bad grace period", async () => {
    const mirror = await MirrorServer.start()
    const gateway = await Gateway.start({ port: 0, chat: { servers: [mirror.url] } })
    try {
      const reply = await postJson(`${gateway.url}/v1/chat/completions`, { messages: [{ role: "user", content: "a" }] })
      expect(JSON.parse(reply.text).choices[0].message.content).toBe(`Echo: a\n${Mirror.defaultSentence}`)
      await expect(gateway.close({ drainTimeout: -1 })).rejects.toBeInstanceOf(InvalidRequest)
      const before = Date.now()
      await gateway.close()
      expect(Date.now() - before).toBeLessThan(500)
      expect(await connectionRefused(gateway.url)).toBe(true)
    } finally {
      await gateway.close()
      await mirror.close()
    }
  })
})

describe("options", () => {
  it("refuses keys shorter than 16 characters or not printable ASCII, naming the rule and never the key", async () => {
    const good = "k".repeat(16)
    for (const [keys, field] of [
      [["tiny-key"], "keys"],
      [[good, "ключ-ключ-ключ-ключ"], "keys[1]"],
      [["with a space in it!"], "keys"],
      [[good, good, ""], "keys[2]"]
    ] as const) {
      const error = await Gateway.start({ port: 0, keys }).then(
        () => undefined,
        (e: unknown) => e
      )
      expect(error).toBeInstanceOf(InvalidRequest)
      expect((error as InvalidRequest).field).toBe(field)
      expect((error as InvalidRequest).message).toContain("at least 16 characters, each printable ASCII")
      for (const key of keys) if (key !== "") expect((error as InvalidRequest).message).not.toContain(key)
    }
    expect(Gateway.keyProblem("0123456789abcdef")).toBeUndefined()
    expect(Gateway.keyProblem("0123456789abcde")).toBeDefined()
  })

  it("checks the deadlines, hostnames and allowRouting", async () => {
    for (const [options, field] of [
      [{ bodyTimeout: 0 }, "bodyTimeout"],
      [{ bodyTimeout: "soon" }, "bodyTimeout"],
      [{ sendTimeout: -5 }, "sendTimeout"],
      [{ drainTimeout: Number.NaN }, "drainTimeout"],
      [{ hostnames: ["http://gateway.lan/"] }, "hostnames"],
      // The port is left out of a Host before it is compared: a name with one would never match.
      [{ hostnames: ["gateway.lan:8080"] }, "hostnames"],
      [{ hostnames: ["[fd00::1]:8080"] }, "hostnames"],
      [{ allowRouting: "yes" }, "allowRouting"]
    ] as const) {
      const exit = await Effect.runPromiseExit(Gateway.make(options as Gateway.Options))
      expect(exit._tag === "Failure" && exit.cause._tag === "Fail" && exit.cause.error.field).toBe(field)
    }
    const ok = await Effect.runPromiseExit(
      Gateway.make({
        bodyTimeout: "5 seconds",
        sendTimeout: 1000,
        drainTimeout: 0,
        hostnames: ["Gateway.LAN", "[fd00::1]"]
      })
    )
    expect(ok._tag).toBe("Success")
  })

  it("takes LOCALHOST for loopback: no warning about keys (and one for 0.0.0.0)", async () => {
    const mirror = await MirrorServer.start()
    try {
      const warnings = (host: string) =>
        Effect.runPromise(
          Effect.gen(function* () {
            const logs: Array<string> = []
            const logger = Logger.make(({ message }) => {
              logs.push(String(message))
            })
            yield* Effect.scoped(
              Layer.build(
                Gateway.layer({ host, port: 0 }).pipe(
                  Layer.provide(EasyChat.layer({ servers: [mirror.url] })),
                  Layer.provide(NodeTransport.layer()),
                  Layer.provide(Logger.replace(Logger.defaultLogger, logger))
                )
              )
            )
            return logs.filter((line) => line.includes("without a key"))
          })
        )
      expect(await warnings("LOCALHOST")).toEqual([])
      expect(await warnings("0.0.0.0")).toHaveLength(1)
    } finally {
      await mirror.close()
    }
  })
})
