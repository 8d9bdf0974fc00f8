// The client side of section 5, alone in its own process so that its resident
// memory is the client's only. Reports over IPC.
import * as Clients from "./clients.js"
import { gc } from "./report.js"

export interface MemorySpec {
  readonly kind: "facade" | "stream"
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
  /** Resident memory at each sixteenth of the stream, minus the baseline. */
  readonly growth: ReadonlyArray<number>
  readonly heapPeak: number
  readonly deltas: number
  readonly seconds: number
}

const run = async (spec: MemorySpec): Promise<MemoryReport> => {
  const make = (url: string) =>
    spec.kind === "facade" ? Clients.oursFacade("node", [url]) : Clients.oursStream("node", [url])
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
  let heapPeak = 0
  const growth: Array<number> = []
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss()
    peak = Math.max(peak, rss)
    lowest = Math.min(lowest, rss)
  }, 10)
  const checkpoint = () => {
    const memory = process.memoryUsage()
    peak = Math.max(peak, memory.rss)
    lowest = Math.min(lowest, memory.rss)
    heapPeak = Math.max(heapPeak, memory.heapUsed)
    growth.push(memory.rss - baseline)
  }
  const t0 = performance.now()
  const got = await client.run({ every: Math.max(1, Math.floor(spec.deltas / 16)), at: checkpoint })
  const seconds = (performance.now() - t0) / 1000
  clearInterval(timer)
  await client.close()
  return { name: client.name, baseline, peak, lowest, growth, heapPeak, deltas: got.deltas, seconds }
}

process.once("message", (spec: MemorySpec) => {
  run(spec).then(
    (report) => process.send!({ ok: true, report }, () => process.exit(0)),
    (error: unknown) => process.send!({ ok: false, error: String(error) }, () => process.exit(1))
  )
})
