/**
 * Where the gateway's first delta goes (section 7's "first delta added"), step by step, against a bare
 * `node:http` + undici proxy: the floor of any gateway. Back to back, 20-delta streams, one event per
 * mirror write, section 3's raw undici client; each server in a child process that timestamps its own steps from the
 * outside (Node's `request` event, undici's diagnostics channels, the response's writes): nothing in the
 * gateway is changed to be measured. Medians, ms.
 *
 * usage: node dist/gatewaySteps.js [rounds=300]
 */
import { type ChildProcess, fork } from "node:child_process"
import * as diagnostics from "node:diagnostics_channel"
import * as http from "node:http"
import * as undici from "undici"
import * as Clients from "./clients.js"
import { replyText } from "./corpus.js"
import { fmt, median, table } from "./report.js"
import { sample, timed } from "./rounds.js"
import * as Services from "./services.js"

type Kind = "gateway" | "proxy"
const childArg = "--steps-child"

/** Each step, ms after the request reached the server (Node's `request` event). */
const STEPS = [
  ["upstream request made", "create"],
  ["its headers sent", "sent"],
  ["the upstream's headers", "headers"],
  ["the answer's headers (`writeHead`)", "writeHead"],
  ["first write of the body", "write1"],
  ["second write", "write2"],
  ["last byte (`end`)", "end"]
] as const
type Step = (typeof STEPS)[number][1]
type Row = Partial<Record<Step, number>> & { writes: number }

const runChild = async (kind: Kind, upstream: string) => {
  const rows: Array<Row> = []
  let current: (Row & { readonly t0: number }) | undefined
  const mark = (step: Step) => {
    if (current !== undefined && current[step] === undefined) current[step] = performance.now() - current.t0
  }
  const emit = http.Server.prototype.emit as (this: http.Server, event: string, ...args: Array<unknown>) => boolean
  http.Server.prototype.emit = function (this: http.Server, event: string, ...args: Array<unknown>) {
    if (event === "request") {
      current = { t0: performance.now(), writes: 0 }
      rows.push(current)
      ;(args[1] as { steps?: unknown }).steps = current
    }
    return emit.call(this, event, ...args)
  } as typeof http.Server.prototype.emit
  diagnostics.subscribe("undici:request:create", () => mark("create"))
  diagnostics.subscribe("undici:client:sendHeaders", () => mark("sent"))
  diagnostics.subscribe("undici:request:headers", () => mark("headers"))
  const response = http.ServerResponse.prototype
  const [writeHead, write, end] = [response.writeHead, response.write, response.end]
  const own = (res: unknown) => (res as { steps?: Row & { t0: number } }).steps
  response.writeHead = function (this: http.ServerResponse, ...args: Array<unknown>) {
    const row = own(this)
    if (row !== undefined && row.writeHead === undefined) row.writeHead = performance.now() - row.t0
    return (writeHead as (...a: Array<unknown>) => http.ServerResponse).apply(this, args)
  } as typeof writeHead
  response.write = function (this: http.ServerResponse, ...args: Array<unknown>) {
    const row = own(this)
    if (row !== undefined) {
      const at = performance.now() - row.t0
      row.writes++
      if (row.writes === 1) row.write1 = at
      if (row.writes === 2) row.write2 = at
    }
    return (write as (...a: Array<unknown>) => boolean).apply(this, args)
  } as typeof write
  response.end = function (this: http.ServerResponse, ...args: Array<unknown>) {
    const row = own(this)
    if (row !== undefined && row.end === undefined) row.end = performance.now() - row.t0
    return (end as (...a: Array<unknown>) => http.ServerResponse).apply(this, args)
  } as typeof end

  let url: string
  if (kind === "gateway") {
    const { Gateway } = await import("@easychat/gateway")
    const { Presets } = await import("@easychat/core")
    url = (await Gateway.start({ port: 0, chat: Presets.openAICompatible(upstream) })).url
  } else {
    // The floor: read the body, send it on, write each read of the answer as it comes.
    const server = http.createServer((req, res) => {
      const parts: Array<Buffer> = []
      req.on("data", (part: Buffer) => parts.push(part))
      req.on("end", async () => {
        const up = await undici.request(`${upstream}${req.url}`, {
          method: "POST",
          headers: { "content-type": "application/json", accept: "text/event-stream" },
          body: Buffer.concat(parts)
        })
        res.writeHead(up.statusCode, { "content-type": String(up.headers["content-type"]) })
        res.flushHeaders()
        for await (const chunk of up.body) res.write(chunk)
        res.end()
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  }
  process.on("message", (skip: number) => {
    const kept = rows.slice(skip)
    const steps = Object.fromEntries(
      STEPS.map(([, step]) => [step, median(kept.flatMap((row) => (row[step] === undefined ? [] : [row[step]!])))])
    )
    process.send!({ steps, writes: median(kept.map((row) => row.writes)) })
  })
  process.on("disconnect", () => process.exit(0))
  process.send!({ url })
}

const startChild = (kind: Kind, upstream: string) =>
  new Promise<{ readonly child: ChildProcess; readonly url: string }>((resolve) => {
    const child = fork(new URL(import.meta.url), [childArg, kind, upstream], {
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    child.once("message", (message: { url: string }) => resolve({ child, url: message.url }))
  })

const main = async () => {
  const rounds = Number(process.argv[2] ?? 300)
  const warmup = 30
  const deltas = 20
  const mirror = await Services.startMirrors({ reply: replyText, chunkSize: 4, deltas, batch: 1, usage: "never" })
  const upstream = mirror.urls[0]!
  const servers = { gateway: await startChild("gateway", upstream), proxy: await startChild("proxy", upstream) }
  const firsts: Record<"direct" | Kind, Array<number>> = { direct: [], gateway: [], proxy: [] }
  const client = (into: Array<number>, url: string) => timed(Clients.rawUndici([url]), into)
  await sample(
    [
      client(firsts.direct, upstream),
      client(firsts.gateway, servers.gateway.url),
      client(firsts.proxy, servers.proxy.url)
    ],
    mirror,
    rounds,
    warmup,
    deltas,
    true
  )
  const report = (kind: Kind) =>
    new Promise<{ steps: Record<Step, number>; writes: number }>((resolve) => {
      servers[kind].child.once("message", resolve)
      servers[kind].child.send(warmup)
    })
  const steps = { gateway: await report("gateway"), proxy: await report("proxy") }
  for (const { child } of Object.values(servers)) child.kill()
  await mirror.close()

  // Only the measured rounds: drop the warm-up ones.
  const first = (of: Array<number>) => median(of.slice(warmup))
  const direct = first(firsts.direct)
  const row = (name: string, of: (kind: Kind) => string) => [name, of("gateway"), of("proxy")]
  console.log(
    [
      `# The gateway's first delta, step by step (${rounds} back-to-back rounds after ${warmup}; medians, ms)`,
      "",
      table(
        ["step", "easychat gateway", "bare node:http + undici proxy"],
        [
          row("client: first delta added to a direct call", (k) => `+${fmt(first(firsts[k]) - direct, 2)}`),
          ...STEPS.map(([name, step]) => row(`server: ${name}`, (k) => fmt(steps[k].steps[step], 3))),
          row("server: writes per answer", (k) => String(steps[k].writes))
        ]
      ),
      "",
      `Direct (the client to the mirror): first delta ${fmt(direct, 3)} ms. Server steps count from the request's arrival.`
    ].join("\n")
  )
}

if (process.argv[2] === childArg) void runChild(process.argv[3] as Kind, process.argv[4]!)
else await main()
