// Section 2: bytes to text deltas (SSE, JSON, picking the content).
import { Client, EasyChat, Presets } from "@easychat/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import { Stream as OpenAIStream } from "openai/streaming"
import { oursDecodeLoop } from "./coreStep.js"
import { type Corpus, chatCorpus, chatCorpusOfSize, split } from "./corpus.js"
import { throughput, time, timeEach } from "./harness.js"
import * as MemoryHttp from "./memoryHttp.js"
import { bytesLabel, fmt, mark, type RunConfig, ratio, type SectionResult, type TargetResult, table } from "./report.js"

/** What every path reports: content deltas and their characters, checked equal across paths. */
interface Tally {
  deltas: number
  characters: number
}

/**
 * The floor: the simplest correct code for this input. A streaming
 * TextDecoder, split on blank lines, `JSON.parse` each `data: ` payload,
 * pick `choices[0].delta.content`.
 */
const floor = (chunks: ReadonlyArray<Uint8Array>): Tally => {
  const tally = { deltas: 0, characters: 0 }
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
      const content = JSON.parse(data).choices[0]?.delta?.content
      if (typeof content === "string" && content !== "") {
        tally.deltas++
        tally.characters += content.length
      }
    }
    pending = pending.slice(start)
  }
  return tally
}

/** A web `Response` whose body yields the reads one per pull, as fetch hands them over. */
export const responseOf = (chunks: ReadonlyArray<Uint8Array>): Response => {
  let i = 0
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < chunks.length) controller.enqueue(chunks[i++]!)
      else controller.close()
    }
  })
  return new Response(body, { headers: { "content-type": "text/event-stream" } })
}

// The `openai` package's own decoding of a chat completion stream, over the same bytes.
export const openai = async (chunks: ReadonlyArray<Uint8Array>): Promise<Tally> => {
  const tally = { deltas: 0, characters: 0 }
  const stream = OpenAIStream.fromSSEResponse<any>(responseOf(chunks), new AbortController())
  for await (const chunk of stream) {
    const content = chunk.choices[0]?.delta?.content
    if (typeof content === "string" && content !== "") {
      tally.deltas++
      tally.characters += content.length
    }
  }
  return tally
}

const messages = [{ role: "user" as const, content: "Explain server-sent events." }]

/** Cost of the per-read machinery, measured apart from decoding. */
const perReadCosts = async (
  config: RunConfig,
  oursStream: (chunks: ReadonlyArray<Uint8Array>) => Promise<Tally>,
  oursClient: (chunks: ReadonlyArray<Uint8Array>) => Promise<Tally>
): Promise<string> => {
  const reads = config.quick ? 100 : 1000
  const corpus = chatCorpus(reads - 4)
  // One event per read, as a model streaming tokens one write at a time.
  const text = new TextDecoder().decode(corpus.bytes)
  const encoder = new TextEncoder()
  const events = text
    .split("\n\n")
    .filter((e) => e !== "")
    .map((e) => encoder.encode(`${e}\n\n`))
  const whole = [corpus.bytes]
  const rows: Array<Array<string>> = []
  for (const [name, f] of [
    ["EasyChat.stream", oursStream],
    ["Client facade", oursClient]
  ] as const) {
    const one = (await time(config, () => f(whole))).median
    const many = (await time(config, () => f(events))).median
    rows.push([
      `${name}: per read (1,000 reads minus 1 read, per read)`,
      fmt((many - one) / 1000 / (events.length - 1))
    ])
    rows.push([`${name}: per request (a body of one read)`, fmt(one / 1000)])
  }
  return table(["what", "µs"], rows)
}

export const run = async (config: RunConfig): Promise<SectionResult> => {
  const memory = MemoryHttp.make()
  const options = Presets.openAICompatible("http://bench.invalid")
  const runtime = ManagedRuntime.make(EasyChat.layer(options).pipe(Layer.provide(memory.layer)))
  const client = Client.make(options, memory.layer)

  // The real EasyChat Stream over the in-memory transport, consumed per chunk.
  const oursStream = (chunks: ReadonlyArray<Uint8Array>): Promise<Tally> => {
    memory.serve(chunks)
    const tally = { deltas: 0, characters: 0 }
    return runtime
      .runPromise(
        Effect.flatMap(EasyChat.EasyChat, (chat) =>
          Stream.runForEachChunk(chat.stream({ messages }), (deltas) => {
            for (const delta of deltas) {
              if (delta.content !== "") {
                tally.deltas++
                tally.characters += delta.content.length
              }
            }
            return Effect.void
          })
        )
      )
      .then(() => tally)
  }

  // The Promise facade over the same in-memory transport.
  const oursClient = async (chunks: ReadonlyArray<Uint8Array>): Promise<Tally> => {
    memory.serve(chunks)
    const tally = { deltas: 0, characters: 0 }
    for await (const piece of client.stream({ messages })) {
      tally.deltas++
      tally.characters += piece.length
    }
    return tally
  }

  const maxBytes = config.quick ? 16 * 1024 : 512 * 1024
  // At most this many reads per run: below 64 B reads, a read costs far more than its bytes.
  const maxReads = config.quick ? 1024 : 8192
  const corpora = new Map<number, Corpus>()
  const corpusFor = (size: number): Corpus => {
    const bytes = Math.min(maxBytes, size * maxReads)
    let corpus = corpora.get(bytes)
    if (corpus === undefined) corpora.set(bytes, (corpus = chatCorpusOfSize(bytes)))
    return corpus
  }
  const big = corpusFor(65536)
  const sizes = config.quick ? [1, 64, 65536] : [1, 8, 64, 1024, 65536]
  const paths: ReadonlyArray<readonly [string, (chunks: ReadonlyArray<Uint8Array>) => Tally | Promise<Tally>]> = [
    ["ours: core decode path", oursDecodeLoop],
    ["ours: EasyChat.stream", oursStream],
    ["ours: Client facade", oursClient],
    ["openai Stream.fromSSEResponse", openai],
    ["floor", floor]
  ]

  const rows: Array<Array<string>> = []
  const engineRows: Array<Array<string>> = []
  const targets: Array<TargetResult> = []
  for (const size of sizes) {
    const corpus = corpusFor(size)
    const chunks = split(corpus.bytes, size)
    for (const [name, path] of paths) {
      const tally = await path(chunks)
      if (tally.deltas !== corpus.deltas || tally.characters !== corpus.characters) {
        throw new Error(
          `${name} gave ${tally.deltas} deltas / ${tally.characters} chars at ${size} B reads, expected ${corpus.deltas} / ${corpus.characters}`
        )
      }
    }
    const medians = (
      await timeEach(
        config,
        paths.map(
          ([, path]) =>
            () =>
              path(chunks)
        )
      )
    ).map((t) => t.median)
    const [loop, stream, facade, oa, fl] = medians.map((m) => throughput(corpus.bytes.length, m)) as [
      number,
      number,
      number,
      number,
      number
    ]
    const vsOpenai = loop / oa
    const vsFloor = fl / loop
    const met = vsOpenai >= 2 && vsFloor <= 1.3
    rows.push([
      bytesLabel(size),
      fmt(loop),
      fmt(oa),
      fmt(fl),
      ratio(vsOpenai),
      ratio(vsFloor),
      `≥ 2× and ≤ 1.3×: ${mark(met)}`
    ])
    engineRows.push([
      bytesLabel(size),
      fmt(stream),
      fmt(facade),
      ratio(stream / oa),
      ratio(facade / oa),
      ratio(fl / stream),
      ratio(fl / facade)
    ])
    targets.push({
      what: `deltas, ${bytesLabel(size)} reads, core decode path vs openai`,
      target: "≥ 2×",
      reached: ratio(vsOpenai),
      met: vsOpenai >= 2
    })
    targets.push({
      what: `deltas, ${bytesLabel(size)} reads, core decode path time vs floor`,
      target: "≤ 1.3×",
      reached: ratio(vsFloor),
      met: vsFloor <= 1.3
    })
    targets.push({
      what: `deltas, ${bytesLabel(size)} reads, EasyChat.stream (in-memory transport) vs openai`,
      target: "≥ 2×",
      reached: ratio(stream / oa),
      met: stream / oa >= 2
    })
  }
  const costs = await perReadCosts(config, oursStream, oursClient)
  await runtime.dispose()
  await client.close()

  const markdown = [
    `Input: the "${big.name}" corpus of section 1 (${fmt(big.bytes.length / 1024)} KiB, ${big.deltas} content deltas; ` +
      `cut to at most ${fmt(maxReads)} reads at small read sizes: ${[...corpora.values()].map((c) => `${fmt(c.bytes.length / 1024)} KiB`).join(", ")}), LF line ends. Each run turns the bytes, fed in reads ` +
      "of the given size, into content deltas and counts them and their characters (checked equal across paths). " +
      "Throughput in MB of SSE input per CPU second (as in section 1), median.",
    "",
    "- **ours: core decode path**: what core's per-attempt reader (`internal/reader.ts`) does on each network read: " +
      "`Sse.makeDecoder().push`, then core's own `stepOf` (`internal/chunk.ts`, imported from core's build) on each event: the usual chunk read by one " +
      "regular expression, any other by `JSON.parse` and the error and shape checks; `choices[0].delta.content`.",
    "- **openai**: `Stream.fromSSEResponse` (openai/streaming) over a web `Response` whose body yields the reads, " +
      "iterated with `for await`, `chunk.choices[0]?.delta?.content`.",
    '- **floor**: streaming `TextDecoder`, `indexOf("\\n\\n")`, `JSON.parse`, `choices[0]?.delta?.content`.',
    "",
    table(
      ["read size", "ours (decode path)", "openai", "floor", "ours / openai", "ours time / floor time", "target"],
      rows
    ),
    "",
    "The whole engine over an in-memory `HttpClient` whose response body yields the same reads one per pull " +
      "(validation, request building, timeouts, failover machinery and Effect `Stream` included, no sockets): " +
      "`EasyChat.stream` consumed with `Stream.runForEachChunk`, and the Promise facade's `client.stream` with `for await`. MB per CPU second:",
    "",
    table(
      [
        "read size",
        "EasyChat.stream",
        "Client facade",
        "stream / openai",
        "facade / openai",
        "stream time / floor",
        "facade time / floor"
      ],
      engineRows
    ),
    "",
    "Where the engine's time goes per network read and per request: the whole engine with a body of one read " +
      "or of 1,000 one-event reads. No sockets; median µs of CPU.",
    "",
    costs
  ].join("\n")
  return { title: "2. Bytes to text deltas", markdown, targets }
}
