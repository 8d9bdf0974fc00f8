/**
 * A small forward proxy on 127.0.0.1 (node:http) that records what passed
 * through it: absolute-URI requests (`GET http://host/ HTTP/1.1`) are
 * forwarded, `CONNECT host:port` opens a tunnel. Optional Basic credentials
 * answer 407 when missing or wrong. Node-only.
 *
 * @since 0.1.0
 */
import * as http from "node:http"
import * as net from "node:net"

/**
 * One request as the proxy received it.
 * @since 0.1.0 @category models
 */
export interface ProxyEntry {
  /** `forward` for an absolute-URI request, `tunnel` for CONNECT. */
  readonly kind: "forward" | "tunnel"
  readonly method: string
  /** The absolute URL, or `host:port` for CONNECT. */
  readonly target: string
  /** Lower-case names, as received. */
  readonly headers: Readonly<Record<string, string>>
  /** The status the proxy answered itself (407, 400, 502), if it did not pass the request on. */
  readonly refused?: number
}

/** @since 0.1.0 @category models */
export interface RecordingProxy {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string
  readonly port: number
  readonly log: ReadonlyArray<ProxyEntry>
  close(): Promise<void>
}

// Hop-by-hop headers (RFC 9110 7.6.1) and the proxy's own are not passed on.
const hopByHop = new Set([
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-authenticate",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade"
])

const flatten = (headers: http.IncomingHttpHeaders): Record<string, string> =>
  Object.fromEntries(
    Object.entries(headers).flatMap(([name, value]) =>
      value === undefined ? [] : [[name, Array.isArray(value) ? value.join(", ") : value]]
    )
  )

/**
 * Starts the proxy. With `credentials`, only `Proxy-Authorization: Basic`
 * with that user and password passes.
 * @since 0.1.0 @category constructors
 */
export const start = async (
  options: { readonly credentials?: { readonly user: string; readonly password: string } } = {}
): Promise<RecordingProxy> => {
  const log: Array<ProxyEntry> = []
  const sockets = new Set<net.Socket>()
  const expected =
    options.credentials === undefined
      ? undefined
      : `Basic ${Buffer.from(`${options.credentials.user}:${options.credentials.password}`).toString("base64")}`
  const authorised = (headers: http.IncomingHttpHeaders) =>
    expected === undefined || headers["proxy-authorization"] === expected

  const server = http.createServer((req, res) => {
    const target = req.url ?? ""
    const headers = flatten(req.headers)
    const refuse = (status: number, text: string, extra: Record<string, string> = {}) => {
      log.push({ kind: "forward", method: req.method ?? "", target, headers, refused: status })
      res.writeHead(status, { "content-type": "text/plain", ...extra }).end(text)
    }
    if (!/^http:\/\//i.test(target)) return refuse(400, "absolute-URI requests only")
    if (!authorised(req.headers)) {
      return refuse(407, "proxy authentication required", { "proxy-authenticate": 'Basic realm="conformance"' })
    }
    log.push({ kind: "forward", method: req.method ?? "", target, headers })
    const forwarded: Array<string> = []
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      if (!hopByHop.has(req.rawHeaders[i]!.toLowerCase())) forwarded.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!)
    }
    const upstream = http.request(target, { method: req.method, headers: forwarded, agent: false }, (answer) => {
      const back: Array<string> = []
      for (let i = 0; i + 1 < answer.rawHeaders.length; i += 2) {
        if (!hopByHop.has(answer.rawHeaders[i]!.toLowerCase()))
          back.push(answer.rawHeaders[i]!, answer.rawHeaders[i + 1]!)
      }
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, back)
      res.flushHeaders()
      answer.pipe(res)
      // A cut upstream is a cut downstream: the client must see the stream end early, not complete.
      answer.once("aborted", () => res.destroy())
      answer.once("error", () => res.destroy())
    })
    upstream.once("error", () => (res.headersSent ? res.destroy() : res.writeHead(502).end("bad gateway")))
    // The client hung up: so does the proxy, upstream.
    res.once("close", () => upstream.destroy())
    req.pipe(upstream)
  })

  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
  })

  server.on("connect", (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const target = req.url ?? ""
    const headers = flatten(req.headers)
    if (!authorised(req.headers)) {
      log.push({ kind: "tunnel", method: "CONNECT", target, headers, refused: 407 })
      client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="conformance"\r\n\r\n')
      return
    }
    log.push({ kind: "tunnel", method: "CONNECT", target, headers })
    const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))]
    const upstream = net.connect(port, host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n")
      if (head.length > 0) upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    sockets.add(upstream)
    upstream.once("close", () => sockets.delete(upstream))
    upstream.once("error", () => client.destroy())
    client.once("error", () => upstream.destroy())
    client.once("close", () => upstream.destroy())
  })

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => resolve())
  })
  const { port } = server.address() as net.AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      })
  }
}
