import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Redacted from "effect/Redacted"
import type { ChatRequest } from "../Chat.js"
import type { CookieStore } from "./cookies.js"
import { credentialForms } from "./redact.js"
import type { Settings } from "./settings.js"

/** What easychat sends a server: its headers, the cookies it holds, the key, the chat body. */
export interface Outgoing {
  /** The preset's headers and the server's cookies: what the cookie page gets. */
  readonly baseHeaders: (server: string, url: string, now: number) => Record<string, string>
  /** `baseHeaders` and the key: what every request to the API gets. */
  readonly apiHeaders: (server: string, url: string, now: number) => Record<string, string>
  /** The chat request: the caller's fields, the preset's defaults where the caller sent none. */
  readonly chatRequest: (
    server: string,
    request: ChatRequest,
    stream: boolean,
    now: number
  ) => HttpClientRequest.HttpClientRequest
  /** What must never appear in an error from `server`: its cookie values and the key in each form. */
  readonly secretsOf: (server: string) => ReadonlyArray<string>
}

export const makeOutgoing = (settings: Settings, cookies: CookieStore): Outgoing => {
  const defaulted = new Set(settings.defaults.map(([name]) => name))
  const baseHeaders = (server: string, url: string, now: number): Record<string, string> => {
    const headers = settings.headersFor(server)
    const cookie = cookies.header(server, url, now)
    if (cookie !== undefined) headers.cookie = cookie
    return headers
  }
  const apiHeaders = (server: string, url: string, now: number): Record<string, string> => {
    const headers = baseHeaders(server, url, now)
    if (settings.authorization !== undefined) headers.authorization = Redacted.value(settings.authorization)
    return headers
  }
  return {
    baseHeaders,
    apiHeaders,
    chatRequest: (server, request, stream, now) => {
      const { messages, activeServer: _, stream: __, model, ...extra } = request
      const body: Record<string, unknown> = { messages, stream, model: model ?? settings.model }
      // A preset's default goes where the caller sent nothing; the caller's `null` leaves it out.
      for (const [name, value] of settings.defaults) if (!Object.hasOwn(extra, name)) body[name] = value
      for (const name in extra) if (extra[name] !== null || !defaulted.has(name)) body[name] = extra[name]
      const url = `${server}${settings.path}`
      const headers = apiHeaders(server, url, now)
      if (!stream && headers.accept === "text/event-stream") headers.accept = "application/json"
      return HttpClientRequest.post(url, { headers }).pipe(
        HttpClientRequest.bodyText(JSON.stringify(body), "application/json")
      )
    },
    secretsOf: (server) => {
      const secrets = [...cookies.values(server)]
      if (settings.authorization !== undefined) secrets.push(...credentialForms(Redacted.value(settings.authorization)))
      return secrets
    }
  }
}
