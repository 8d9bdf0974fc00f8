import * as http from "node:http"
import type * as net from "node:net"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"

/** A real server on 127.0.0.1 that counts its sockets. */
export interface TestServer {
  readonly url: string
  /** `connection` events so far (one per socket opened by a client). */
  readonly connections: () => number
  /** Sockets that have closed so far. */
  readonly closed: () => number
  /** Requests received so far, in order. */
  readonly requests: Array<{
    readonly url: string
    readonly headers: http.IncomingHttpHeaders
    readonly socket: net.Socket
  }>
}

export const serve = (handler: http.RequestListener): Effect.Effect<TestServer, never, Scope.Scope> =>
  Effect.suspend(() => {
    const server = http.createServer({ keepAliveTimeout: 30_000 }, handler)
    const sockets = new Set<net.Socket>()
    return Effect.acquireRelease(
      Effect.async<TestServer>((resume) => {
        let connections = 0
        let closed = 0
        const requests: TestServer["requests"] = []
        server.on("connection", (socket: net.Socket) => {
          connections++
          sockets.add(socket)
          socket.on("close", () => {
            closed++
            sockets.delete(socket)
          })
        })
        server.on("request", (req: http.IncomingMessage) => {
          requests.push({ url: req.url ?? "", headers: req.headers, socket: req.socket })
        })
        server.listen(0, "127.0.0.1", () => {
          const port = (server.address() as net.AddressInfo).port
          resume(
            Effect.succeed({
              url: `http://127.0.0.1:${port}`,
              connections: () => connections,
              closed: () => closed,
              requests
            })
          )
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    )
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
