// Section 8: streams that carry more than text (issue 19): parallel tool
// calls and reasoning, decoded by ours and by the openai client from the same
// bytes, in process and end to end over loopback.
import { Stream as OpenAIStream } from "openai/streaming"
import * as Clients from "./clients.js"
import { oursTallyLoop } from "./coreStep.js"
import { type RichCorpus, reasoningCorpus, split, toolCallCorpus } from "./corpus.js"
import { responseOf } from "./deltas.js"
import { timeEach } from "./harness.js"
import {
  bytesLabel,
  fmt,
  mark,
  median,
  type RunConfig,
  ratio,
  type SectionResult,
  type TargetResult,
  table
} from "./report.js"
import { type Sampled, sample } from "./rounds.js"
import * as Services from "./services.js"
import { emptyTally, sameTally, showTally, type Tally, tallyChunk } from "./tally.js"

/** The `openai` package's decoding of a chat completion stream (`Stream.fromSSEResponse`), over the same bytes. */
const openai = async (chunks: ReadonlyArray<Uint8Array>): Promise<Tally> => {
  const tally = emptyTally()
  const stream = OpenAIStream.fromSSEResponse<any>(responseOf(chunks), new AbortController())
  for await (const chunk of stream) tallyChunk(tally, chunk)
  return tally
}

/** The floor: streaming `TextDecoder`, split on blank lines, `JSON.parse` each `data: ` payload. */
const floor = (chunks: ReadonlyArray<Uint8Array>): Tally => {
  const tally = emptyTally()
  const text = new TextDecoder()
  let pending = ""
  for (let i = 0; i < chunks.length; i++) {
    pending += text.decode(chunks[i]!, { stream: true })
    let start = 0
    let end: number
    while ((end = pending.indexOf("\n\n", start)) !== -1) {
      const block = pending.slice(start, end)
      start = end + 2
      if (!block.startsWith("data: ")) continue
      const data = block.slice(6)
      if (data === "[DONE]") return tally
      tallyChunk(tally, JSON.parse(data))
    }
    pending = pending.slice(start)
  }
  return tally
}

const paths: ReadonlyArray<readonly [string, (chunks: ReadonlyArray<Uint8Array>) => Tally | Promise<Tally>]> = [
  ["ours: core decode path", oursTallyLoop],
  ["openai Stream.fromSSEResponse", openai],
  ["floor", floor]
]

/** Throws unless `got` is what the corpus carries. */
const check = (who: string, corpus: RichCorpus, got: Tally | undefined) => {
  if (got === undefined || !sameTally(got, corpus.expected)) {
    throw new Error(
      `${who} on ${corpus.name}: ${got === undefined ? "no tally" : showTally(got)}, expected ${showTally(corpus.expected)}`
    )
  }
}

const decodeRows = async (config: RunConfig, corpus: RichCorpus, targets: Array<TargetResult>) => {
  const rows: Array<Array<string>> = []
  for (const size of [1024, 65536]) {
    const reads = split(corpus.bytes, size)
    for (const [name, path] of paths) check(`${name} at ${bytesLabel(size)} reads`, corpus, await path(reads))
    const medians = (
      await timeEach(
        config,
        paths.map(
          ([, path]) =>
            () =>
              path(reads)
        )
      )
    ).map((t) => t.median)
    const [ours, oa, fl] = medians.map((nanos) => corpus.chunks / (nanos / 1e9)) as [number, number, number]
    const vsOpenai = ours / oa
    rows.push([
      bytesLabel(size),
      fmt(ours),
      fmt(oa),
      fmt(fl),
      ratio(vsOpenai),
      ratio(fl / ours),
      `≥ 2×: ${mark(vsOpenai >= 2)}`
    ])
    targets.push({
      what: `${corpus.name}, ${bytesLabel(size)} reads, core decode path vs openai`,
      target: "≥ 2×",
      reached: ratio(vsOpenai),
      met: vsOpenai >= 2
    })
  }
  return table(
    ["read size", "ours (decode path)", "openai", "floor", "ours / openai", "ours time / floor time", "target"],
    rows
  )
}

const e2eRows = async (config: RunConfig, corpus: RichCorpus, kind: Services.ReplayCorpus["corpus"]) => {
  const batch = 200
  const server = await Services.startReplay({ corpus: kind, chunks: corpus.chunks, batch })
  const urls = server.urls
  const checked = (client: Clients.StreamClient): Clients.StreamClient => ({
    ...client,
    run: async () => {
      const got = await client.run()
      check(client.name, corpus, got.tally)
      return got
    }
  })
  const clients = [
    checked(Clients.oursDeltasTally("node", urls)),
    checked(Clients.oursStreamTally("node", urls)),
    checked(Clients.oursDeltasTally("fetch", urls)),
    checked(Clients.openaiTally(urls)),
    checked(Clients.rawUndiciTally(urls)),
    Clients.drainOnly(urls, corpus.expected.deltas)
  ]
  const rounds = config.quick ? 2 : 12
  const warmup = config.quick ? 1 : 3
  const results = await sample(clients, server, rounds, warmup, corpus.expected.deltas)
  await Promise.all(clients.map((client) => client.close()))
  await server.close()
  const rate = (r: Sampled) => corpus.chunks / (median(r.wall) / 1000)
  const cpuPer1000 = (r: Sampled) => median(r.cpu) / (corpus.chunks / 1000)
  const openaiResult = results.find((r) => r.client.name === "openai client")!
  const ceiling = results[results.length - 1]!
  const rows = results.map((r) => [
    r.client.name,
    fmt(rate(r)),
    fmt(median(r.wall)),
    fmt(cpuPer1000(r)),
    r === ceiling ? "" : ratio(rate(r) / rate(openaiResult)),
    r === ceiling ? "" : ratio(cpuPer1000(openaiResult) / cpuPer1000(r))
  ])
  const targets: Array<TargetResult> = results.slice(0, 2).map((r) => {
    const reached = rate(r) / rate(openaiResult)
    return {
      what: `${corpus.name}, e2e: ${r.client.name} vs openai client, chunks/s`,
      target: "≥ 2×",
      reached: ratio(reached),
      met: reached >= 2
    }
  })
  const markdown = table(
    ["client", "chunks/s", "ms per stream", "CPU ms per 1,000 chunks", "chunks/s vs openai", "openai CPU / CPU"],
    rows
  )
  return { markdown, targets, rounds, warmup, batch }
}

export const run = async (config: RunConfig): Promise<SectionResult> => {
  const chunks = config.quick ? 1000 : 20000
  const corpora = [
    [toolCallCorpus(chunks), "tool-calls"],
    [reasoningCorpus(chunks), "reasoning"]
  ] as const
  const targets: Array<TargetResult> = []
  const parts: Array<string> = [
    "Two streams of about " +
      `${fmt(chunks)} chunks each, built by \`corpus.ts\`: **tool calls**, gpt-4o (\`gpt-4o-2024-08-06\`, ` +
      "`service_tier`, `system_fingerprint`) calling tools in parallel, each call's `arguments` streamed one " +
      'token-sized fragment per chunk (`{"tool_calls":[{"index":1,"function":{"arguments":"\\"Par"}}]}`), ' +
      "the calls one after another (`get_weather`, `search_web`, and `write_file` whose content is the " +
      "mixed-script reply of section 1, with CJK, emoji and JSON escapes); **reasoning**, DeepSeek " +
      "`deepseek-reasoner` with `: keep-alive` comments, `reasoning_content` chunks (`content: null`, 70% of " +
      "the chunks, Chinese and English with emoji) then `content` chunks (`reasoning_content: null`), usage " +
      "on the finish chunk. Every side counts the same things from every chunk (`tally.ts`): deltas, " +
      "characters of content and of reasoning, tool-call fragments and the characters of their arguments, " +
      "checked equal to the corpus's on every run.",
    "",
    "In process, chunks per CPU second (median; the harness of section 2): **ours** is core's decode path " +
      "(`Sse.makeDecoder().push`, then core's `stepOf` on each event: the usual text or reasoning chunk and " +
      "the usual tool-call fragment are read by regular expressions, a call's first chunk and the finish " +
      "chunk by `JSON.parse`); **openai** is its " +
      "`Stream.fromSSEResponse` over a web `Response` yielding the reads; **floor** is a streaming " +
      '`TextDecoder`, `indexOf("\\n\\n")` and `JSON.parse`.'
  ]
  for (const [corpus, kind] of corpora) {
    const decode = await decodeRows(config, corpus, targets)
    const e2e = await e2eRows(config, corpus, kind)
    targets.push(...e2e.targets)
    parts.push(
      "",
      `### ${corpus.name}: ${fmt(corpus.chunks)} chunks, ${fmt(corpus.bytes.length / 2 ** 20)} MiB, ${showTally(corpus.expected)}`,
      "",
      decode,
      "",
      `End to end over loopback: a server in a child process sends the same bytes to every POST, ${e2e.batch} ` +
        `events per socket write; keep-alive connections; each client once per round, in turn, ${e2e.warmup} ` +
        `warm-up round(s), then the median of ${e2e.rounds} rounds. CPU is this process's only.`,
      "",
      e2e.markdown
    )
  }
  parts.push(
    "",
    table(
      ["target", "reached", ""],
      targets.map((t) => [`${t.what} ${t.target}`, t.reached, mark(t.met)])
    )
  )
  return { title: "8. Tool-call and reasoning streams", markdown: parts.join("\n"), targets }
}
