import * as http from "node:http"
import { Mirror } from "@easychat/testkit"
import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { chatRequests, expectedReply, messages, postJson, raw, sseEvents, withGateway } from "./fixtures.js"

const pieces = (text: string) => Mirror.splitReply(text)

const collect = async (stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>) => {
  const chunks: Array<OpenAI.Chat.Completions.ChatCompletionChunk> = []
  for await (const chunk of stream) chunks.push(chunk)
  return chunks
}
const contents = (chunks: ReadonlyArray<OpenAI.Chat.Completions.ChatCompletionChunk>) =>
  chunks.flatMap((c) => c.choices.flatMap((choice) => (choice.delta.content ? [choice.delta.content] : [])))

const rejection = async (promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> => {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(OpenAI.APIError)
    return error as InstanceType<typeof OpenAI.APIError>
  }
  throw new Error("expected the call to fail")
}

describe("POST /v1/chat/completions", () => {
  it("answers a whole reply with the upstream's body, the request sent on as the client sent it", async () => {
    await withGateway(1, {}, async ({ client, pool }) => {
      const reply = await client.chat.completions.create({
        model: "gpt-4o-mini",
        messages,
        temperature: 0.2,
        max_tokens: 50,
        seed: 7
      })
      expect(reply.object).toBe("chat.completion")
      expect(reply.id).toMatch(/^chatcmpl-mirror-/)
      expect(reply.model).toBe("gpt-4o-mini")
      expect(reply.choices).toEqual([
        { index: 0, message: { role: "assistant", content: expectedReply }, finish_reason: "stop" }
      ])
      expect(reply.usage).toEqual({
        prompt_tokens: expect.any(Number),
        completion_tokens: expect.any(Number),
        total_tokens: expect.any(Number)
      })
      // Nothing added: no sampling defaults, no stream_options.
      const [sent] = chatRequests(pool.servers[0]!)
      expect(sent?.body).toEqual({
        messages,
        model: "gpt-4o-mini",
        temperature: 0.2,
        max_tokens: 50,
        seed: 7,
        stream: false
      })
    })
  })

  it("sends a request without sampling fields on without any, n and the other fields as they came", async () => {
    await withGateway(1, {}, async ({ gateway, pool }) => {
      const body = { model: "m", messages, n: 2, user: "u-1", metadata: { a: "b" } }
      expect((await postJson(`${gateway.url}/v1/chat/completions`, body)).status).toBe(200)
      expect((await postJson(`${gateway.url}/v1/chat/completions`, { ...body, stream: true })).status).toBe(200)
      const [whole, streamed] = chatRequests(pool.servers[0]!)
      expect(whole?.body).toEqual({ ...body, stream: false })
      expect(streamed?.body).toEqual({ ...body, stream: true })
    })
  })

  it("streams the upstream's chunks as they came, ending in [DONE]", async () => {
    const reply = 'naïve 🙂 data: [DONE]\n\nline two "quoted" \\ end'
    await withGateway([{ reply }], {}, async ({ client, gateway, pool }) => {
      const chunks = await collect(
        await client.chat.completions.create({ model: "gpt-3.5-turbo", messages, stream: true })
      )
      expect(contents(chunks)).toEqual(pieces(reply))
      // The role chunk carries no text: it still reaches the client.
      expect(chunks[0]?.choices[0]?.delta).toEqual({ role: "assistant" })
      expect(chunks.at(-1)?.choices[0]).toMatchObject({ delta: {}, finish_reason: "stop" })
      expect(new Set(chunks.map((c) => c.object))).toEqual(new Set(["chat.completion.chunk"]))
      expect(new Set(chunks.map((c) => c.id)).size).toBe(1)
      expect(chunks.every((c) => c.usage === undefined)).toBe(true)

      const response = await postJson(`${gateway.url}/v1/chat/completions`, { messages, stream: true })
      expect(response.headers["content-type"]).toBe("text/event-stream; charset=utf-8")
      expect(response.headers["x-easychat-server"]).toBe(pool.urls[0])
      const events = sseEvents(response.text)
      expect(events.at(-1)).toEqual({ event: "message", data: "[DONE]" })
      expect(events.filter((e) => e.data === "[DONE]")).toHaveLength(1)
    })
  })

  it("passes stream_options on as the client sent it: usage as a last chunk when asked for", async () => {
    await withGateway(1, {}, async ({ client, pool }) => {
      const withUsage = await collect(
        await client.chat.completions.create({
          messages,
          model: "m",
          stream: true,
          stream_options: { include_usage: true }
        })
      )
      expect(contents(withUsage).join("")).toBe(expectedReply)
      expect(withUsage.at(-1)).toMatchObject({ choices: [], usage: { total_tokens: expect.any(Number) } })
      const without = await collect(await client.chat.completions.create({ messages, model: "m", stream: true }))
      expect(without.some((c) => c.usage !== undefined && c.usage !== null)).toBe(false)
      const whole = await client.chat.completions.create({
        messages,
        model: "m",
        stream: false,
        stream_options: { include_usage: true }
      } as OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming)
      expect(whole.usage?.total_tokens).toEqual(expect.any(Number))
      const [first, second, third] = chatRequests(pool.servers[0]!)
      expect(first?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } })
      expect(second?.body).not.toHaveProperty("stream_options")
      // Not the gateway's call: the upstream answers such a request as it would directly.
      expect(third?.body).toMatchObject({ stream: false, stream_options: { include_usage: true } })
    })
  })

  it("forwards each upstream read as one write, not one write per delta", async () => {
    // 200 deltas in 4 upstream writes of 50 events, 30 ms apart.
    await withGateway([{ deltas: 200, batch: 50, delayMs: 30 }], {}, async ({ gateway }) => {
      const bodies: Array<number> = []
      await new Promise<void>((resolve, reject) => {
        const request = http.request(
          `${gateway.url}/v1/chat/completions`,
          { method: "POST", headers: { "content-type": "application/json" }, agent: false },
          (response) => {
            // node:http emits one "data" per HTTP chunk of the body.
            response.on("data", (part: Buffer) => bodies.push(part.length))
            response.on("end", resolve)
          }
        )
        request.on("error", reject)
        request.end(JSON.stringify({ messages, stream: true }))
      })
      expect(bodies.length).toBeGreaterThanOrEqual(2)
      expect(bodies.length).toBeLessThan(20)
    })
  })

  it("answers an empty stream with the role chunk and [DONE]", async () => {
    await withGateway([{ reply: "" }], {}, async ({ gateway, pool }) => {
      const response = await postJson(`${gateway.url}/v1/chat/completions`, { messages, stream: true })
      expect(response.status).toBe(200)
      // The finish_reason chunk is a delta: the upstream that answered is known.
      expect(response.headers["x-easychat-server"]).toBe(pool.urls[0])
      const events = sseEvents(response.text)
      expect(events.at(-1)?.data).toBe("[DONE]")
      const deltas = events.slice(0, -1).map((e) => JSON.parse(e.data).choices[0].delta)
      expect(deltas.map((d) => d.content ?? "").join("")).toBe("")
    })
  })
})

describe("failover", () => {
  const failing = [
    { fault: { kind: "status", status: 503 } },
    { fault: { kind: "reset-before-headers" } },
    { fault: { kind: "html-200" } },
    {}
  ] as const

  it("hides failing mirrors from the client, whole and streamed", async () => {
    await withGateway(failing, { chat: { strategy: "round-robin" } }, async ({ client, pool }) => {
      for (let i = 0; i < 3; i++) {
        const reply = await client.chat.completions.create({ model: "m", messages })
        expect(reply.choices[0]?.message.content).toBe(expectedReply)
        const chunks = await collect(await client.chat.completions.create({ model: "m", messages, stream: true }))
        expect(contents(chunks)).toEqual(pieces(expectedReply))
      }
      // The failures did happen: every failing mirror was tried, the healthy one answered all six.
      for (const server of pool.servers.slice(0, 3)) expect(chatRequests(server).length).toBeGreaterThan(0)
      expect(chatRequests(pool.servers[3]!)).toHaveLength(6)
    })
  })

  it("leaves nothing of an attempt that failed before its first delta, not even its role chunk", async () => {
    await withGateway(
      [{ fault: { kind: "close-mid-stream", afterDeltas: 0 } }, {}],
      { chat: { strategy: "round-robin" } },
      async ({ gateway, pool }) => {
        const response = await postJson(`${gateway.url}/v1/chat/completions`, { messages, stream: true })
        expect(chatRequests(pool.servers[0]!)).toHaveLength(1)
        expect(response.headers["x-easychat-server"]).toBe(pool.urls[1])
        const chunks = sseEvents(response.text)
          .filter((e) => e.data !== "[DONE]")
          .map((e) => JSON.parse(e.data))
        expect(chunks.filter((c) => c.choices[0]?.delta.role !== undefined)).toHaveLength(1)
        expect(new Set(chunks.map((c) => c.id)).size).toBe(1)
        expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(expectedReply)
      }
    )
  })

  it("answers 502 with every attempt's server and error when all mirrors fail", async () => {
    await withGateway(failing.slice(0, 3), {}, async ({ client, pool, gateway }) => {
      for (const stream of [false, true]) {
        const error = await rejection(client.chat.completions.create({ model: "m", messages, stream }))
        expect(error.status).toBe(502)
        expect(error.code).toBe("AllServersFailed")
        expect(error.type).toBe("upstream_error")
        expect(error.message).toContain("All 3 attempts failed")
        for (const url of pool.urls) expect(error.message).toContain(url)
        for (const tag of ["HttpStatusError", "TransportError", "UnexpectedContentType"]) {
          expect(error.message).toContain(tag)
        }
      }
      const response = await postJson(`${gateway.url}/v1/chat/completions`, { messages })
      expect(response.status).toBe(502)
      expect(response.headers["content-type"]).toContain("application/json")
      expect(response.headers["x-should-retry"]).toBe("false")
      expect(JSON.parse(response.text)).toEqual({
        error: { message: expect.any(String), type: "upstream_error", param: null, code: "AllServersFailed" }
      })
    })
  })

  it("is not retried by the openai client: the gateway already tried every mirror", async () => {
    await withGateway(failing.slice(0, 2), {}, async ({ gateway, pool }) => {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "unused" }) // default: 2 retries
      const error = await rejection(client.chat.completions.create({ model: "m", messages }))
      expect(error.status).toBe(502)
      for (const server of pool.servers) expect(chatRequests(server)).toHaveLength(1)
    })
  })

  it("keeps the upstream key out of error messages", async () => {
    const secret = "sk-gateway-secret-4711"
    const body = { error: { message: `invalid key ${secret}` } }
    await withGateway(
      [{ fault: { kind: "status", status: 500, body } }],
      { chat: { apiKey: secret } },
      async ({ gateway, pool }) => {
        const response = await postJson(`${gateway.url}/v1/chat/completions`, { messages })
        expect(response.status).toBe(502)
        expect(chatRequests(pool.servers[0]!)[0]?.headers.authorization).toBe(`Bearer ${secret}`)
        expect(response.text).toContain("invalid key [redacted]")
        expect(response.text).not.toContain(secret)
      }
    )
  })
})

describe("errors", () => {
  it("answers invalid requests with 400 before any upstream call", async () => {
    await withGateway(1, {}, async ({ client, gateway, pool }) => {
      const empty = await rejection(client.chat.completions.create({ model: "m", messages: [] }))
      expect(empty).toBeInstanceOf(OpenAI.BadRequestError)
      expect(empty.status).toBe(400)
      expect(empty.code).toBe("InvalidRequest")
      expect(empty.param).toBe("messages")
      expect(empty.message).toContain("messages must hold at least one message")

      const hot = await rejection(
        client.chat.completions.create({ model: "m", messages, temperature: 5, stream: true })
      )
      expect(hot.status).toBe(400)
      expect(hot.param).toBe("temperature")

      const cases: Array<[string, string, string]> = [
        ["{not json", "invalid_json", "not valid JSON"],
        ["[1, 2]", "InvalidRequest", "must be a JSON object"],
        [JSON.stringify({ messages, stream: "yes" }), "InvalidRequest", "stream must be a boolean"]
      ]
      for (const [body, code, message] of cases) {
        const response = await raw(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body
        })
        expect(response.status).toBe(400)
        const error = JSON.parse(response.text).error
        expect(error.code).toBe(code)
        expect(error.type).toBe("invalid_request_error")
        expect(error.message).toContain(message)
      }
      expect(chatRequests(pool.servers[0]!)).toHaveLength(0)
    })
  })

  it("passes an upstream's 400 on as a 400 with its message, without failing over", async () => {
    const body = { error: { message: "This model's maximum context length is 4097 tokens" } }
    await withGateway(
      [{ fault: { kind: "status", status: 400, body } }, { fault: { kind: "status", status: 400, body } }],
      {},
      async ({ client, pool }) => {
        const error = await rejection(client.chat.completions.create({ model: "m", messages }))
        expect(error.status).toBe(400)
        expect(error.code).toBe("HttpStatusError")
        expect(error.message).toContain("maximum context length")
        const tried = pool.servers.map((s) => chatRequests(s).length)
        expect(tried.sort()).toEqual([0, 1])
      }
    )
  })

  it("answers 504 when the whole call takes longer than timeouts.total", async () => {
    await withGateway(
      [{ fault: { kind: "stall-before-headers" } }],
      { chat: { timeouts: { total: 300 } } },
      async ({ client }) => {
        for (const stream of [false, true]) {
          const error = await rejection(client.chat.completions.create({ model: "m", messages, stream }))
          expect(error.status).toBe(504)
          expect(error.code).toBe("Timeout")
          expect(error.type).toBe("timeout")
          expect(error.message).toContain("Timed out after 300 ms for the whole request")
        }
      }
    )
  })

  it("ends a stream that fails after its first delta with an SSE error event, not [DONE]", async () => {
    await withGateway(
      [
        { fault: { kind: "close-mid-stream", afterDeltas: 2 } },
        { fault: { kind: "event-error", afterDeltas: 3, message: "mirror quota exhausted" } }
      ],
      { chat: { strategy: "round-robin" } },
      async ({ client, gateway }) => {
        const received: Array<string> = []
        const cut = await rejection(
          (async () => {
            for await (const chunk of await client.chat.completions.create({ model: "m", messages, stream: true })) {
              const text = chunk.choices[0]?.delta.content
              if (text) received.push(text)
            }
          })()
        )
        expect(received).toEqual(pieces(expectedReply).slice(0, 2))
        expect(cut.code).toBe("StreamInterrupted")
        // The role chunk, then the two pieces: the gateway forwards every chunk, and counts each.
        expect(cut.message).toContain("interrupted after 3 deltas")

        const response = await postJson(`${gateway.url}/v1/chat/completions`, { messages, stream: true })
        expect(response.status).toBe(200)
        const events = sseEvents(response.text)
        const last = events.at(-1)!
        expect(last.event).toBe("error")
        expect(JSON.parse(last.data)).toEqual({
          error: {
            message: expect.stringContaining("mirror quota exhausted"),
            type: "upstream_error",
            param: null,
            code: "UpstreamError"
          }
        })
        expect(events.some((e) => e.data === "[DONE]")).toBe(false)
        const text = events.slice(0, -1).map((e) => JSON.parse(e.data).choices[0]?.delta.content ?? "")
        expect(text.join("")).toBe(pieces(expectedReply).slice(0, 3).join(""))
      }
    )
  })

  it("answers unknown URLs with 404 and wrong methods with 405, in OpenAI's shape", async () => {
    await withGateway(1, {}, async ({ gateway }) => {
      const missing = await raw(`${gateway.url}/v2/embeddings`, { method: "POST", body: "{}" })
      expect(missing.status).toBe(404)
      expect(JSON.parse(missing.text).error).toMatchObject({ code: "unknown_url", type: "invalid_request_error" })
      for (const [method, path, allow] of [
        ["GET", "/v1/chat/completions", "POST"],
        ["GET", "/v1/embeddings", "POST"],
        ["POST", "/v1/models", "GET"],
        ["POST", "/v1/models/m", "GET"]
      ] as const) {
        const wrong = await raw(`${gateway.url}${path}`, { method, ...(method === "POST" ? { body: "{}" } : {}) })
        expect(wrong.status).toBe(405)
        expect(wrong.headers.allow).toBe(allow)
        expect(JSON.parse(wrong.text).error.code).toBe("method_not_allowed")
      }
    })
  })
})

describe("keys", () => {
  it("requires Authorization: Bearer with one of the keys on every endpoint", async () => {
    await withGateway(
      1,
      { keys: ["key-one-0123456789abcdef", "key-two-0123456789abcdef"] },
      async ({ gateway, pool }) => {
        const without = await rejection(
          new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "wrong", maxRetries: 0 }).chat.completions.create({
            model: "m",
            messages
          })
        )
        expect(without).toBeInstanceOf(OpenAI.AuthenticationError)
        expect(without.code).toBe("invalid_api_key")
        expect(without.message).not.toContain("wrong")

        const missing = await postJson(`${gateway.url}/v1/chat/completions`, { messages })
        expect(missing.status).toBe(401)
        expect(missing.headers["www-authenticate"]).toBe("Bearer")
        expect(JSON.parse(missing.text).error.message).toContain("Missing API key")
        expect((await postJson(`${gateway.url}/v1/embeddings`, { input: "x" })).status).toBe(401)
        for (const path of ["/v1/models", "/health"]) {
          expect((await raw(`${gateway.url}${path}`)).status).toBe(401)
          expect(
            (await raw(`${gateway.url}${path}`, { headers: { authorization: "Bearer key-one-0123456789abcdef" } }))
              .status
          ).toBe(200)
        }
        // A prefix or an extension of a key is not the key.
        for (const presented of ["key-on", "key-one-0123456789abcdef-", "Basic key-one-0123456789abcdef"]) {
          const headers = { authorization: presented.startsWith("Basic") ? presented : `Bearer ${presented}` }
          expect((await postJson(`${gateway.url}/v1/chat/completions`, { messages }, headers)).status).toBe(401)
        }
        expect(chatRequests(pool.servers[0]!)).toHaveLength(0)

        const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "key-two-0123456789abcdef", maxRetries: 0 })
        const reply = await client.chat.completions.create({ model: "m", messages })
        expect(reply.choices[0]?.message.content).toBe(expectedReply)
        // The gateway's key is the client's business; the mirror never sees it.
        expect(chatRequests(pool.servers[0]!)[0]?.headers.authorization).toBeUndefined()
      }
    )
  })
})

describe("CORS", () => {
  const origin = "https://chat.example"

  it("answers preflights without a key and adds the headers to answers, errors included", async () => {
    await withGateway(1, { cors: [origin], keys: ["kkkkkkkkkkkkkkkk"] }, async ({ gateway }) => {
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
      expect(preflight.headers["access-control-allow-methods"]).toContain("POST")
      expect(preflight.headers["access-control-allow-headers"]).toBe("authorization, content-type")

      const ok = await postJson(
        `${gateway.url}/v1/chat/completions`,
        { messages },
        { origin, authorization: "Bearer kkkkkkkkkkkkkkkk" }
      )
      expect(ok.status).toBe(200)
      expect(ok.headers["access-control-allow-origin"]).toBe(origin)
      expect(ok.headers["access-control-expose-headers"]).toContain("x-easychat-server")
      const denied = await postJson(`${gateway.url}/v1/chat/completions`, { messages }, { origin })
      expect(denied.status).toBe(401)
      expect(denied.headers["access-control-allow-origin"]).toBe(origin)
    })
  })

  it("sends no CORS headers unless configured", async () => {
    await withGateway(1, {}, async ({ gateway }) => {
      const response = await raw(`${gateway.url}/v1/models`, { headers: { origin } })
      expect(response.status).toBe(200)
      expect(response.headers["access-control-allow-origin"]).toBeUndefined()
      expect((await raw(`${gateway.url}/v1/models`, { method: "OPTIONS", headers: { origin } })).status).toBe(405)
    })
  })

  it("allows any origin with *", async () => {
    await withGateway(1, { cors: ["*"] }, async ({ gateway }) => {
      const response = await raw(`${gateway.url}/health`, { headers: { origin } })
      expect(response.headers["access-control-allow-origin"]).toBe("*")
    })
  })
})

describe("GET /v1/models and /health", () => {
  it("lists the configured models in OpenAI's shape", async () => {
    await withGateway(1, { models: ["gpt-4o-mini", "gpt-3.5-turbo"] }, async ({ client, gateway }) => {
      const listed: Array<OpenAI.Models.Model> = []
      for await (const model of client.models.list()) listed.push(model)
      expect(listed).toEqual([
        { id: "gpt-4o-mini", object: "model", created: expect.any(Number), owned_by: "easychat" },
        { id: "gpt-3.5-turbo", object: "model", created: expect.any(Number), owned_by: "easychat" }
      ])
      expect(JSON.parse((await raw(`${gateway.url}/v1/models`)).text).object).toBe("list")
      expect((await client.models.retrieve("gpt-3.5-turbo")).id).toBe("gpt-3.5-turbo")
      const unknown = await rejection(client.models.retrieve("davinci"))
      expect(unknown.status).toBe(404)
      expect(unknown.code).toBe("model_not_found")
    })
  })

  it("sends a request without a model with the pool's model", async () => {
    await withGateway([{}], { models: ["house-model"], chat: { model: "pool-model" } }, async ({ gateway, pool }) => {
      const stream = await postJson(`${gateway.url}/v1/chat/completions`, { messages, stream: true })
      expect(JSON.parse(sseEvents(stream.text)[0]!.data).model).toBe("pool-model")
      expect(chatRequests(pool.servers[0]!)[0]?.body).toMatchObject({ model: "pool-model" })
    })
  })

  it("reports each server's breaker state, failures, last latency, estimate, failure rate, weight and tier", async () => {
    await withGateway(
      [{ fault: { kind: "status", status: 503 } }, {}],
      { chat: { strategy: "round-robin", breaker: { failures: 1 } } },
      async ({ client, gateway, pool }) => {
        const before = JSON.parse((await raw(`${gateway.url}/health`)).text)
        expect(before.status).toBe("ok")
        await client.chat.completions.create({ model: "m", messages })
        const response = await raw(`${gateway.url}/health`)
        expect(response.status).toBe(200)
        expect(JSON.parse(response.text)).toEqual({
          status: "degraded",
          servers: [
            {
              server: pool.urls[0],
              state: "open",
              failures: 1,
              lastLatencyMs: null,
              openUntil: expect.any(Number),
              lastError: "HttpStatusError",
              estimateMs: null,
              failureRate: 0.2,
              weight: 1,
              priority: 0
            },
            {
              server: pool.urls[1],
              state: "closed",
              failures: 0,
              lastLatencyMs: expect.any(Number),
              openUntil: null,
              lastError: null,
              estimateMs: expect.any(Number),
              failureRate: 0,
              weight: 1,
              priority: 0
            }
          ]
        })
      }
    )
  })

  it("answers 503 with status down when every circuit is open", async () => {
    await withGateway(
      [{ fault: { kind: "status", status: 503 } }],
      { chat: { breaker: { failures: 1 } } },
      async ({ client, gateway }) => {
        await rejection(client.chat.completions.create({ model: "m", messages }))
        const response = await raw(`${gateway.url}/health`)
        expect(response.status).toBe(503)
        expect(JSON.parse(response.text).status).toBe("down")
      }
    )
  })
})
