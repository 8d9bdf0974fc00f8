// Section 1: SSE decoding, bytes in, events out.
import { Sse } from "@easychat/core"
import * as ExperimentalSse from "@effect/experimental/Sse"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { createParser } from "eventsource-parser"
import { type Corpus, chatCorpusOfSize, cjkCorpusOfSize, singleEventCorpus, split } from "./corpus.js"
import { type Timing, throughput, timeEach } from "./harness.js"
import { bytesLabel, fmt, mark, type RunConfig, ratio, type SectionResult, type TargetResult, table } from "./report.js"

/** What every decoder reports, so that a decoder that drops or mangles events is caught. */
interface Tally {
  events: number
  dataChars: number
}

type Decode = (chunks: ReadonlyArray<Uint8Array>) => Tally | Promise<Tally>

// Large enough for the 1 MiB event; each decoder is given the same room.
const MAX_EVENT = 4 * 1024 * 1024

const ours: Decode = (chunks) => {
  const decoder = Sse.makeDecoder({ maxEventSize: MAX_EVENT })
  const tally = { events: 0, dataChars: 0 }
  const count = (events: ReadonlyArray<Sse.SseEvent>) => {
    for (let i = 0; i < events.length; i++) tally.dataChars += events[i]!.data.length
    tally.events += events.length
  }
  for (let i = 0; i < chunks.length; i++) count(decoder.push(chunks[i]!))
  count(decoder.end())
  return tally
}

// As its README shows: a streaming TextDecoder in front of the parser.
const eventsourceParser: Decode = (chunks) => {
  const tally = { events: 0, dataChars: 0 }
  const parser = createParser({
    onEvent: (event) => {
      tally.events++
      tally.dataChars += event.data.length
    }
  })
  const text = new TextDecoder()
  for (let i = 0; i < chunks.length; i++) parser.feed(text.decode(chunks[i]!, { stream: true }))
  parser.feed(text.decode())
  return tally
}

const experimentalParser: Decode = (chunks) => {
  const tally = { events: 0, dataChars: 0 }
  const parser = ExperimentalSse.makeParser(
    (event) => {
      if (event._tag === "Event") {
        tally.events++
        tally.dataChars += event.data.length
      }
    },
    { maxEventSize: MAX_EVENT }
  )
  const text = new TextDecoder()
  for (let i = 0; i < chunks.length; i++) parser.feed(text.decode(chunks[i]!, { stream: true }))
  parser.feed(text.decode())
  return tally
}

/** A byte stream with one network read per pull, as a transport's body stream. */
export const readsOf = (chunks: ReadonlyArray<Uint8Array>): Stream.Stream<Uint8Array> =>
  Stream.suspend(() => {
    let i = 0
    return Stream.repeatEffectChunkOption(
      Effect.suspend(() => (i < chunks.length ? Effect.succeed(Chunk.of(chunks[i++]!)) : Effect.fail(Option.none())))
    )
  })

const tallyStream = (events: Stream.Stream<{ readonly data: string }, unknown>): Promise<Tally> => {
  const tally = { events: 0, dataChars: 0 }
  return Effect.runPromise(
    Stream.runForEachChunk(events, (chunk) => {
      for (const event of chunk) tally.dataChars += event.data.length
      tally.events += chunk.length
      return Effect.void
    })
  ).then(() => tally)
}

const oursStream: Decode = (chunks) => tallyStream(readsOf(chunks).pipe(Sse.decode({ maxEventSize: MAX_EVENT })))

// How its users run it: `Stream.decodeText` then the channel.
const experimentalStream: Decode = (chunks) =>
  tallyStream(
    readsOf(chunks).pipe(
      Stream.decodeText(),
      Stream.pipeThroughChannel(ExperimentalSse.makeChannel({ maxEventSize: MAX_EVENT }))
    )
  )

interface Case {
  readonly corpus: Corpus
  readonly size: number
}

const check = async (name: string, decode: Decode, c: Case, expected: Tally): Promise<void> => {
  const got = await decode(split(c.corpus.bytes, c.size))
  if (got.events !== expected.events || got.dataChars !== expected.dataChars) {
    throw new Error(
      `${name} decoded ${got.events} events / ${got.dataChars} chars of "${c.corpus.name}" at ${c.size} B, expected ${expected.events} / ${expected.dataChars}`
    )
  }
}

export const run = async (config: RunConfig): Promise<SectionResult> => {
  const chat = chatCorpusOfSize(config.quick ? 16 * 1024 : 512 * 1024)
  const crlf = chatCorpusOfSize(config.quick ? 16 * 1024 : 512 * 1024, "\r\n")
  const cjk = cjkCorpusOfSize(config.quick ? 16 * 1024 : 512 * 1024)
  const large = singleEventCorpus(1024 * 1024)
  const sizes = config.quick ? [1, 64, 65536] : [1, 8, 64, 512, 1024, 4096, 65536]
  const cases: Array<Case> = [
    ...sizes.map((size) => ({ corpus: chat, size })),
    ...sizes.map((size) => ({ corpus: cjk, size })),
    { corpus: crlf, size: 64 },
    { corpus: crlf, size: 65536 },
    ...(config.quick ? [] : [{ corpus: large, size: 1024 }]),
    { corpus: large, size: 65536 }
  ]

  const rows: Array<Array<string>> = []
  const targets: Array<TargetResult> = []
  for (const c of cases) {
    const chunks = split(c.corpus.bytes, c.size)
    const expected = ours(chunks) as Tally
    if (expected.events !== c.corpus.events) {
      throw new Error(`ours decoded ${expected.events} events of "${c.corpus.name}", the corpus has ${c.corpus.events}`)
    }
    await check("eventsource-parser", eventsourceParser, c, expected)
    await check("@effect/experimental", experimentalParser, c, expected)
    const bytes = c.corpus.bytes.length
    const [a, b, e] = (await timeEach(config, [
      () => ours(chunks),
      () => eventsourceParser(chunks),
      () => experimentalParser(chunks)
    ])) as [Timing, Timing, Timing]
    const mbA = throughput(bytes, a.median)
    const mbB = throughput(bytes, b.median)
    const mbE = throughput(bytes, e.median)
    const vsParser = mbA / mbB
    const need = c.size <= 8 ? 2 : 1.2
    const met = vsParser >= need
    rows.push([
      c.corpus.name,
      bytesLabel(c.size),
      fmt(mbA),
      fmt(mbB),
      fmt(mbE),
      ratio(vsParser),
      ratio(mbA / mbE),
      `≥ ${need}× ${mark(met)}`
    ])
    targets.push({
      what: `SSE, ${c.corpus.name}, ${bytesLabel(c.size)} reads, vs eventsource-parser`,
      target: `≥ ${need}×`,
      reached: ratio(vsParser),
      met
    })
  }

  // The same decoders as Effect `Stream` combinators over one read per pull.
  const streamRows: Array<Array<string>> = []
  for (const size of config.quick ? [1024] : [64, 1024, 65536]) {
    const c = { corpus: chat, size }
    const chunks = split(chat.bytes, size)
    const expected = ours(chunks) as Tally
    await check("Sse.decode", oursStream, c, expected)
    await check("@effect/experimental makeChannel", experimentalStream, c, expected)
    const [a, e] = (await timeEach(config, [() => oursStream(chunks), () => experimentalStream(chunks)])) as [
      Timing,
      Timing
    ]
    const mbA = throughput(chat.bytes.length, a.median)
    const mbE = throughput(chat.bytes.length, e.median)
    streamRows.push([chat.name, bytesLabel(size), fmt(mbA), fmt(mbE), ratio(mbA / mbE)])
  }

  const markdown = [
    `Corpora: "${chat.name}" is ${fmt(chat.bytes.length / 1024)} KiB, ${chat.events} events of OpenAI-shaped ` +
      "`chat.completion.chunk`s whose token-sized contents mix ASCII prose and code, accented Latin, emoji and CJK; " +
      `"${crlf.name}" is the same with CRLF line ends; "${cjk.name}" is ${fmt(cjk.bytes.length / 1024)} KiB, ${cjk.events} events ` +
      "of chunks as OpenAI sends them today (`service_tier`, `system_fingerprint`, 2 to 20 characters of `obfuscation` " +
      "padding) whose 1 to 3 code point contents are mostly Chinese and Japanese with emoji (ZWJ sequences included), " +
      "then a usage chunk (nearly every chunk carries non-ASCII text, though its ASCII JSON is most of the bytes); " +
      `"${large.name}" is one ${fmt(large.bytes.length / 2 ** 20)} MiB event. ` +
      "Each run decodes the whole corpus fed in reads of the given size and counts events and data characters " +
      "(checked equal across decoders). Throughput in MB per CPU second (10^6 bytes per second of this " +
      "process's CPU time: the machine is shared, so wall time would count other processes too), median of the samples.",
    "",
    table(
      [
        "corpus",
        "read size",
        "ours `Sse.makeDecoder`",
        "eventsource-parser + TextDecoder",
        "@effect/experimental `makeParser` + TextDecoder",
        "ours / eventsource-parser",
        "ours / experimental",
        "target"
      ],
      rows
    ),
    "",
    "As `Stream` combinators (one network read per pull): ours `Sse.decode()` against @effect/experimental's " +
      "`Stream.decodeText()` + `Sse.makeChannel()`, MB per CPU second:",
    "",
    table(["corpus", "read size", "ours `Sse.decode`", "experimental `makeChannel`", "ours / experimental"], streamRows)
  ].join("\n")
  return { title: "1. SSE decoding", markdown, targets }
}
