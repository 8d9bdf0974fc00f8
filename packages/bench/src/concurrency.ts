// Section 6: many simultaneous streams from one process against a pool of mirrors.
import * as Clients from "./clients.js"
import { replyText } from "./corpus.js"
import {
  cpuMillis,
  fmt,
  gc,
  mark,
  median,
  type RunConfig,
  ratio,
  type SectionResult,
  settle,
  type TargetResult,
  table
} from "./report.js"
import * as Services from "./services.js"

interface Outcome {
  readonly wall: number
  readonly cpu: number
  readonly complete: number
  readonly failed: number
  readonly incomplete: number
}

const burst = async (client: Clients.StreamClient, streams: number, deltas: number): Promise<Outcome> => {
  gc()
  await settle(20)
  const c0 = cpuMillis()
  const t0 = performance.now()
  const results = await Promise.allSettled(Array.from({ length: streams }, () => client.run()))
  const wall = performance.now() - t0
  const cpu = cpuMillis() - c0
  let complete = 0
  let failed = 0
  for (const result of results) {
    if (result.status === "rejected") failed++
    else if (result.value.deltas === deltas) complete++
  }
  return { wall, cpu, complete, failed, incomplete: streams - complete - failed }
}

export const run = async (config: RunConfig): Promise<SectionResult> => {
  const streams = config.quick ? 10 : 200
  const deltas = config.quick ? 100 : 2000
  const servers = 4
  const mirror = await Services.startMirrors(
    { reply: replyText, chunkSize: 4, deltas, batch: 200, usage: "never" },
    servers
  )
  const urls = mirror.urls
  const clients = [
    Clients.oursFacade("node", urls),
    Clients.oursStream("node", urls),
    Clients.oursFacade("fetch", urls),
    Clients.openai(urls),
    Clients.rawUndici(urls)
  ]
  const rounds = config.quick ? 1 : 5
  const outcomes = new Map<Clients.StreamClient, Array<Outcome>>(clients.map((c) => [c, []]))
  for (let round = 0; round < rounds + 1; round++) {
    for (const client of clients) {
      const outcome = await burst(client, streams, deltas)
      // The first round opens the connections and warms up.
      if (round > 0) outcomes.get(client)!.push(outcome)
    }
  }
  await Promise.all(clients.map((client) => client.close()))
  await mirror.close()

  const total = streams * deltas
  const rate = (c: Clients.StreamClient) => total / (median(outcomes.get(c)!.map((o) => o.wall)) / 1000)
  const openai = clients[3]!
  const rows = clients.map((c) => {
    const list = outcomes.get(c)!
    const sum = (f: (o: Outcome) => number) => list.reduce((s, o) => s + f(o), 0)
    return [
      c.name,
      `${sum((o) => o.complete)} / ${list.length * streams}`,
      String(sum((o) => o.failed) + sum((o) => o.incomplete)),
      fmt(rate(c)),
      fmt(median(list.map((o) => o.cpu)) / (total / 1000)),
      ratio(rate(c) / rate(openai))
    ]
  })
  const targets: Array<TargetResult> = []
  for (const c of clients.slice(0, 3)) {
    const list = outcomes.get(c)!
    const allComplete = list.every((o) => o.complete === streams)
    const vs = rate(c) / rate(openai)
    targets.push({
      what: `concurrency: ${c.name}, ${streams} streams, all complete and chunks/s vs openai`,
      target: "all complete, ≥ 2×",
      reached: `${allComplete ? "all complete" : "some incomplete"}, ${ratio(vs)}`,
      met: allComplete && vs >= 2
    })
  }
  const markdown = [
    `${streams} streams started at once from this process, each ${fmt(deltas)} content deltas, against ${servers} ` +
      `\`MirrorServer\`s in one child process (ours: \`servers\` = the 4 URLs, round-robin; the others rotate over ` +
      `one client or URL per mirror). Aggregate chunks/s = ${fmt(total)} deltas / wall time of the whole burst; ` +
      `one warm-up burst, then the median of ${rounds}. A stream is complete when it delivered all its deltas and ended without error.`,
    "",
    table(["client", "complete streams", "failed or short", "chunks/s", "CPU ms per 1,000 chunks", "vs openai"], rows),
    "",
    table(
      ["target", "reached", ""],
      targets.map((t) => [`${t.what.replace(/^concurrency: /, "")}: ${t.target}`, t.reached, mark(t.met)])
    )
  ].join("\n")
  return { title: `6. Concurrency: ${streams} simultaneous streams`, markdown, targets }
}
