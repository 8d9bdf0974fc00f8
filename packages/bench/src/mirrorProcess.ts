// Local mirrors in a child process, so that the server's CPU is not counted
// as the client's and the two do not share one event loop.
import { type ChildProcess, fork } from "node:child_process"
import type { MirrorServer } from "@easychat/testkit"

export interface MirrorStats {
  /** CPU milliseconds the mirror process has used so far. */
  readonly cpuMillis: number
  /** TCP connections the mirrors have accepted so far. */
  readonly connections: number
}

export interface MirrorProcess {
  readonly urls: ReadonlyArray<string>
  readonly stats: () => Promise<MirrorStats>
  readonly close: () => Promise<void>
}

type Request = { readonly type: "stats"; readonly id: number }
type Reply =
  | { readonly type: "ready"; readonly urls: ReadonlyArray<string> }
  | { readonly type: "stats"; readonly id: number; readonly stats: MirrorStats }
  | { readonly type: "error"; readonly message: string }

/** Serialisable mirror options (no reply function). */
export type MirrorOptions = Omit<MirrorServer.MirrorServerOptions, "reply"> & { readonly reply?: string }

const childArg = "--mirror-child"

/** Starts mirrors in a child process: `count` alike, or one per entry of a list. */
export const start = (options: MirrorOptions | ReadonlyArray<MirrorOptions>, count = 1): Promise<MirrorProcess> =>
  new Promise((resolve, reject) => {
    const child: ChildProcess = fork(new URL(import.meta.url), [childArg, JSON.stringify({ options, count })], {
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    const pending = new Map<number, (stats: MirrorStats) => void>()
    let nextId = 0
    child.once("exit", (code) => reject(new Error(`the mirror process exited (${code}) before it was ready`)))
    child.on("message", (message: Reply) => {
      if (message.type === "error") reject(new Error(`the mirror process failed: ${message.message}`))
      else if (message.type === "stats") {
        pending.get(message.id)?.(message.stats)
        pending.delete(message.id)
      } else {
        resolve({
          urls: message.urls,
          stats: () =>
            new Promise((done) => {
              const id = nextId++
              pending.set(id, done)
              child.send({ type: "stats", id } satisfies Request)
            }),
          close: () =>
            new Promise((done) => {
              if (child.exitCode !== null) return done()
              child.removeAllListeners("exit")
              child.once("exit", () => done())
              child.kill()
            })
        })
      }
    })
  })

const runChild = async (spec: { options: MirrorOptions | ReadonlyArray<MirrorOptions>; count: number }) => {
  const { MirrorPool } = await import("@easychat/testkit")
  const send = (reply: Reply) => process.send!(reply)
  try {
    const pool = Array.isArray(spec.options)
      ? await MirrorPool.start(spec.options as ReadonlyArray<MirrorOptions>)
      : await MirrorPool.start(spec.count, spec.options as MirrorOptions)
    process.on("message", (message: Request) => {
      if (message.type === "stats") {
        const usage = process.cpuUsage()
        const connections = pool.servers.reduce((sum, server) => sum + server.connections.length, 0)
        send({ type: "stats", id: message.id, stats: { cpuMillis: (usage.user + usage.system) / 1000, connections } })
      }
    })
    // The parent going away, for any reason, ends the mirrors too.
    process.on("disconnect", () => {
      void pool.close().finally(() => process.exit(0))
    })
    send({ type: "ready", urls: pool.urls })
  } catch (error) {
    send({ type: "error", message: String(error) })
    process.exit(1)
  }
}

if (process.argv[2] === childArg) void runChild(JSON.parse(process.argv[3]!))
