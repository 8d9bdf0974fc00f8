import { setupServer } from "msw/node"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { Fault, Mirror } from "../src/index.js"
import { mirrorHandlers } from "../src/msw.js"
import { chatPath, contentOf, messages, parseSse, post } from "./helpers.js"

const origin = "https://mirror.test"
const mirror = mirrorHandlers(origin, { redirect: true, requireCookies: true })
const plain = mirrorHandlers("https://plain.test", { reply: "abcdef", chunkSize: 1 })
const server = setupServer(...mirror.handlers, ...plain.handlers)

beforeAll(() => server.listen({ onUnhandledRequest: "error" }))
afterEach(() => {
  mirror.reset()
  plain.reset()
})
afterAll(() => server.close())

const cookieHeader = (cookies: Readonly<Record<string, string>>) =>
  Object.entries(cookies)
    .map(([k, v]) => `${k}=${v}`)
    .join("; ")

const stream = async (fault: Fault.Fault, headers?: Record<string, string>) => {
  plain.setFault(fault)
  return post(`https://plain.test${chatPath}`, { messages, stream: true }, headers === undefined ? {} : { headers })
}

describe("msw mirror handlers", () => {
  it("GET / redirects and sets cookies visible as set-cookie headers", async () => {
    const first = await fetch(`${origin}/`, { redirect: "manual" })
    expect(first.status).toBe(302)
    expect(first.headers.get("location")).toBe("/welcome")
    expect(first.headers.getSetCookie()[0]).toMatch(/^visit=/)
    const second = await fetch(`${origin}/welcome`)
    expect(second.status).toBe(200)
    expect(second.headers.get("set-cookie")).toMatch(/^session=[0-9a-f]{32}; Path=\/; Max-Age=3600; HttpOnly$/)
    expect(Object.keys(mirror.cookies).sort()).toEqual(["session", "visit"])
  })

  it("requires the cookies of every hop, which msw does not add by itself", async () => {
    await fetch(`${origin}/`)
    const without = await post(`${origin}${chatPath}`, { messages })
    expect(without.status).toBe(403)
    const withCookies = await post(
      `${origin}${chatPath}`,
      { messages },
      { headers: { cookie: cookieHeader(mirror.cookies) } }
    )
    expect(withCookies.status).toBe(200)
    expect(await withCookies.json()).toMatchObject({
      object: "chat.completion",
      choices: [{ message: { content: `Echo: Hello there\n${Mirror.defaultSentence}` } }]
    })
  })

  it("streams the same events as the node server", async () => {
    const res = await post(`https://plain.test/v1/chat/completions`, { messages, stream: true })
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8")
    const text = await res.text()
    expect(contentOf(parseSse(text))).toBe("abcdef")
    expect(text.endsWith("data: [DONE]\n\n")).toBe(true)
  })

  it("records requests", async () => {
    await post(`https://plain.test${chatPath}`, { messages }, { headers: { "x-test": "1", cookie: "a=1" } })
    expect(plain.requests).toHaveLength(1)
    expect(plain.requests[0]).toMatchObject({
      index: 0,
      method: "POST",
      path: chatPath,
      cookies: { a: "1" },
      body: { messages }
    })
    expect(plain.requests[0]!.headers["x-test"]).toBe("1")
  })

  it("whole-response faults", async () => {
    plain.setFault([
      { kind: "status", status: 429, headers: { "retry-after": "3" } },
      { kind: "html-200" },
      { kind: "json-string-error" },
      { kind: "access-code" }
    ])
    const url = `https://plain.test${chatPath}`
    const limited = await post(url, { messages })
    expect([limited.status, limited.headers.get("retry-after")]).toEqual([429, "3"])
    const html = await post(url, { messages })
    expect(html.headers.get("content-type")).toContain("text/html")
    expect(JSON.parse(await (await post(url, { messages })).text())).toBe(Fault.nextChatUpstreamDown)
    const denied = await post(url, { messages })
    expect([denied.status, await denied.json()]).toEqual([401, { error: true, msg: "empty access code" }])
  })

  it("refuse and reset-before-headers are network errors", async () => {
    plain.setFault([{ kind: "refuse" }, { kind: "reset-before-headers" }])
    await expect(post(`https://plain.test${chatPath}`, { messages })).rejects.toThrow(TypeError)
    await expect(post(`https://plain.test${chatPath}`, { messages })).rejects.toThrow(TypeError)
  })

  it("stall-before-headers answers only when aborted", async () => {
    plain.setFault({ kind: "stall-before-headers" })
    await expect(
      post(`https://plain.test${chatPath}`, { messages }, { signal: AbortSignal.timeout(100) })
    ).rejects.toThrow()
  })

  it("stream faults: malformed-json, event-error, error-chunk, no-done", async () => {
    const malformed = parseSse(await (await stream({ kind: "malformed-json", afterDeltas: 2 })).text())
    expect(malformed[3]!.data).toBe("{not json")
    const eventError = parseSse(await (await stream({ kind: "event-error", afterDeltas: 1 })).text())
    expect(eventError.at(-1)!.event).toBe("error")
    const errorChunk = parseSse(await (await stream({ kind: "error-chunk", afterDeltas: 0 })).text())
    expect(JSON.parse(errorChunk.at(-1)!.data).error.type).toBe("server_error")
    const noDone = await (await stream({ kind: "no-done" })).text()
    expect(noDone).not.toContain("[DONE]")
    const cut = await (await stream({ kind: "no-done-no-finish", afterDeltas: 3 })).text()
    expect(contentOf(parseSse(cut))).toBe("abc")
    const noBlank = await (await stream({ kind: "no-trailing-blank-line" })).text()
    expect(noBlank.endsWith("\n\ndata: [DONE]")).toBe(true)
  })

  it("close-mid-stream errors the body after the deltas", async () => {
    const res = await stream({ kind: "close-mid-stream", afterDeltas: 2 })
    const reader = res.body!.getReader()
    const decoder = new TextDecoder()
    let text = ""
    await expect(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read()
          if (done) return
          text += decoder.decode(value, { stream: true })
        }
      })()
    ).rejects.toThrow()
    expect(contentOf(parseSse(text))).toBe("ab")
  })

  it("stall-mid-stream keeps the body open until cancelled", async () => {
    const controller = new AbortController()
    plain.setFault({ kind: "stall-mid-stream", afterDeltas: 1 })
    const res = await post(`https://plain.test${chatPath}`, { messages, stream: true }, { signal: controller.signal })
    const reader = res.body!.getReader()
    const decoder = new TextDecoder()
    let text = ""
    while (!contentOf(parseSse(text)).includes("a")) text += decoder.decode((await reader.read()).value)
    const next = reader.read()
    const raced = await Promise.race([next.then(() => "data"), new Promise((r) => setTimeout(() => r("stalled"), 100))])
    expect(raced).toBe("stalled")
    const abortedAt = Date.now()
    controller.abort()
    await expect(next).rejects.toThrow()
    const closed = await plain.requests[0]!.closed
    expect(closed.finished).toBe(false)
    expect(closed.at - abortedAt).toBeLessThan(100)
  })

  it("closed says whether the answer was delivered", async () => {
    await (await post(`https://plain.test${chatPath}`, { messages, stream: true })).text()
    expect((await plain.requests[0]!.closed).finished).toBe(true)
    await (await post(`https://plain.test${chatPath}`, { messages })).text()
    expect((await plain.requests[1]!.closed).finished).toBe(true)
    plain.setFault({ kind: "close-mid-stream" })
    await (await post(`https://plain.test${chatPath}`, { messages, stream: true })).text().catch(() => undefined)
    expect((await plain.requests[2]!.closed).finished).toBe(false)
  })

  it("invalid-utf8 and gzip", async () => {
    const bytes = new Uint8Array(await (await stream({ kind: "invalid-utf8", afterDeltas: 0 })).arrayBuffer())
    const at = bytes.findIndex((b, i) => b === 0xff && bytes[i + 1] === 0xfe)
    expect(at).toBeGreaterThan(0)
    // undici adds Accept-Encoding below fetch, where msw does not look: say it explicitly
    expect(plain.requests.at(-1)!.headers["accept-encoding"]).toBeUndefined()
    const zipped = await stream({ kind: "gzip" }, { "accept-encoding": "gzip" })
    expect(zipped.headers.get("content-encoding")).toBe("gzip")
    expect(contentOf(parseSse(await zipped.text()))).toBe("abcdef")
  })

  it("wrong-content-type-stream answers JSON", async () => {
    const res = await stream({ kind: "wrong-content-type-stream" })
    expect(res.headers.get("content-type")).toBe("application/json")
    expect(await res.json()).toMatchObject({ choices: [{ message: { content: "abcdef" } }] })
  })
})
