// The node:http side of MirrorServer: carries out the answers of `Mirror` on
// real sockets and tracks every connection.
import * as http from "node:http"
import type * as net from "node:net"
import { setTimeout as sleep } from "node:timers/promises"
import * as zlib from "node:zlib"
import type { FaultPlan } from "../Fault.js"
import type { ResponseClosed } from "../Mirror.js"
import type { Connection, MirrorServer, MirrorServerOptions, ServerRequest } from "../MirrorServer.js"
import { type Answer, type Header, Mirror } from "./mirror.js"
import { batchSteps, isWait } from "./reply.js"

type ConnectionState = { -readonly [K in keyof Connection]: Connection[K] }

type RequestExtra = Pick<ServerRequest, "connectionId" | "closed">

const groupHeaders = (headers: ReadonlyArray<Header>): Record<string, string | Array<string>> => {
  const out: Record<string, string | Array<string>> = {}
  for (const [name, value] of headers) {
    const previous = out[name]
    out[name] = previous === undefined ? value : [...(Array.isArray(previous) ? previous : [previous]), value]
  }
  return out
}

const pairs = (raw: ReadonlyArray<string>): Array<Header> => {
  const out: Array<Header> = []
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!, raw[i + 1]!])
  return out
}

/** Writes bytes with back-pressure; resolves early if the response closes meanwhile. */
interface Sink {
  write(bytes: Uint8Array): Promise<void>
  end(): void
}

// Resolves on `event` or when the response closes, whichever comes first.
const onceOrClose = (res: http.ServerResponse, event: string): Promise<void> =>
  new Promise<void>((resolve) => {
    const done = () => {
      res.off(event, done)
      res.off("close", done)
      resolve()
    }
    res.on(event, done)
    res.on("close", done)
  })

const plainSink = (res: http.ServerResponse): Sink => ({
  write: (bytes) => (res.write(bytes) ? Promise.resolve() : onceOrClose(res, "drain")),
  end: () => res.end()
})

// Each write is flushed through gzip at once, or a streaming client would see
// nothing until the compressor's buffer fills.
const gzipSink = (res: http.ServerResponse): Sink => {
  const gzip = zlib.createGzip()
  gzip.pipe(res)
  // Writes are awaited one at a time, so one pending write is all there is to wake.
  let wake: (() => void) | undefined
  res.once("close", () => {
    gzip.destroy()
    wake?.()
  })
  return {
    write: (bytes) =>
      new Promise<void>((resolve) => {
        wake = resolve
        gzip.write(bytes)
        gzip.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve())
      }),
    end: () => gzip.end()
  }
}

export const start = async (options: MirrorServerOptions = {}): Promise<MirrorServer> => {
  const mirror = new Mirror<RequestExtra>(options)
  const host = options.host ?? "127.0.0.1"
  const connections: Array<ConnectionState> = []
  const open = new Map<net.Socket, ConnectionState>()
  const closeWaiters = new Set<() => void>()
  let nextConnectionId = 1
  let connectionsClosed = 0
  let stopped = false

  const respond = async (req: http.IncomingMessage, res: http.ServerResponse, answer: Answer): Promise<void> => {
    let closed = false
    // A pause before the first delta ends with the connection: no timer outlives its client.
    const gone = new AbortController()
    res.once("close", () => {
      closed = true
      gone.abort()
    })
    switch (answer._tag) {
      case "Destroy":
        // An RST rather than a FIN: the client sees ECONNRESET, as with a crashed server.
        req.socket.resetAndDestroy()
        return
      case "Stall":
        return
      case "Whole": {
        if (answer.delayMs > 0) await sleep(answer.delayMs)
        if (closed) return
        const body = answer.gzip ? zlib.gzipSync(answer.body) : answer.body
        const headers = groupHeaders(answer.headers)
        if (answer.gzip) headers["content-encoding"] = "gzip"
        headers["content-length"] = String(body.length)
        res.writeHead(answer.status, headers)
        res.end(body)
        return
      }
      case "Stream": {
        if (answer.delayMs > 0) await sleep(answer.delayMs)
        if (closed) return
        const headers = groupHeaders(answer.headers)
        if (answer.gzip) headers["content-encoding"] = "gzip"
        res.writeHead(answer.status, headers)
        res.flushHeaders()
        const sink = answer.gzip ? gzipSink(res) : plainSink(res)
        const interval = options.delayMs ?? 0
        let first = true
        for (const step of batchSteps(answer.steps, options.batch ?? 1)) {
          if (closed || step === "stall") return
          if (isWait(step)) {
            await sleep(step.waitMs, undefined, { signal: gone.signal }).catch(() => undefined)
            continue
          }
          if (step === "destroy") {
            // Close once what was written has left (destroy() would drop it): the
            // client gets the deltas, then a body cut before its last chunk.
            // An empty write calls back once what was written before it has gone to the socket.
            await new Promise<void>((resolve) => res.write("", () => resolve()))
            res.socket?.destroySoon()
            return
          }
          if (!first && interval > 0) await sleep(interval)
          first = false
          if (closed) return
          await sink.write(step)
        }
        if (!closed) sink.end()
        return
      }
    }
  }

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const time = Date.now()
    // Listen before reading the body: the client may hang up at any moment.
    const closed = new Promise<ResponseClosed>((resolve) => {
      res.once("close", () => resolve({ at: Date.now(), finished: res.writableFinished }))
    })
    const chunks: Array<Buffer> = []
    try {
      for await (const chunk of req) chunks.push(chunk as Buffer)
    } catch {
      return // the client went away while sending its body
    }
    const request = mirror.record(
      {
        method: req.method ?? "GET",
        url: new URL(req.url ?? "/", `http://${req.headers.host ?? `${host}:${port}`}`),
        rawHeaders: pairs(req.rawHeaders),
        rawBody: Buffer.concat(chunks).toString("utf8"),
        time
      },
      { connectionId: open.get(req.socket)?.id ?? 0, closed }
    )
    await respond(req, res, mirror.answer(request))
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      // A bug in the mirror: answer 500 rather than leave the client hanging.
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" })
      res.end(`easychat test mirror failed: ${String(error)}`)
    })
  })

  server.on("connection", (socket) => {
    let resolveClosed!: (at: number) => void
    const connection: ConnectionState = {
      id: nextConnectionId++,
      openedAt: Date.now(),
      closedAt: undefined,
      closed: new Promise<number>((resolve) => {
        resolveClosed = resolve
      })
    }
    connections.push(connection)
    open.set(socket, connection)
    socket.once("close", () => {
      const at = Date.now()
      connection.closedAt = at
      open.delete(socket)
      connectionsClosed++
      resolveClosed(at)
      if (open.size === 0) for (const wake of [...closeWaiters]) wake()
    })
  })

  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject)
      server.listen(port, host, () => {
        server.off("error", reject)
        resolve()
      })
    })

  // Resolves once the listener is closed and every socket's "close" has been
  // seen here (the server's own close callback can run before those).
  const stopListening = async (): Promise<void> => {
    const closed = server.listening ? new Promise<void>((resolve) => server.close(() => resolve())) : undefined
    const sockets = [...open.entries()]
    for (const [socket] of sockets) socket.destroy()
    await Promise.all([closed, ...sockets.map(([, connection]) => connection.closed)])
  }

  await listen(options.port ?? 0)
  const port = (server.address() as net.AddressInfo).port
  const url = `http://${host}:${port}`

  // Listening follows the fault plan: a single `refuse` means nothing listens.
  // Transitions run one after the other so that quick calls cannot interleave.
  let transition: Promise<void> = Promise.resolve()
  const applyListening = (): Promise<void> =>
    (transition = transition.then(async () => {
      if (stopped) return
      if (mirror.refusing) await stopListening()
      else if (!server.listening) await listen(port)
    }))
  await applyListening()

  return {
    url,
    origin: url,
    port,
    chatUrl: `${url}/api/openai/v1/chat/completions`,
    cookies: mirror.issuedCookies,
    get requests() {
      return mirror.requests
    },
    get connections() {
      return connections
    },
    get connectionsClosed() {
      return connectionsClosed
    },
    openConnections: () => open.size,
    waitForConnectionsClosed: (timeoutMs = 1000) =>
      new Promise<void>((resolve, reject) => {
        if (open.size === 0) return resolve()
        const timer = setTimeout(() => {
          closeWaiters.delete(wake)
          reject(new Error(`${open.size} connection(s) still open after ${timeoutMs} ms`))
        }, timeoutMs)
        const wake = () => {
          clearTimeout(timer)
          closeWaiters.delete(wake)
          resolve()
        }
        closeWaiters.add(wake)
      }),
    setFault: (plan: FaultPlan | undefined) => {
      mirror.setFault(plan)
      return applyListening()
    },
    setCookieFault: (plan: FaultPlan | undefined) => mirror.setCookieFault(plan),
    reset: () => {
      mirror.reset()
      for (let i = connections.length - 1; i >= 0; i--) {
        if (connections[i]!.closedAt !== undefined) connections.splice(i, 1)
      }
      connectionsClosed = 0
      return applyListening()
    },
    close: async () => {
      stopped = true
      await transition
      await stopListening()
    }
  }
}
