/**
 * Several `MirrorServer`s at once, each with its own options and faults: a
 * stand-in for a pool of public mirrors.
 *
 * @since 0.1.0
 */
import * as MirrorServer from "./MirrorServer.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface MirrorPool {
  readonly servers: ReadonlyArray<MirrorServer.MirrorServer>
  /** The servers' URLs, in order: the `servers` option of a client. */
  readonly urls: ReadonlyArray<string>
  /** Connections open on all servers together. */
  openConnections(): number
  /** Resolves once no server has an open connection; rejects after `timeoutMs` (default 1000). */
  waitForConnectionsClosed(timeoutMs?: number): Promise<void>
  /** `reset()` on every server. */
  reset(): Promise<void>
  /** Closes every server. */
  close(): Promise<void>
}

/**
 * Starts `n` servers with the same `options`, or one server per entry of a
 * list of options (merged over `options`).
 *
 * @example
 * const pool = await MirrorPool.start([{ fault: { kind: "status", status: 503 } }, {}, {}])
 * const client = createClient({ servers: pool.urls })
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = async (
  servers: number | ReadonlyArray<MirrorServer.MirrorServerOptions>,
  options: MirrorServer.MirrorServerOptions = {}
): Promise<MirrorPool> => {
  const each = typeof servers === "number" ? Array.from({ length: servers }, () => options) : servers
  const started = await Promise.allSettled(each.map((own) => MirrorServer.start({ ...options, ...own })))
  const ok = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []))
  const failed = started.find((result) => result.status === "rejected")
  if (failed !== undefined) {
    await Promise.all(ok.map((server) => server.close()))
    throw failed.reason
  }
  return {
    servers: ok,
    urls: ok.map((server) => server.url),
    openConnections: () => ok.reduce((sum, server) => sum + server.openConnections(), 0),
    waitForConnectionsClosed: async (timeoutMs = 1000) => {
      await Promise.all(ok.map((server) => server.waitForConnectionsClosed(timeoutMs)))
    },
    reset: async () => {
      await Promise.all(ok.map((server) => server.reset()))
    },
    close: async () => {
      await Promise.all(ok.map((server) => server.close()))
    }
  }
}
