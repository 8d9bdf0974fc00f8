/**
 * The conformance cases, written once as data: how the mirror behaves, what the
 * client asks, and what the caller must get. The same table runs against the
 * Node transport and the fetch transport on Node's global fetch, in headless
 * Chromium (page and module worker), on Bun and on Deno (main thread and Web
 * Worker): see `runner.ts`, `browser-entry.ts` and `remote.ts`.
 *
 * This module is bundled for the browser: it must not import `node:*`, and it
 * imports the testkit for types only.
 *
 * @since 0.1.0
 */
import type { Presets } from "@easychat/core"
import type { MirrorServer } from "@easychat/testkit"

/**
 * Where a case runs: `node` is `@easychat/transport-node` (undici); every other
 * runtime is `@easychat/transport-fetch` on that runtime's own fetch:
 * `fetch-node` on Node's global fetch, `chromium` in a page of headless
 * Chromium, `bun` and `deno` on their main thread; the `-worker` ones in a
 * module Web Worker (Chromium: started by the page; Bun and Deno: loaded from
 * a file).
 * @since 0.1.0 @category models
 */
export type Runtime =
  | "node"
  | "fetch-node"
  | "chromium"
  | "chromium-worker"
  | "bun"
  | "bun-worker"
  | "deno"
  | "deno-worker"

/** @since 0.1.0 @category constants */
export const runtimes: ReadonlyArray<Runtime> = [
  "node",
  "fetch-node",
  "chromium",
  "chromium-worker",
  "bun",
  "bun-worker",
  "deno",
  "deno-worker"
]

/**
 * Which face of the client a run goes through: the Effect service
 * (`EasyChat.layer`) or the Promise facade (the transport's `createClient`).
 * @since 0.1.0 @category models
 */
export type Api = "effect" | "promise"

/**
 * How a run cuts its own call short: `interrupt` (Effect: the fiber is
 * interrupted), `abort` (Promise: the `AbortSignal` fires), `break` (Promise:
 * leaving the `for await`). After `afterPieces` text pieces, or for a whole
 * reply once the mirror has received the chat request (`onceReceived`).
 * @since 0.1.0 @category models
 */
export type Cancel =
  | { readonly via: "interrupt" | "abort" | "break"; readonly afterPieces: number }
  | { readonly via: "interrupt" | "abort"; readonly onceReceived: true }

/**
 * An error as the caller got it, reduced to plain data (it crosses from the
 * browser as JSON). `typed` is false for anything that is not an easychat
 * tagged error (an `AbortError`, a defect).
 * @since 0.1.0 @category models
 */
export interface ErrorInfo {
  readonly _tag: string
  readonly typed: boolean
  readonly message: string
  readonly server?: string
  readonly status?: number
  readonly statusText?: string
  readonly body?: string
  readonly retryAfter?: number
  readonly contentType?: string
  readonly expected?: string
  readonly detail?: string
  readonly code?: string
  readonly reason?: string
  readonly phase?: string
  readonly millis?: number
  readonly deltas?: number
  readonly characters?: number
  readonly field?: string
  readonly rule?: string
  readonly attempts?: ReadonlyArray<{ readonly server: string; readonly error: ErrorInfo }>
}

/**
 * What one run of a case gave the caller.
 * @since 0.1.0 @category models
 */
export interface Outcome {
  /** No error reached the caller (a run that cancelled itself cleanly is ok). */
  readonly ok: boolean
  /** Every piece of text joined: the whole reply, or what the stream delivered. */
  readonly text: string
  /** The non-empty text pieces in order (a whole reply is one piece). */
  readonly pieces: ReadonlyArray<string>
  /** `ChatDelta` objects received, finish-only and usage-only ones included (0 for a whole reply). */
  readonly deltas: number
  readonly finishReason?: string
  /** The servers named by the reply or its deltas. */
  readonly servers: ReadonlyArray<string>
  /** The run cancelled its own call (see `Cancel`). */
  readonly cancelled: boolean
  /** Deltas the caller was still handed after it cancelled (they are not in `pieces`). */
  readonly afterCancel: number
  readonly error?: ErrorInfo
  /** What the harness's probe saw after the call ended, before the client was closed. */
  readonly probe?: Probe
}

/**
 * What the harness checks after a call ends and before its client is closed
 * (so that closing the transport cannot be what closed the connection).
 * @since 0.1.0 @category models
 */
export interface Probe {
  /** Whether the connection of the last chat request closed within the bound. */
  readonly chatConnectionClosed: boolean
}

/** A partial `ErrorInfo` to match: fields given must be equal; `attempts` must have the same length. */
export type ErrorMatch = Omit<Partial<ErrorInfo>, "attempts"> & {
  readonly attempts?: ReadonlyArray<{ readonly error: ErrorMatch }>
}

/**
 * What the caller must get. Fields not given are not checked.
 * @since 0.1.0 @category models
 */
export interface Expected {
  readonly ok: boolean
  readonly text?: string
  readonly pieces?: ReadonlyArray<string>
  readonly finishReason?: string
  readonly cancelled?: boolean
  readonly afterCancel?: number
  readonly error?: ErrorMatch
  /**
   * For a runtime that may lose what arrived together with a cut connection:
   * instead of exact `pieces` and `error`, the pieces are a prefix of
   * `prefixOf` (of one of the lengths `lengths`, when given) and the error
   * matches one of `errors`.
   */
  readonly cut?: {
    readonly prefixOf: ReadonlyArray<string>
    readonly lengths?: ReadonlyArray<number>
    readonly errors: ReadonlyArray<ErrorMatch>
  }
}

/**
 * What the mirror must have seen, checked on the Node side from its request log.
 * @since 0.1.0 @category models
 */
export interface ServerExpect {
  /** `true`: the chat POST carried exactly the cookies that `GET /` (and its redirect) set; `false`: none. */
  readonly cookies?: boolean
  /** Chat POSTs received. */
  readonly posts?: number
  /** Cookie-page GETs received (`GET /` and its redirect target). */
  readonly gets?: number
  /** CORS preflights (`OPTIONS`) received. */
  readonly preflights?: number
  /**
   * Headers of the (last) chat POST: a string is compared exactly (`{mirror}` stands for the mirror's origin,
   * `{page}` for the browser page's), a RegExp matched, `null` means absent.
   */
  readonly headers?: Readonly<Record<string, string | RegExp | null>>
  /** The chat POST's `Accept-Encoding` offered gzip (so the mirror answered gzip-encoded). */
  readonly gzip?: boolean
  /** The chat request's connection closed within 1 s after the call ended (the `Probe`). */
  readonly closed?: boolean
}

/**
 * A runtime where a case behaves differently, and why.
 * @since 0.1.0 @category models
 */
export interface Difference {
  readonly why: string
  /** Replaces fields of `expect` (`undefined` removes one). */
  readonly expect?: { readonly [K in keyof Expected]?: Expected[K] | undefined }
  /** Replaces fields of `server`. */
  readonly server?: ServerExpect
  /** The case does not run there at all. */
  readonly skip?: boolean
  /** A bug of that runtime's transport: the case runs there as an expected failure (see `Case.knownBug`). */
  readonly knownBug?: string
}

/**
 * One conformance case.
 * @since 0.1.0 @category models
 */
export interface Case {
  readonly name: string
  /** One line: what the case shows. */
  readonly title: string
  readonly mode: "complete" | "stream"
  /** The mirror's options (`cors` is added for the browser). */
  readonly mirror: MirrorServer.MirrorServerOptions
  /** Point the client at a port where nothing listens instead of at the mirror. */
  readonly refused?: boolean
  /** Client options besides `servers` (which is the mirror). */
  readonly options?: Presets.Options
  /** Extra request fields (`messages` defaults to one user message). */
  readonly request?: Readonly<Record<string, unknown>>
  readonly cancel?: Cancel
  /**
   * What the Promise face iterates for a stream: `deltas` (`streamDeltas`, the default) or `text` (`stream`,
   * text pieces only: no server, finish reason or delta count to check).
   */
  readonly iterate?: "deltas" | "text"
  readonly expect: Expected
  readonly server?: ServerExpect
  /** Secrets that must not appear anywhere in the outcome (cookie values are always checked). */
  readonly secrets?: ReadonlyArray<string>
  /** The faces it runs through; default both (a `cancel` picks the face it needs). */
  readonly apis?: ReadonlyArray<Api>
  readonly differs?: Partial<Record<Runtime, Difference>>
  /**
   * A bug outside this package that makes the case fail today: the case states
   * the contract and runs as an expected failure until the bug is fixed.
   */
  readonly knownBug?: string
}

/** Splits text into pieces of `size` code points, as a mirror with `chunkSize: size` streams it. */
export const split = (text: string, size: number): Array<string> => {
  const chars = Array.from(text)
  const out: Array<string> = []
  for (let i = 0; i < chars.length; i += size) out.push(chars.slice(i, i + size).join(""))
  return out
}

/**
 * A reply that breaks naive decoders: accents, emoji (a ZWJ sequence and a
 * flag, four-byte UTF-8), CJK, blank lines, CRLF, and text that looks like SSE
 * framing (`data:`, `[DONE]`, a comment, `event: error`).
 * @since 0.1.0 @category constants
 */
export const tricky =
  "Café crème, naïve façade — Ünïcödé ✓\n\n" +
  "Emoji: 😀🎉 👩‍💻 🇫🇷\n\n" +
  "中文字符，日本語のテキスト、한국어.\n" +
  "data: not an event\n\n" +
  "data: [DONE]\n" +
  ": a comment\r\n" +
  "event: error\r\n\r\n" +
  "The end."

/** A short ASCII reply in pieces of 4 characters: easy to count. */
const plain = "The quick brown fox jumps over the lazy dog."
const plainPieces = split(plain, 4)

/** A reply long and slow enough to still be streaming when the caller cancels. */
const endless: MirrorServer.MirrorServerOptions = { reply: "tick ", chunkSize: 5, deltas: 5000, delayMs: 10 }

const chatPath = "/api/openai/v1/chat/completions"

/** The same difference in Chromium's page and in its worker: one network stack, one cookie jar. */
const inChromium = (difference: Difference): Partial<Record<Runtime, Difference>> => ({
  chromium: difference,
  "chromium-worker": difference
})

/** The same difference on a runtime's main thread and in its worker. */
const onBun = (difference: Difference): Partial<Record<Runtime, Difference>> => ({
  bun: difference,
  "bun-worker": difference
})
const onDeno = (difference: Difference): Partial<Record<Runtime, Difference>> => ({
  deno: difference,
  "deno-worker": difference
})

const gzipOnNode: Difference = {
  why:
    "undici's `request` (under @effect/platform-node) neither offers nor decodes gzip, so the mirror answers plain; " +
    "every fetch (Node's, Chromium's, Bun's, Deno's) offers gzip and decodes it",
  server: { gzip: false }
}

const presetInChromium: Difference = {
  why:
    "forbidden headers (origin, referer, sec-*, user-agent) are dropped by the transport and set by the " +
    "browser: Origin and Referer are the page's, User-Agent and sec-ch-ua are Chromium's own; the preset's " +
    "custom headers (plugins, usesearch, x-requested-with) are not CORS-safelisted, so the GET and the POST " +
    "each need a preflight: a mirror without CORS cannot be used from a page at all",
  server: {
    preflights: 2,
    headers: {
      "x-conformance": "yes",
      "x-requested-with": "XMLHttpRequest",
      plugins: "0",
      usesearch: "false",
      "content-type": "application/json",
      "user-agent": /HeadlessChrome\//,
      "sec-ch-ua": /Chromium/,
      origin: "{page}",
      referer: "{page}/"
    }
  }
}

/**
 * Faults of the whole answer, before any text: with a pool of one server each
 * is one failed attempt inside `AllServersFailed`, for both kinds of call.
 */
const beforeFirstDelta = (
  name: string,
  title: string,
  fault: MirrorServer.Fault,
  error: (mode: "complete" | "stream") => ErrorMatch,
  extra: Partial<Case> = {}
): Array<Case> =>
  (["complete", "stream"] as const).map((mode) => ({
    name: `${name}/${mode}`,
    title,
    mode,
    mirror: { reply: plain, fault },
    expect: { ok: false, pieces: [], error: { _tag: "AllServersFailed", attempts: [{ error: error(mode) }] } },
    ...extra
  }))

/**
 * Every case, in the order of the README's table.
 * @since 0.1.0 @category constants
 */
export const cases: ReadonlyArray<Case> = [
  // -- replies, byte for byte -------------------------------------------------
  {
    name: "reply/whole",
    title: "whole reply, multi-byte UTF-8 and SSE-like text, byte for byte",
    mode: "complete",
    mirror: { reply: tricky },
    expect: { ok: true, text: tricky, pieces: [tricky], finishReason: "stop" }
  },
  {
    name: "reply/stream",
    title: "streamed reply in 3-code-point deltas, each delta byte for byte",
    mode: "stream",
    mirror: { reply: tricky, chunkSize: 3 },
    expect: { ok: true, text: tricky, pieces: split(tricky, 3), finishReason: "stop" }
  },
  {
    name: "reply/stream-text",
    title: "the Promise face's `stream` (text pieces) gives the same pieces",
    mode: "stream",
    mirror: { reply: tricky, chunkSize: 3 },
    iterate: "text",
    apis: ["promise"],
    expect: { ok: true, text: tricky, pieces: split(tricky, 3) }
  },
  {
    name: "reply/stream-batched",
    title: "streamed reply with 64 events per network write, one code point each",
    mode: "stream",
    mirror: { reply: tricky, chunkSize: 1, batch: 64 },
    expect: { ok: true, text: tricky, pieces: split(tricky, 1), finishReason: "stop" }
  },
  {
    name: "reply/gzip-whole",
    title: "gzip-encoded whole reply is decoded",
    mode: "complete",
    mirror: { reply: tricky, fault: { kind: "gzip" } },
    expect: { ok: true, text: tricky },
    server: { gzip: true },
    differs: { node: gzipOnNode }
  },
  {
    name: "reply/gzip-stream",
    title: "gzip-encoded stream (flushed per event) is decoded as it arrives",
    mode: "stream",
    mirror: { reply: tricky, chunkSize: 3, fault: { kind: "gzip" } },
    expect: { ok: true, text: tricky, pieces: split(tricky, 3), finishReason: "stop" },
    server: { gzip: true },
    differs: { node: gzipOnNode }
  },
  {
    name: "reply/gzip-asked",
    title:
      "the caller asks for gzip itself (`Accept-Encoding: gzip` in `headers`): core drops it, the reply is decoded",
    mode: "complete",
    mirror: { reply: tricky, fault: { kind: "gzip" } },
    options: { headers: { "accept-encoding": "gzip" } },
    expect: { ok: true, text: tricky },
    server: { gzip: true },
    differs: {
      node: {
        why:
          "core never forwards a caller's `Accept-Encoding` (the transport negotiates what it can decode): undici " +
          "offers nothing, so the mirror answers plain",
        server: { gzip: false }
      },
      ...inChromium({
        why:
          "`accept-encoding` is a forbidden header: the transport drops the caller's, the browser sends its own " +
          "(`gzip, deflate, br, zstd`) and decodes"
      })
    }
  },
  {
    name: "reply/no-trailing-blank-line",
    title: "a last event (`data: [DONE]`) without its line end is still dispatched",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "no-trailing-blank-line" } },
    expect: { ok: true, text: plain, pieces: plainPieces, finishReason: "stop" }
  },
  {
    name: "reply/no-done",
    title: "a stream with a finish_reason but no `[DONE]` is complete",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "no-done" } },
    expect: { ok: true, text: plain, pieces: plainPieces, finishReason: "stop" }
  },
  {
    name: "reply/invalid-utf8",
    title: "bytes that are not UTF-8 become U+FFFD and the stream goes on",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "invalid-utf8", afterDeltas: 2 } },
    expect: {
      ok: true,
      pieces: [...plainPieces.slice(0, 2), "bad\uFFFD\uFFFDbytes", ...plainPieces.slice(2)],
      finishReason: "stop"
    }
  },
  {
    name: "reply/usage",
    title: "usage asked with stream_options arrives as a last delta",
    mode: "stream",
    mirror: { reply: plain },
    request: { stream_options: { include_usage: true } },
    expect: { ok: true, text: plain, pieces: plainPieces, finishReason: "stop" }
  },

  // -- cookies, headers, access codes ---------------------------------------
  {
    name: "cookies/redirect",
    title: "cookies from `GET /` and its 302 hop are sent on the POST (mirror requires them)",
    mode: "stream",
    mirror: { reply: plain, redirect: true, requireCookies: true },
    expect: { ok: true, text: plain },
    server: { cookies: true, gets: 2, posts: 1 },
    differs: inChromium({
      why:
        "the browser follows the 302 itself and owns the cookies (sent with credentials: include; the page and the " +
        "mirror are cross-origin but same-site, so SameSite=Lax cookies travel); the exact Cookie header is the " +
        "browser's, the test still checks it holds exactly the mirror's cookies"
    })
  },
  {
    name: "cookies/whole",
    title: "a whole reply also carries the cookies",
    mode: "complete",
    mirror: { reply: plain, requireCookies: true },
    expect: { ok: true, text: plain },
    server: { cookies: true, gets: 1, posts: 1 }
  },
  {
    name: "cookies/samesite-none-secure",
    title: "a `SameSite=None; Secure` cookie over http to 127.0.0.1 (a trustworthy origin) is kept and sent",
    mode: "complete",
    mirror: {
      reply: plain,
      requireCookies: true,
      cookies: ["sid=conformance-sid-7a41; Path=/; SameSite=None; Secure"]
    },
    expect: { ok: true, text: plain },
    server: { cookies: true, posts: 1 }
  },
  {
    name: "cookies/samesite-none-insecure",
    title: "a `SameSite=None` cookie without `Secure`",
    mode: "complete",
    mirror: { reply: plain, requireCookies: true, cookies: ["sid=conformance-sid-7a42; Path=/; SameSite=None"] },
    expect: { ok: true, text: plain },
    server: { cookies: true, posts: 1 },
    differs: inChromium({
      why:
        "Chromium rejects a `SameSite=None` cookie without `Secure`, so the POST carries none and the mirror " +
        "answers 403; core re-initialises the cookies once (a second GET and POST), then fails with the 403. " +
        "Core's own jar (tough-cookie) keeps such a cookie",
      expect: {
        ok: false,
        text: undefined,
        error: { _tag: "AllServersFailed", attempts: [{ error: { _tag: "HttpStatusError", status: 403 } }] }
      },
      server: { cookies: false, posts: 2, gets: 2 }
    })
  },
  {
    name: "headers/preset",
    title: "the EasyChat preset's headers reach the mirror (browser: what the browser allows)",
    mode: "stream",
    mirror: { reply: plain },
    options: { headers: { "x-conformance": "yes" } },
    expect: { ok: true, text: plain },
    server: {
      headers: {
        "x-conformance": "yes",
        "x-requested-with": "XMLHttpRequest",
        plugins: "0",
        usesearch: "false",
        "content-type": "application/json",
        "user-agent": /Chrome\/116\.0\.0\.0 Safari\/537\.36$/,
        "sec-ch-ua": '"Chromium";v="116", "Not)A;Brand";v="24", "Google Chrome";v="116"',
        origin: "{mirror}",
        referer: "{mirror}/"
      },
      preflights: 0
    },
    differs: {
      chromium: presetInChromium,
      "chromium-worker": {
        why:
          "as in the page (the difference above), and Chromium sends no `sec-ch-ua` client hints from a worker (the page's requests carry " +
          "them; the worker's, seen by the mirror, do not); Referer is still the page's origin",
        server: { ...presetInChromium.server, headers: { ...presetInChromium.server?.headers, "sec-ch-ua": null } }
      }
    }
  },
  {
    name: "access-code/ok",
    title: "a NextChat access code travels as `Bearer nk-<code>`",
    mode: "complete",
    mirror: { reply: plain, accessCode: "mirror-code-4821" },
    options: { accessCode: "mirror-code-4821" },
    expect: { ok: true, text: plain },
    server: { headers: { authorization: "Bearer nk-mirror-code-4821" } },
    secrets: ["mirror-code-4821"]
  },
  {
    name: "access-code/wrong",
    title: "a wrong access code: 401 with NextChat's message, cookies re-initialised once, no secret echoed",
    mode: "complete",
    mirror: { reply: plain, accessCode: "mirror-code-4821" },
    options: { accessCode: "guess-code-9917" },
    expect: {
      ok: false,
      error: {
        _tag: "AllServersFailed",
        attempts: [{ error: { _tag: "HttpStatusError", status: 401, body: "wrong access code" } }]
      }
    },
    server: { posts: 2, gets: 2 },
    secrets: ["guess-code-9917", "mirror-code-4821"]
  },

  // -- faults before the first delta: one failed attempt ---------------------
  ...beforeFirstDelta(
    "fault/429",
    "429 with Retry-After: HttpStatusError with retryAfter (exposed to the browser by CORS)",
    { kind: "status", status: 429, headers: { "retry-after": "7" } },
    () => ({ _tag: "HttpStatusError", status: 429, retryAfter: 7, body: "Mirror test fault: HTTP 429" })
  ),
  ...beforeFirstDelta(
    "fault/503",
    "503: HttpStatusError with the server's own message",
    { kind: "status", status: 503 },
    () => ({
      _tag: "HttpStatusError",
      status: 503,
      statusText: "Service Unavailable",
      body: "Mirror test fault: HTTP 503"
    })
  ),
  ...beforeFirstDelta(
    "fault/access-code",
    "NextChat's 401 `empty access code`, after one cookie re-initialisation",
    { kind: "access-code" },
    () => ({ _tag: "HttpStatusError", status: 401, body: "empty access code" }),
    { server: { posts: 2, gets: 2 } }
  ),
  ...beforeFirstDelta(
    "fault/html-200",
    "a 200 HTML page (Cloudflare): UnexpectedContentType, not a parse crash",
    { kind: "html-200" },
    (mode) => ({
      _tag: "UnexpectedContentType",
      contentType: "text/html; charset=utf-8",
      expected: mode === "complete" ? "application/json" : "text/event-stream"
    })
  ),
  ...beforeFirstDelta(
    "fault/json-string-error",
    "a 200 JSON string holding a fenced upstream error: UpstreamError with its code",
    { kind: "json-string-error" },
    () => ({ _tag: "UpstreamError", code: "ECONNREFUSED" })
  ),
  ...beforeFirstDelta(
    "fault/reset-before-headers",
    "the connection reset before any answer: TransportError",
    { kind: "reset-before-headers" },
    () => ({ _tag: "TransportError" }),
    {
      server: { posts: 1 },
      differs: {
        ...inChromium({
          why:
            "Chromium retries a request whose reused keep-alive socket is reset before any answer, so the mirror " +
            "sees the POST twice (undici never retries a POST); the caller still gets one TransportError",
          server: { posts: 2 }
        }),
        ...onDeno({
          why:
            "Deno's fetch, like Chromium, resends a request, POST included, when its reused keep-alive connection is " +
            "reset before any answer, so the mirror sees the POST twice (the cookie `GET /` left the connection " +
            "open); the caller still gets one TransportError. Raw `fetch` on Deno 2.9.6 (`test/raw-fetch.test.ts`), " +
            "a `GET /` then the POST: 200 POSTs reached the mirror for 100 calls; without the GET (a fresh " +
            "connection), 100 for 100; Node and Bun: one POST per call either way",
          server: { posts: 2 }
        })
      }
    }
  ),
  {
    name: "fault/wrong-content-type-stream",
    title: "a stream request answered with a whole JSON completion: UnexpectedContentType",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "wrong-content-type-stream" } },
    expect: {
      ok: false,
      pieces: [],
      error: {
        _tag: "AllServersFailed",
        attempts: [
          { error: { _tag: "UnexpectedContentType", contentType: "application/json", expected: "text/event-stream" } }
        ]
      }
    }
  },
  {
    name: "fault/status-400",
    title: "400 is the request's fault: HttpStatusError itself, no failover wrapper",
    mode: "complete",
    mirror: { reply: plain, fault: { kind: "status", status: 400 } },
    expect: { ok: false, error: { _tag: "HttpStatusError", status: 400, body: "Mirror test fault: HTTP 400" } },
    server: { posts: 1 }
  },
  {
    name: "fault/refused",
    title: "nothing listening: TransportError from the cookie GET",
    mode: "stream",
    mirror: {},
    refused: true,
    expect: {
      ok: false,
      pieces: [],
      error: { _tag: "AllServersFailed", attempts: [{ error: { _tag: "TransportError" } }] }
    }
  },
  {
    name: "fault/stall-before-headers",
    title: "no answer: Timeout (headers) after `timeouts.headers`, and the connection is closed",
    mode: "complete",
    mirror: { reply: plain, fault: { kind: "stall-before-headers" } },
    // No cookie GET: the headers limit covers it too, and only the stalled POST is the point here.
    options: { cookieInit: "off", timeouts: { headers: 300 } },
    expect: {
      ok: false,
      error: { _tag: "AllServersFailed", attempts: [{ error: { _tag: "Timeout", phase: "headers", millis: 300 } }] }
    },
    server: { posts: 1, closed: true }
  },
  {
    name: "fault/stall-before-first-token",
    title: "headers, then silence: Timeout (firstToken) after `timeouts.firstToken`, connection closed",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "stall-mid-stream", afterDeltas: 0 } },
    options: { timeouts: { firstToken: 300 } },
    expect: {
      ok: false,
      pieces: [],
      error: { _tag: "AllServersFailed", attempts: [{ error: { _tag: "Timeout", phase: "firstToken", millis: 300 } }] }
    },
    server: { posts: 1, closed: true }
  },
  {
    name: "fault/event-error-first",
    title: "`event: error` before any text: UpstreamError, failed over",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "event-error", afterDeltas: 0 } },
    expect: {
      ok: false,
      pieces: [],
      error: {
        _tag: "AllServersFailed",
        attempts: [{ error: { _tag: "UpstreamError", detail: "Mirror test fault: event error" } }]
      }
    }
  },

  // -- faults after text was delivered: the error itself, nothing lost -------
  {
    name: "fault/close-mid-stream",
    title: "connection cut after 3 deltas: StreamInterrupted, the 3 deltas delivered",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "close-mid-stream", afterDeltas: 3 } },
    expect: {
      ok: false,
      pieces: plainPieces.slice(0, 3),
      error: { _tag: "StreamInterrupted", deltas: 3, characters: 12 }
    },
    differs: {
      ...inChromium({
        why:
          "Chromium errors the body stream as soon as it learns of the cut, and the Streams standard drops chunks " +
          "still queued in it: deltas that arrived with the cut may never reach script. The caller gets a prefix " +
          "of the deltas and a StreamInterrupted that counts exactly those (or, when none was read, a TransportError " +
          "that fails over)",
        expect: {
          pieces: undefined,
          error: undefined,
          cut: {
            prefixOf: plainPieces.slice(0, 3),
            errors: [
              { _tag: "StreamInterrupted" },
              { _tag: "AllServersFailed", attempts: [{ error: { _tag: "TransportError" } }] }
            ]
          }
        }
      }),
      ...onBun({
        why:
          "Bun's fetch often errors the body of a stream cut right after three deltas without handing script any " +
          "of them: the caller gets either the three deltas and a StreamInterrupted, or none and a TransportError " +
          "that fails over. Raw `fetch` on Bun 1.4.4 (`test/raw-fetch.test.ts`), reading the body with " +
          "`getReader()`: 35 of 100 bodies errored before their first event, 65 after all of them; on Node and " +
          "Deno, 100 of 100 after all of them",
        expect: {
          pieces: undefined,
          error: undefined,
          cut: {
            prefixOf: plainPieces.slice(0, 3),
            lengths: [0, 3],
            errors: [
              { _tag: "StreamInterrupted", deltas: 3, characters: 12 },
              { _tag: "AllServersFailed", attempts: [{ error: { _tag: "TransportError" } }] }
            ]
          }
        }
      })
    }
  },
  {
    name: "fault/no-done-no-finish",
    title: "EOF after 3 deltas without finish_reason or `[DONE]`: StreamInterrupted",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "no-done-no-finish", afterDeltas: 3 } },
    expect: {
      ok: false,
      pieces: plainPieces.slice(0, 3),
      error: { _tag: "StreamInterrupted", deltas: 3, characters: 12 }
    }
  },
  {
    name: "fault/event-error",
    title: "`event: error` after 2 deltas: UpstreamError, the 2 deltas delivered",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "event-error", afterDeltas: 2, message: "model overloaded" } },
    expect: { ok: false, pieces: plainPieces.slice(0, 2), error: { _tag: "UpstreamError", detail: "model overloaded" } }
  },
  {
    name: "fault/error-chunk",
    title: "a chunk with an `error` field after 2 deltas: UpstreamError with its type as code",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "error-chunk", afterDeltas: 2, message: "quota exceeded", type: "quota" } },
    expect: {
      ok: false,
      pieces: plainPieces.slice(0, 2),
      error: { _tag: "UpstreamError", detail: "quota exceeded", code: "quota" }
    }
  },
  {
    name: "fault/malformed-json",
    title: "`data: {not json` after 2 deltas: DecodeError (InvalidJson)",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "malformed-json", afterDeltas: 2 } },
    expect: { ok: false, pieces: plainPieces.slice(0, 2), error: { _tag: "DecodeError", reason: "InvalidJson" } }
  },
  {
    name: "fault/oversize-event",
    title: "a 256 KiB event over a 64 KiB `maxEventSize` after 2 deltas: DecodeError (EventTooLarge)",
    mode: "stream",
    // 20 ms between writes: each event arrives in its own network read (see the next case for one read).
    mirror: { reply: plain, delayMs: 20, fault: { kind: "oversize-event", afterDeltas: 2, size: 256 * 1024 } },
    options: { maxEventSize: 64 * 1024 },
    expect: { ok: false, pieces: plainPieces.slice(0, 2), error: { _tag: "DecodeError", reason: "EventTooLarge" } }
  },
  {
    name: "fault/oversize-event-same-read",
    title: "the same, the 2 deltas and the start of the oversize event (over a 4 KiB limit) in one network read",
    mode: "stream",
    // One write, and a limit small enough to be passed inside the first read of every runtime.
    mirror: { reply: plain, batch: 8, fault: { kind: "oversize-event", afterDeltas: 2, size: 256 * 1024 } },
    options: { maxEventSize: 4 * 1024 },
    expect: { ok: false, pieces: plainPieces.slice(0, 2), error: { _tag: "DecodeError", reason: "EventTooLarge" } }
  },
  {
    name: "fault/stall-mid-stream",
    title: "silence after 2 deltas: Timeout (idle) after `timeouts.idle`, connection closed",
    mode: "stream",
    mirror: { reply: plain, fault: { kind: "stall-mid-stream", afterDeltas: 2 } },
    options: { timeouts: { idle: 300 } },
    expect: { ok: false, pieces: plainPieces.slice(0, 2), error: { _tag: "Timeout", phase: "idle", millis: 300 } },
    server: { closed: true }
  },

  // -- cancellation closes the connection ----------------------------------
  {
    name: "cancel/interrupt-stream",
    title: "Effect: interrupting the stream's fiber after 3 pieces closes the connection",
    mode: "stream",
    mirror: endless,
    cancel: { via: "interrupt", afterPieces: 3 },
    expect: { ok: true, cancelled: true, pieces: ["tick ", "tick ", "tick "] },
    server: { posts: 1, closed: true }
  },
  {
    name: "cancel/abort-stream",
    title: "Promise: aborting the signal after 3 pieces rejects with AbortError and closes the connection",
    mode: "stream",
    mirror: endless,
    cancel: { via: "abort", afterPieces: 3 },
    expect: {
      ok: false,
      cancelled: true,
      pieces: ["tick ", "tick ", "tick "],
      error: { _tag: "AbortError", typed: false }
    },
    server: { posts: 1, closed: true }
  },
  {
    name: "cancel/abort-stream-batched",
    title: "Promise: after the abort, no more deltas, even those of a network read already received",
    mode: "stream",
    // 10 events per write: the abort lands in the middle of a batch the client already holds.
    mirror: { ...endless, batch: 10, delayMs: 50 },
    cancel: { via: "abort", afterPieces: 3 },
    expect: {
      ok: false,
      cancelled: true,
      afterCancel: 0,
      pieces: ["tick ", "tick ", "tick "],
      error: { _tag: "AbortError", typed: false }
    },
    server: { posts: 1, closed: true }
  },
  {
    name: "cancel/break-stream",
    title: "Promise: `break` out of `for await` after 3 pieces closes the connection",
    mode: "stream",
    mirror: endless,
    cancel: { via: "break", afterPieces: 3 },
    expect: { ok: true, cancelled: true, pieces: ["tick ", "tick ", "tick "] },
    server: { posts: 1, closed: true }
  },
  {
    name: "cancel/break-text-stream",
    title: "Promise: `break` out of `for await` over `stream` (text pieces) after 3 pieces closes the connection",
    mode: "stream",
    mirror: endless,
    iterate: "text",
    cancel: { via: "break", afterPieces: 3 },
    expect: { ok: true, cancelled: true, pieces: ["tick ", "tick ", "tick "] },
    server: { posts: 1, closed: true }
  },
  {
    name: "cancel/interrupt-complete",
    title: "Effect: interrupting a whole-reply call waiting for headers closes the connection",
    mode: "complete",
    mirror: { reply: plain, headersDelayMs: 20_000 },
    cancel: { via: "interrupt", onceReceived: true },
    expect: { ok: true, cancelled: true, pieces: [] },
    server: { posts: 1, closed: true }
  },
  {
    name: "cancel/abort-complete",
    title: "Promise: aborting a whole-reply call waiting for headers rejects with AbortError, connection closed",
    mode: "complete",
    mirror: { reply: plain, headersDelayMs: 20_000 },
    cancel: { via: "abort", onceReceived: true },
    expect: { ok: false, cancelled: true, pieces: [], error: { _tag: "AbortError", typed: false } },
    server: { posts: 1, closed: true }
  }
]

/** The faces a case runs through. @since 0.1.0 */
export const apisOf = (c: Case): ReadonlyArray<Api> =>
  c.cancel !== undefined ? [c.cancel.via === "interrupt" ? "effect" : "promise"] : (c.apis ?? ["effect", "promise"])

/** The case as it runs on `runtime` (its difference applied), or `undefined` when it does not run there. @since 0.1.0 */
export const forRuntime = (
  c: Case,
  runtime: Runtime
): { readonly expect: Expected; readonly server: ServerExpect; readonly knownBug: string | undefined } | undefined => {
  const difference = c.differs?.[runtime]
  if (difference?.skip) return undefined
  return {
    knownBug: difference?.knownBug ?? c.knownBug,
    expect: { ...c.expect, ...difference?.expect } as Expected,
    server: { ...c.server, ...difference?.server }
  }
}

/** The chat path the mirror serves. @since 0.1.0 */
export const chatUrlPath = chatPath

/** Looks a case up by name. @since 0.1.0 */
export const byName = (name: string): Case => {
  const found = cases.find((c) => c.name === name)
  if (found === undefined) throw new Error(`No conformance case named ${name}`)
  return found
}
