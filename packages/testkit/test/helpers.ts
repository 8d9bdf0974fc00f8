// Small, deliberately naive clients for the tests: the mirror is the thing under test.
import * as http from "node:http"

export const messages = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hello there" }
]

export const post = (
  url: string,
  body: unknown,
  init: { headers?: Record<string, string>; signal?: AbortSignal } = {}
) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...init.headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    ...(init.signal === undefined ? {} : { signal: init.signal })
  })

export interface ParsedEvent {
  readonly event: string
  readonly data: string
}

/** Splits SSE text into events (blank-line separated, `data:` lines joined); enough for well-formed test streams. */
export const parseSse = (text: string): Array<ParsedEvent> =>
  text
    .split("\n\n")
    .filter((block) => block.trim() !== "")
    .map((block) => {
      let event = "message"
      const data: Array<string> = []
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim()
        if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""))
      }
      return { event, data: data.join("\n") }
    })

/** The content deltas of parsed chunk events (role-only and finish chunks carry none). */
export const contentOf = (events: ReadonlyArray<ParsedEvent>): string =>
  events
    .filter((e) => e.data !== "[DONE]")
    .map((e) => JSON.parse(e.data)?.choices?.[0]?.delta?.content ?? "")
    .join("")

export interface RawResponse {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
  /** Set when the connection failed or was cut; `body` then holds what arrived. */
  readonly error: Error | undefined
}

/** A request with node:http, keeping the raw bytes and any error instead of throwing. */
export const raw = (
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: unknown; timeoutMs?: number } = {}
): Promise<RawResponse> =>
  new Promise((resolve) => {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body)
    const req = http.request(url, {
      method: options.method ?? (body === undefined ? "GET" : "POST"),
      headers: { ...(body === undefined ? {} : { "content-type": "application/json" }), ...options.headers },
      agent: false
    })
    let status = 0
    let headers: http.IncomingHttpHeaders = {}
    const chunks: Array<Buffer> = []
    const done = (error: Error | undefined) => resolve({ status, headers, body: Buffer.concat(chunks), error })
    if (options.timeoutMs !== undefined) {
      req.setTimeout(options.timeoutMs, () => req.destroy(new Error("test timeout")))
    }
    req.on("error", done)
    req.on("response", (res) => {
      status = res.statusCode ?? 0
      headers = res.headers
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () => done(undefined))
      res.on("error", done)
      res.on("aborted", () => done(new Error("aborted")))
    })
    req.end(body)
  })

export const chatPath = "/api/openai/v1/chat/completions"
