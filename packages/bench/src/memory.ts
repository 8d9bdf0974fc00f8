// Section 5: resident memory while one very long stream is consumed.
import { fork } from "node:child_process"
import { Mirror } from "@easychat/testkit"
import { model } from "./clients.js"
import { replyText } from "./corpus.js"
import type { MemoryReport, MemorySpec } from "./memoryChild.js"
import { bytesLabel, fmt, mark, mib, type RunConfig, type SectionResult, type TargetResult, table } from "./report.js"
import * as Services from "./services.js"

/** Mean bytes of one content event as the mirror writes it (its ids and timestamps have the same lengths). */
const eventBytes = (): number => {
  const pieces = Mirror.splitReply(replyText, { chunkSize: 4 })
  const encoder = new TextEncoder()
  const meta = { id: "chatcmpl-mirror-1", created: Math.floor(Date.now() / 1000), model }
  let total = 0
  for (const piece of pieces) total += encoder.encode(Mirror.sse([Mirror.chunk(piece, meta)])).length
  return total / pieces.length
}

const measure = (spec: MemorySpec): Promise<MemoryReport> =>
  new Promise((resolve, reject) => {
    const child = fork(new URL("./memoryChild.js", import.meta.url), [], {
      execArgv: ["--expose-gc"],
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    child.once("message", (message: { ok: true; report: MemoryReport } | { ok: false; error: string }) => {
      if (message.ok) resolve(message.report)
      else reject(new Error(`the memory client failed: ${message.error}`))
    })
    child.once("exit", (code) => {
      if (code !== 0) reject(new Error(`the memory client exited with ${code}`))
    })
    child.send(spec)
  })

export const run = async (config: RunConfig): Promise<SectionResult> => {
  const perEvent = eventBytes()
  const sizes = config.quick ? [2 * 2 ** 20, 8 * 2 ** 20] : [64 * 2 ** 20, 256 * 2 ** 20]
  const deltasOf = (bytes: number) => Math.ceil(bytes / perEvent)
  const mirror = await Services.startMirrors([
    { reply: replyText, chunkSize: 4, deltas: 100, batch: 200, usage: "never" },
    ...sizes.map((bytes) => ({
      reply: replyText,
      chunkSize: 4,
      deltas: deltasOf(bytes),
      batch: 200,
      usage: "never" as const
    }))
  ])
  const rows: Array<Array<string>> = []
  const targets: Array<TargetResult> = []
  const limit = 32 * 2 ** 20
  // --quick checks the facade only: each measurement is a fresh process.
  // Raw undici + eventsource-parser is the reference: what V8 and undici alone take on this stream.
  for (const kind of config.quick ? (["facade"] as const) : (["raw", "facade", "stream"] as const)) {
    const peaks: Array<number> = []
    for (let i = 0; i < sizes.length; i++) {
      const deltas = deltasOf(sizes[i]!)
      const report = await measure({ kind, warmUrl: mirror.urls[0]!, bigUrl: mirror.urls[i + 1]!, deltas })
      if (report.deltas !== deltas) throw new Error(`${report.name} received ${report.deltas} deltas of ${deltas}`)
      // From the lowest RSS seen before each peak: a fall below the baseline (V8 returning pages) neither
      // hides a later rise nor turns an earlier peak into growth.
      const growth = report.rise
      peaks.push(growth)
      const quarters = [3, 7, 11, 15].map((q) => report.growth[q] ?? Number.NaN)
      const retained = [3, 7, 11, 15].map((q) => report.retained[q] ?? Number.NaN)
      rows.push([
        report.name,
        bytesLabel(sizes[i]!),
        fmt(deltas),
        mib(report.baseline),
        mib(growth),
        quarters.map((q) => fmt(q / 2 ** 20)).join(" / "),
        mib(report.heapPeak),
        retained.map((q) => fmt(q / 2 ** 20)).join(" / "),
        fmt(deltas / report.seconds)
      ])
      if (kind === "raw") continue
      if (i === sizes.length - 1) {
        targets.push({
          what: `memory: ${report.name}, RSS growth over one ${bytesLabel(sizes[i]!)} stream`,
          target: "< 32 MiB",
          reached: mib(growth),
          met: growth < limit
        })
      }
    }
    if (kind === "raw") continue
    // No growth with length: the longer stream may not need more than the shorter one, within noise.
    const extra = peaks[peaks.length - 1]! - peaks[0]!
    targets.push({
      what: `memory: ${kind === "facade" ? "Promise facade" : "Effect Stream"}, extra growth of the ${bytesLabel(sizes[sizes.length - 1]!)} stream over the ${bytesLabel(sizes[0]!)} one`,
      target: "≤ 4 MiB (no growth with length)",
      reached: mib(extra),
      met: extra <= 4 * 2 ** 20
    })
  }
  await mirror.close()
  const markdown = [
    `Each client runs in a fresh child process (\`--expose-gc\`): 5 warm-up streams of 100 deltas, two full GCs, ` +
      `then the resident set size (RSS) is the baseline; one long stream of ~${fmt(perEvent)}-byte events ` +
      "(the mixed-script reply in 4-character pieces) is consumed to the end from a mirror in another process, " +
      "RSS sampled every 10 ms and at each sixteenth of the stream. Growth is the largest rise of RSS above the lowest " +
      "RSS seen before it (the baseline, or lower when V8 returned pages during the stream); " +
      "the quarters columns are in MiB. A second pass over the same stream forces a full GC at each sixteenth " +
      "and reports the heap still used (minus the same after warm-up): memory held, not garbage not yet collected.",
    "",
    table(
      [
        "client",
        "stream",
        "deltas",
        "baseline RSS",
        "RSS growth",
        "RSS growth at ¼ / ½ / ¾ / end",
        "peak heap used",
        "heap retained after full GC at ¼ / ½ / ¾ / end",
        "deltas/s"
      ],
      rows
    ),
    "",
    table(
      ["target", "reached", ""],
      targets.map((t) => [`${t.what.replace(/^memory: /, "")} ${t.target}`, t.reached, mark(t.met)])
    )
  ].join("\n")
  return { title: "5. Memory over one long stream", markdown, targets }
}
