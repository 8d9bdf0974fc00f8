// Servers in child processes (local mirrors, the gateway), so that their CPU
// is not counted as the client's and they do not share its event loop.
import { type ChildProcess, fork } from "node:child_process"
import type { MirrorServer } from "@easychat/testkit"

export interface ServiceStats {
  /** CPU milliseconds the process has used so far. */
  readonly cpuMillis: number
  /** TCP connections the mirrors have accepted so far (0 for the gateway). */
  readonly connections: number
}

export interface ServiceProcess {
  readonly urls: ReadonlyArray<string>
  readonly stats: () => Promise<ServiceStats>
  readonly close: () => Promise<void>
}

/** Serialisable mirror options (no reply function). */
export type MirrorOptions = Omit<MirrorServer.MirrorServerOptions, "reply"> & { readonly reply?: string }

/** A corpus of `corpus.ts` that a replay server sends (built in its process: too large for an argument). */
export interface ReplayCorpus {
  readonly corpus: "tool-calls" | "reasoning"
  readonly chunks: number
  /** SSE events per socket write, as the mirror's `batch`. */
  readonly batch: number
}

type Spec =
  | { readonly kind: "mirrors"; readonly options: MirrorOptions | ReadonlyArray<MirrorOptions>; readonly count: number }
  | { readonly kind: "gateway"; readonly upstream: string }
  | ({ readonly kind: "replay" } & ReplayCorpus)

type Request = { readonly type: "stats"; readonly id: number }
type Reply =
  | { readonly type: "ready"; readonly urls: ReadonlyArray<string> }
  | { readonly type: "stats"; readonly id: number; readonly stats: ServiceStats }
  | { readonly type: "error"; readonly message: string }

const childArg = "--service-child"

const start = (spec: Spec): Promise<ServiceProcess> =>
  new Promise((resolve, reject) => {
    // EASYCHAT_BENCH_CPU_PROF=<dir> profiles the servers too (written when they exit).
    const profileDir = process.env.EASYCHAT_BENCH_CPU_PROF
    const child: ChildProcess = fork(new URL(import.meta.url), [childArg, JSON.stringify(spec)], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      execArgv: profileDir
        ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${spec.kind}-${Date.now()}.cpuprofile`]
        : []
    })
    const pending = new Map<number, (stats: ServiceStats) => void>()
    let nextId = 0
    child.once("exit", (code) => reject(new Error(`the ${spec.kind} process exited (${code}) before it was ready`)))
    child.on("message", (message: Reply) => {
      if (message.type === "error") reject(new Error(`the ${spec.kind} process failed: ${message.message}`))
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

/** Starts mirrors in a child process: `count` alike, or one per entry of a list. */
export const startMirrors = (
  options: MirrorOptions | ReadonlyArray<MirrorOptions>,
  count = 1
): Promise<ServiceProcess> => start({ kind: "mirrors", options, count })

/** Starts `easychat gateway` (`Gateway.start`, Node transport) in front of one upstream server. */
export const startGateway = (upstream: string): Promise<ServiceProcess> => start({ kind: "gateway", upstream })

/**
 * Starts a server that answers every POST with one corpus's SSE bytes,
 * `batch` events per write. The `MirrorServer` would parse every chunk of a
 * fixture per request (for its fault injection) before its first write: with
 * 20,000 chunks, that would be counted in every client's time.
 */
export const startReplay = (corpus: ReplayCorpus): Promise<ServiceProcess> => start({ kind: "replay", ...corpus })

const replayServer = async (spec: ReplayCorpus) => {
  const http = await import("node:http")
  const { reasoningCorpus, toolCallCorpus } = await import("./corpus.js")
  const { text } = (spec.corpus === "tool-calls" ? toolCallCorpus : reasoningCorpus)(spec.chunks)
  const events = text.split(/(?<=\n\n)/)
  const writes: Array<Buffer> = []
  for (let i = 0; i < events.length; i += spec.batch) writes.push(Buffer.from(events.slice(i, i + spec.batch).join("")))
  let connections = 0
  const server = http.createServer((req, res) => {
    req.resume()
    req.once("end", async () => {
      if (req.method !== "POST") {
        res.writeHead(404).end()
        return
      }
      let closed = false
      res.once("close", () => {
        closed = true
      })
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache" })
      res.flushHeaders()
      for (const bytes of writes) {
        if (closed) return
        if (!res.write(bytes)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              res.off("drain", done)
              res.off("close", done)
              resolve()
            }
            res.on("drain", done)
            res.on("close", done)
          })
        }
      }
      res.end()
    })
  })
  server.on("connection", () => connections++)
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as { port: number }
  return {
    urls: [`http://127.0.0.1:${port}`],
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
    connections: () => connections
  }
}

const runChild = async (spec: Spec) => {
  const send = (reply: Reply) => process.send!(reply)
  try {
    let urls: ReadonlyArray<string>
    let close: () => Promise<void>
    let connections = () => 0
    if (spec.kind === "mirrors") {
      const { MirrorPool } = await import("@easychat/testkit")
      const pool = Array.isArray(spec.options)
        ? await MirrorPool.start(spec.options as ReadonlyArray<MirrorOptions>)
        : await MirrorPool.start(spec.count, spec.options as MirrorOptions)
      urls = pool.urls
      close = pool.close
      connections = () => pool.servers.reduce((sum, server) => sum + server.connections.length, 0)
    } else if (spec.kind === "replay") {
      const replay = await replayServer(spec)
      urls = replay.urls
      close = replay.close
      connections = replay.connections
    } else {
      const { Gateway } = await import("@easychat/gateway")
      const { Presets } = await import("@easychat/core")
      const gateway = await Gateway.start({ port: 0, chat: Presets.openAICompatible(spec.upstream) })
      urls = [gateway.url]
      close = gateway.close
    }
    process.on("message", (message: Request) => {
      if (message.type === "stats") {
        const usage = process.cpuUsage()
        send({
          type: "stats",
          id: message.id,
          stats: { cpuMillis: (usage.user + usage.system) / 1000, connections: connections() }
        })
      }
    })
    // The parent going away, for any reason, ends the servers too; a normal exit lets --cpu-prof write its file.
    const stop = () => {
      void close().finally(() => process.exit(0))
    }
    process.on("disconnect", stop)
    process.on("SIGTERM", stop)
    send({ type: "ready", urls })
  } catch (error) {
    send({ type: "error", message: String(error) })
    process.exit(1)
  }
}

if (process.argv[2] === childArg) void runChild(JSON.parse(process.argv[3]!))
