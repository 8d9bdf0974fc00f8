// Section 4: time to first delta on a warm (keep-alive) connection.

import * as Clients from "./clients.js"
import { replyText } from "./corpus.js"
import { fmt, mark, median, type RunConfig, type SectionResult, type TargetResult, table } from "./report.js"
import { type Sampled, sample, timed } from "./rounds.js"
import * as Services from "./services.js"

export const run = async (config: RunConfig): Promise<SectionResult> => {
  const deltas = 20
  // One event per socket write, as a model streams tokens: the first delta travels alone.
  const mirror = await Services.startMirrors({ reply: replyText, chunkSize: 4, deltas, batch: 1, usage: "never" })
  const urls = mirror.urls
  const clients = [
    Clients.rawUndici(urls),
    Clients.oursFacade("node", urls),
    Clients.oursStream("node", urls),
    Clients.oursFacade("fetch", urls),
    Clients.openai(urls),
    // Rungs between raw undici and the engine, to see what each layer adds per request.
    Clients.coreOnUndici(urls),
    Clients.coreOnPlatform(urls)
  ]
  const rounds = config.quick ? 5 : 300
  const warmup = config.quick ? 2 : 30
  // Twice: after a full GC and a pause before each request (so that no client pays for another's garbage; the
  // code runs cold, as in a chat app when its user asks the next question), then back to back (a server's
  // next request). `first` is taken inside each client when the first content delta reaches
  // the caller's loop.
  const conditions = [
    { name: "after a full GC and a 5 ms pause", backToBack: false },
    { name: "back to back", backToBack: true }
  ].map(({ name, backToBack }) => ({ name, backToBack, firsts: clients.map((): Array<number> => []) }))
  const sampled: Array<Array<Sampled>> = []
  for (const condition of conditions) {
    const timedClients = clients.map((client, i) => timed(client, condition.firsts[i]!))
    sampled.push(await sample(timedClients, mirror, rounds, warmup, deltas, condition.backToBack))
  }
  await Promise.all(clients.map((client) => client.close()))
  await mirror.close()

  const targets: Array<TargetResult> = []
  const tables = conditions.map((condition, c) => {
    // Only the measured rounds: drop the warm-up ones.
    const ttfd = (i: number) => median(condition.firsts[i]!.slice(warmup))
    const raw = ttfd(0)
    const rows = sampled[c]!.map((r, i) => [
      r.client.name,
      fmt(ttfd(i), 3),
      i === 0 ? "" : `${ttfd(i) - raw >= 0 ? "+" : ""}${fmt(ttfd(i) - raw, 2)}`,
      fmt(median(r.wall), 3),
      fmt(median(r.cpu), 3),
      String(r.connections)
    ])
    for (const [i, what] of [
      [1, "Promise facade"],
      [2, "Effect Stream"]
    ] as const) {
      const added = ttfd(i) - raw
      targets.push({
        what: `time to first delta ${condition.name}, ours (${what}, node transport) minus raw undici, median`,
        target: "≤ 1 ms",
        reached: `${fmt(added, 2)} ms`,
        met: added <= 1
      })
    }
    return [
      `**${condition.name[0]!.toUpperCase()}${condition.name.slice(1)}**`,
      "",
      table(
        ["client", "time to first delta", "added vs raw undici", "whole reply", "CPU per request", "connections"],
        rows
      )
    ].join("\n")
  })
  const markdown = [
    `A ${deltas}-delta reply, one event per socket write, from a \`MirrorServer\` in a child process. ` +
      `Each client runs once per round, in turn, ${warmup} warm-up rounds then ${rounds} measured: every request ` +
      'after the first reuses a keep-alive connection (the "connections" column counts new ones in the measured rounds). ' +
      "Twice: with a full GC and a 5 ms pause before each request, so that no client pays for another's garbage " +
      "(the code then runs cold, as in a chat app when its user asks the next question), then back to back " +
      "(a server's next request; only the mirror's statistics call between two). " +
      "Time to first delta: from the call until the first content delta reaches the caller's loop. CPU: this process, per request. Medians, ms.",
    "",
    tables.join("\n\n"),
    "",
    table(
      ["target", "reached", ""],
      targets.map((t) => [`${t.what} ${t.target}`, t.reached, mark(t.met)])
    )
  ].join("\n")
  return { title: "4. Time to first delta, warm connection", markdown, targets }
}
