import * as http from "node:http"
import { EasyChat } from "@easychat/core"
import { Mirror, MirrorPool, type MirrorServer } from "@easychat/testkit"
import * as FetchTransport from "@easychat/transport-fetch"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import OpenAI from "openai"
import { Gateway } from "../src/index.js"

export const messages = [{ role: "user" as const, content: "Hello gateway" }]
export const expectedReply = `Echo: Hello gateway\n${Mirror.defaultSentence}`

/** Chat requests a mirror received (the cookie page `GET /` left out). */
export const chatRequests = (server: MirrorServer.MirrorServer) => server.requests.filter((r) => r.method === "POST")

/** The transports a gateway's pool can run on: `start`'s (undici), or `layer` over the fetch transport. */
export type Via = "node" | "fetch"
export const transports: ReadonlyArray<Via> = ["node", "fetch"]

/** `Gateway.start`, or the same gateway built from its layer over the fetch transport. */
const startVia = async (via: Via, options: Gateway.StartOptions): Promise<Gateway.Running> => {
  if (via === "node") return Gateway.start(options)
  const { chat, transport: _, onListen: __, ...gateway } = options
  let url = ""
  const live = Gateway.layer({ ...gateway, onListen: (at) => (url = at) }).pipe(
    Layer.provide(EasyChat.layer({ ...chat, defaults: chat?.defaults ?? {} })),
    Layer.provide(FetchTransport.layer())
  )
  const scope = Effect.runSync(Scope.make())
  await Effect.runPromise(Layer.buildWithScope(live, scope))
  return { url, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** Starts `mirrors` and a gateway over them (its pool on `via`); closes both after `body`. */
export const withGateway = async <A>(
  mirrors: number | ReadonlyArray<MirrorServer.MirrorServerOptions>,
  options: Gateway.StartOptions,
  body: (ctx: { gateway: Gateway.Running; pool: MirrorPool.MirrorPool; client: OpenAI }) => Promise<A>,
  via: Via = "node"
): Promise<A> => {
  const pool = await MirrorPool.start(mirrors)
  try {
    const gateway = await startVia(via, {
      port: 0,
      ...options,
      chat: { servers: pool.urls, ...options.chat }
    })
    try {
      const client = new OpenAI({ baseURL: `${gateway.url}/v1`, apiKey: "unused", maxRetries: 0 })
      return await body({ gateway, pool, client })
    } finally {
      await gateway.close()
    }
  } finally {
    await pool.close()
  }
}

export interface RawResponse {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly text: string
}

/** One request on a fresh connection with node:http: exact control of headers and body (chunked when `chunked`). */
export const raw = (
  url: string,
  init: {
    readonly method?: string
    readonly headers?: Record<string, string>
    readonly body?: string | Buffer
    readonly chunked?: boolean
  } = {}
): Promise<RawResponse> =>
  new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: init.method ?? "GET", headers: init.headers ?? {}, agent: false },
      (response) => {
        const parts: Array<Buffer> = []
        response.on("data", (part: Buffer) => parts.push(part))
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            text: Buffer.concat(parts).toString("utf8")
          })
        )
        response.on("error", reject)
      }
    )
    request.on("error", reject)
    if (init.body !== undefined) {
      if (init.chunked) {
        // Two writes without a Content-Length: node:http sends them chunked.
        const body = Buffer.from(init.body)
        request.write(body.subarray(0, body.length >> 1))
        request.end(body.subarray(body.length >> 1))
        return
      }
      request.setHeader("content-length", Buffer.byteLength(init.body))
      request.end(init.body)
    } else {
      request.end()
    }
  })

export const postJson = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  raw(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body)
  })

/** The `data:` payloads and `event:` names of an SSE body, in order. */
export const sseEvents = (text: string): Array<{ event: string; data: string }> =>
  text
    .split("\n\n")
    .filter((block) => block.trim() !== "")
    .map((block) => {
      let event = "message"
      const data: Array<string> = []
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7)
        else if (line.startsWith("data: ")) data.push(line.slice(6))
      }
      return { event, data: data.join("\n") }
    })
