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
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type { Dispatcher } from "undici"
import * as internalReader from "./internal/bodyReader.js"
import * as internalClient from "./internal/client.js"
import * as internal from "./internal/dispatcher.js"
import * as internalRuntime from "./internal/runtime.js"

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
 * This runtime cannot run the Node transport: its `undici` module lacks what the transport calls (`missing`, as
 * `Agent.prototype.request`). Bun is one: it replaces `undici` with a partial module of its own. Use
 * `@easychat/transport-fetch` there; its `layer()` and `createClient()` take the place of this package's.
 *
 * The check is by capability, made once: a runtime whose `undici` has everything passes, whatever its name.
 * `makeDispatcher` and `layer` die with this error as soon as they are built (they need no typed error channel:
 * nothing at run time can recover from it), and `createClient` throws it at once.
 *
 * @since 0.4.0
 * @category errors
 */
export class UnsupportedRuntime extends Schema.TaggedError<UnsupportedRuntime>(
  "@easychat/transport-node/UnsupportedRuntime"
)("UnsupportedRuntime", {
  /** The runtime and its version, as `Bun 1.4.4`. */
  runtime: Schema.String,
  /** What its `undici` lacks, as `Agent.prototype.request`. */
  missing: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return (
      `@easychat/transport-node cannot run on ${this.runtime}: its undici module lacks ${this.missing.join(", ")}. ` +
      "Use @easychat/transport-fetch on this runtime (its layer() and createClient() take the same place)."
    )
  }
}

/**
 * `UnsupportedRuntime` when this runtime cannot run the Node transport, `undefined` when it can.
 *
 * @since 0.4.0
 * @category runtime
 */
export const unsupportedRuntime = (): UnsupportedRuntime | undefined => {
  const found = internalRuntime.unsupported()
  return found === undefined
    ? undefined
    : new UnsupportedRuntime({ runtime: found.runtime, missing: [...found.missing] })
}

/**
 * The undici dispatcher the options describe (an `Agent`, a `ProxyAgent` or an `EnvHttpProxyAgent`), destroyed
 * when the scope closes. Redirects are never followed: core follows them itself to keep each hop's cookies.
 *
 * An invalid `proxy` is a defect, reported without echoing the URL (it may hold credentials). On a runtime whose
 * `undici` cannot serve this package (Bun), it dies at once with `UnsupportedRuntime`. Closing the scope never
 * fails: a dispatcher that cannot be destroyed has nothing left to close, and the reason is logged at debug level.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeDispatcher = (options: Options = {}): Effect.Effect<Dispatcher, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const unsupported = unsupportedRuntime()
      return unsupported === undefined ? Effect.sync(() => internal.make(options)) : Effect.die(unsupported)
    }),
    (dispatcher) => Effect.ignoreLogged(Effect.tryPromise(() => dispatcher.destroy()))
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
 * a response stream aborts it and closes its socket. On Bun, building it dies at once with `UnsupportedRuntime`.
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
 * `stream` (text pieces), `streamDeltas`, `health` and `close`. Throws
 * `UnsupportedRuntime` at once on a runtime that cannot run it (Bun: use
 * `@easychat/transport-fetch`'s `createClient` there), and `InvalidRequest`
 * for invalid options. `close()` never rejects.
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
  const unsupported = unsupportedRuntime()
  if (unsupported !== undefined) throw unsupported
  const { transport, ...client } = options
  return Client.make(client, layer(transport))
}
