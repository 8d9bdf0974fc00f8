import { MirrorPool, type MirrorServer } from "@easychat/testkit"
import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { Gateway } from "../src/index.js"
import { chatRequests, expectedReply, messages, postJson, raw } from "./fixtures.js"
import { list, parse } from "./routes.js"
import { startUpstream, type Upstream } from "./upstream.js"

/** Mirror pools, one per entry, and a gateway over the routes `yaml` gives for their URLs; closes all after `body`. */
const withRoutes = async <A>(
  pools: ReadonlyArray<number | ReadonlyArray<MirrorServer.MirrorServerOptions>>,
  yaml: (urls: ReadonlyArray<ReadonlyArray<string>>) => string,
  body: (ctx: { gateway: Gateway.Running; pools: ReadonlyArray<MirrorPool.MirrorPool>; client: OpenAI }) => Promise<A>
): Promise<A> => {
  const started = await Promise.all(pools.map((p) => MirrorPool.start(p)))
  try {
    const gateway = await Gateway.start({ port: 0, config: await parse(yaml(started.map((p) => p.urls))) })
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "unused", maxRetries: 0 })
      return await body({ gateway, pools: started, client })
    } finally {
      await gateway.close({ drainTimeout: 0 })
    }
  } finally {
    await Promise.all(started.map((p) => p.close()))
  }
}

/** The models of the chat requests each server of a pool received. */
const modelsAt = (pool: MirrorPool.MirrorPool) =>
  pool.servers.flatMap((s) => chatRequests(s).map((r) => (r.body as { model?: string }).model))

const twoRoutes = ([local, cloud]: ReadonlyArray<ReadonlyArray<string>>) => `
routes:
  - name: local
    models: [llama3.2]
    servers: ${list(local!)}
  - name: cloud
    models: ["qwen*", gpt-4o]
    servers: ${list(cloud!)}
`

describe("routing by model", () => {
  it("sends each request to the pool of the route that serves its model, whole or streamed", async () => {
    await withRoutes([2, 1], twoRoutes, async ({ client, pools, gateway }) => {
      const local = await client.chat.completions.create({ model: "llama3.2", messages })
      expect(local.choices[0]?.message.content).toBe(expectedReply)
      const stream = await client.chat.completions.create({ model: "qwen2.5-7b", messages, stream: true })
      let text = ""
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ""
      expect(text).toBe(expectedReply)
      await client.chat.completions.create({ model: "gpt-4o", messages })
      // A request without a model goes to the first route, with its model.
      const bare = await postJson(`${gateway.url}/v1/chat/completions`, { messages })
      expect(bare.status).toBe(200)
      expect(modelsAt(pools[0]!)).toEqual(["llama3.2", "llama3.2"])
      expect(modelsAt(pools[1]!)).toEqual(["qwen2.5-7b", "gpt-4o"])
      // The metrics name each request's route, and each route's servers.
      const metrics = (await raw(`${gateway.url}/metrics`)).text
      expect(metrics).toMatch(/easychat_gateway_requests_total\{route="local",status="200"/)
      expect(metrics).toMatch(/easychat_gateway_requests_total\{route="cloud",status="200"/)
      expect(metrics).toContain(`route="cloud",server="${pools[1]!.urls[0]}"`)
    })
  })

  it("answers a model no route serves with OpenAI's 404, and asks no server", async () => {
    await withRoutes([1, 1], twoRoutes, async ({ gateway, pools }) => {
      for (const stream of [false, true]) {
        const response = await postJson(`${gateway.url}/v1/chat/completions`, { model: "mistral", messages, stream })
        expect(response.status).toBe(404)
        expect(JSON.parse(response.text)).toEqual({
          error: {
            message: "The model mistral does not exist",
            type: "invalid_request_error",
            param: "model",
            code: "model_not_found"
          }
        })
      }
      const wrongType = await postJson(`${gateway.url}/v1/chat/completions`, { model: 7, messages })
      expect(wrongType.status).toBe(400)
      expect(JSON.parse(wrongType.text).error.param).toBe("model")
      expect(modelsAt(pools[0]!)).toEqual([])
      expect(modelsAt(pools[1]!)).toEqual([])
    })
  })

  it("reports each route's health beside every server's", async () => {
    await withRoutes(
      [[{ fault: { kind: "status", status: 503 } }], 1],
      ([a, b]) => twoRoutes([a!, b!]).replace("servers:", "breaker: { failures: 1 }\n    servers:"),
      async ({ gateway, pools, client }) => {
        await client.chat.completions.create({ model: "llama3.2", messages }).catch(() => undefined)
        const response = await raw(`${gateway.url}/health`)
        expect(response.status).toBe(200)
        const health = JSON.parse(response.text)
        expect(health.status).toBe("degraded")
        expect(health.servers.map((s: { server: string }) => s.server)).toEqual([...pools[0]!.urls, ...pools[1]!.urls])
        expect(health.routes).toEqual([
          {
            name: "local",
            models: ["llama3.2"],
            status: "down",
            servers: [expect.objectContaining({ server: pools[0]!.urls[0], state: "open", failures: 1 })]
          },
          {
            name: "cloud",
            models: ["qwen*", "gpt-4o"],
            status: "ok",
            servers: [
              {
                server: pools[1]!.urls[0],
                state: "closed",
                failures: 0,
                lastLatencyMs: null,
                openUntil: null,
                lastError: null,
                estimateMs: null,
                failureRate: 0,
                weight: 1,
                priority: 0
              }
            ]
          }
        ])
      }
    )
  })
})

describe("/v1/models and other endpoints with routes", () => {
  const withUpstreams = async <A>(
    body: (ctx: { gateway: Gateway.Running; upstreams: ReadonlyArray<Upstream>; client: OpenAI }) => Promise<A>
  ) => {
    const upstreams = await Promise.all([
      startUpstream({ models: [{ id: "qwen2.5-7b", object: "model", owned_by: "vllm" }, { id: "llama-guard" }] }),
      startUpstream()
    ])
    try {
      const gateway = await Gateway.start({
        port: 0,
        config: await parse(`
routes:
  - name: vllm
    models: ["qwen*", text-embedding-3-small]
    servers: ["${upstreams[0]!.url}"]
  - name: other
    models: [gpt-3.5-turbo-instruct, text-embedding-3-large]
    servers: ["${upstreams[1]!.url}"]
`)
      })
      try {
        const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "unused", maxRetries: 0 })
        return await body({ gateway, upstreams, client })
      } finally {
        await gateway.close({ drainTimeout: 0 })
      }
    } finally {
      await Promise.all(upstreams.map((u) => u.close()))
    }
  }

  it("lists the literal names and what the servers report that a pattern matches", async () => {
    await withUpstreams(async ({ client }) => {
      const listed: Array<OpenAI.Models.Model> = []
      for await (const model of client.models.list()) listed.push(model)
      expect(listed.map((m) => m.id)).toEqual([
        "qwen2.5-7b",
        "text-embedding-3-small",
        "gpt-3.5-turbo-instruct",
        "text-embedding-3-large"
      ])
      // As its server describes it.
      expect(listed[0]).toEqual({ id: "qwen2.5-7b", object: "model", owned_by: "vllm" })
      expect((await client.models.retrieve("text-embedding-3-large")).owned_by).toBe("easychat")
      await expect(client.models.retrieve("llama-guard")).rejects.toMatchObject({ status: 404 })
    })
  })

  it("routes the other POST /v1/* by the body's model", async () => {
    await withUpstreams(async ({ client, upstreams }) => {
      await client.embeddings.create({ model: "text-embedding-3-small", input: "a" })
      await client.embeddings.create({ model: "text-embedding-3-large", input: "b" })
      await client.completions.create({ model: "gpt-3.5-turbo-instruct", prompt: "c" })
      const posts = (u: Upstream) =>
        u.requests.filter((r) => r.method === "POST").map((r) => [r.path, (r.body as { model: string }).model])
      expect(posts(upstreams[0]!)).toEqual([["/v1/embeddings", "text-embedding-3-small"]])
      expect(posts(upstreams[1]!)).toEqual([
        ["/v1/embeddings", "text-embedding-3-large"],
        ["/v1/completions", "gpt-3.5-turbo-instruct"]
      ])
      await expect(client.embeddings.create({ model: "unknown-embedder", input: "d" })).rejects.toMatchObject({
        status: 404,
        code: "model_not_found"
      })
    })
  })
})

describe("fallback routes", () => {
  const failing = { fault: { kind: "status", status: 503 } } as const
  const withFallback = ([primary, backup]: ReadonlyArray<ReadonlyArray<string>>) => `
routes:
  - name: primary
    models: [llama3.2]
    servers: ${list(primary!)}
    fallback: backup
  - name: backup
    models: [gpt-3.5-turbo]
    servers: ${list(backup!)}
`

  it("answers from the fallback route when the whole pool fails, with a model it serves", async () => {
    await withRoutes([[failing, failing], 1], withFallback, async ({ client, pools }) => {
      const reply = await client.chat.completions.create({ model: "llama3.2", messages })
      expect(reply.choices[0]?.message.content).toBe(expectedReply)
      const stream = await client.chat.completions.create({ model: "llama3.2", messages, stream: true })
      let text = ""
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ""
      expect(text).toBe(expectedReply)
      // Both servers of the first route were tried, each time, before the fallback answered.
      expect(modelsAt(pools[0]!)).toEqual(["llama3.2", "llama3.2", "llama3.2", "llama3.2"])
      expect(modelsAt(pools[1]!)).toEqual(["gpt-3.5-turbo", "gpt-3.5-turbo"])
    })
  })

  it("fails with the attempts of both routes when the fallback fails too", async () => {
    await withRoutes([[failing], [failing]], withFallback, async ({ gateway, pools }) => {
      for (const stream of [false, true]) {
        const response = await postJson(`${gateway.url}/v1/chat/completions`, { model: "llama3.2", messages, stream })
        expect(response.status).toBe(502)
        const error = JSON.parse(response.text).error
        expect(error.code).toBe("AllServersFailed")
        expect(error.message).toMatch(/^All 2 attempts failed:/)
        expect(error.message).toContain(`1. ${pools[0]!.urls[0]}: HttpStatusError`)
        expect(error.message).toContain(`2. ${pools[1]!.urls[0]}: HttpStatusError`)
      }
    })
  })

  it("does not fall back on the request's own fault", async () => {
    await withRoutes([[{ fault: { kind: "status", status: 400 } }], 1], withFallback, async ({ gateway, pools }) => {
      const response = await postJson(`${gateway.url}/v1/chat/completions`, { model: "llama3.2", messages })
      expect(response.status).toBe(400)
      expect(modelsAt(pools[1]!)).toEqual([])
    })
  })
})
