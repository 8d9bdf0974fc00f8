/**
 * The Node side of every run: starts the mirror a case describes, probes its
 * connections, and says what the mirror saw. Node-only (never bundled).
 *
 * @since 0.1.0
 */
import { MirrorServer } from "@easychat/testkit"
import type { Case, Probe, Runtime } from "./cases.js"
import { chatUrlPath, forRuntime } from "./cases.js"
import type { Hooks } from "./runner.js"

/** How long a cancelled or timed-out call may take to close its connection: a liveness bound, not a speed test. */
export const closeBoundMs = 1000

/**
 * A case's mirror (or a refusing URL) and what it saw.
 * @since 0.1.0 @category models
 */
export interface Target {
  readonly url: string
  readonly mirror: MirrorServer.MirrorServer | undefined
  /** After the call, before the client closes: did the chat request's connection close within the bound? */
  readonly probe: () => Promise<Probe>
  /** Resolves once the mirror has received a chat request; rejects after 5 s. */
  readonly received: () => Promise<void>
  readonly close: () => Promise<void>
}

const chatPosts = (mirror: MirrorServer.MirrorServer) =>
  mirror.requests.filter((r) => r.method === "POST" && r.path === chatUrlPath)

/** Resolves true when `promise` settles within `ms`, false otherwise. */
const within = (promise: Promise<unknown>, ms: number): Promise<boolean> =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    promise.then(
      () => {
        clearTimeout(timer)
        resolve(true)
      },
      () => {
        clearTimeout(timer)
        resolve(false)
      }
    )
  })

/**
 * Starts what `c` talks to. `cors` is on for the browser (the page is on
 * another port, so every call is cross-origin).
 * @since 0.1.0 @category constructors
 */
export const startTarget = async (c: Case, options: { readonly cors?: boolean } = {}): Promise<Target> => {
  if (c.refused) {
    const url = await MirrorServer.refusingUrl()
    return {
      url,
      mirror: undefined,
      probe: async () => ({ chatConnectionClosed: true }),
      received: () => Promise.reject(new Error("nothing listens")),
      close: async () => {}
    }
  }
  const mirror = await MirrorServer.start({ ...c.mirror, ...(options.cors ? { cors: true } : {}) })
  return {
    url: mirror.url,
    mirror,
    probe: async () => {
      const post = chatPosts(mirror).at(-1)
      if (post === undefined) return { chatConnectionClosed: false }
      const connection = mirror.connections.find((x) => x.id === post.connectionId)
      if (connection === undefined) return { chatConnectionClosed: false }
      return { chatConnectionClosed: await within(connection.closed, closeBoundMs) }
    },
    received: async () => {
      // Polling is enough: this only decides when a run cancels, it measures nothing.
      for (let waited = 0; chatPosts(mirror).length === 0; waited += 10) {
        if (waited >= 5000) throw new Error("the mirror received no chat request within 5 s")
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
    },
    close: () => mirror.close()
  }
}

/**
 * What the mirror saw of one run, in the terms of `ServerExpect`.
 * @since 0.1.0 @category models
 */
export interface Seen {
  readonly posts: number
  readonly gets: number
  readonly preflights: number
  /** The last chat POST's headers (lower-case names). */
  readonly headers: Readonly<Record<string, string>>
  /** The cookies the last chat POST carried. */
  readonly cookies: Readonly<Record<string, string>>
  /** Every cookie the mirror handed out. */
  readonly issued: Readonly<Record<string, string>>
  readonly gzip: boolean
}

/** @since 0.1.0 @category accessors */
export const seen = (mirror: MirrorServer.MirrorServer): Seen => {
  const posts = chatPosts(mirror)
  const last = posts.at(-1)
  return {
    posts: posts.length,
    gets: mirror.requests.filter((r) => r.method === "GET").length,
    preflights: mirror.requests.filter((r) => r.method === "OPTIONS").length,
    headers: last?.headers ?? {},
    cookies: last?.cookies ?? {},
    issued: mirror.cookies,
    gzip: /\bgzip\b/i.test(last?.headers["accept-encoding"] ?? "")
  }
}

/**
 * The hooks of a run of `c` on `runtime`: the probe only when the case checks
 * that the connection closed (it waits up to the bound otherwise).
 * @since 0.1.0 @category constructors
 */
export const hooksFor = (c: Case, runtime: Runtime, target: Target): Hooks => ({
  received: target.received,
  ...(forRuntime(c, runtime)?.server.closed === undefined ? {} : { probe: target.probe })
})
