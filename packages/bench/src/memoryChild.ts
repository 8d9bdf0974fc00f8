// The client side of section 5, alone in its own process so that its resident
// memory is the client's only. Reports over IPC.
import * as Clients from "./clients.js"
import { gc } from "./report.js"

export interface MemorySpec {
  readonly kind: "facade" | "stream" | "raw"
  /** A mirror with a short reply, to warm up, and the one with the long stream. */
  readonly warmUrl: string
  readonly bigUrl: string
  readonly deltas: number
}

export interface MemoryReport {
  readonly name: string
  /** Resident memory after warm-up and a full GC, before the long stream. */
  readonly baseline: number
  /** Highest resident memory seen during the stream (checkpoints and a 10 ms timer). */
  readonly peak: number
  /** Lowest resident memory seen during the stream: the baseline may still hold garbage the OS gets back later. */
  readonly lowest: number
  /**
   * Growth: the largest rise of resident memory above the lowest seen before
   * it (the baseline included). A rise after RSS fell below the baseline counts
   * from that low; a peak before the fall counts from the baseline.
   */
  readonly rise: number
  /** Resident memory at each sixteenth of the stream, minus the baseline. */
  readonly growth: ReadonlyArray<number>
  readonly heapPeak: number
  /**
   * A second pass over the same stream with a full GC at each sixteenth: heap
   * still used after it, minus the same after warm-up. Memory held for good,
   * as opposed to garbage V8 has not collected yet.
   */
  readonly retained: ReadonlyArray<number>
  readonly deltas: number
  readonly seconds: number
}

const run = async (spec: MemorySpec): Promise<MemoryReport> => {
  const make = (url: string) =>
    spec.kind === "facade"
      ? Clients.oursFacade("node", [url])
      : spec.kind === "stream"
        ? Clients.oursStream("node", [url])
        : Clients.rawUndici([url])
  const warm = make(spec.warmUrl)
  for (let i = 0; i < 5; i++) await warm.run()
  await warm.close()
  const client = make(spec.bigUrl)
  gc()
  await new Promise((resolve) => setTimeout(resolve, 200))
  gc()
  const baseline = process.memoryUsage.rss()
  let peak = baseline
  let lowest = baseline
  let rise = 0
  let heapPeak = 0
  const growth: Array<number> = []
  const sample = (rss: number) => {
    peak = Math.max(peak, rss)
    lowest = Math.min(lowest, rss)
    rise = Math.max(rise, rss - lowest)
  }
  const timer = setInterval(() => sample(process.memoryUsage.rss()), 10)
  const checkpoint = () => {
    const memory = process.memoryUsage()
    sample(memory.rss)
    heapPeak = Math.max(heapPeak, memory.heapUsed)
    growth.push(memory.rss - baseline)
  }
  const every = Math.max(1, Math.floor(spec.deltas / 16))
  const t0 = performance.now()
  const got = await client.run({ every, at: checkpoint })
  const seconds = (performance.now() - t0) / 1000
  clearInterval(timer)

  gc()
  const heapBase = process.memoryUsage().heapUsed
  const retained: Array<number> = []
  const again = await client.run({
    every,
    at: () => {
      gc()
      retained.push(process.memoryUsage().heapUsed - heapBase)
    }
  })
  await client.close()
  if (again.deltas !== got.deltas) throw new Error(`the second pass received ${again.deltas} of ${got.deltas} deltas`)
  return { name: client.name, baseline, peak, lowest, rise, growth, heapPeak, retained, deltas: got.deltas, seconds }
}

process.once("message", (spec: MemorySpec) => {
  run(spec).then(
    (report) => process.send!({ ok: true, report }, () => process.exit(0)),
    (error: unknown) => process.send!({ ok: false, error: String(error) }, () => process.exit(1))
  )
})
