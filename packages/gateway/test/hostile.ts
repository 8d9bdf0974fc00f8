import * as http from "node:http"
import * as net from "node:net"
import { EasyChat, type Presets } from "@easychat/core"
import { MirrorPool, type MirrorServer } from "@easychat/testkit"
import * as NodeTransport from "@easychat/transport-node"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import * as internal from "../src/internal/app.js"

/**
 * The gateway's app served on node:http as `Gateway.layer` serves it
 * (`checkContinue` wired), from internal settings: for the options that
 * `Gateway.Options` does not pass on yet, and for a pool whose service a
 * test replaces (`service`).
 */
export const withApp = async <A>(
  mirrors: number | ReadonlyArray<MirrorServer.MirrorServerOptions>,
  settings: Partial<internal.Settings> & {
    readonly chat?: Presets.Options
    readonly service?: (service: EasyChat.Service) => EasyChat.Service
  },
  body: (ctx: { url: string; pool: MirrorPool.MirrorPool }) => Promise<A>
): Promise<A> => {
  const { chat, service, ...rest } = settings
  const pool = await MirrorPool.start(mirrors)
  const scope = Effect.runSync(Scope.make())
  const server = http.createServer()
  try {
    server.on("checkContinue", internal.checkContinue)
    const app = internal.make(
      { keys: [], cors: [], maxBodyBytes: 1024 * 1024, maxConcurrent: 64, models: ["gpt-3.5-turbo"], ...rest },
      Date.now()
    )
    const pooled = EasyChat.layer({ servers: pool.urls, defaults: {}, ...chat })
    const chatLayer =
      service === undefined
        ? pooled
        : Layer.effect(EasyChat.EasyChat, Effect.map(EasyChat.EasyChat, service)).pipe(Layer.provideMerge(pooled))
    const live = HttpServer.serve(app).pipe(
      Layer.provide(NodeHttpServer.layerServer(() => server, { port: 0, host: "127.0.0.1" })),
      Layer.provide(chatLayer),
      Layer.provide(NodeTransport.layer())
    )
    await Effect.runPromise(Layer.buildWithScope(live, scope))
    const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
    return await body({ url, pool })
  } finally {
    // As `Gateway.layer` does: connections still open are cut, not awaited.
    server.closeAllConnections()
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await pool.close()
  }
}

/** A raw TCP connection to a server: what it received, and whether (and when) the server closed it. */
export interface Connection {
  readonly socket: net.Socket
  /** Everything received so far, as latin1 text. */
  readonly received: () => string
  /** Resolves when the socket is closed (by either side), with the time since it was opened. */
  readonly closed: Promise<number>
  readonly isClosed: () => boolean
  /** Resolves once `received()` satisfies `done`, or rejects after `timeoutMs`. */
  readonly waitFor: (done: (text: string) => boolean, timeoutMs: number) => Promise<string>
}

export const connect = (url: string): Promise<Connection> =>
  new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url)
    const socket = net.connect({ host: hostname, port: Number(port) })
    const opened = Date.now()
    const parts: Array<Buffer> = []
    let closed = false
    const listeners = new Set<() => void>()
    socket.on("data", (part: Buffer) => {
      parts.push(part)
      for (const listener of listeners) listener()
    })
    // A reset after the answer is expected when the server stops reading a body.
    socket.on("error", () => {})
    const closing = new Promise<number>((done) =>
      socket.on("close", () => {
        closed = true
        for (const listener of listeners) listener()
        done(Date.now() - opened)
      })
    )
    const received = () => Buffer.concat(parts).toString("latin1")
    socket.once("connect", () =>
      resolve({
        socket,
        received,
        closed: closing,
        isClosed: () => closed,
        waitFor: (done, timeoutMs) =>
          new Promise((ok, fail) => {
            const check = () => {
              const text = received()
              if (done(text)) {
                cleanup()
                ok(text)
              } else if (closed) {
                cleanup()
                fail(new Error(`closed before the expected answer; received: ${text.slice(0, 300)}`))
              }
            }
            const timer = setTimeout(() => {
              cleanup()
              fail(new Error(`no expected answer within ${timeoutMs} ms; received: ${received().slice(0, 300)}`))
            }, timeoutMs)
            const cleanup = () => {
              clearTimeout(timer)
              listeners.delete(check)
            }
            listeners.add(check)
            check()
          })
      })
    )
    socket.once("error", reject)
  })

/** The request line and headers of a raw HTTP/1.1 request, ending with the blank line. */
export const head = (method: string, path: string, headers: Record<string, string | number>): string =>
  `${method} ${path} HTTP/1.1\r\n${Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("")}\r\n`

/** The status, headers and body of the first response in raw text. */
export const parseResponse = (text: string) => {
  const end = text.indexOf("\r\n\r\n")
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n")
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(":")
    headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
  }
  return { status: Number(statusLine!.split(" ")[1]), headers, body: text.slice(end + 4) }
}

/** Whether raw text holds a whole response with a body of `content-length` bytes. */
export const isWhole = (text: string): boolean => {
  const end = text.indexOf("\r\n\r\n")
  if (end === -1) return false
  const length = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, end))
  return length !== null && text.length >= end + 4 + Number(length[1])
}

/**
 * Writes `total` bytes of body as fast as the connection takes them
 * (`chunked`: as chunks of the transfer coding), until done or the socket
 * is closed; resolves with the bytes the socket accepted.
 */
export const pump = (connection: Connection, total: number, chunked: boolean): Promise<number> =>
  new Promise((resolve) => {
    const block = Buffer.alloc(64 * 1024, 0x20)
    const framed = chunked
      ? Buffer.concat([Buffer.from(`${block.length.toString(16)}\r\n`), block, Buffer.from("\r\n")])
      : block
    let written = 0
    const next = () => {
      while (written < total) {
        if (connection.isClosed() || connection.socket.destroyed) return resolve(written)
        written += block.length
        if (!connection.socket.write(framed)) return connection.socket.once("drain", next)
      }
      resolve(written)
    }
    connection.closed.then(() => resolve(written))
    next()
  })

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
