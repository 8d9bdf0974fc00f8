/**
 * A real NextChat-style mirror on 127.0.0.1 (node:http), with fault injection,
 * request recording and connection tracking.
 *
 * Routes:
 * - `GET /`: sets cookies (optionally through a 302 to `/welcome` that sets its own);
 * - `POST /api/openai/v1/chat/completions` and `POST /v1/chat/completions`: an
 *   OpenAI chat completion, whole (`application/json`) or streamed
 *   (`text/event-stream`) when the body has `stream: true`;
 * - `OPTIONS *` when `cors` is on; anything else: 404 JSON.
 *
 * @since 0.1.0
 */
import * as net from "node:net"
import type { FaultPlan } from "./Fault.js"
import * as internal from "./internal/server.js"
import type { MirrorOptions, RecordedRequest, ResponseClosed } from "./Mirror.js"

export type { Fault, FaultPlan } from "./Fault.js"
export type { MirrorOptions, RecordedRequest, ResponseClosed } from "./Mirror.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface MirrorServerOptions extends MirrorOptions {
  /** Default 0: an ephemeral port. */
  readonly port?: number
  /** Default `127.0.0.1`. */
  readonly host?: string
}

/**
 * A recorded request with what only a real server knows.
 *
 * @since 0.1.0
 * @category models
 */
export interface ServerRequest extends RecordedRequest {
  /** The `Connection` it arrived on. */
  readonly connectionId: number
  /** Resolves when the response is finished or its connection is closed. */
  readonly closed: Promise<ResponseClosed>
}

/**
 * One TCP connection the server accepted.
 *
 * @since 0.1.0
 * @category models
 */
export interface Connection {
  /** 1-based, in order of arrival. */
  readonly id: number
  /** `Date.now()` when it was accepted. */
  readonly openedAt: number
  /** `Date.now()` when it closed (by either side), `undefined` while open. */
  readonly closedAt: number | undefined
  /** Resolves with `closedAt`. */
  readonly closed: Promise<number>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface MirrorServer {
  /** `http://127.0.0.1:PORT`, no trailing slash: the server to give a client. */
  readonly url: string
  /** Same as `url` (scheme, host and port). */
  readonly origin: string
  readonly port: number
  /** `url` + `/api/openai/v1/chat/completions`. */
  readonly chatUrl: string
  /** Every cookie (name → value) a client holds after following `GET /` to the end. */
  readonly cookies: Readonly<Record<string, string>>
  /** Every request received since start or the last `reset()`, in order. */
  readonly requests: ReadonlyArray<ServerRequest>
  /** Every connection accepted since start or the last `reset()` (closed ones included). */
  readonly connections: ReadonlyArray<Connection>
  /** How many connections have closed since start or the last `reset()`. */
  readonly connectionsClosed: number
  /** How many connections are open now. */
  openConnections(): number
  /** Resolves once no connection is open; rejects after `timeoutMs` (default 1000). */
  waitForConnectionsClosed(timeoutMs?: number): Promise<void>
  /**
   * Replaces the chat-completion fault plan (`undefined`: none). A single
   * `{ kind: "refuse" }` stops listening (open sockets are destroyed) until
   * another plan is set; await the promise before connecting.
   */
  setFault(plan: FaultPlan | undefined): Promise<void>
  /** Replaces the fault plan of the cookie pages (`GET /`, the redirect target). */
  setCookieFault(plan: FaultPlan | undefined): void
  /** Forgets requests and closed connections, restores the faults of the options, resumes listening. */
  reset(): Promise<void>
  /** Stops listening and destroys every open socket. */
  close(): Promise<void>
}

/**
 * Starts a mirror on 127.0.0.1 (an ephemeral port unless `port` is given).
 *
 * @example
 * const server = await MirrorServer.start({ reply: "Hello!", fault: { kind: "close-mid-stream", afterDeltas: 2 } })
 * await fetch(server.chatUrl, { method: "POST", body: JSON.stringify({ messages, stream: true }) })
 * await server.close()
 *
 * @since 0.1.0
 * @category constructors
 */
export const start: (options?: MirrorServerOptions) => Promise<MirrorServer> = internal.start

/**
 * A URL whose port has nothing listening (bound then released), so that a
 * connection is refused. Another process could take the port in between, which
 * is unlikely on a test machine.
 *
 * @since 0.1.0
 * @category constructors
 */
export const refusingUrl = (host = "127.0.0.1"): Promise<string> =>
  new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once("error", reject)
    probe.listen(0, host, () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(`http://${host}:${port}`))
    })
  })

/**
 * @since 0.1.0
 * @category re-exports
 */
export { chunk, defaultReply, sse } from "./Mirror.js"
