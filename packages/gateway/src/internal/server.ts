// The gateway's Node server over its lifetime: the send deadline (clients that stop reading) and the drain
// on shutdown (stop accepting, let open requests finish, then end the streams still open with an error event).

import type * as http from "node:http"
import { IncomingMessage } from "node:http"
import type * as net from "node:net"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Chunk from "effect/Chunk"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { apiError, makeChunkEvents } from "./openai.js"

/**
 * Closes the connection of a client that has read nothing for `timeoutMs`
 * while bytes wait to be sent to it. Destroying the socket ends the request
 * as a client that left would: its response stream is interrupted, which
 * cancels the upstream call and frees its concurrency slot. A response that
 * is waiting for the upstream has nothing buffered and is never touched.
 * Progress is seen when a write completes: the kernel accepts more once the
 * client has taken a good part of what its buffers hold (up to a few MB),
 * so a client counts as reading if it takes about that much per deadline.
 */
export const watchSends = (server: http.Server, timeoutMs: number): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      // Progress: the bytes whose writes have completed (written minus still buffered) went up.
      const sockets = new Map<net.Socket, { flushed: number; at: number }>()
      const onConnection = (socket: net.Socket) => {
        sockets.set(socket, { flushed: 0, at: Date.now() })
        socket.once("close", () => sockets.delete(socket))
      }
      server.on("connection", onConnection)
      const sweep = () => {
        const now = Date.now()
        for (const [socket, progress] of sockets) {
          const pending = socket.writableLength
          const flushed = (socket.bytesWritten ?? 0) - pending
          if (pending === 0 || flushed !== progress.flushed) {
            progress.flushed = flushed
            progress.at = now
          } else if (now - progress.at >= timeoutMs) {
            sockets.delete(socket)
            socket.destroy()
          }
        }
      }
      // A sweep every quarter of the deadline (a connection is cut at most that late), at most every second.
      const timer = setInterval(sweep, Math.min(1000, Math.max(20, Math.floor(timeoutMs / 4))))
      timer.unref()
      return () => {
        clearInterval(timer)
        server.off("connection", onConnection)
      }
    }),
    (stop) => Effect.sync(stop)
  )

// Written in one piece, a large body would complete (and show progress) only once the client had taken
// all of it: in slices, each completed write is progress.
const SLICE = 64 * 1024

/** The app, its bodies larger than 64 KiB written in slices of 64 KiB, one at a time (see `watchSends`). */
export const sliceBodies = <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
  Effect.map(app, (response) => {
    const body = response.body
    if (body._tag !== "Uint8Array" || body.body.length <= SLICE) return response
    const slices: Array<Chunk.Chunk<Uint8Array>> = []
    for (let at = 0; at < body.body.length; at += SLICE) slices.push(Chunk.of(body.body.subarray(at, at + SLICE)))
    return HttpServerResponse.setBody(
      response,
      HttpBody.stream(Stream.fromChunks(...slices), body.contentType, body.body.length)
    )
  })

/** Once the grace period is over, the few writes left (the error events) get this long before connections are cut. */
const FINAL_WRITES_MS = 1000

const isEventStream = (contentType: string | undefined) =>
  contentType?.toLowerCase().includes("text/event-stream") === true

const shutdown = apiError(
  503,
  "server_error",
  "gateway_shutdown",
  "The gateway is shutting down: this reply was cut before its end; send the request again"
)
const shutdownBody = JSON.stringify(shutdown.body)
const events = makeChunkEvents()
// The gateway writes chat streams one whole event at a time; other streams are the upstream's bytes as read,
// which may stop inside an event: blank lines first end it (an empty event is no event at all).
const chatEnd = events.error(shutdown)
const forwardedEnd = Buffer.concat([Buffer.from("\n\n"), events.error(shutdown)])

/** Who interrupts the streams still open when the grace period is over. */
const drainFiberId = FiberId.make(-1, 0)

interface OpenStream {
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  readonly response: http.ServerResponse
  readonly end: Uint8Array
  expired: boolean
}

/** What the drain needs to know of the server: the requests it is serving, and the event streams among them. */
export interface Drain {
  /** The app whose event streams the drain can end with an SSE `error` event. */
  readonly app: <E, R>(app: HttpApp.Default<E, R>) => HttpApp.Default<E, R>
  /**
   * Stops accepting connections, lets the requests in progress finish for
   * `graceMs`, then ends each event stream still open with an SSE `error`
   * event (`gateway_shutdown`, never `[DONE]`); whatever is left after
   * that is for the caller to cut (`closeAllConnections`).
   */
  readonly run: (graceMs: number) => Effect.Effect<void>
}

export const makeDrain = (server: http.Server): Effect.Effect<Drain, never, Scope.Scope> =>
  Effect.gen(function* () {
    let active = 0
    let draining = false
    const streams = new Set<OpenStream>()
    const waiters = new Set<() => void>()
    // Every response in progress: at the end of the grace period one that has not begun gets a 503.
    const responses = new Set<http.ServerResponse>()
    const onRequest = (_request: http.IncomingMessage, response: http.ServerResponse) => {
      active++
      responses.add(response)
      // Answered during the drain: no next request on this connection.
      if (draining) response.setHeader("connection", "close")
      response.once("close", () => {
        active--
        responses.delete(response)
        if (!draining) return
        // A connection whose response has just ended waits for a next request: close it once it is idle.
        setImmediate(() => server.closeIdleConnections())
        if (active === 0) for (const wake of waiters) wake()
      })
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => server.prependListener("request", onRequest)),
      () => Effect.sync(() => server.off("request", onRequest))
    )

    /** Resolves when no request is in progress, or after `ms`. */
    const settled = (ms: number) =>
      Effect.async<void>((resume) => {
        if (active === 0) return resume(Effect.void)
        const done = () => {
          clearTimeout(timer)
          waiters.delete(done)
          resume(Effect.void)
        }
        const timer = setTimeout(done, ms)
        waiters.add(done)
        return Effect.sync(done)
      })

    const app = <E, R>(inner: HttpApp.Default<E, R>): HttpApp.Default<E, R> =>
      Effect.withFiberRuntime((fiber) =>
        Effect.map(inner, (response) => {
          const body = response.body
          if (body._tag !== "Stream" || !isEventStream(body.contentType)) return response
          const request = Context.unsafeGet(fiber.currentContext, HttpServerRequest.HttpServerRequest)
          if (!(request.source instanceof IncomingMessage)) return response
          const open: OpenStream = {
            fiber,
            response: NodeHttpServerRequest.toServerResponse(request),
            end: request.url.split("?")[0]!.endsWith("/chat/completions") ? chatEnd : forwardedEnd,
            expired: false
          }
          // Registered for as long as the stream is written; interrupted by the drain, it ends with the event
          // before the server ends the response.
          const tracked = Stream.unwrapScoped(
            Effect.as(
              Effect.acquireRelease(
                Effect.sync(() => streams.add(open)),
                () =>
                  Effect.sync(() => {
                    streams.delete(open)
                    if (open.expired && !open.response.writableEnded) open.response.end(open.end)
                  })
              ),
              body.stream
            )
          )
          return HttpServerResponse.setBody(response, HttpBody.stream(tracked, body.contentType, body.contentLength))
        })
      )

    const run = (graceMs: number) =>
      Effect.gen(function* () {
        draining = true
        // No new connection from now on (and keep-alive connections that are idle close).
        if (server.listening) server.close()
        server.closeIdleConnections()
        yield* settled(graceMs)
        if (active === 0) return
        for (const open of streams) {
          open.expired = true
          open.fiber.unsafeInterruptAsFork(drainFiberId)
        }
        // A request still waiting for its upstream (a whole reply, a stream before its first delta) is told
        // so, rather than cut without a status.
        for (const response of responses) {
          if (response.headersSent || response.writableEnded) continue
          response.writeHead(shutdown.status, {
            "content-type": "application/json",
            "retry-after": "1",
            connection: "close"
          })
          response.end(shutdownBody)
        }
        yield* settled(FINAL_WRITES_MS)
      })

    return { app, run }
  })
