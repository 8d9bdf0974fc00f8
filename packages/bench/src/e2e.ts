// Section 3: end to end over loopback against a MirrorServer in a child process.

import * as Clients from "./clients.js"
import { replyText } from "./corpus.js"
import { fmt, mark, median, type RunConfig, ratio, type SectionResult, type TargetResult, table } from "./report.js"
import { type Sampled, sample } from "./rounds.js"
import * as Services from "./services.js"

export const run = async (config: RunConfig): Promise<SectionResult> => {
  const deltas = config.quick ? 1000 : 20000
  // The mirror writes 200 events per socket write: one write per event would make
  // the mirror, not the clients, the bottleneck (see the ceiling row).
  const batch = 200
  const mirror = await Services.startMirrors({ reply: replyText, chunkSize: 4, deltas, batch, usage: "never" })
  const urls = mirror.urls
  const clients = [
    Clients.oursFacade("node", urls),
    Clients.oursStream("node", urls),
    Clients.oursFacade("fetch", urls),
    Clients.oursStream("fetch", urls),
    Clients.openai(urls),
    Clients.rawUndici(urls),
    Clients.drainOnly(urls, deltas)
  ]
  // The rungs from raw undici up to the facade, to see what each layer costs.
  const ladder = [
    Clients.coreOnUndici(urls),
    Clients.coreOnPlatform(urls),
    Clients.oursDeltas(urls),
    Clients.coreOnFetch(urls)
  ]
  const rounds = config.quick ? 2 : 12
  const warmup = config.quick ? 1 : 3
  const all = await sample([...clients, ...ladder], mirror, rounds, warmup, deltas)
  const results = all.slice(0, clients.length)
  await Promise.all([...clients, ...ladder].map((client) => client.close()))
  await mirror.close()

  const rate = (r: Sampled) => deltas / (median(r.wall) / 1000)
  const cpuPer1000 = (r: Sampled) => median(r.cpu) / (deltas / 1000)
  const find = (prefix: string) => results.find((r) => r.client.name.startsWith(prefix))!
  const openai = find("openai")
  const raw = find("raw undici")
  const ceiling = results[results.length - 1]!
  const rows = results.map((r) => [
    r.client.name,
    fmt(rate(r)),
    fmt(median(r.wall)),
    fmt(cpuPer1000(r)),
    r === ceiling ? "" : ratio(rate(r) / rate(openai)),
    r === ceiling ? "" : ratio(cpuPer1000(r) / cpuPer1000(raw)),
    String(r.connections)
  ])

  const targets: Array<TargetResult> = []
  const target = (what: string, r: Sampled, need: number) => {
    const reached = rate(r) / rate(openai)
    targets.push({
      what: `e2e: ${what} vs openai client, chunks/s`,
      target: `≥ ${need}×`,
      reached: ratio(reached),
      met: reached >= need
    })
  }
  const facade = find("ours, Promise facade, node")
  target("ours, Promise facade, node transport", facade, 2.5)
  const cpuRatio = cpuPer1000(facade) / cpuPer1000(raw)
  targets.push({
    what: "e2e: ours, Promise facade, node transport, CPU per chunk vs raw undici + eventsource-parser",
    target: "≤ 1.3×",
    reached: ratio(cpuRatio),
    met: cpuRatio <= 1.3
  })
  target("ours, Effect Stream, node transport", find("ours, Effect Stream, node"), 2.2)
  target("ours, Promise facade, fetch transport", find("ours, Promise facade, fetch"), 2.0)
  target("ours, Effect Stream, fetch transport", find("ours, Effect Stream, fetch"), 2.0)
  const rawVsOpenai = rate(raw) / rate(openai)
  const byName = (name: string) => all.find((r) => r.client.name === name)!
  const [onUndici, onPlatform, deltasFacade, onFetch] = ladder.map((c) => byName(c.name)) as [
    Sampled,
    Sampled,
    Sampled,
    Sampled
  ]
  const rungs: ReadonlyArray<Sampled> = [
    raw,
    onUndici,
    onPlatform,
    find("ours, Effect Stream, node"),
    deltasFacade,
    facade
  ]
  const ladderOf = (rungs: ReadonlyArray<Sampled>) =>
    rungs.map((r, i) => [
      r.client.name,
      fmt(rate(r)),
      fmt(cpuPer1000(r)),
      i === 0
        ? ""
        : `${cpuPer1000(r) - cpuPer1000(rungs[i - 1]!) >= 0 ? "+" : ""}${fmt(cpuPer1000(r) - cpuPer1000(rungs[i - 1]!), 2)}`,
      ratio(rate(r) / rate(openai))
    ])
  const fetchRungs = [onFetch, find("ours, Promise facade, fetch"), find("ours, Effect Stream, fetch")]

  const markdown = [
    `One stream of ${fmt(deltas)} content chunks (the mixed-script reply of section 1 cut into 4-character pieces, ` +
      `about 180 bytes per event) from a \`MirrorServer\` in a child process (${batch} events per socket write), ` +
      "over loopback, keep-alive connections. " +
      `Each client runs once per round, in turn; ${warmup} warm-up round(s), then the median of ` +
      `${rounds} rounds. CPU is \`process.cpuUsage\` of this process only (the client's); ` +
      `"connections" is how many TCP connections the mirror accepted during the measured rounds.`,
    "",
    table(
      [
        "client",
        "chunks/s",
        "ms per stream",
        "CPU ms per 1,000 chunks",
        "chunks/s vs openai",
        "CPU vs raw undici",
        "connections"
      ],
      rows
    ),
    "",
    `Raw undici + eventsource-parser reaches ${ratio(rawVsOpenai)} the openai client's chunks per second here.`,
    "",
    "Where ours spends its time: rungs from raw undici to the Promise facade, each adding one layer " +
      "(same rounds, same medians; the last column is the CPU each rung adds to the one above it):",
    "",
    table(["rung", "chunks/s", "CPU ms per 1,000 chunks", "CPU added", "chunks/s vs openai"], ladderOf(rungs)),
    "",
    "The same for the fetch transport, from core's decode path in a plain loop over Node's `fetch` " +
      "(`response.body.getReader()`, no Effect: the ceiling of any client on this `fetch`):",
    "",
    table(["rung", "chunks/s", "CPU ms per 1,000 chunks", "CPU added", "chunks/s vs openai"], ladderOf(fetchRungs)),
    "",
    table(
      ["target", "reached", ""],
      targets.map((t) => [`${t.what.replace(/^e2e: /, "")} ${t.target}`, t.reached, mark(t.met)])
    )
  ].join("\n")
  return { title: "3. End to end over loopback", markdown, targets }
}
