/**
 * The fetch HTTP layer for easychat: `@effect/platform`'s `HttpClient` on any `fetch` — browsers, Deno, Bun, edge
 * workers and Node's global fetch.
 *
 * @since 0.1.0
 */
import { BodyReader, Client, type Presets } from "@easychat/core"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Layer from "effect/Layer"
import * as internalReader from "./internal/bodyReader.js"
import * as internal from "./internal/browser.js"
import * as internalClient from "./internal/client.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** The `fetch` to call (Bun's, Deno's, a test double). Default: `globalThis.fetch`, looked up at each request. */
  readonly fetch?: typeof globalThis.fetch
  /**
   * Extra `RequestInit` fields for every request (`credentials`, `mode`, `cache`, `keepalive`, `referrerPolicy`,
   * `headers` as defaults...). `method`, `body` and `signal` always come from the request; its headers win over
   * these. Overrides the defaults: `redirect: "manual"` outside browsers, `credentials: "include"` in browsers.
   */
  readonly requestInit?: RequestInit
  /**
   * Whether this is a browser, where the browser owns cookies, redirects and some headers. Default: detected
   * (a `document`, or a worker's `importScripts`).
   */
  readonly browser?: boolean
}

/**
 * `HttpClient` on `fetch`, with the defaults and browser rules of `layer`. A `FetchHttpClient.Fetch` or
 * `FetchHttpClient.RequestInit` in the caller's context wins over `fetch` and `requestInit`. Its responses are
 * read by `bodyReader`.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeClient = (options: Options = {}): HttpClient.HttpClient => {
  const browser = options.browser ?? internal.isBrowser()
  // Outside browsers core follows redirects itself, to read each hop's Set-Cookie; in browsers the browser follows
  // them and keeps the cookies, which it sends only with credentials: "include".
  const defaults: RequestInit = browser ? { credentials: "include" } : { redirect: "manual" }
  const client = internalClient.make({
    fetch: options.fetch,
    requestInit: { ...defaults, ...options.requestInit },
    browser
  })
  // `traceparent` and `b3` are not CORS-safelisted: a server that lists only the headers it uses would refuse the
  // preflight, so browsers send no trace headers.
  return browser ? HttpClient.withTracerPropagation(client, false) : client
}

/**
 * The `BodyReader` named `"fetch"`: reads the web body of each response made by `makeClient` with
 * `BodyReader.fromWebStream` (cancelling it aborts the fetch), and any other response through
 * `BodyReader.fromStream`.
 *
 * @since 0.3.0
 * @category body reader
 */
export const bodyReader: BodyReader.Service = internalReader.reader

/**
 * Provides `HttpClient` on `fetch`, and `BodyReader` (`bodyReader`) for core to read its bodies. Interrupting a
 * request or a response stream aborts the fetch (its `AbortSignal`), which closes the connection.
 *
 * In a browser, request headers that browsers forbid scripts to set (`cookie`, `origin`, `referer`, `sec-*`,
 * `proxy-*`, ...) and `user-agent` are dropped quietly: the browser sends its own, and a script's `user-agent`
 * would force a CORS preflight that mirrors do not answer. For the same reason no trace headers (`traceparent`,
 * `b3`) are sent from a browser.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<HttpClient.HttpClient | BodyReader.BodyReader> =>
  Layer.merge(
    // Made now: whether this is a browser is decided when `layer` is called.
    Layer.succeed(HttpClient.HttpClient, makeClient(options)),
    Layer.succeed(BodyReader.BodyReader, bodyReader)
  )

/**
 * Options of `createClient`: the client's options (servers, preset values,
 * timeouts, ...) plus `transport` for this layer.
 * @since 0.1.0 @category models
 */
export interface ClientOptions extends Presets.Options {
  readonly transport?: Options
}

/**
 * The Promise facade pre-wired with the fetch transport: `complete`,
 * `stream` (text pieces), `streamDeltas`, `health` and `close`.
 *
 * @example
 * ```ts
 * const client = createClient({ servers: ["http://127.0.0.1:8787"] })
 * for await (const piece of client.stream({ messages: [{ role: "user", content: "Hi" }] })) process.stdout.write(piece)
 * await client.close()
 * ```
 * @since 0.1.0 @category constructors
 */
export const createClient = (options: ClientOptions = {}): Client.Client => {
  const { transport, ...client } = options
  return Client.make(client, layer(transport))
}
