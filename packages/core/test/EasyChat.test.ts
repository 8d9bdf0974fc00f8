import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { delay, HttpResponse, http } from "msw"
import { setupServer } from "msw/node"
import { afterAll, afterEach, beforeAll } from "vitest"
import { EasyChat, Presets } from "../src/index.js"
import {
  chunk,
  completion,
  DONE,
  failureOf,
  finish,
  mirror,
  outgoing,
  pieces,
  type Received,
  sse,
  withChat
} from "./fixtures.js"

const A = "http://mirror-a.test"
const B = "http://mirror-b.test"
const server = setupServer()
beforeAll(() => server.listen({ onUnhandledRequest: "error" }))
afterEach(() => server.resetHandlers())
afterAll(() => server.close())

const messages = [{ role: "user" as const, content: "Hello" }]
const one = { ...Presets.easyChat, servers: [A] }
const collect = (chat: EasyChat.Service, request: Parameters<EasyChat.Service["stream"]>[0]) =>
  Effect.map(Stream.runCollect(chat.stream(request)), Chunk.toReadonlyArray)

describe("complete", () => {
  it("posts the preset's request with the cookie of GET / and returns the reply", async () => {
    const log: Array<Received> = []
    server.use(...mirror(A, log))
    const reply = await withChat(one, (chat) => chat.complete({ messages, max_tokens: 20, seed: 7 }))
    const { raw, ...fields } = reply
    expect(fields).toStrictEqual({
      content: "Hello world",
      finishReason: "stop",
      choices: [{ index: 0, content: "Hello world", finishReason: "stop" }],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
      model: "gpt-3.5-turbo",
      id: "chatcmpl-1",
      server: A
    })
    expect(raw).toMatchObject({ id: "chatcmpl-1", object: "chat.completion" })
    expect(log.map((r) => `${r.method} ${new URL(r.url).pathname}`)).toEqual([
      "GET /",
      "POST /api/openai/v1/chat/completions"
    ])
    const post = log[1]!
    expect(outgoing.at(-1)?.headers.get("cookie")).toBe("session=abc123")
    expect(post.headers.get("origin")).toBe(A)
    expect(post.headers.get("referer")).toBe(`${A}/`)
    expect(post.headers.get("content-type")).toBe("application/json")
    expect(post.body).toEqual({
      messages,
      stream: false,
      model: "gpt-3.5-turbo",
      temperature: 0.5,
      presence_penalty: 0,
      frequency_penalty: 0,
      top_p: 1,
      max_tokens: 20,
      seed: 7
    })
  })

  it("sends the caller's sampling values and model instead of the defaults", async () => {
    const log: Array<Received> = []
    server.use(...mirror(A, log))
    await withChat(one, (chat) =>
      chat.complete({
        messages,
        model: "gpt-4o",
        temperature: 1.5,
        top_p: 0.2,
        presence_penalty: -1,
        frequency_penalty: 2
      })
    )
    expect(log[1]!.body).toMatchObject({
      model: "gpt-4o",
      temperature: 1.5,
      top_p: 0.2,
      presence_penalty: -1,
      frequency_penalty: 2
    })
  })

  it("initialises cookies once per server and re-uses them", async () => {
    const log: Array<Received> = []
    server.use(...mirror(A, log))
    outgoing.length = 0
    await withChat(one, (chat) => Effect.zip(chat.complete({ messages }), chat.complete({ messages })))
    expect(log.filter((r) => r.method === "GET")).toHaveLength(1)
    expect(outgoing.filter((r) => r.url.endsWith("/completions")).map((r) => r.headers.get("cookie"))).toEqual([
      "session=abc123",
      "session=abc123"
    ])
  })

  it("skips GET / when cookieInit is off and sends the bearer key", async () => {
    const log: Array<Received> = []
    server.use(...mirror(A, log))
    await withChat({ ...one, cookieInit: "off", apiKey: "sk-secret" }, (chat) => chat.complete({ messages }))
    expect(log.map((r) => r.method)).toEqual(["POST"])
    expect(log[0]!.headers.get("authorization")).toBe("Bearer sk-secret")
  })
})

describe("stream", () => {
  it("delivers each delta with the finish reason and usage, skipping role-only chunks", async () => {
    const log: Array<Received> = []
    server.use(
      ...mirror(A, log, () =>
        sse([
          chunk(null, { choices: [{ index: 0, delta: { role: "assistant" }, finish_reason: null }] }),
          chunk("Hel"),
          chunk(null),
          chunk("lo"),
          finish("stop", { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 }),
          DONE
        ])
      )
    )
    const deltas = await withChat(one, (chat) => collect(chat, { messages }))
    expect(deltas).toEqual([
      { choice: 0, content: "Hel", server: A },
      { choice: 0, content: "lo", server: A },
      {
        choice: 0,
        content: "",
        finishReason: "stop",
        usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
        server: A
      }
    ])
    expect(log[1]!.body.stream).toBe(true)
    expect(log[1]!.headers.get("accept")).toBe("text/event-stream")
  })

  it("stops reading at [DONE]: anything after it is never decoded", async () => {
    server.use(...mirror(A, [], () => sse([chunk("a"), DONE, "data: {not json\n\n"])))
    const deltas = await withChat(one, (chat) => collect(chat, { messages }))
    expect(deltas.map((d) => d.content)).toEqual(["a"])
  })

  it("accepts a stream that ends after a finish_reason without [DONE]", async () => {
    server.use(...mirror(A, [], () => sse([chunk("a"), finish()])))
    const deltas = await withChat(one, (chat) => collect(chat, { messages }))
    expect(deltas.map((d) => d.content).join("")).toBe("a")
  })

  it("dispatches an unterminated last event at EOF", async () => {
    server.use(...mirror(A, [], () => sse([chunk("a"), finish().trimEnd()])))
    const deltas = await withChat(one, (chat) => collect(chat, { messages }))
    expect(deltas.at(-1)?.finishReason).toBe("stop")
  })

  it("fails with StreamInterrupted after delivering every delta when EOF comes without [DONE] or finish_reason", async () => {
    server.use(...mirror(A, [], () => sse([chunk("one"), chunk("two")])))
    const seen: Array<string> = []
    const error = await failureOf(one, (chat) =>
      Stream.runForEach(chat.stream({ messages }), (d) => Effect.sync(() => seen.push(d.content)))
    )
    expect(seen).toEqual(["one", "two"])
    expect(error).toMatchObject({ _tag: "StreamInterrupted", server: A, deltas: 2, characters: 6 })
  })

  it("turns a connection lost after the first delta into StreamInterrupted, keeping the deltas", async () => {
    server.use(
      ...mirror(
        A,
        [],
        () =>
          new HttpResponse(pieces([chunk("kept")], new Error("socket hang up")), {
            headers: { "content-type": "text/event-stream" }
          })
      )
    )
    const seen: Array<string> = []
    const error = await failureOf({ ...Presets.easyChat, servers: [A, B] }, (chat) =>
      Stream.runForEach(chat.stream({ messages, activeServer: A }), (d) => Effect.sync(() => seen.push(d.content)))
    )
    expect(seen).toEqual(["kept"])
    expect(error).toMatchObject({ _tag: "StreamInterrupted", deltas: 1, characters: 4 })
  })
})

describe("a caller that falls behind", () => {
  // 40 KiB of chunks without text (tool calls) arrive while the caller is busy with its first batch:
  // the body must not pause with nothing queued for the caller to take, or it never reads again.
  const toolCall = (i: number) =>
    chunk(null, {
      choices: [
        {
          index: 0,
          delta: { tool_calls: [{ index: 0, function: { arguments: `{"part":${i},"pad":"${"x".repeat(80)}"}` } }] },
          finish_reason: null
        }
      ]
    })
  const body = [chunk("first"), ...Array.from({ length: 300 }, (_, i) => toolCall(i)), chunk(" last"), finish(), DONE]

  it("gets every delta through a slow Stream consumer", async () => {
    server.use(http.post(`${A}/api/openai/v1/chat/completions`, () => sse(body)))
    const options = { ...one, cookieInit: "off" as const, timeouts: { idle: 2000, firstToken: 2000 } }
    const started = Date.now()
    const text = await withChat(options, (chat) =>
      // The tool-call deltas go by at once; the text deltas each take the consumer 50 ms.
      Stream.runFoldEffect(
        Stream.filter(chat.stream({ messages }), (d) => d.content !== ""),
        "",
        (all, d) =>
          Effect.as(
            Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 50))),
            all + d.content
          )
      )
    )
    expect(text).toBe("first last")
    // No idle timeout was waited out.
    expect(Date.now() - started).toBeLessThan(1500)
  })
})

describe("createCompletion (the original's shape)", () => {
  it("yields text pieces when stream is true", async () => {
    server.use(...mirror(A, []))
    const pieces = await withChat(one, (chat) =>
      Effect.map(
        Stream.runCollect(chat.createCompletion({ model: "gpt-3.5-turbo", messages, stream: true })),
        Chunk.toReadonlyArray
      )
    )
    expect(pieces).toEqual(["Hello", " world"])
  })

  it("yields one piece when stream is false, and active_server pins the server", async () => {
    const logA: Array<Received> = []
    const logB: Array<Received> = []
    server.use(...mirror(A, logA), ...mirror(B, logB))
    const pieces = await withChat({ ...Presets.easyChat, servers: [A, B] }, (chat) =>
      Effect.map(
        Stream.runCollect(
          chat.createCompletion({ model: "gpt-3.5-turbo", messages, stream: false, active_server: 1, temperature: 0.9 })
        ),
        Chunk.toReadonlyArray
      )
    )
    expect(pieces).toEqual(["Hello world"])
    expect(logA).toHaveLength(0)
    expect(logB[1]!.body).toMatchObject({ temperature: 0.9, stream: false })
  })
})

describe("errors, each from the server behaviour that causes it", () => {
  it("HttpStatusError carries status, the server's own message and Retry-After", async () => {
    server.use(
      ...mirror(A, [], () =>
        HttpResponse.json(
          { error: { message: "rate limited, slow down" } },
          { status: 429, headers: { "retry-after": "7" } }
        )
      )
    )
    const error = await failureOf({ ...one, maxAttempts: 1 }, (chat) => chat.complete({ messages }))
    expect(error._tag).toBe("AllServersFailed")
    const attempt = (error as EasyChat.Service extends never ? never : any).attempts[0]
    expect(attempt.error).toMatchObject({ _tag: "HttpStatusError", status: 429, retryAfter: 7, server: A })
    expect(attempt.error.message).toBe(`HTTP 429 Too Many Requests from ${A}: rate limited, slow down (retry after 7s)`)
  })

  it("a 400 is the request's fault: no failover, the HttpStatusError itself", async () => {
    const logB: Array<Received> = []
    server.use(
      ...mirror(A, [], () => HttpResponse.json({ error: { message: "bad model" } }, { status: 400 })),
      ...mirror(B, logB, () => HttpResponse.json({ error: { message: "bad model" } }, { status: 400 }))
    )
    const error = await failureOf({ ...Presets.easyChat, servers: [A, B], strategy: "round-robin" }, (chat) =>
      chat.complete({ messages })
    )
    expect(error).toMatchObject({ _tag: "HttpStatusError", status: 400, body: "bad model", server: A })
    expect(logB).toHaveLength(0)
  })

  it("NextChat's 401 access-code refusal re-initialises cookies once, then fails over", async () => {
    const log: Array<Received> = []
    server.use(...mirror(A, log, () => HttpResponse.json({ error: true, msg: "empty access code" }, { status: 401 })))
    const error: any = await failureOf({ ...one, maxAttempts: 1 }, (chat) => chat.complete({ messages }))
    expect(log.map((r) => r.method)).toEqual(["GET", "POST", "GET", "POST"])
    expect(error.attempts[0].error).toMatchObject({ _tag: "HttpStatusError", status: 401, body: "empty access code" })
  })

  it("UnexpectedContentType for an HTML page with status 200", async () => {
    server.use(...mirror(A, [], () => HttpResponse.html("<html><title>Just a moment...</title></html>")))
    const error: any = await failureOf({ ...one, maxAttempts: 1 }, (chat) => chat.complete({ messages }))
    expect(error.attempts[0].error).toMatchObject({
      _tag: "UnexpectedContentType",
      contentType: "text/html",
      expected: "application/json"
    })
    expect(error.attempts[0].error.body).toContain("Just a moment")
  })

  it("NoResponse for a JSON reply without choices", async () => {
    server.use(...mirror(A, [], () => HttpResponse.json({ id: "x", object: "chat.completion" })))
    const error: any = await failureOf({ ...one, maxAttempts: 1 }, (chat) => chat.complete({ messages }))
    expect(error.attempts[0].error).toMatchObject({ _tag: "NoResponse", server: A })
  })

  it("UpstreamError for an {error} body with status 200", async () => {
    server.use(
      ...mirror(A, [], () => HttpResponse.json({ error: { message: "model overloaded", code: "overloaded" } }))
    )
    const error: any = await failureOf({ ...one, maxAttempts: 1 }, (chat) => chat.complete({ messages }))
    expect(error.attempts[0].error).toMatchObject({
      _tag: "UpstreamError",
      detail: "model overloaded",
      code: "overloaded"
    })
  })

  it("UpstreamError for NextChat's 200 JSON string holding a fenced error, on both paths", async () => {
    const fenced =
      '```json\n{\n  "cause": {\n    "errno": -111,\n    "code": "ECONNREFUSED",\n    "syscall": "connect"\n  }\n}\n```'
    server.use(...mirror(A, [], () => HttpResponse.json(fenced)))
    for (const stream of [false, true]) {
      const error: any = await failureOf({ ...one, maxAttempts: 1 }, (chat) =>
        stream ? Stream.runDrain(chat.stream({ messages })) : chat.complete({ messages })
      )
      expect(error.attempts[0].error).toMatchObject({
        _tag: "UpstreamError",
        code: "ECONNREFUSED",
        detail: "the mirror's upstream failed: connect ECONNREFUSED"
      })
    }
  })

  it("a stream request answered with a plain JSON completion is UnexpectedContentType", async () => {
    server.use(...mirror(A, [], () => completion("whole")))
    const error: any = await failureOf({ ...one, maxAttempts: 1 }, (chat) => Stream.runDrain(chat.stream({ messages })))
    expect(error.attempts[0].error).toMatchObject({ _tag: "UnexpectedContentType", expected: "text/event-stream" })
  })

  it("UpstreamError for `event: error` and for a chunk with an error field, after the deltas before it", async () => {
    for (const bad of [
      'event: error\ndata: {"message":"upstream quota exceeded"}\n\n',
      `data: ${JSON.stringify({ error: { message: "upstream quota exceeded", type: "quota" } })}\n\n`
    ]) {
      server.use(...mirror(A, [], () => sse([chunk("partial"), bad, DONE])))
      const seen: Array<string> = []
      const error = await failureOf(one, (chat) =>
        Stream.runForEach(chat.stream({ messages }), (d) => Effect.sync(() => seen.push(d.content)))
      )
      expect(seen).toEqual(["partial"])
      expect(error).toMatchObject({ _tag: "UpstreamError", detail: "upstream quota exceeded", server: A })
    }
  })

  it("DecodeError(InvalidJson) for a malformed chunk after a delta", async () => {
    server.use(...mirror(A, [], () => sse([chunk("ok"), "data: {not json\n\n", DONE])))
    const error = await failureOf(one, (chat) => Stream.runDrain(chat.stream({ messages })))
    expect(error).toMatchObject({ _tag: "DecodeError", reason: "InvalidJson", server: A })
  })

  it("DecodeError(InvalidChunk) for a chunk that is not an object", async () => {
    server.use(...mirror(A, [], () => sse([chunk("ok"), "data: [1,2]\n\n", DONE])))
    const error = await failureOf(one, (chat) => Stream.runDrain(chat.stream({ messages })))
    expect(error).toMatchObject({ _tag: "DecodeError", reason: "InvalidChunk" })
  })

  it("DecodeError(EventTooLarge) when an event passes maxEventSize", async () => {
    server.use(...mirror(A, [], () => sse([chunk("ok"), `data: ${"x".repeat(5000)}`])))
    const error = await failureOf({ ...one, maxEventSize: 1024 }, (chat) => Stream.runDrain(chat.stream({ messages })))
    expect(error).toMatchObject({ _tag: "DecodeError", reason: "EventTooLarge" })
  })

  it("TransportError when the connection fails", async () => {
    server.use(...mirror(A, [], () => HttpResponse.error()))
    const error: any = await failureOf({ ...one, maxAttempts: 1 }, (chat) => chat.complete({ messages }))
    expect(error.attempts[0].error._tag).toBe("TransportError")
    expect(error.attempts[0].error.server).toBe(A)
  })

  it("Timeout(headers) when the status does not arrive in time", async () => {
    server.use(
      ...mirror(A, [], async () => {
        await delay(2000)
        return completion("late")
      })
    )
    const error: any = await failureOf({ ...one, maxAttempts: 1, timeouts: { headers: 50 } }, (chat) =>
      chat.complete({ messages })
    )
    expect(error.attempts[0].error).toMatchObject({ _tag: "Timeout", phase: "headers", millis: 50, server: A })
  })

  it("InvalidRequest before any network call", async () => {
    const log: Array<Received> = []
    server.use(...mirror(A, log))
    const error = await failureOf(one, (chat) => chat.complete({ messages, temperature: 3 }))
    expect(error).toMatchObject({
      _tag: "InvalidRequest",
      field: "temperature",
      rule: "must be a number between 0 and 2"
    })
    expect(log).toHaveLength(0)
  })

  it("never puts the API key or cookie values in an error message", async () => {
    server.use(
      ...mirror(
        A,
        [],
        (_body, request) =>
          new HttpResponse(`denied for ${request.headers.get("authorization")} with ${request.headers.get("cookie")}`, {
            status: 403
          }),
        "session=cookie-secret-value; Path=/"
      )
    )
    const error: any = await failureOf({ ...one, maxAttempts: 1, apiKey: "sk-top-secret" }, (chat) =>
      chat.complete({ messages })
    )
    const text = `${error.message} ${JSON.stringify(error)}`
    expect(text).toContain("HTTP 403")
    expect(text).not.toContain("sk-top-secret")
    expect(text).not.toContain("cookie-secret-value")
  })
})

describe("failover", () => {
  it("moves to another server after a 503 and reports the attempt in AllServersFailed when all fail", async () => {
    server.use(
      ...mirror(A, [], () => new HttpResponse("down", { status: 503 })),
      ...mirror(B, [], () => HttpResponse.html("<html>cf</html>"))
    )
    const error: any = await failureOf({ ...Presets.easyChat, servers: [A, B], strategy: "round-robin" }, (chat) =>
      chat.complete({ messages })
    )
    expect(error._tag).toBe("AllServersFailed")
    expect(error.attempts.map((a: any) => [a.server, a.error._tag])).toEqual([
      [A, "HttpStatusError"],
      [B, "UnexpectedContentType"]
    ])
    expect(error.message).toContain(`1. ${A}: HttpStatusError: HTTP 503 Service Unavailable`)
  })

  it("a stream fails over before its first delta and succeeds on the next server", async () => {
    server.use(...mirror(A, [], () => new HttpResponse("down", { status: 502 })), ...mirror(B, []))
    const deltas = await withChat({ ...Presets.easyChat, servers: [A, B], strategy: "round-robin" }, (chat) =>
      collect(chat, { messages })
    )
    expect(deltas.map((d) => [d.content, d.server])).toEqual([
      ["Hello", B],
      [" world", B],
      ["", B]
    ])
  })
})

describe("info", () => {
  it("describes the provider like the original", () => {
    expect(EasyChat.info).toEqual({
      url: "https://free.easychat.work",
      supportsStream: true,
      supportsGpt35Turbo: true,
      working: true
    })
  })
})

void http

describe("an oversize event in the same network read as earlier deltas", () => {
  it("delivers the deltas completed before it, then fails with EventTooLarge", async () => {
    server.use(...mirror(A, [], () => sse([chunk("one") + chunk("two") + `data: ${"x".repeat(5000)}\n\n`])))
    const seen: Array<string> = []
    const error = await failureOf({ ...one, maxEventSize: 1024 }, (chat) =>
      Stream.runForEach(chat.stream({ messages }), (d) => Effect.sync(() => seen.push(d.content)))
    )
    expect(seen).toEqual(["one", "two"])
    expect(error).toMatchObject({ _tag: "DecodeError", reason: "EventTooLarge", server: A })
  })
})
