import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import * as http from "node:http"
import * as https from "node:https"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** A real server on 127.0.0.1 that counts its sockets. */
export interface TestServer {
  readonly url: string
  readonly port: number
  /** `connection` events so far (one per socket opened by a client). */
  readonly connections: () => number
  /** Sockets that have closed so far. */
  readonly closed: () => number
  /** Requests received so far, in order. */
  readonly requests: Array<{
    readonly method: string
    readonly url: string
    readonly headers: http.IncomingHttpHeaders
    readonly socket: net.Socket
  }>
}

type AnyServer = http.Server | https.Server

const listen = (server: AnyServer, protocol: "http" | "https"): Effect.Effect<TestServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.async<TestServer>((resume) => {
      let connections = 0
      let closed = 0
      const sockets = new Set<net.Socket>()
      const requests: TestServer["requests"] = []
      server.on(protocol === "https" ? "secureConnection" : "connection", (socket: net.Socket) => {
        connections++
        sockets.add(socket)
        socket.on("close", () => {
          closed++
          sockets.delete(socket)
        })
      })
      server.on("request", (req: http.IncomingMessage) => {
        requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, socket: req.socket })
      })
      ;(server as any).destroySockets = () => {
        for (const socket of sockets) socket.destroy()
      }
      server.listen(0, "127.0.0.1", () => {
        const port = (server.address() as net.AddressInfo).port
        resume(
          Effect.succeed({
            url: `${protocol}://127.0.0.1:${port}`,
            port,
            connections: () => connections,
            closed: () => closed,
            requests
          })
        )
      })
    }),
    () =>
      Effect.async<void>((resume) => {
        ;(server as any).destroySockets()
        server.close(() => resume(Effect.void))
      })
  )

export const serve = (handler: http.RequestListener): Effect.Effect<TestServer, never, Scope.Scope> =>
  Effect.suspend(() => listen(http.createServer({ keepAliveTimeout: 30_000 }, handler), "http"))

export const serveTls = (
  cert: Certificate,
  handler: http.RequestListener
): Effect.Effect<TestServer, never, Scope.Scope> =>
  Effect.suspend(() => listen(https.createServer({ key: cert.key, cert: cert.cert }, handler), "https"))

/** A forward proxy: absolute-URI requests are relayed, CONNECT opens a tunnel. Records what passed through. */
export interface TestProxy extends TestServer {
  readonly seen: Array<{ readonly method: string; readonly target: string; readonly headers: http.IncomingHttpHeaders }>
}

export const proxy: Effect.Effect<TestProxy, never, Scope.Scope> = Effect.suspend(() => {
  const seen: TestProxy["seen"] = []
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? "", target: req.url ?? "", headers: req.headers })
    let target: URL
    try {
      target = new URL(req.url ?? "")
    } catch {
      res.writeHead(400).end("absolute URI required")
      return
    }
    const headers = { ...req.headers }
    delete headers["proxy-authorization"]
    delete headers["proxy-connection"]
    const upstream = http.request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: target.pathname + target.search,
        headers
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers)
        answer.pipe(res)
      }
    )
    upstream.on("error", () => res.destroy())
    req.pipe(upstream)
  })
  server.on("connect", (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    seen.push({ method: "CONNECT", target: req.url ?? "", headers: req.headers })
    const [host, port] = (req.url ?? "").split(":")
    const upstream = net.connect(Number(port), host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n")
      upstream.write(head)
      upstream.pipe(client)
      client.pipe(upstream)
    })
    upstream.on("error", () => client.destroy())
    client.on("error", () => upstream.destroy())
    client.on("close", () => upstream.destroy())
  })
  return Effect.map(listen(server, "http"), (base) => ({ ...base, seen }))
})

/** Polls until `check` holds, failing with `what` after `timeout`. */
export const waitUntil = (
  what: string,
  check: () => boolean,
  timeout: Duration.DurationInput = "2 seconds"
): Effect.Effect<void, Error> =>
  Effect.gen(function* () {
    const deadline = Date.now() + Duration.toMillis(Duration.decode(timeout))
    while (!check()) {
      if (Date.now() > deadline) return yield* Effect.fail(new Error(`timed out waiting for: ${what}`))
      yield* Effect.sleep("10 millis")
    }
  })

export interface Certificate {
  readonly key: string
  readonly cert: string
}

/** A self-signed certificate for 127.0.0.1, or undefined when `openssl` is not installed. */
export const selfSignedCertificate = (): Certificate | undefined => {
  if (spawnSync("openssl", ["version"]).status !== 0) return undefined
  const dir = mkdtempSync(join(tmpdir(), "easychat-tls-"))
  try {
    const result = spawnSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1"
      ],
      { stdio: "ignore" }
    )
    if (result.status !== 0) return undefined
    return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
