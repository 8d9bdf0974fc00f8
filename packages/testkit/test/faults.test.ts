import * as zlib from "node:zlib"
import { afterEach, describe, expect, it } from "vitest"
import { Fault, MirrorServer } from "../src/index.js"
import { chatPath, contentOf, messages, parseSse, post, raw } from "./helpers.js"

const servers: Array<MirrorServer.MirrorServer> = []
const startServer = async (options?: MirrorServer.MirrorServerOptions) => {
  const server = await MirrorServer.start(options)
  servers.push(server)
  return server
}
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()))
})

// "abcdef" in deltas of 1 character: easy to count what arrived.
const streamWith = async (fault: Fault.Fault, headers?: Record<string, string>) => {
  const server = await startServer({ reply: "abcdef", chunkSize: 1, fault })
  const res = await raw(`${server.url}${chatPath}`, {
    body: { messages, stream: true },
    ...(headers === undefined ? {} : { headers })
  })
  return { server, res, text: res.body.toString("utf8") }
}

const causeCode = async (promise: Promise<unknown>): Promise<string | undefined> => {
  try {
    await promise
    return undefined
  } catch (error) {
    return ((error as Error).cause as { code?: string } | undefined)?.code ?? (error as Error).message
  }
}

describe("connection faults", () => {
  it("refuse as the server's fault stops listening until cleared", async () => {
    const server = await startServer()
    await server.setFault({ kind: "refuse" })
    expect(await causeCode(fetch(`${server.url}/`))).toBe("ECONNREFUSED")
    await server.setFault(undefined)
    expect((await fetch(`${server.url}/`)).status).toBe(200)
  })

  it("refuse from the start, and reset() keeps the options' fault", async () => {
    const server = await startServer({ fault: { kind: "refuse" } })
    expect(await causeCode(fetch(`${server.url}/`))).toBe("ECONNREFUSED")
    await server.reset()
    expect(await causeCode(fetch(`${server.url}/`))).toBe("ECONNREFUSED")
    await server.setFault(undefined)
    expect((await fetch(`${server.url}/`)).status).toBe(200)
  })

  it("refusingUrl has nothing listening", async () => {
    const url = await MirrorServer.refusingUrl()
    expect(await causeCode(fetch(url))).toBe("ECONNREFUSED")
  })

  it("reset-before-headers (and refuse for one request) destroys the socket", async () => {
    const server = await startServer({ fault: [{ kind: "reset-before-headers" }, { kind: "refuse" }] })
    const first = await raw(`${server.url}${chatPath}`, { body: { messages } })
    expect(first.status).toBe(0)
    expect((first.error as NodeJS.ErrnoException).code).toBe("ECONNRESET")
    await expect(post(`${server.url}${chatPath}`, { messages })).rejects.toThrow(TypeError)
    expect((await post(`${server.url}${chatPath}`, { messages })).status).toBe(200)
    expect(server.requests).toHaveLength(3)
  })

  it("stall-before-headers never answers", async () => {
    const server = await startServer({ fault: { kind: "stall-before-headers" } })
    const res = await raw(`${server.url}${chatPath}`, { body: { messages }, timeoutMs: 150 })
    expect(res.status).toBe(0)
    expect(res.error?.message).toBe("test timeout")
    expect(server.requests).toHaveLength(1)
  })
})

describe("whole-response faults", () => {
  it("status 429 with Retry-After and a JSON body", async () => {
    const server = await startServer({
      fault: { kind: "status", status: 429, headers: { "Retry-After": "7" }, body: { error: { message: "slow down" } } }
    })
    const res = await post(`${server.url}${chatPath}`, { messages })
    expect(res.status).toBe(429)
    expect(res.headers.get("retry-after")).toBe("7")
    expect(res.headers.get("content-type")).toBe("application/json")
    expect(await res.json()).toEqual({ error: { message: "slow down" } })
  })

  it("status with the default body, with a text body, with a content type", async () => {
    const server = await startServer({
      fault: [
        { kind: "status", status: 503 },
        { kind: "status", status: 502, body: "Bad Gateway" },
        { kind: "status", status: 500, body: "<h1>oops</h1>", headers: { "content-type": "text/html" } }
      ]
    })
    const a = await post(`${server.url}${chatPath}`, { messages })
    expect(a.status).toBe(503)
    expect(await a.json()).toEqual({ error: { message: "Mirror test fault: HTTP 503", type: "mirror_fault" } })
    const b = await post(`${server.url}${chatPath}`, { messages })
    expect([b.status, b.headers.get("content-type"), await b.text()]).toEqual([
      502,
      "text/plain; charset=utf-8",
      "Bad Gateway"
    ])
    const c = await post(`${server.url}${chatPath}`, { messages })
    expect([c.status, c.headers.get("content-type")]).toEqual([500, "text/html"])
  })

  it("html-200 is a Cloudflare-like page", async () => {
    const server = await startServer({ fault: { kind: "html-200" } })
    const res = await post(`${server.url}${chatPath}`, { messages, stream: true })
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toBe("text/html; charset=UTF-8")
    expect(await res.text()).toContain("Cloudflare")
  })

  it("json-string-error is a JSON string holding NextChat's fenced error", async () => {
    const server = await startServer({ fault: { kind: "json-string-error" } })
    const res = await post(`${server.url}${chatPath}`, { messages, stream: true })
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toBe("application/json")
    const text = await res.text()
    expect(text.startsWith('"```json\\n{\\n  \\"cause\\": {')).toBe(true)
    const value = JSON.parse(text)
    expect(value).toBe(Fault.nextChatUpstreamDown)
    expect(value).toBe(
      '```json\n{\n  "cause": {\n    "errno": -111,\n    "code": "ECONNREFUSED",\n    "syscall": "connect"\n  }\n}\n```'
    )
  })

  it("access-code is NextChat's 401", async () => {
    const server = await startServer({ fault: { kind: "access-code" } })
    const res = await post(`${server.url}${chatPath}`, { messages })
    expect(res.status).toBe(401)
    expect(await res.json()).toEqual({ error: true, msg: "empty access code" })
  })

  it("wrong-content-type-stream answers a stream request with a whole completion", async () => {
    const server = await startServer({ reply: "whole", fault: { kind: "wrong-content-type-stream" } })
    const res = await post(`${server.url}${chatPath}`, { messages, stream: true })
    expect(res.headers.get("content-type")).toBe("application/json")
    expect(await res.json()).toMatchObject({ object: "chat.completion", choices: [{ message: { content: "whole" } }] })
  })
})

describe("stream faults", () => {
  it("stall-mid-stream stops writing but keeps the socket open", async () => {
    const server = await startServer({
      reply: "abcdef",
      chunkSize: 1,
      fault: { kind: "stall-mid-stream", afterDeltas: 2 }
    })
    const res = await raw(`${server.url}${chatPath}`, { body: { messages, stream: true }, timeoutMs: 200 })
    expect(res.status).toBe(200)
    expect(res.error?.message).toBe("test timeout")
    expect(contentOf(parseSse(res.body.toString()))).toBe("ab")
  })

  it("afterDeltas 0 stalls after the role chunk: before the first token", async () => {
    const server = await startServer({ fault: { kind: "stall-mid-stream", afterDeltas: 0 } })
    const res = await raw(`${server.url}${chatPath}`, { body: { messages, stream: true }, timeoutMs: 150 })
    const events = parseSse(res.body.toString())
    expect(events).toHaveLength(1)
    expect(JSON.parse(events[0]!.data).choices[0].delta).toEqual({ role: "assistant" })
  })

  it("close-mid-stream destroys the socket after N deltas", async () => {
    const { res, text } = await streamWith({ kind: "close-mid-stream", afterDeltas: 3 })
    expect(res.status).toBe(200)
    expect(res.error).toBeDefined()
    expect(contentOf(parseSse(text))).toBe("abc")
    expect(text).not.toContain("[DONE]")
    expect(text).not.toContain('"finish_reason":"stop"')
  })

  it("close-mid-stream fails a fetch body read", async () => {
    const server = await startServer({ fault: { kind: "close-mid-stream" } })
    const res = await post(`${server.url}${chatPath}`, { messages, stream: true })
    await expect(res.text()).rejects.toThrow(TypeError)
  })

  it("malformed-json sends `data: {not json` and carries on", async () => {
    const { text } = await streamWith({ kind: "malformed-json", afterDeltas: 1 })
    const events = parseSse(text)
    expect(events[2]!.data).toBe("{not json")
    expect(events.at(-1)!.data).toBe("[DONE]")
    expect(() => JSON.parse(events[2]!.data)).toThrow()
  })

  it("event-error sends `event: error` and ends", async () => {
    const { res, text } = await streamWith({ kind: "event-error", afterDeltas: 2, message: "upstream exploded" })
    expect(res.error).toBeUndefined()
    const events = parseSse(text)
    expect(events.at(-1)).toEqual({ event: "error", data: '{"message":"upstream exploded"}' })
    expect(events).toHaveLength(1 + 2 + 1)
    expect(text.endsWith("\n\n")).toBe(true)
  })

  it("error-chunk sends a chunk with an error field and ends", async () => {
    const { text } = await streamWith({ kind: "error-chunk", afterDeltas: 0 })
    const events = parseSse(text)
    expect(events).toHaveLength(2)
    expect(JSON.parse(events[1]!.data)).toEqual({
      error: { message: "Mirror test fault: error chunk", type: "server_error" }
    })
  })

  it("invalid-utf8 puts 0xff 0xfe inside a content string", async () => {
    const { res } = await streamWith({ kind: "invalid-utf8", afterDeltas: 1 })
    const at = res.body.indexOf(Buffer.from([0xff, 0xfe]))
    expect(at).toBeGreaterThan(0)
    expect(res.body.subarray(at - 14, at).toString()).toBe('"content":"bad')
    expect(res.body.subarray(at + 2, at + 8).toString()).toBe('bytes"')
    expect(contentOf(parseSse(new TextDecoder().decode(res.body)))).toBe("abad\uFFFD\uFFFDbytesbcdef")
  })

  it("oversize-event sends one event larger than size", async () => {
    const { text } = await streamWith({ kind: "oversize-event", afterDeltas: 1 })
    const events = parseSse(text)
    const sizes = events.map((e) => e.data.length)
    expect(Math.max(...sizes)).toBeGreaterThan(2 * 1024 * 1024)
    expect(events.at(-1)!.data).toBe("[DONE]")
    const small = await streamWith({ kind: "oversize-event", afterDeltas: 1, size: 1000 })
    expect(Math.max(...parseSse(small.text).map((e) => e.data.length))).toBeGreaterThan(1000)
  })

  it("no-trailing-blank-line: the final [DONE] has no line end", async () => {
    const { res, text } = await streamWith({ kind: "no-trailing-blank-line" })
    expect(res.error).toBeUndefined()
    expect(text.endsWith('"finish_reason":"stop"}]}\n\ndata: [DONE]')).toBe(true)
  })

  it("no-done: finish_reason, then EOF without [DONE]", async () => {
    const { res, text } = await streamWith({ kind: "no-done" })
    expect(res.error).toBeUndefined()
    expect(text).not.toContain("[DONE]")
    expect(JSON.parse(parseSse(text).at(-1)!.data).choices[0].finish_reason).toBe("stop")
    expect(contentOf(parseSse(text))).toBe("abcdef")
  })

  it("no-done-no-finish: a cut stream, by default after every delta", async () => {
    const all = await streamWith({ kind: "no-done-no-finish" })
    expect(all.res.error).toBeUndefined()
    expect(contentOf(parseSse(all.text))).toBe("abcdef")
    expect(all.text).not.toContain('finish_reason":"stop')
    expect(all.text).not.toContain("[DONE]")
    const two = await streamWith({ kind: "no-done-no-finish", afterDeltas: 2 })
    expect(contentOf(parseSse(two.text))).toBe("ab")
  })

  it("afterDeltas past the end places the fault before the finish chunk", async () => {
    const { text } = await streamWith({ kind: "error-chunk", afterDeltas: 99 })
    expect(contentOf(parseSse(text).slice(0, -1))).toBe("abcdef")
    expect(text).not.toContain('finish_reason":"stop')
  })

  it("stream faults leave whole (non-stream) replies alone", async () => {
    const server = await startServer({ reply: "fine", fault: { kind: "close-mid-stream" } })
    const res = await post(`${server.url}${chatPath}`, { messages })
    expect(await res.json()).toMatchObject({ choices: [{ message: { content: "fine" } }] })
  })
})

describe("gzip", () => {
  it("gzips the stream when the client accepts it, flushing each write", async () => {
    const { res } = await streamWith({ kind: "gzip" }, { "accept-encoding": "gzip" })
    expect(res.headers["content-encoding"]).toBe("gzip")
    const text = zlib.gunzipSync(res.body).toString()
    expect(contentOf(parseSse(text))).toBe("abcdef")
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true)
  })

  it("answers plain when the client does not accept gzip", async () => {
    const { res, text } = await streamWith({ kind: "gzip" })
    expect(res.headers["content-encoding"]).toBeUndefined()
    expect(contentOf(parseSse(text))).toBe("abcdef")
  })

  it("fetch decodes gzip itself, for JSON too", async () => {
    const server = await startServer({ reply: "zipped", fault: { kind: "gzip" } })
    const stream = await post(`${server.url}${chatPath}`, { messages, stream: true })
    expect(stream.headers.get("content-encoding")).toBe("gzip")
    expect(contentOf(parseSse(await stream.text()))).toBe("zipped")
    const whole = await post(`${server.url}${chatPath}`, { messages })
    expect(whole.headers.get("content-encoding")).toBe("gzip")
    expect(await whole.json()).toMatchObject({ choices: [{ message: { content: "zipped" } }] })
  })
})

describe("fault plans", () => {
  it("a list is consumed one entry per chat request; GET / does not count", async () => {
    const server = await startServer({
      fault: [{ kind: "status", status: 500 }, undefined, { kind: "status", status: 502 }]
    })
    const statuses: Array<number> = []
    for (let i = 0; i < 4; i++) {
      await fetch(`${server.url}/`)
      statuses.push((await post(`${server.url}${chatPath}`, { messages })).status)
    }
    expect(statuses).toEqual([500, 200, 502, 200])
  })

  it("a function chooses by request and index", async () => {
    const seen: Array<number> = []
    const server = await startServer({
      fault: (request, index) => {
        seen.push(index)
        return (request.body as { model?: string }).model === "bad" ? { kind: "status", status: 400 } : undefined
      }
    })
    expect((await post(`${server.url}${chatPath}`, { messages, model: "bad" })).status).toBe(400)
    expect((await post(`${server.url}${chatPath}`, { messages, model: "good" })).status).toBe(200)
    expect(seen).toEqual([0, 1])
  })

  it("setFault replaces the plan and reset restores the options'", async () => {
    const server = await startServer({ fault: { kind: "status", status: 503 } })
    await server.setFault({ kind: "status", status: 429 })
    expect((await post(`${server.url}${chatPath}`, { messages })).status).toBe(429)
    await server.setFault(undefined)
    expect((await post(`${server.url}${chatPath}`, { messages })).status).toBe(200)
    await server.reset()
    expect((await post(`${server.url}${chatPath}`, { messages })).status).toBe(503)
  })

  it("cookieFault applies to the cookie pages only", async () => {
    const server = await startServer({ cookieFault: [{ kind: "status", status: 500 }, { kind: "close-mid-stream" }] })
    const failed = await fetch(`${server.url}/`)
    expect(failed.status).toBe(500)
    expect(failed.headers.getSetCookie()).toEqual([])
    // a stream fault means nothing to a cookie page
    expect((await fetch(`${server.url}/`)).headers.getSetCookie()).toHaveLength(1)
    expect((await post(`${server.url}${chatPath}`, { messages })).status).toBe(200)
    server.setCookieFault({ kind: "reset-before-headers" })
    await expect(fetch(`${server.url}/`)).rejects.toThrow(TypeError)
  })
})
