import { MirrorServer } from "@easychat/testkit"
import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { Gateway } from "../src/index.js"
import { postJson, raw, sseEvents } from "./fixtures.js"
import {
  completionBody,
  completionChunks,
  completionStream,
  embeddingsBody,
  startUpstream,
  type Upstream,
  type UpstreamOptions
} from "./upstream.js"

/** Upstreams and a gateway over them (an OpenAI-style API at `/v1`, round robin); closes all after `body`. */
const withUpstreams = async <A>(
  upstreams: ReadonlyArray<UpstreamOptions>,
  options: Gateway.StartOptions,
  body: (ctx: { gateway: Gateway.Running; upstreams: ReadonlyArray<Upstream>; client: OpenAI }) => Promise<A>
): Promise<A> => {
  const started = await Promise.all(upstreams.map(startUpstream))
  try {
    const gateway = await Gateway.start({
      port: 0,
      ...options,
      chat: {
        servers: started.map((u) => u.url),
        path: "/v1/chat/completions",
        cookieInit: "off",
        strategy: "round-robin",
        ...options.chat
      }
    })
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "unused", maxRetries: 0 })
      return await body({ gateway, upstreams: started, client })
    } finally {
      await gateway.close()
    }
  } finally {
    await Promise.all(started.map((u) => u.close()))
  }
}

const posts = (upstream: Upstream) => upstream.requests.filter((r) => r.method === "POST")

describe("POST /v1/* other than chat", () => {
  it("never sends a routing field upstream, even with allowRouting (forwarded requests follow the operator's pool)", async () => {
    await withUpstreams([{}], { allowRouting: true }, async ({ gateway, upstreams }) => {
      const response = await postJson(`${gateway.url}/v1/embeddings`, { model: "e", input: "x", activeServer: 0 })
      expect(response.status).toBe(200)
      expect(posts(upstreams[0]!)[0]?.body).toEqual({ model: "e", input: "x" })
    })
  })

  it("forwards /v1/embeddings and /v1/completions, whole and streamed, failing over, the answers unchanged", async () => {
    await withUpstreams([{ status: 503 }, {}], {}, async ({ client, gateway, upstreams }) => {
      const [down, up] = upstreams as [Upstream, Upstream]
      for (let round = 0; round < 2; round++) {
        const request = { model: "text-embedding-3-small", input: "The food was delicious" }
        const embedding = await client.embeddings.create({ ...request, encoding_format: "float" })
        expect({ ...embedding }).toEqual(JSON.parse(embeddingsBody))
        const bytes = await postJson(`${gateway.url}/v1/embeddings`, request)
        expect(bytes.status).toBe(200)
        expect(bytes.headers["content-type"]).toBe("application/json")
        expect(bytes.headers["x-easychat-server"]).toBe(up.url)
        expect(bytes.text).toBe(embeddingsBody)

        const completion = await client.completions.create({
          model: "gpt-3.5-turbo-instruct",
          prompt: "Say this is a test"
        })
        expect({ ...completion }).toEqual(JSON.parse(completionBody))
        expect((await postJson(`${gateway.url}/v1/completions`, { prompt: "x" })).text).toBe(completionBody)

        const chunks: Array<unknown> = []
        for await (const chunk of await client.completions.create({
          model: "gpt-3.5-turbo-instruct",
          prompt: "Say this is a test",
          stream: true
        }))
          chunks.push(chunk)
        expect(chunks).toEqual(completionChunks.map((c) => JSON.parse(c)))
        const streamed = await postJson(`${gateway.url}/v1/completions`, { prompt: "x", stream: true })
        expect(streamed.headers["content-type"]).toBe("text/event-stream; charset=utf-8")
        expect(streamed.headers["x-easychat-server"]).toBe(up.url)
        expect(streamed.text).toBe(completionStream)
      }
      // The failing server was tried, the bodies went on as the client sent them.
      expect(posts(down).length).toBeGreaterThan(0)
      expect(posts(up).map((r) => r.path)).toContain("/v1/embeddings")
      expect(posts(up).find((r) => r.path === "/v1/embeddings")?.body).toEqual({
        model: "text-embedding-3-small",
        input: "The food was delicious",
        encoding_format: "float"
      })
    })
  })

  it("answers 502 in OpenAI's shape when every server fails, and keeps an upstream's 400", async () => {
    await withUpstreams([{ status: 503 }, { status: 503 }], {}, async ({ gateway }) => {
      const response = await postJson(`${gateway.url}/v1/embeddings`, { input: "x" })
      expect(response.status).toBe(502)
      expect(JSON.parse(response.text).error).toMatchObject({ code: "AllServersFailed", type: "upstream_error" })
    })
    await withUpstreams(
      [{ status: 400 }, {}],
      { chat: { strategy: "random", activeServer: 0 } },
      async ({ gateway }) => {
        const response = await postJson(`${gateway.url}/v1/embeddings`, { input: "x" })
        expect(response.status).toBe(400)
        expect(JSON.parse(response.text).error.message).toContain("Upstream test fault: HTTP 400")
      }
    )
  })

  it("ends a stream cut after its first event with an SSE error event", async () => {
    await withUpstreams([{ cutAfter: 2 }], {}, async ({ gateway }) => {
      const response = await postJson(`${gateway.url}/v1/completions`, { prompt: "x", stream: true })
      expect(response.status).toBe(200)
      // The comment that opens the stream has no data.
      const events = sseEvents(response.text).filter((e) => e.data !== "")
      expect(events.slice(0, 2).map((e) => e.data)).toEqual(completionChunks.slice(0, 2))
      expect(events.at(-1)?.event).toBe("error")
      expect(JSON.parse(events.at(-1)!.data).error.code).toBe("StreamInterrupted")
      expect(events.some((e) => e.data === "[DONE]")).toBe(false)
      // A JSON body cut halfway is cut for the client too: an ended body would pass for a whole one.
      const whole = await postJson(`${gateway.url}/v1/embeddings`, { input: "x" }).then(
        () => "ended",
        (e: NodeJS.ErrnoException) => e.code ?? e.message
      )
      expect(whole).toBe("ECONNRESET")
    })
  })

  it("asks for keys, refuses bodies over the limit and non-JSON bodies, as for chat", async () => {
    await withUpstreams([{}], { keys: ["kkkkkkkkkkkkkkkk"], maxBodyBytes: 1000 }, async ({ gateway, upstreams }) => {
      expect((await postJson(`${gateway.url}/v1/embeddings`, { input: "x" })).status).toBe(401)
      const auth = { authorization: "Bearer kkkkkkkkkkkkkkkk" }
      expect((await postJson(`${gateway.url}/v1/embeddings`, { input: "x" }, auth)).status).toBe(200)
      expect((await postJson(`${gateway.url}/v1/embeddings`, { input: "x".repeat(2000) }, auth)).status).toBe(413)
      const form = await raw(`${gateway.url}/v1/embeddings`, { method: "POST", headers: auth, body: "input=x" })
      expect(form.status).toBe(415)
      expect(JSON.parse(form.text).error.code).toBe("unsupported_media_type")
      const notJson = await raw(`${gateway.url}/v1/embeddings`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: "input=x"
      })
      expect(notJson.status).toBe(400)
      expect(JSON.parse(notJson.text).error.code).toBe("invalid_json")
      const get = await raw(`${gateway.url}/v1/embeddings`, { headers: auth })
      expect(get.status).toBe(405)
      expect(get.headers.allow).toBe("POST")
      expect(posts(upstreams[0]!)).toHaveLength(1)
    })
  })
})

describe("GET /v1/models", () => {
  const a = { id: "model-a", object: "model", created: 1, owned_by: "a", extra: { context: 8192 } }
  const shared = { id: "org/shared", object: "model", created: 2, owned_by: "a" }
  const b = { id: "model-b", object: "model", created: 3, owned_by: "b" }

  it("merges the servers' lists by id, keeps them a while, and answers for each id", async () => {
    await withUpstreams(
      [{ models: [a, shared] }, { models: [{ ...shared, owned_by: "b" }, b] }],
      { models: ["house-model"] },
      async ({ client, upstreams }) => {
        const listed: Array<unknown> = []
        for await (const model of client.models.list()) listed.push({ ...model })
        expect(listed).toEqual([a, shared, b])
        expect({ ...(await client.models.retrieve("org/shared")) }).toEqual(shared)
        expect({ ...(await client.models.retrieve("model-b")) }).toEqual(b)
        const unknown = await client.models
          .retrieve("house-model")
          .catch((e: InstanceType<typeof OpenAI.APIError>) => e)
        expect(unknown).toBeInstanceOf(OpenAI.NotFoundError)
        // Asked once: the list is kept for a while.
        upstreams[0]!.models = []
        for await (const model of client.models.list()) expect(model.id).not.toBe("nothing")
        for (const upstream of upstreams) {
          expect(upstream.requests.filter((r) => r.method === "GET" && r.path === "/v1/models")).toHaveLength(1)
        }
      }
    )
  })

  it("adds the configured models for a server without a list", async () => {
    const mirror = await MirrorServer.start()
    try {
      await withUpstreams(
        [{ models: [a] }],
        { models: ["house-model"], chat: { servers: [mirror.url] } },
        async ({ client, upstreams }) => {
          expect(upstreams[0]!.requests).toHaveLength(0)
          const listed: Array<string> = []
          for await (const model of client.models.list()) listed.push(model.id)
          expect(listed).toEqual(["house-model"])
        }
      )
    } finally {
      await mirror.close()
    }
  })
})
