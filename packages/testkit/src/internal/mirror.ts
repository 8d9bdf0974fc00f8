// The mirror's behaviour, independent of how bytes travel: it records a
// request and decides the answer. The node:http server and the msw handlers
// only carry that answer out, so both behave the same.
import type { Fault, FaultPlan } from "../Fault.js"
import { nextChatUpstreamDown } from "../Fault.js"
import type { Fixture } from "../Fixtures.js"
import type { Millis, MirrorOptions, RecordedRequest } from "../Mirror.js"
import {
  completionObject,
  defaultReply,
  encode,
  eventsBeforeFinish,
  fixtureSteps,
  type StreamFault,
  type StreamStep,
  splitBytes,
  splitReply,
  sseEventTexts,
  streamFaultKinds,
  streamSteps,
  usageOf
} from "./reply.js"

export const chatPaths: ReadonlySet<string> = new Set(["/api/openai/v1/chat/completions", "/v1/chat/completions"])

export type Header = readonly [name: string, value: string]

export type Answer =
  /** Close the connection without answering. */
  | { readonly _tag: "Destroy" }
  /** Never answer; the connection stays open until someone closes it. */
  | { readonly _tag: "Stall" }
  | {
      readonly _tag: "Whole"
      readonly status: number
      readonly headers: ReadonlyArray<Header>
      readonly body: Uint8Array
      readonly gzip: boolean
      readonly delayMs: number
    }
  | {
      readonly _tag: "Stream"
      readonly status: number
      readonly headers: ReadonlyArray<Header>
      readonly steps: Iterable<StreamStep>
      readonly gzip: boolean
      readonly delayMs: number
    }

export interface IncomingRequest {
  readonly method: string
  readonly url: URL
  readonly rawHeaders: ReadonlyArray<Header>
  readonly rawBody: string
  readonly time: number
}

const randomHex = (bytes: number): string =>
  Array.from(globalThis.crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, "0")).join("")

export const parseCookieHeader = (header: string | undefined): Record<string, string> => {
  const cookies: Record<string, string> = {}
  if (header === undefined) return cookies
  for (const part of header.split(";")) {
    const eq = part.indexOf("=")
    if (eq <= 0) continue
    const name = part.slice(0, eq).trim()
    if (name !== "" && !(name in cookies)) cookies[name] = part.slice(eq + 1).trim()
  }
  return cookies
}

// The `name=value` pair at the start of a Set-Cookie value.
const cookiePair = (setCookie: string): readonly [string, string] => {
  const pair = setCookie.split(";", 1)[0]!
  const eq = pair.indexOf("=")
  return [pair.slice(0, eq).trim(), pair.slice(eq + 1).trim()]
}

const isFaultList = (plan: FaultPlan): plan is ReadonlyArray<Fault | undefined> => Array.isArray(plan)

/** Hands out the faults of a plan, one request at a time. */
class FaultSource {
  private index = 0
  constructor(private readonly plan: FaultPlan | undefined) {}

  /** The plan is a single `refuse`: the whole server is down. */
  get refusing(): boolean {
    const plan = this.plan
    return plan !== undefined && typeof plan === "object" && !isFaultList(plan) && plan.kind === "refuse"
  }

  next(request: RecordedRequest): Fault | undefined {
    const plan = this.plan
    const index = this.index++
    if (plan === undefined) return undefined
    if (typeof plan === "function") return plan(request, index)
    if (isFaultList(plan)) return plan[index]
    return plan
  }
}

const json = (value: unknown): Uint8Array => encode(JSON.stringify(value))

// z of the 99th percentile of a standard normal distribution.
const Z99 = 2.326348

/** One draw of a `Millis`, never negative. */
export const drawMillis = (millis: Millis | undefined, random: () => number): number => {
  if (millis === undefined) return 0
  if (typeof millis === "number") return Math.max(0, millis)
  if (Array.isArray(millis)) {
    const list = millis as ReadonlyArray<number>
    return list.length === 0 ? 0 : Math.max(0, list[Math.min(list.length - 1, Math.floor(random() * list.length))]!)
  }
  const { median, p99 } = millis as { readonly median: number; readonly p99: number }
  if (!(median > 0) || !(p99 > median)) return Math.max(0, median)
  // Log-normal: ln(t) ~ N(ln median, sigma), sigma so that the 99th percentile is p99 (Box–Muller for z).
  const sigma = Math.log(p99 / median) / Z99
  const z = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
  return median * Math.exp(sigma * z)
}

const cloudflarePage = `<!DOCTYPE html>
<html lang="en-US">
<head><title>Just a moment...</title><meta http-equiv="refresh" content="390"></head>
<body><div id="cf-wrapper"><h1>Checking if the site connection is secure</h1>
<p>chat.example needs to review the security of your connection before proceeding.</p>
<div class="cf-footer">Ray ID: <code>8a1b2c3d4e5f6a7b</code> &bull; Performance &amp; security by Cloudflare</div>
</div></body>
</html>
`

const homePage = `<!DOCTYPE html>
<html><head><title>NextChat</title></head><body><div id="app">easychat test mirror</div></body></html>
`

/** `X`: fields a transport adds to its recorded requests (node:http adds the connection). */
export class Mirror<X extends object = {}> {
  readonly requests: Array<RecordedRequest & X> = []
  private chatFaults: FaultSource
  private cookieFaults: FaultSource
  private readonly finalCookies: ReadonlyArray<string>
  private readonly hopCookies: ReadonlyArray<string>
  private readonly redirectTo: string | undefined

  constructor(private readonly options: MirrorOptions = {}) {
    this.chatFaults = new FaultSource(options.fault)
    this.cookieFaults = new FaultSource(options.cookieFault)
    this.finalCookies = options.cookies ?? [`session=${randomHex(16)}; Path=/; Max-Age=3600; HttpOnly`]
    const hop = typeof options.redirect === "object" ? options.redirect : options.redirect ? {} : undefined
    this.redirectTo = hop === undefined ? undefined : (hop.location ?? "/welcome")
    this.hopCookies = hop === undefined ? [] : (hop.cookies ?? [`visit=${randomHex(8)}; Path=/; HttpOnly`])
  }

  /** Every cookie a client holds after following `GET /` to the end. */
  get issuedCookies(): Record<string, string> {
    return Object.fromEntries([...this.hopCookies, ...this.finalCookies].map(cookiePair))
  }

  get refusing(): boolean {
    return this.chatFaults.refusing
  }

  setFault(plan: FaultPlan | undefined): void {
    this.chatFaults = new FaultSource(plan)
  }

  setCookieFault(plan: FaultPlan | undefined): void {
    this.cookieFaults = new FaultSource(plan)
  }

  reset(): void {
    this.requests.length = 0
    this.chatFaults = new FaultSource(this.options.fault)
    this.cookieFaults = new FaultSource(this.options.cookieFault)
  }

  /** Records a request; `extra` lets a transport attach its own fields (connection id...). */
  record(incoming: IncomingRequest, extra: X): RecordedRequest & X {
    const headers: Record<string, string> = {}
    for (const [name, value] of incoming.rawHeaders) {
      const key = name.toLowerCase()
      const previous = headers[key]
      headers[key] = previous === undefined ? value : `${previous}${key === "cookie" ? "; " : ", "}${value}`
    }
    let body: unknown
    try {
      body = incoming.rawBody === "" ? undefined : JSON.parse(incoming.rawBody)
    } catch {
      body = undefined
    }
    const request: RecordedRequest & X = {
      ...extra,
      index: this.requests.length,
      method: incoming.method,
      path: incoming.url.pathname + incoming.url.search,
      url: incoming.url.href,
      headers,
      rawHeaders: incoming.rawHeaders,
      cookies: parseCookieHeader(headers["cookie"]),
      rawBody: incoming.rawBody,
      body,
      time: incoming.time
    }
    this.requests.push(request)
    return request
  }

  answer(request: RecordedRequest): Answer {
    const pathname = new URL(request.url).pathname
    const cors = this.corsHeaders(request)
    if (request.method === "OPTIONS" && this.options.cors) {
      return whole(204, cors, new Uint8Array(0))
    }
    if (request.method === "GET" && (pathname === "/" || pathname === this.redirectTo)) {
      return withHeaders(this.cookiePage(request, pathname), cors)
    }
    if (chatPaths.has(pathname)) {
      if (request.method !== "POST") {
        return withHeaders(errorJson(405, "Method not allowed", "invalid_request_error"), [...cors, ["allow", "POST"]])
      }
      return withHeaders(this.chat(request), cors)
    }
    return withHeaders(errorJson(404, `No route for ${request.method} ${pathname}`, "not_found"), cors)
  }

  private corsHeaders(request: RecordedRequest): ReadonlyArray<Header> {
    const cors = this.options.cors
    if (!cors) return []
    const origin = (typeof cors === "object" ? cors.origin : undefined) ?? request.headers["origin"] ?? "*"
    return [
      ["access-control-allow-origin", origin],
      ["access-control-allow-credentials", "true"],
      ["access-control-allow-headers", request.headers["access-control-request-headers"] ?? "*"],
      ["access-control-allow-methods", "GET, POST, OPTIONS"],
      ["access-control-expose-headers", "Retry-After"],
      ["access-control-max-age", "600"],
      ["vary", "Origin"]
    ]
  }

  private cookiePage(request: RecordedRequest, pathname: string): Answer {
    const fault = this.cookieFaults.next(request)
    const faulted = fault === undefined ? undefined : wholeFault(fault)
    if (faulted !== undefined) return faulted
    const gzip = fault?.kind === "gzip" && acceptsGzip(request)
    if (pathname === "/" && this.redirectTo !== undefined) {
      return {
        ...whole(
          302,
          [["location", this.redirectTo], ["content-type", "text/plain"], ...setCookies(this.hopCookies)],
          encode("Found")
        ),
        gzip
      }
    }
    return {
      ...whole(200, [["content-type", "text/html; charset=utf-8"], ...setCookies(this.finalCookies)], encode(homePage)),
      gzip
    }
  }

  private chat(request: RecordedRequest): Answer {
    const random = this.options.random ?? Math.random
    const firstDeltaMs = drawMillis(this.options.firstDeltaMs, random)
    const answer = this.chatAnswer(request, firstDeltaMs, random)
    // A whole reply's first delta is the reply itself (an error answers without it).
    const delayMs =
      (this.options.headersDelayMs ?? 0) + (answer._tag === "Whole" && answer.status === 200 ? firstDeltaMs : 0)
    return delayMs > 0 && (answer._tag === "Whole" || answer._tag === "Stream") ? { ...answer, delayMs } : answer
  }

  /** The fault a request gets by chance (`stallChance`, `cutChance`), when its plan gives it none. */
  private chanceFault(request: RecordedRequest, random: () => number): Fault | "cut" | undefined {
    const { stallChance = 0, cutChance = 0 } = this.options
    if (stallChance <= 0 && cutChance <= 0) return undefined
    const stream = (request.body as { stream?: unknown } | undefined)?.stream === true
    if (stallChance > 0 && random() < stallChance) {
      return stream ? { kind: "stall-mid-stream", afterDeltas: 0 } : { kind: "stall-before-headers" }
    }
    return stream && cutChance > 0 && random() < cutChance ? "cut" : undefined
  }

  private chatAnswer(request: RecordedRequest, firstDeltaMs: number, random: () => number): Answer {
    const options = this.options
    const planned = this.chatFaults.next(request)
    const chance = planned === undefined ? this.chanceFault(request, random) : undefined
    // Where a chance cut falls is drawn once the number of deltas is known.
    const cutAt = chance === "cut" ? random() : undefined
    let fault = planned ?? (chance === "cut" ? undefined : chance)
    const faulted = fault === undefined ? undefined : wholeFault(fault)
    if (faulted !== undefined) return faulted

    if (options.accessCode !== undefined) {
      const denied = checkAccessCode(request.headers["authorization"], options.accessCode)
      if (denied !== undefined) return whole(401, jsonType, json({ error: true, msg: denied }))
    }
    if (options.requireCookies) {
      const missing = Object.entries(this.issuedCookies)
        .filter(([name, value]) => request.cookies[name] !== value)
        .map(([name]) => name)
      if (missing.length > 0) {
        return errorJson(403, `Missing or stale cookies: ${missing.join(", ")} (GET / first)`, "forbidden")
      }
    }
    if (request.body === null || typeof request.body !== "object" || Array.isArray(request.body)) {
      return errorJson(400, "The request body is not a JSON object", "invalid_request_error")
    }

    const body = request.body as { model?: unknown; stream?: unknown; stream_options?: unknown }
    const gzip = fault?.kind === "gzip" && acceptsGzip(request)
    const streamFault = fault !== undefined && streamFaultKinds.has(fault.kind) ? (fault as StreamFault) : undefined
    const wantsStream = body.stream === true && fault?.kind !== "wrong-content-type-stream"
    const fixture = typeof options.fixture === "function" ? options.fixture(request) : options.fixture
    if (fixture !== undefined) {
      const events = sseEventTexts(fixture.stream)
      const cut = cutAt === undefined ? streamFault : cutFault(cutAt, eventsBeforeFinish(events))
      return this.fixtureAnswer(fixture, events, wantsStream, cut, gzip, firstDeltaMs)
    }

    const text = typeof options.reply === "function" ? options.reply(request) : (options.reply ?? defaultReply(request))
    const pieces = splitReply(text, options.chunkSize ?? 4, options.deltas)
    if (cutAt !== undefined) fault = cutFault(cutAt, pieces.length)
    const meta = {
      id: `chatcmpl-mirror-${request.index}`,
      created: Math.floor(request.time / 1000),
      model: typeof body.model === "string" ? body.model : (options.model ?? "gpt-3.5-turbo")
    }
    const usageMode = options.usage ?? "on-request"
    const usage = usageMode === "never" ? undefined : usageOf(request, pieces.length)

    if (!wantsStream) {
      return {
        ...whole(200, jsonType, json(completionObject(meta, pieces.join(""), usage))),
        gzip
      }
    }
    const includeUsage =
      usageMode === "always" ||
      (usageMode === "on-request" &&
        typeof body.stream_options === "object" &&
        body.stream_options !== null &&
        (body.stream_options as { include_usage?: unknown }).include_usage === true)
    return {
      _tag: "Stream",
      status: 200,
      headers: streamType,
      steps: streamSteps({
        meta,
        pieces,
        usage: includeUsage ? usage : undefined,
        fault: cutAt === undefined ? streamFault : (fault as StreamFault),
        firstDeltaMs
      }),
      gzip,
      delayMs: 0
    }
  }

  // A recorded reply goes out as recorded: the text is never re-serialized.
  private fixtureAnswer(
    fixture: Fixture,
    texts: ReadonlyArray<string>,
    stream: boolean,
    fault: StreamFault | undefined,
    gzip: boolean,
    firstDeltaMs: number
  ): Answer {
    if (!stream) return { ...whole(200, jsonType, encode(fixture.whole)), gzip }
    const events = fixtureSteps(texts, fault, firstDeltaMs)
    return {
      _tag: "Stream",
      status: 200,
      headers: streamType,
      steps: this.options.fixtureSplit === "bytes" ? splitBytes(events, this.options.chunkSize ?? 4) : events,
      gzip,
      delayMs: 0
    }
  }
}

/** A cut after at least one of `count` deltas and before the last (after the only one when there is one). */
const cutFault = (at: number, count: number): StreamFault => ({
  kind: "close-mid-stream",
  afterDeltas: 1 + Math.floor(at * Math.max(1, count - 1))
})

const streamType: ReadonlyArray<Header> = [
  ["content-type", "text/event-stream; charset=utf-8"],
  ["cache-control", "no-cache"]
]

const jsonType: ReadonlyArray<Header> = [["content-type", "application/json"]]

const whole = (status: number, headers: ReadonlyArray<Header>, body: Uint8Array) =>
  ({ _tag: "Whole", status, headers, body, gzip: false, delayMs: 0 }) as const

const errorJson = (status: number, message: string, type: string) =>
  whole(status, jsonType, json({ error: { message, type } }))

const withHeaders = (answer: Answer, headers: ReadonlyArray<Header>): Answer =>
  headers.length === 0 || answer._tag === "Destroy" || answer._tag === "Stall"
    ? answer
    : { ...answer, headers: [...answer.headers, ...headers] }

const setCookies = (cookies: ReadonlyArray<string>): Array<Header> => cookies.map((c) => ["set-cookie", c] as const)

const acceptsGzip = (request: RecordedRequest): boolean => /\bgzip\b/i.test(request.headers["accept-encoding"] ?? "")

// NextChat's rule (app/api/auth.ts): `nk-<code>` is an access code; any other
// bearer key is the user's own upstream key and passes.
const checkAccessCode = (authorization: string | undefined, accessCode: string): string | undefined => {
  const token = (authorization ?? "").replace(/^Bearer\s+/i, "").trim()
  if (token !== "" && !token.startsWith("nk-")) return undefined
  const code = token.startsWith("nk-") ? token.slice(3) : ""
  if (code === "") return "empty access code"
  return code === accessCode ? undefined : "wrong access code"
}

// Connection and whole-response faults; `undefined` for the faults that shape a
// normal answer instead (stream faults, gzip, wrong-content-type-stream).
const wholeFault = (fault: Fault): Answer | undefined => {
  switch (fault.kind) {
    case "refuse":
    case "reset-before-headers":
      return { _tag: "Destroy" }
    case "stall-before-headers":
      return { _tag: "Stall" }
    case "status": {
      const body = fault.body ?? { error: { message: `Mirror test fault: HTTP ${fault.status}`, type: "mirror_fault" } }
      const headers = Object.entries(fault.headers ?? {})
      const hasType = headers.some(([name]) => name.toLowerCase() === "content-type")
      const type: Header = ["content-type", typeof body === "string" ? "text/plain; charset=utf-8" : "application/json"]
      return whole(
        fault.status,
        hasType ? headers : [type, ...headers],
        typeof body === "string" ? encode(body) : json(body)
      )
    }
    case "html-200":
      return whole(200, [["content-type", "text/html; charset=UTF-8"]], encode(fault.body ?? cloudflarePage))
    case "json-string-error":
      return whole(200, jsonType, json(fault.text ?? nextChatUpstreamDown))
    case "access-code":
      return whole(401, jsonType, json({ error: true, msg: fault.msg ?? "empty access code" }))
    default:
      return undefined
  }
}
