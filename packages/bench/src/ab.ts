/**
 * A/B of two builds of core on the plain-text stream, in one run: section 2's
 * decode path, section 3's end-to-end clients and section 4's time to first
 * delta back to back, the two builds side by side in the same interleaved
 * rounds, so that the machine's drift lands on both.
 *
 * usage: node --expose-gc dist/ab.js <checkout A> <checkout B> [--quick]
 *
 * A checkout is a directory with this repository installed and built
 * (`packages/core`, `transport-node`, `transport-fetch`), such as a
 * `git worktree` of another commit. Each side runs its own build with its own
 * `effect`, through its own copy of the bench's client and decode-loop
 * modules (imported under a query string), so that the two share no
 * function and so no type feedback.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import type * as ClientsModule from "./clients.js"
import * as Clients from "./clients.js"
import type * as CoreStepModule from "./coreStep.js"
import { chatCorpusOfSize, replyText, split } from "./corpus.js"
import { openai as openaiDecode } from "./deltas.js"
import { throughput, timeEach } from "./harness.js"
import { bytesLabel, fmt, machine, median, ratio, table } from "./report.js"
import { sample, timed } from "./rounds.js"
import * as Services from "./services.js"

interface Side {
  readonly label: string
  readonly build: ClientsModule.OursBuild
  readonly clients: typeof ClientsModule
  readonly decodeLoop: (chunks: ReadonlyArray<Uint8Array>) => { deltas: number; characters: number }
}

const commitOf = (root: string): string => {
  try {
    return execFileSync("git", ["-C", root, "log", "-1", "--format=%h %s"], { encoding: "utf8" }).trim()
  } catch {
    return "an unknown commit"
  }
}

const load = async (root: string, tag: string): Promise<Side> => {
  const file = (...parts: Array<string>) => pathToFileURL(path.join(root, ...parts)).href
  const core = await import(file("packages/core/dist/index.js"))
  // Where the chunk decoder lives in the commit under test.
  const reply = fs.existsSync(path.join(root, "packages/core/dist/internal/chunk.js"))
    ? await import(file("packages/core/dist/internal/chunk.js"))
    : await import(file("packages/core/dist/internal/reply.js"))
  const effectDir = fs.realpathSync(path.join(root, "packages/core/node_modules/effect"))
  const effect = (name: string) => import(pathToFileURL(path.join(effectDir, "dist/esm", `${name}.js`)).href)
  const build: ClientsModule.OursBuild = {
    Presets: core.Presets,
    EasyChat: core.EasyChat,
    node: await import(file("packages/transport-node/dist/index.js")),
    fetch: await import(file("packages/transport-fetch/dist/index.js")),
    Effect: await effect("Effect"),
    Layer: await effect("Layer"),
    ManagedRuntime: await effect("ManagedRuntime"),
    Stream: await effect("Stream")
  }
  const clients: typeof ClientsModule = await import(new URL(`./clients.js?${tag}`, import.meta.url).href)
  const coreStep: typeof CoreStepModule = await import(new URL(`./coreStep.js?${tag}`, import.meta.url).href)
  const decodeLoop = coreStep.decodeLoopOf(
    coreStep.decodePathOf({ makeDecoder: core.Sse.makeDecoder, stepOf: reply.stepOf })
  )
  return { label: `${root}, at ${commitOf(root)}`, build, clients, decodeLoop }
}

const decodeRows = async (quick: boolean, a: Side, b: Side): Promise<string> => {
  const config = { quick }
  // Section 2's corpora and read sizes.
  const maxBytes = quick ? 16 * 1024 : 512 * 1024
  const maxReads = quick ? 1024 : 8192
  const rows: Array<Array<string>> = []
  for (const size of quick ? [1, 64, 65536] : [1, 8, 64, 1024, 65536]) {
    const corpus = chatCorpusOfSize(Math.min(maxBytes, size * maxReads))
    const chunks = split(corpus.bytes, size)
    const paths = [a.decodeLoop, b.decodeLoop, openaiDecode]
    for (const path of paths) {
      const got = await path(chunks)
      if (got.deltas !== corpus.deltas || got.characters !== corpus.characters) {
        throw new Error(`a decode path gave ${got.deltas} deltas at ${size} B reads, expected ${corpus.deltas}`)
      }
    }
    const [ta, tb, to] = (
      await timeEach(
        config,
        paths.map((path) => () => path(chunks))
      )
    ).map((t) => throughput(corpus.bytes.length, t.median)) as [number, number, number]
    rows.push([bytesLabel(size), fmt(ta), fmt(tb), ratio(ta / tb), fmt(to), ratio(ta / to), ratio(tb / to)])
  }
  return table(["read size", "A", "B", "A / B", "openai", "A / openai", "B / openai"], rows)
}

const e2eRows = async (quick: boolean, a: Side, b: Side): Promise<string> => {
  const deltas = quick ? 1000 : 20000
  const mirror = await Services.startMirrors({ reply: replyText, chunkSize: 4, deltas, batch: 200, usage: "never" })
  const urls = mirror.urls
  const ours = (side: Side) => [
    side.clients.oursFacade("node", urls, side.build),
    side.clients.oursStream("node", urls, side.build),
    side.clients.oursFacade("fetch", urls, side.build),
    side.clients.oursStream("fetch", urls, side.build)
  ]
  const [oursA, oursB] = [ours(a), ours(b)]
  const others = [Clients.openai(urls), Clients.rawUndici(urls)]
  const clients = [...oursA, ...oursB, ...others]
  const results = await sample(clients, mirror, quick ? 2 : 12, quick ? 1 : 3, deltas)
  await Promise.all(clients.map((client) => client.close()))
  await mirror.close()
  const of = (client: Clients.StreamClient) => results.find((r) => r.client === client)!
  const rate = (client: Clients.StreamClient) => deltas / (median(of(client).wall) / 1000)
  const cpu = (client: Clients.StreamClient) => median(of(client).cpu) / (deltas / 1000)
  const openai = others[0]!
  const rows = oursA.map((ca, i) => {
    const cb = oursB[i]!
    return [
      ca.name,
      fmt(rate(ca)),
      fmt(rate(cb)),
      ratio(rate(ca) / rate(cb)),
      fmt(cpu(ca), 2),
      fmt(cpu(cb), 2),
      ratio(rate(ca) / rate(openai)),
      ratio(rate(cb) / rate(openai))
    ]
  })
  for (const other of others) rows.push([other.name, fmt(rate(other)), "", "", fmt(cpu(other), 2), "", "", ""])
  return [
    `${fmt(deltas)} content chunks from a \`MirrorServer\` (section 3's stream), every client once per round in turn; ` +
      `median of ${quick ? 2 : 12} rounds after ${quick ? 1 : 3} warm-up(s). chunks/s (wall) and CPU ms per 1,000 chunks:`,
    "",
    table(["client", "A chunks/s", "B chunks/s", "A / B", "A CPU", "B CPU", "A vs openai", "B vs openai"], rows)
  ].join("\n")
}

const ttfdRows = async (quick: boolean, a: Side, b: Side): Promise<string> => {
  const deltas = 20
  // Section 4's mirror: one event per socket write, so the first delta travels alone.
  const mirror = await Services.startMirrors({ reply: replyText, chunkSize: 4, deltas, batch: 1, usage: "never" })
  const urls = mirror.urls
  const clients = [
    Clients.rawUndici(urls),
    a.clients.oursFacade("node", urls, a.build),
    b.clients.oursFacade("node", urls, b.build),
    a.clients.oursStream("node", urls, a.build),
    b.clients.oursStream("node", urls, b.build)
  ]
  const names = ["raw undici", "A facade (node)", "B facade (node)", "A Effect Stream (node)", "B Effect Stream (node)"]
  const rounds = quick ? 5 : 300
  const warmup = quick ? 2 : 30
  const firsts = clients.map((): Array<number> => [])
  await sample(
    clients.map((client, i) => timed(client, firsts[i]!)),
    mirror,
    rounds,
    warmup,
    deltas,
    true
  )
  await Promise.all(clients.map((client) => client.close()))
  await mirror.close()
  const ttfd = (i: number) => median(firsts[i]!.slice(warmup))
  const rows = names.map((name, i) => [
    name,
    fmt(ttfd(i), 3),
    i === 0 ? "" : `${ttfd(i) - ttfd(0) >= 0 ? "+" : ""}${fmt(ttfd(i) - ttfd(0), 3)}`
  ])
  return [
    `A ${deltas}-delta reply, one event per socket write, on a warm connection, back to back; median of ${rounds} rounds after ${warmup} warm-up. ms:`,
    "",
    table(["client", "time to first delta", "added to raw undici"], rows)
  ].join("\n")
}

const main = async () => {
  const args = process.argv.slice(2)
  const quick = args.includes("--quick")
  const [rootA, rootB] = args.filter((arg) => arg !== "--quick")
  if (rootA === undefined || rootB === undefined) {
    throw new Error("usage: node --expose-gc dist/ab.js <checkout A> <checkout B> [--quick]")
  }
  const a = await load(path.resolve(rootA), "A")
  const b = await load(path.resolve(rootB), "B")
  console.log(
    `# A/B of core's plain-text path${quick ? " (--quick)" : ""}\n\n${machine()}\n- A: ${a.label}\n- B: ${b.label}\n`
  )
  console.log(`## Decode path (section 2), MB of SSE per CPU second\n\n${await decodeRows(quick, a, b)}\n`)
  console.log(`## End to end over loopback (section 3)\n\n${await e2eRows(quick, a, b)}\n`)
  console.log(`## Time to first delta, back to back (section 4)\n\n${await ttfdRows(quick, a, b)}`)
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error))
    process.exit(1)
  }
)
