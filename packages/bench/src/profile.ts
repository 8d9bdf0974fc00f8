/**
 * Profiles one client on the end-to-end path with V8's CPU profiler (the one
 * `node --cpu-prof` drives), started after a warm-up so that module loading
 * and JIT compilation stay out of the figures.
 *
 * usage: node dist/profile.js <case>[:tool-calls|:reasoning] [streams=20] [deltas=20000] [out.cpuprofile]
 * cases: facade-node, stream-node, facade-fetch, stream-fetch, openai, raw;
 * with `:tool-calls` or `:reasoning`, the client of section 8 on that stream
 * (`deltas` chunks from a replay server; the facade iterates `streamDeltas`).
 */
import * as fs from "node:fs"
import * as inspector from "node:inspector"
import * as Clients from "./clients.js"
import { reasoningCorpus, replyText, toolCallCorpus } from "./corpus.js"
import { summarise } from "./cpuprof.js"
import { cpuMillis } from "./report.js"
import * as Services from "./services.js"

const cases: Record<string, (urls: ReadonlyArray<string>) => Clients.StreamClient> = {
  "facade-node": (urls) => Clients.oursFacade("node", urls),
  "stream-node": (urls) => Clients.oursStream("node", urls),
  "facade-fetch": (urls) => Clients.oursFacade("fetch", urls),
  "stream-fetch": (urls) => Clients.oursStream("fetch", urls),
  openai: (urls) => Clients.openai(urls),
  raw: (urls) => Clients.rawUndici(urls)
}

const tallyCases: Record<string, (urls: ReadonlyArray<string>) => Clients.StreamClient> = {
  "facade-node": (urls) => Clients.oursDeltasTally("node", urls),
  "stream-node": (urls) => Clients.oursStreamTally("node", urls),
  "facade-fetch": (urls) => Clients.oursDeltasTally("fetch", urls),
  "stream-fetch": (urls) => Clients.oursStreamTally("fetch", urls),
  openai: (urls) => Clients.openaiTally(urls),
  raw: (urls) => Clients.rawUndiciTally(urls)
}

const post = <A>(session: inspector.Session, method: string): Promise<A> =>
  new Promise((resolve, reject) =>
    session.post(method, (error, result) => (error ? reject(error) : resolve(result as A)))
  )

const main = async () => {
  const [arg = "", streamsArg = "20", deltasArg = "20000", out] = process.argv.slice(2)
  const [name = "", corpus] = arg.split(":")
  const make = corpus === undefined ? cases[name] : tallyCases[name]
  if (make === undefined || (corpus !== undefined && corpus !== "tool-calls" && corpus !== "reasoning")) {
    throw new Error(
      `usage: node dist/profile.js <${Object.keys(cases).join("|")}>[:tool-calls|:reasoning] [streams] [deltas] [out]`
    )
  }
  const streams = Number(streamsArg)
  const chunks = Number(deltasArg)
  const mirror =
    corpus === undefined
      ? await Services.startMirrors({
          reply: replyText,
          chunkSize: 4,
          deltas: chunks,
          batch: chunks > 100 ? 200 : 1,
          usage: "never"
        })
      : await Services.startReplay({ corpus, chunks, batch: chunks > 100 ? 200 : 1 })
  // The chunks of a replayed corpus that carry something (all but the role and finish chunks, at most).
  const deltas =
    corpus === undefined ? chunks : (corpus === "tool-calls" ? toolCallCorpus : reasoningCorpus)(chunks).expected.deltas
  const client = make(mirror.urls)
  for (let i = 0; i < 5; i++) await client.run()
  const session = new inspector.Session()
  session.connect()
  await post(session, "Profiler.enable")
  await post(session, "Profiler.start")
  const c0 = cpuMillis()
  const t0 = performance.now()
  for (let i = 0; i < streams; i++) {
    const got = await client.run()
    if (got.deltas !== deltas) throw new Error(`${client.name} received ${got.deltas} of ${deltas} deltas`)
  }
  const wall = performance.now() - t0
  const cpu = cpuMillis() - c0
  const { profile } = await post<{ profile: Parameters<typeof summarise>[0] }>(session, "Profiler.stop")
  session.disconnect()
  await client.close()
  await mirror.close()
  const file = out ?? `${arg.replace(":", "-")}.cpuprofile`
  fs.writeFileSync(file, JSON.stringify(profile))
  console.log(
    `${client.name}: ${streams} streams of ${deltas} deltas, ${(wall / streams).toFixed(1)} ms and ` +
      `${(cpu / streams).toFixed(1)} ms CPU per stream; profile in ${file}\n`
  )
  console.log(summarise(profile, 30))
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
