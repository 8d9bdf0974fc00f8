import { Agent, type Dispatcher, EnvHttpProxyAgent, ProxyAgent } from "undici"
import type { Options } from "../NodeTransport.js"

/** The undici options shared by every kind of dispatcher this package builds. @internal */
export interface DispatcherOptions {
  readonly connections?: number
  readonly keepAliveTimeout?: number
  /** TCP + TLS to the origin when no proxy is used. */
  readonly connect?: ConnectOptions
  /** TLS to the origin through a CONNECT tunnel (a proxy replaces `connect`). */
  readonly requestTls?: ConnectOptions
  /** TCP + TLS to the proxy itself. */
  readonly proxyTls?: ConnectOptions
  readonly proxyTunnel?: boolean
}

/** @internal */
export interface ConnectOptions {
  readonly timeout?: number
  readonly ca?: string | Buffer | Array<string | Buffer>
  readonly rejectUnauthorized?: boolean
}

/** @internal */
export type DispatcherKind =
  | { readonly _tag: "Agent" }
  | { readonly _tag: "ProxyAgent"; readonly uri: string }
  | { readonly _tag: "EnvHttpProxyAgent" }

/** Which dispatcher the options ask for. @internal */
export const kind = (options: Options): DispatcherKind => {
  if (options.proxy === undefined) return { _tag: "Agent" }
  if (options.proxy === "env") return { _tag: "EnvHttpProxyAgent" }
  let url: URL
  try {
    url = new URL(options.proxy)
  } catch {
    // The URL may carry credentials: never echo it.
    throw new TypeError('NodeTransport: the `proxy` option is neither "env" nor a valid URL')
  }
  if (!["http:", "https:", "socks:", "socks5:"].includes(url.protocol)) {
    throw new TypeError(
      `NodeTransport: unsupported proxy protocol "${url.protocol}" (use http:, https:, socks: or socks5:)`
    )
  }
  return { _tag: "ProxyAgent", uri: options.proxy }
}

/** Maps the public options onto undici's. @internal */
export const dispatcherOptions = (options: Options): DispatcherOptions => {
  const tls: ConnectOptions = {
    ...(options.connectTimeout !== undefined ? { timeout: options.connectTimeout } : {}),
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    ...(options.rejectUnauthorized !== undefined ? { rejectUnauthorized: options.rejectUnauthorized } : {})
  }
  return {
    ...(options.connections !== undefined ? { connections: options.connections } : {}),
    ...(options.keepAliveTimeout !== undefined ? { keepAliveTimeout: options.keepAliveTimeout } : {}),
    connect: tls,
    // A ProxyAgent replaces `connect` with its tunnel: the origin's TLS settings go in `requestTls`, and the same
    // trust settings apply to an https: proxy (a private CA usually signs both).
    requestTls: tls,
    proxyTls: tls,
    // Plain http:// targets are forwarded as absolute-URI requests (as curl and browsers do) rather than tunnelled:
    // many proxies refuse CONNECT to ports other than 443. https:// targets always use CONNECT.
    proxyTunnel: false
  }
}

/** Builds the dispatcher; the caller owns it and must `destroy` it. @internal */
export const make = (options: Options): Dispatcher => {
  const which = kind(options)
  const shared = dispatcherOptions(options)
  switch (which._tag) {
    case "Agent":
      return new Agent(shared)
    case "ProxyAgent":
      return new ProxyAgent({ ...shared, uri: which.uri })
    case "EnvHttpProxyAgent":
      return new EnvHttpProxyAgent(shared)
  }
}
