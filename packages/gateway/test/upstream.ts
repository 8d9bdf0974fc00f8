import * as http from "node:http"
import type { AddressInfo } from "node:net"

/**
 * A small OpenAI-compatible server for the endpoints the testkit's mirror
 * does not serve: `POST /v1/embeddings`, `POST /v1/completions` (whole or
 * streamed) and `GET /v1/models`. Its bodies are written as fixed text, with
 * spacing and number forms that `JSON.stringify` would not keep, so that a
 * test can tell a body passed on from one re-serialized.
 */
export interface UpstreamOptions {
  /** Answer every POST with this status and an OpenAI error body. */
  readonly status?: number
  /** The `data` of `GET /v1/models`; `undefined`: 404, as a server without the endpoint. */
  readonly models?: ReadonlyArray<Record<string, unknown>>
  /** Streams: destroy the socket after this many events; whole bodies: after half the body. */
  readonly cutAfter?: number
}

export interface Upstream {
  readonly url: string
  readonly requests: Array<{ readonly method: string; readonly path: string; readonly body: unknown }>
  models: ReadonlyArray<Record<string, unknown>> | undefined
  readonly close: () => Promise<void>
}

export const embeddingsBody =
  '{\n  "object": "list",\n  "data": [{"object": "embedding", "index": 0, "embedding": [0.0023064255, -9.327292E-3, 1.0e-3, 0.50]}],\n  "model": "text-embedding-3-small",\n  "usage": {"prompt_tokens": 8, "total_tokens": 8}\n}\n'

export const completionBody =
  '{"id":"cmpl-9zXw","object":"text_completion","created":1753874000,"model":"gpt-3.5-turbo-instruct","system_fingerprint":null,"choices":[{"text":"\\n\\nThis is indeed a test","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}'

export const completionChunks: ReadonlyArray<string> = ["\n\n", "This", " is", " indeed", " a test"].map(
  (text, i, all) =>
    `{"id":"cmpl-9zXw","object":"text_completion","created":1753874000,"choices":[{"text":${JSON.stringify(text)},"index":0,"logprobs":null,"finish_reason":${i === all.length - 1 ? '"length"' : "null"}}],"model":"gpt-3.5-turbo-instruct","system_fingerprint":"fp_x"}`
)

/** The SSE text of the streamed completion, a comment included. */
export const completionStream = `: ping\n\n${completionChunks.map((c) => `data: ${c}\n\n`).join("")}data: [DONE]\n\n`

export const startUpstream = (options: UpstreamOptions = {}): Promise<Upstream> =>
  new Promise((resolve) => {
    const requests: Upstream["requests"][number][] = []
    const server = http.createServer((request, response) => {
      const parts: Array<Buffer> = []
      request.on("data", (part: Buffer) => parts.push(part))
      request.on("end", () => {
        const text = Buffer.concat(parts).toString("utf8")
        let body: unknown
        try {
          body = text === "" ? undefined : JSON.parse(text)
        } catch {
          body = text
        }
        const path = (request.url ?? "/").split("?")[0]!
        requests.push({ method: request.method ?? "", path, body })
        const json = (status: number, payload: string) => {
          response.writeHead(status, { "content-type": "application/json" })
          response.end(payload)
        }
        if (request.method === "GET" && path === "/v1/models") {
          if (upstream.models === undefined) return json(404, '{"error":{"message":"Not found"}}')
          return json(200, JSON.stringify({ object: "list", data: upstream.models }))
        }
        if (request.method !== "POST") return json(404, '{"error":{"message":"Not found"}}')
        if (options.status !== undefined) {
          return json(
            options.status,
            JSON.stringify({ error: { message: `Upstream test fault: HTTP ${options.status}` } })
          )
        }
        if (path === "/v1/embeddings") {
          if (options.cutAfter === undefined) return json(200, embeddingsBody)
          response.writeHead(200, { "content-type": "application/json" })
          response.write(embeddingsBody.slice(0, 40))
          setTimeout(() => response.destroy(), 20)
          return
        }
        if (path === "/v1/completions") {
          if ((body as { stream?: unknown }).stream !== true) return json(200, completionBody)
          response.writeHead(200, { "content-type": "text/event-stream; charset=utf-8" })
          const events = completionStream.split(/(?<=\n\n)/)
          const cutAt = options.cutAfter === undefined ? undefined : options.cutAfter + 1
          events.forEach((event, i) => {
            if (cutAt !== undefined && i >= cutAt) return
            // One write per event, as a real server flushes them.
            setTimeout(() => response.write(event), i * 5)
          })
          if (cutAt !== undefined) setTimeout(() => response.destroy(), cutAt * 5 + 20)
          else setTimeout(() => response.end(), events.length * 5)
          return
        }
        json(404, '{"error":{"message":"Not found"}}')
      })
    })
    const upstream: Upstream = {
      url: "",
      requests,
      models: options.models,
      close: () =>
        new Promise<void>((done) => {
          server.closeAllConnections()
          server.close(() => done())
        })
    }
    server.listen(0, "127.0.0.1", () => {
      ;(upstream as { url: string }).url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      resolve(upstream)
    })
  })
