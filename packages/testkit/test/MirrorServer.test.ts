import * as http from "node:http"
import { afterEach, describe, expect, it } from "vitest"
import { Mirror, MirrorServer } from "../src/index.js"
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

const expectedReply = `Echo: Hello there\n${Mirror.defaultSentence}`

describe("cookies", () => {
  it("GET / sets the default session cookie", async () => {
    const server = await startServer()
    const res = await fetch(`${server.url}/`)
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toContain("text/html")
    const [cookie] = res.headers.getSetCookie()
    expect(cookie).toMatch(/^session=[0-9a-f]{32}; Path=\/; Max-Age=3600; HttpOnly$/)
    expect(server.cookies).toEqual({ session: cookie!.slice(8, 40) })
  })

  it("sets a configured list of cookies", async () => {
    const server = await startServer({ cookies: ["a=1; Path=/", "b=2; Path=/; Secure"] })
    const res = await fetch(`${server.url}/`)
    expect(res.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Path=/; Secure"])
    expect(server.cookies).toEqual({ a: "1", b: "2" })
  })

  it("redirects first, each hop setting its own cookies", async () => {
    const server = await startServer({ redirect: true, cookies: ["final=yes; Path=/"] })
    const first = await fetch(`${server.url}/`, { redirect: "manual" })
    expect(first.status).toBe(302)
    expect(first.headers.get("location")).toBe("/welcome")
    const [visit] = first.headers.getSetCookie()
    expect(visit).toMatch(/^visit=[0-9a-f]{16}; Path=\/; HttpOnly$/)
    const second = await fetch(`${server.url}/welcome`, { headers: { cookie: visit!.split(";")[0]! } })
    expect(second.status).toBe(200)
    expect(second.headers.getSetCookie()).toEqual(["final=yes; Path=/"])
    expect(Object.keys(server.cookies).sort()).toEqual(["final", "visit"])
  })

  it("redirect location and cookies are configurable", async () => {
    const server = await startServer({ redirect: { location: "/hop", cookies: ["h=1"] } })
    const first = await fetch(`${server.url}/`, { redirect: "manual" })
    expect(first.headers.get("location")).toBe("/hop")
    expect(first.headers.getSetCookie()).toEqual(["h=1"])
    expect((await fetch(`${server.url}/hop`)).status).toBe(200)
  })

  it("requireCookies: 403 without the cookies of every hop, 200 with them", async () => {
    const server = await startServer({ redirect: true, requireCookies: true })
    const body = { messages }
    const none = await post(`${server.url}${chatPath}`, body)
    expect(none.status).toBe(403)
    const error = (await none.json()) as { error: { message: string } }
    expect(error.error.message).toContain("visit")
    expect(error.error.message).toContain("session")
    // names only: cookie values never leak into the message
    expect(error.error.message).not.toContain(server.cookies["session"])

    const onlyFinal = await post(`${server.url}${chatPath}`, body, {
      headers: { cookie: `session=${server.cookies["session"]}` }
    })
    expect(onlyFinal.status).toBe(403)

    const cookie = Object.entries(server.cookies)
      .map(([k, v]) => `${k}=${v}`)
      .join("; ")
    const ok = await post(`${server.url}${chatPath}`, body, { headers: { cookie } })
    expect(ok.status).toBe(200)
  })
})

describe("access code", () => {
  it("answers like NextChat", async () => {
    const server = await startServer({ accessCode: "secret" })
    const url = `${server.url}${chatPath}`
    const empty = await post(url, { messages })
    expect(empty.status).toBe(401)
    expect(await empty.json()).toEqual({ error: true, msg: "empty access code" })
    const wrong = await post(url, { messages }, { headers: { authorization: "Bearer nk-nope" } })
    expect(await wrong.json()).toEqual({ error: true, msg: "wrong access code" })
    const right = await post(url, { messages }, { headers: { authorization: "Bearer nk-secret" } })
    expect(right.status).toBe(200)
    const ownKey = await post(url, { messages }, { headers: { authorization: "Bearer sk-user-key" } })
    expect(ownKey.status).toBe(200)
  })
})

describe("whole replies", () => {
  it("answers a chat.completion with the default echo reply", async () => {
    const server = await startServer()
    const res = await post(`${server.url}${chatPath}`, { messages, model: "gpt-4o" })
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toBe("application/json")
    const body = (await res.json()) as Record<string, any>
    expect(body).toMatchObject({
      id: "chatcmpl-mirror-0",
      object: "chat.completion",
      model: "gpt-4o",
      choices: [{ index: 0, message: { role: "assistant", content: expectedReply }, finish_reason: "stop" }]
    })
    expect(typeof body["created"]).toBe("number")
    const completion = Mirror.splitReply(expectedReply).length
    // "Be brief." + "Hello there": 20 characters, 5 prompt tokens
    expect(body["usage"]).toEqual({ prompt_tokens: 5, completion_tokens: completion, total_tokens: 5 + completion })
  })

  it("answers on /v1/chat/completions too, with the default model", async () => {
    const server = await startServer()
    const body = (await (await post(`${server.url}/v1/chat/completions`, { messages })).json()) as Record<string, any>
    expect(body["model"]).toBe("gpt-3.5-turbo")
  })

  it("reply can be a string or a function of the request; usage can be off", async () => {
    const fixed = await startServer({ reply: "Fixed.", usage: "never" })
    const a = (await (await post(`${fixed.url}${chatPath}`, { messages })).json()) as Record<string, any>
    expect(a["choices"][0].message.content).toBe("Fixed.")
    expect(a["usage"]).toBeUndefined()

    const fn = await startServer({ reply: (req) => `model=${(req.body as { model: string }).model}` })
    const b = (await (await post(`${fn.url}${chatPath}`, { messages, model: "m1" })).json()) as Record<string, any>
    expect(b["choices"][0].message.content).toBe("model=m1")
  })

  it("content parts count as text", async () => {
    const server = await startServer()
    const parts = [
      { role: "user", content: [{ type: "text", text: "a" }, { type: "image_url" }, { type: "text", text: "b" }] }
    ]
    const body = (await (await post(`${server.url}${chatPath}`, { messages: parts })).json()) as Record<string, any>
    expect(body["choices"][0].message.content).toBe(`Echo: ab\n${Mirror.defaultSentence}`)
  })

  it("answers 400 to a body that is not JSON, 404 elsewhere, 405 to GET on the chat path", async () => {
    const server = await startServer()
    expect((await post(`${server.url}${chatPath}`, "{nope")).status).toBe(400)
    expect((await fetch(`${server.url}/nothing`)).status).toBe(404)
    expect((await fetch(`${server.url}${chatPath}`)).status).toBe(405)
  })
})

describe("streams", () => {
  it("streams role, content deltas, finish, then [DONE]", async () => {
    const server = await startServer()
    const res = await post(`${server.url}${chatPath}`, { messages, stream: true })
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8")
    const text = await res.text()
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true)
    const events = parseSse(text)
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data))
    expect(chunks[0]).toMatchObject({
      object: "chat.completion.chunk",
      model: "gpt-3.5-turbo",
      choices: [{ index: 0, delta: { role: "assistant" }, finish_reason: null }]
    })
    expect(chunks.at(-1)).toMatchObject({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] })
    expect(contentOf(events)).toBe(expectedReply)
    // default chunkSize 4: every delta but the last has 4 characters
    const deltas = chunks.slice(1, -1).map((c) => c.choices[0].delta.content as string)
    expect(deltas.slice(0, -1).every((d) => d.length === 4)).toBe(true)
    expect(events.at(-1)!.data).toBe("[DONE]")
  })

  it("chunkSize, deltas and usage chunks", async () => {
    const server = await startServer({ reply: "abc", chunkSize: 1, deltas: 7, usage: "always" })
    const events = parseSse(await (await post(`${server.url}${chatPath}`, { messages, stream: true })).text())
    expect(contentOf(events)).toBe("abcabca")
    expect(events).toHaveLength(1 + 7 + 1 + 1 + 1)
    const usage = JSON.parse(events.at(-2)!.data)
    expect(usage.choices).toEqual([])
    expect(usage.usage.completion_tokens).toBe(7)

    const whole = (await (await post(`${server.url}${chatPath}`, { messages })).json()) as Record<string, any>
    expect(whole["choices"][0].message.content).toBe("abcabca")
  })

  it("usage chunk on request with stream_options.include_usage", async () => {
    const server = await startServer({ reply: "hi" })
    const plain = parseSse(await (await post(`${server.url}${chatPath}`, { messages, stream: true })).text())
    expect(plain.some((e) => e.data.includes('"usage"'))).toBe(false)
    const asked = parseSse(
      await (
        await post(`${server.url}${chatPath}`, { messages, stream: true, stream_options: { include_usage: true } })
      ).text()
    )
    expect(JSON.parse(asked.at(-2)!.data).usage).toMatchObject({ completion_tokens: 1 })
  })

  it("code points are never split", async () => {
    const server = await startServer({ reply: "😀😀😀", chunkSize: 1 })
    const events = parseSse(await (await post(`${server.url}${chatPath}`, { messages, stream: true })).text())
    expect(events.slice(1, 4).map((e) => JSON.parse(e.data).choices[0].delta.content)).toEqual(["😀", "😀", "😀"])
  })

  it("a long stream of 20,000 deltas in batches", async () => {
    const server = await startServer({ reply: "token ", chunkSize: 6, deltas: 20_000, batch: 200 })
    const text = await (await post(`${server.url}${chatPath}`, { messages, stream: true })).text()
    const events = parseSse(text)
    expect(events).toHaveLength(20_003)
    expect(contentOf(events)).toBe("token ".repeat(20_000))
  })

  it("delayMs spaces the writes and headersDelayMs delays the answer", async () => {
    const server = await startServer({ reply: "abcd", chunkSize: 1, delayMs: 30, headersDelayMs: 50 })
    const started = Date.now()
    const res = await post(`${server.url}${chatPath}`, { messages, stream: true })
    expect(Date.now() - started).toBeGreaterThanOrEqual(45)
    await res.text()
    // role, 4 deltas, finish, [DONE]: 6 gaps of 30 ms
    expect(Date.now() - started).toBeGreaterThanOrEqual(45 + 6 * 28)
  })
})

describe("helpers", () => {
  it("sse and chunk build stream text", () => {
    expect(Mirror.sse([Mirror.chunk("Hi"), "[DONE]"])).toBe(
      'data: {"id":"chatcmpl-mirror","object":"chat.completion.chunk","created":0,"model":"gpt-3.5-turbo",' +
        '"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\ndata: [DONE]\n\n'
    )
    expect(Mirror.sse([{ event: "error", data: "a\nb" }])).toBe("event: error\ndata: a\ndata: b\n\n")
    expect(Mirror.chunk({}, { finishReason: "stop", model: "m" })).toMatchObject({
      model: "m",
      choices: [{ delta: {}, finish_reason: "stop" }]
    })
    expect(MirrorServer.sse).toBe(Mirror.sse)
  })
})

describe("cors", () => {
  it("answers preflights and marks answers", async () => {
    const server = await startServer({ cors: true })
    const pre = await fetch(`${server.url}${chatPath}`, {
      method: "OPTIONS",
      headers: {
        origin: "http://app.test",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, authorization"
      }
    })
    expect(pre.status).toBe(204)
    expect(pre.headers.get("access-control-allow-origin")).toBe("http://app.test")
    expect(pre.headers.get("access-control-allow-credentials")).toBe("true")
    expect(pre.headers.get("access-control-allow-headers")).toBe("content-type, authorization")
    const res = await post(`${server.url}${chatPath}`, { messages }, { headers: { origin: "http://app.test" } })
    expect(res.headers.get("access-control-allow-origin")).toBe("http://app.test")
  })

  it("no CORS headers unless asked", async () => {
    const server = await startServer()
    const res = await post(`${server.url}${chatPath}`, { messages }, { headers: { origin: "http://app.test" } })
    expect(res.headers.get("access-control-allow-origin")).toBeNull()
  })
})

describe("recording", () => {
  it("records every request with headers, cookies and bodies", async () => {
    const server = await startServer()
    await fetch(`${server.url}/`)
    await post(
      `${server.url}${chatPath}?x=1`,
      { messages, stream: false },
      { headers: { cookie: "a=1; b=2", "X-Test": "yes" } }
    )
    expect(server.requests).toHaveLength(2)
    const [home, chat] = server.requests
    expect(home).toMatchObject({ index: 0, method: "GET", path: "/", rawBody: "", body: undefined })
    expect(chat).toMatchObject({
      index: 1,
      method: "POST",
      path: `${chatPath}?x=1`,
      url: `${server.url}${chatPath}?x=1`,
      cookies: { a: "1", b: "2" },
      body: { messages, stream: false }
    })
    expect(chat!.headers["x-test"]).toBe("yes")
    expect(chat!.rawHeaders).toContainEqual(["X-Test", "yes"])
    expect(chat!.rawBody).toBe(JSON.stringify({ messages, stream: false }))
    expect(Math.abs(chat!.time - Date.now())).toBeLessThan(5000)
    expect((await chat!.closed).finished).toBe(true)
  })

  it("keeps repeated headers visible", async () => {
    const server = await startServer()
    await raw(`${server.url}/`, { headers: { "x-requested-with": "XMLHttpRequest" } })
    // node:http joins repeats; rawHeaders keeps each line
    await new Promise<void>((resolve) => {
      const req = http.request(`${server.url}/`)
      req.setHeader("x-dup", ["1", "2"])
      req.on("response", (res) => res.resume().on("end", resolve))
      req.end()
    })
    const last = server.requests.at(-1)!
    expect(last.headers["x-dup"]).toBe("1, 2")
    expect(last.rawHeaders.filter(([name]) => name === "x-dup")).toHaveLength(2)
  })

  it("reset forgets requests", async () => {
    const server = await startServer()
    await fetch(`${server.url}/`)
    await server.reset()
    expect(server.requests).toHaveLength(0)
    await fetch(`${server.url}/`)
    expect(server.requests[0]!.index).toBe(0)
  })
})

describe("connections", () => {
  it("counts open connections and sees the request's connection close on cancel", async () => {
    const server = await startServer({ fault: { kind: "stall-mid-stream", afterDeltas: 1 } })
    const controller = new AbortController()
    const res = await post(`${server.url}${chatPath}`, { messages, stream: true }, { signal: controller.signal })
    const reader = res.body!.getReader()
    await reader.read()
    expect(server.openConnections()).toBe(1)
    const [connection] = server.connections
    expect(connection!.closedAt).toBeUndefined()
    const cancelledAt = Date.now()
    controller.abort()
    const closedAt = await connection!.closed
    expect(closedAt - cancelledAt).toBeLessThan(100)
    expect(server.connectionsClosed).toBeGreaterThanOrEqual(1)
    const closed = await server.requests[0]!.closed
    expect(closed.finished).toBe(false)
    expect(closed.at - cancelledAt).toBeLessThan(100)
    expect(server.requests[0]!.connectionId).toBe(connection!.id)
    // Node 20's fetch (undici 6) opens a fresh idle connection right after an
    // aborted one, so "no connection open" is the wrong thing to wait for here.
    expect(server.requests).toHaveLength(1)
  })

  it("waitForConnectionsClosed resolves once a client closes its sockets", async () => {
    const server = await startServer()
    const agent = new http.Agent({ keepAlive: true })
    await new Promise<void>((resolve) => {
      http.get(`${server.url}/`, { agent }, (res) => res.resume().on("end", resolve))
    })
    expect(server.openConnections()).toBe(1)
    agent.destroy()
    await server.waitForConnectionsClosed(1000)
    expect(server.openConnections()).toBe(0)
    expect(server.connectionsClosed).toBe(1)
  })

  it("waitForConnectionsClosed rejects while a connection stays open", async () => {
    const server = await startServer({ fault: { kind: "stall-before-headers" } })
    const pending = raw(`${server.url}${chatPath}`, { body: { messages } })
    while (server.requests.length === 0) await new Promise((r) => setTimeout(r, 5))
    await expect(server.waitForConnectionsClosed(50)).rejects.toThrow(/still open/)
    await server.close()
    expect((await pending).error).toBeDefined()
    expect(server.openConnections()).toBe(0)
  })

  it("close destroys every socket and is idempotent", async () => {
    const server = await startServer({ fault: { kind: "stall-mid-stream", afterDeltas: 0 } })
    const res = await post(`${server.url}${chatPath}`, { messages, stream: true })
    await server.close()
    await expect(res.text()).rejects.toThrow()
    await server.close()
    await expect(fetch(`${server.url}/`)).rejects.toThrow()
  })
})
