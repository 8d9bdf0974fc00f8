// Section 7: the openai client through `easychat gateway`, against the same client talking to the mirror directly.
import * as Clients from "./clients.js"
import { replyText } from "./corpus.js"
import { fmt, mark, median, type RunConfig, ratio, type SectionResult, type TargetResult, table } from "./report.js"
import { type Sampled, sample, timed } from "./rounds.js"
import * as Services from "./services.js"

export const run = async (config: RunConfig): Promise<SectionResult> => {
  const longDeltas = config.quick ? 500 : 20000
  const shortDeltas = 20
  const mirrors = await Services.startMirrors([
    { reply: replyText, chunkSize: 4, deltas: longDeltas, batch: 200, usage: "never" },
    // One event per socket write for the first-delta figure, as a model streams tokens.
    { reply: replyText, chunkSize: 4, deltas: shortDeltas, batch: 1, usage: "never" }
  ])
  const [longUrl, shortUrl] = mirrors.urls as [string, string]
  const longGateway = await Services.startGateway(longUrl)
  const shortGateway = await Services.startGateway(shortUrl)

  const named = (client: Clients.StreamClient, name: string): Clients.StreamClient => ({ ...client, name })
  const direct = named(Clients.openai([longUrl]), "openai client → mirror")
  const through = named(Clients.openai([longGateway.urls[0]!]), "openai client → easychat gateway → mirror")
  const rounds = config.quick ? 2 : 12
  const warmup = config.quick ? 1 : 3
  const g0 = await longGateway.stats()
  const throughput = await sample([direct, through], mirrors, rounds, warmup, longDeltas)
  const g1 = await longGateway.stats()

  const ttfdRounds = config.quick ? 5 : 300
  const ttfdWarmup = config.quick ? 2 : 30
  // Twice, as section 4: back to back (a server's next request: the figure the target is for), then after a
  // full GC and a 5 ms pause before each request (every process idle, the code run cold: reported).
  const conditions = [true, false].map((backToBack) => ({
    backToBack,
    direct: [] as Array<number>,
    through: [] as Array<number>
  }))
  for (const condition of conditions) {
    await sample(
      [
        timed(named(Clients.openai([shortUrl]), direct.name), condition.direct),
        timed(named(Clients.openai([shortGateway.urls[0]!]), through.name), condition.through)
      ],
      mirrors,
      ttfdRounds,
      ttfdWarmup,
      shortDeltas,
      condition.backToBack
    )
  }
  await Promise.all([longGateway.close(), shortGateway.close()])
  await mirrors.close()

  const rate = (r: Sampled) => longDeltas / (median(r.wall) / 1000)
  const [d, t] = throughput as [Sampled, Sampled]
  // Only the measured rounds: drop the warm-up ones.
  const firsts = conditions.map((c) => ({
    direct: median(c.direct.slice(ttfdWarmup)),
    through: median(c.through.slice(ttfdWarmup))
  }))
  const backToBack = firsts[0]!
  // Every round, warm-up included, sent one stream through the gateway.
  const gatewayCpuPer1000 = (g1.cpuMillis - g0.cpuMillis) / (rounds + warmup) / (longDeltas / 1000)
  const rows = [
    [d.client.name, fmt(rate(d)), fmt(median(d.wall)), ...firsts.map((f) => fmt(f.direct, 3)), "", "", ""],
    [
      t.client.name,
      fmt(rate(t)),
      fmt(median(t.wall)),
      ...firsts.map((f) => fmt(f.through, 3)),
      ratio(rate(t) / rate(d)),
      ...firsts.map((f) => `+${fmt(f.through - f.direct, 2)}`)
    ]
  ]
  const added = backToBack.through - backToBack.direct
  const targets: Array<TargetResult> = [
    {
      what: "gateway: openai client through the gateway, chunks/s vs direct",
      target: "≥ 0.9×",
      reached: ratio(rate(t) / rate(d)),
      met: rate(t) / rate(d) >= 0.9
    },
    {
      what: "gateway: time to first delta added by the gateway, back to back, median",
      target: "≤ 2 ms",
      reached: `${fmt(added, 2)} ms`,
      met: added <= 2
    }
  ]
  const markdown = [
    "The `openai` client (this process) streams from a `MirrorServer` (a child process) directly, or through " +
      "`Gateway.start({ chat: Presets.openAICompatible(mirror) })` (the Node transport) in another child process. " +
      `Throughput: ${fmt(longDeltas)}-delta streams (200 events per mirror write), ${rounds} rounds after ` +
      `${warmup} warm-up; first delta: ${shortDeltas}-delta streams (one event per write), ` +
      `${ttfdRounds} rounds after ${ttfdWarmup}, keep-alive connections: back to back (the target's figure), then ` +
      "with a full GC of this process and a 5 ms pause before each request (reported). Medians. " +
      `The gateway process used ${fmt(gatewayCpuPer1000)} ms of CPU per 1,000 chunks it forwarded.`,
    "",
    table(
      [
        "path",
        "chunks/s",
        "ms per stream",
        "first delta, back to back (ms)",
        "first delta, after a GC (ms)",
        "chunks/s vs direct",
        "added, back to back",
        "added, after a GC"
      ],
      rows
    ),
    "",
    table(
      ["target", "reached", ""],
      targets.map((x) => [`${x.what.replace(/^gateway: /, "")} ${x.target}`, x.reached, mark(x.met)])
    )
  ].join("\n")
  return { title: "7. The gateway", markdown, targets }
}
