/**
 * Runs cases in another JavaScript realm (a Bun or Deno process, a Web Worker)
 * through messages: the realm that holds the transport serves runs
 * (`serveRuns`), the one that holds the mirror asks for them (`askRuns`) and
 * answers the hooks a run calls back (`probe`, `received`: only the mirror's
 * side can see the mirror). Messages are plain JSON, so they cross a
 * `postMessage` as they are and stdin/stdout as one line each.
 *
 * Browser-safe: bundled into the Bun and Deno scripts, their workers and the
 * Chromium worker.
 *
 * @since 0.1.0
 */
import * as FetchTransport from "@easychat/transport-fetch"
import { type Api, byName, type Outcome, type Probe } from "./cases.js"
import { type Hooks, runCase, type Transport } from "./runner.js"

/**
 * Which hooks the asking side has for a run (functions cannot cross, so the
 * serving side calls back by name).
 * @since 0.1.0 @category models
 */
export type HookFlags = { readonly [K in keyof Hooks]-?: boolean }

/**
 * Where the serving side runs, as it sees itself.
 * @since 0.1.0 @category models
 */
export interface About {
  /** `navigator.userAgent`: `Bun/1.4.4`, `Deno/2.9.6`, Chromium's. */
  readonly userAgent: string
  readonly mainThread: boolean
  /** `location.origin` (`"null"` in a Deno worker loaded from a file), or null without a `location`. */
  readonly origin: string | null
  /** Whether the fetch transport takes this for a browser (a `document`, or `importScripts`). */
  readonly browser: boolean
}

/**
 * A message to the serving side.
 * @since 0.1.0 @category models
 */
export type Request =
  | {
      readonly type: "run"
      readonly id: number
      readonly name: string
      readonly mirrorUrl: string
      readonly api: Api
      readonly hooks: HookFlags
    }
  | { readonly type: "hooked"; readonly id: number; readonly value?: unknown; readonly failure?: string }

/**
 * A message from the serving side.
 * @since 0.1.0 @category models
 */
export type Reply =
  | { readonly type: "ready"; readonly about: About }
  /** A run (`run`) calls one of its hooks; the answer is a `hooked` with the same `id`. */
  | { readonly type: "hook"; readonly id: number; readonly run: number; readonly kind: keyof Hooks }
  | { readonly type: "outcome"; readonly id: number; readonly outcome: Outcome }

/**
 * Marks the protocol's lines on a stdout: anything else there is the runtime's own output.
 * @since 0.1.0 @category constants
 */
export const linePrefix = "@conformance "

/**
 * How the serving side sees itself.
 * @since 0.1.0 @category constructors
 */
export const about = (): About => {
  const self = globalThis as {
    navigator?: { userAgent?: string }
    location?: { origin?: string }
    document?: unknown
    importScripts?: unknown
    Bun?: { isMainThread: boolean }
    WorkerGlobalScope?: new () => unknown
  }
  return {
    userAgent: self.navigator?.userAgent ?? "unknown",
    mainThread:
      self.Bun !== undefined
        ? self.Bun.isMainThread
        : self.WorkerGlobalScope === undefined || !(globalThis instanceof self.WorkerGlobalScope),
    origin: self.location?.origin ?? null,
    browser: self.document !== undefined || typeof self.importScripts === "function"
  }
}

/**
 * The serving side: runs what `Request`s ask on `transport` and posts the
 * `Reply`s. Returns the handler of incoming requests.
 * @since 0.1.0 @category constructors
 */
export const serveRuns = (transport: Transport, post: (reply: Reply) => void): ((request: Request) => void) => {
  const waiting = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>()
  let calls = 0
  // Hook calls have ids of their own: runs overlap, and one run may call the same hook twice. What a hook resolves
  // with is the asking side's (a `Probe`, or nothing), passed on as it came.
  const hook =
    <A>(run: number, kind: keyof Hooks) =>
    () =>
      new Promise<A>((resolve, reject) => {
        const id = ++calls
        waiting.set(id, { resolve: (value) => resolve(value as A), reject })
        post({ type: "hook", id, run, kind })
      })
  return (request) => {
    if (request.type === "hooked") {
      const call = waiting.get(request.id)
      waiting.delete(request.id)
      if (request.failure === undefined) call?.resolve(request.value)
      else call?.reject(new Error(request.failure))
      return
    }
    const hooks: { -readonly [K in keyof Hooks]: Hooks[K] } = {}
    if (request.hooks.probe) hooks.probe = hook<Probe>(request.id, "probe")
    if (request.hooks.received) hooks.received = hook<void>(request.id, "received")
    void runCase(byName(request.name), request.mirrorUrl, transport, request.api, hooks).then((outcome) =>
      post({ type: "outcome", id: request.id, outcome })
    )
  }
}

/**
 * The asking side, over a channel to a serving side.
 * @since 0.1.0 @category models
 */
export interface RemoteRuns {
  /** Runs a case there; its hooks run here. */
  run(name: string, mirrorUrl: string, api: Api, hooks: Hooks): Promise<Outcome>
  /** Feed every `Reply` from the serving side here. */
  receive(reply: Reply): void
  /** Resolves with the serving side's first `ready`. */
  readonly ready: Promise<About>
  /** Rejects every run still waiting (the serving side is gone). */
  fail(error: Error): void
}

/**
 * The asking side: posts `Request`s with `post`; `receive` takes the replies.
 * @since 0.1.0 @category constructors
 */
export const askRuns = (post: (request: Request) => void): RemoteRuns => {
  const runs = new Map<number, { readonly hooks: Hooks; resolve(o: Outcome): void; reject(e: Error): void }>()
  let ids = 0
  let ready!: (about: About) => void
  let notReady!: (error: Error) => void
  const readyPromise = new Promise<About>((resolve, reject) => {
    ready = resolve
    notReady = reject
  })
  return {
    ready: readyPromise,
    run: (name, mirrorUrl, api, hooks) =>
      new Promise<Outcome>((resolve, reject) => {
        const id = ++ids
        runs.set(id, { hooks, resolve, reject })
        post({
          type: "run",
          id,
          name,
          mirrorUrl,
          api,
          hooks: { probe: hooks.probe !== undefined, received: hooks.received !== undefined }
        })
      }),
    receive: (reply) => {
      if (reply.type === "ready") ready(reply.about)
      else if (reply.type === "outcome") {
        runs.get(reply.id)?.resolve(reply.outcome)
        runs.delete(reply.id)
      } else {
        const hook = runs.get(reply.run)?.hooks[reply.kind]
        const called = hook === undefined ? Promise.reject(new Error(`no ${reply.kind} hook for this run`)) : hook()
        called.then(
          (value) => post({ type: "hooked", id: reply.id, value }),
          (error: unknown) =>
            post({ type: "hooked", id: reply.id, failure: error instanceof Error ? error.message : String(error) })
        )
      }
    },
    fail: (error) => {
      notReady(error)
      for (const run of runs.values()) run.reject(error)
      runs.clear()
    }
  }
}

/**
 * The fetch transport with no options: it must detect its runtime by itself
 * (a browser, or Bun and Deno, which are not).
 * @since 0.1.0 @category constants
 */
export const fetchTransport: Transport = {
  layer: () => FetchTransport.layer(),
  createClient: (options) => FetchTransport.createClient(options)
}
