// Shared by every section: run settings, figures, markdown tables.
import * as os from "node:os"

/** What one run of the program was asked to do. */
export interface RunConfig {
  /** Tiny sizes and few samples: CI only checks that every section still runs. */
  readonly quick: boolean
}

/** What a section prints: markdown, and one line per target for the summary. */
export interface SectionResult {
  readonly title: string
  readonly markdown: string
  readonly targets: ReadonlyArray<TargetResult>
}

export interface TargetResult {
  readonly what: string
  readonly target: string
  readonly reached: string
  readonly met: boolean
}

export const machine = (): string => {
  const cpus = os.cpus()
  return [
    `- Node ${process.version} (V8 ${process.versions.v8}), ${process.platform} ${os.release()} ${process.arch}`,
    `- CPU: ${cpus[0]?.model.trim() ?? "unknown"} × ${cpus.length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM`,
    `- ${loadAverage()} at the start`
  ].join("\n")
}

/** Other work on the machine skews every figure: the run says how busy it was. */
export const loadAverage = (): string =>
  `load average ${os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(", ")} (1, 5, 15 min)`

export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const line = (cells: ReadonlyArray<string>) => `| ${cells.join(" | ")} |`
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n")
}

/** A figure with 3 significant digits, thousands grouped. */
export const fmt = (value: number, digits = 3): string => {
  if (!Number.isFinite(value)) return "n/a"
  const abs = Math.abs(value)
  const decimals = abs >= 10 ** digits ? 0 : Math.max(0, digits - 1 - Math.floor(Math.log10(abs || 1)))
  return value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals })
}

export const ratio = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(2)}×` : "n/a")

export const mark = (met: boolean): string => (met ? "met" : "**missed**")

export const bytesLabel = (n: number): string =>
  n >= 2 ** 20 && n % 2 ** 20 === 0 ? `${n / 2 ** 20} MiB` : n >= 1024 && n % 1024 === 0 ? `${n / 1024} KiB` : `${n} B`

export const mib = (bytes: number): string => `${fmt(bytes / 2 ** 20)} MiB`

/** Process CPU time (user + system) in milliseconds. */
export const cpuMillis = (): number => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) / 1000
}

export const gc = (): void => {
  ;(globalThis as { gc?: () => void }).gc?.()
}

/** Lets pending callbacks and sockets settle between measurements. */
export const settle = (ms = 20): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
