/**
 * The Node HTTP layer for easychat: `@effect/platform`'s `HttpClient` on undici, with a keep-alive pool, proxy
 * support and TLS options.
 *
 * @since 0.1.0
 */
import { BodyReader, Client, type Presets } from "@easychat/core"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { Dispatcher } from "undici"
import * as internalReader from "./internal/bodyReader.js"
import * as internalClient from "./internal/client.js"
import * as internal from "./internal/dispatcher.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** Most sockets kept open per origin (undici's `connections`). Default: no limit. */
  readonly connections?: number
  /**
   * How long, in milliseconds, an idle socket stays in the pool when the server sends no `Keep-Alive: timeout`
   * hint. Default: 4000 (undici's).
   */
  readonly keepAliveTimeout?: number
  /** Longest wait, in milliseconds, for the TCP + TLS handshake. Default: 10000 (undici's). */
  readonly connectTimeout?: number
  /** Certificate authorities to trust instead of Node's bundled ones (PEM). Applies to the origin and the proxy. */
  readonly ca?: string | Buffer | Array<string | Buffer>
  /** `false` accepts any certificate: for local testing only. Default: `true`. */
  readonly rejectUnauthorized?: boolean
  /**
   * A proxy URL (`http://user:pass@host:3128`, `https://…`, `socks5://…`), or `"env"` to read `HTTP_PROXY`,
   * `HTTPS_PROXY` and `NO_PROXY` (lower-case names win) when the layer is built. `http://` targets are forwarded
   * as absolute-URI requests, `https://` targets go through a `CONNECT` tunnel. Default: no proxy.
   */
  readonly proxy?: string | "env"
}

/**
 * The undici dispatcher the options describe (an `Agent`, a `ProxyAgent` or an `EnvHttpProxyAgent`), destroyed
 * when the scope closes. Redirects are never followed: core follows them itself to keep each hop's cookies.
 *
 * An invalid `proxy` is a defect, reported without echoing the URL (it may hold credentials).
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeDispatcher = (options: Options = {}): Effect.Effect<Dispatcher, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => internal.make(options)),
    (dispatcher) => Effect.promise(() => dispatcher.destroy())
  )

/**
 * `HttpClient` over an undici dispatcher (see `makeDispatcher`): redirects are not followed, interrupting a
 * request or a response stream aborts it and closes its socket, and undici's own timeouts are off. Its responses
 * are read by `bodyReader`.
 *
 * @since 0.3.0
 * @category constructors
 */
export const makeClient: (dispatcher: Dispatcher) => HttpClient.HttpClient = internalClient.make

/**
 * The `BodyReader` named `"undici"`: reads the undici body of each response made by `makeClient` directly, one
 * callback per read, and any other response through `BodyReader.fromStream`.
 *
 * @since 0.3.0
 * @category body reader
 */
export const bodyReader: BodyReader.Service = internalReader.reader

/**
 * Provides `HttpClient` on undici, and `BodyReader` (`bodyReader`) for core to read its bodies. The dispatcher
 * lives as long as the layer: closing the layer's scope closes every pooled connection. Interrupting a request or
 * a response stream aborts it and closes its socket.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: Options = {}): Layer.Layer<HttpClient.HttpClient | BodyReader.BodyReader> =>
  Layer.merge(
    Layer.scoped(HttpClient.HttpClient, Effect.map(makeDispatcher(options), makeClient)),
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
 * The Promise facade pre-wired with the Node transport: `complete`,
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
