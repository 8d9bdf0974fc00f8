/**
 * `pnpm bench`: measures easychat against what users would pick instead, in
 * one run on the same input, and prints markdown.
 *
 * Flags: `--quick` (tiny sizes and samples: CI checks that it runs, not the
 * figures), `--only <n>[,<n>...]` (sections by number).
 */
import type { RunConfig, SectionResult, TargetResult } from "./report.js"
import { loadAverage, machine, mark, table } from "./report.js"

const sections: ReadonlyArray<{
  readonly n: number
  readonly load: () => Promise<(c: RunConfig) => Promise<SectionResult>>
}> = [
  { n: 1, load: async () => (await import("./sse.js")).run },
  { n: 2, load: async () => (await import("./deltas.js")).run },
  { n: 3, load: async () => (await import("./e2e.js")).run },
  { n: 4, load: async () => (await import("./ttfd.js")).run },
  { n: 5, load: async () => (await import("./memory.js")).run },
  { n: 6, load: async () => (await import("./concurrency.js")).run },
  { n: 7, load: async () => (await import("./gateway.js")).run },
  { n: 8, load: async () => (await import("./toolsReasoning.js")).run },
  { n: 9, load: async () => (await import("./routing.js")).run }
]

const usage = "usage: node --expose-gc dist/main.js [--quick] [--only 1,3]"

const parseArgs = (argv: ReadonlyArray<string>): { config: RunConfig; only: ReadonlySet<number> | undefined } => {
  let quick = false
  let only: Set<number> | undefined
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--quick") quick = true
    else if (arg === "--only" || arg.startsWith("--only=")) {
      const value = arg === "--only" ? argv[++i] : arg.slice("--only=".length)
      const numbers = (value ?? "").split(",").map(Number)
      if (numbers.length === 0 || numbers.some((n) => !sections.some((s) => s.n === n))) {
        throw new Error(`--only takes section numbers from 1 to ${sections.length}\n${usage}`)
      }
      only = new Set(numbers)
    } else if (arg === "--help" || arg === "-h") {
      console.log(usage)
      process.exit(0)
    } else throw new Error(`unknown argument ${arg}\n${usage}`)
  }
  return { config: { quick }, only }
}

const main = async () => {
  const { config, only } = parseArgs(process.argv.slice(2))
  if (typeof (globalThis as { gc?: unknown }).gc !== "function") {
    console.error("note: run with node --expose-gc for steadier figures")
  }
  const started = Date.now()
  console.log(
    `# easychat benchmarks${config.quick ? " (--quick: sizes too small for the figures to mean anything)" : ""}\n`
  )
  console.log(machine())
  console.log(
    `- ${new Date().toISOString()}, command: \`${["node --expose-gc dist/main.js", ...process.argv.slice(2)].join(" ")}\`\n`
  )
  const targets: Array<TargetResult> = []
  for (const section of sections) {
    if (only !== undefined && !only.has(section.n)) continue
    const run = await section.load()
    const t0 = Date.now()
    const result = await run(config)
    console.log(`## ${result.title}\n\n${result.markdown}\n\n_(${((Date.now() - t0) / 1000).toFixed(1)} s)_\n`)
    targets.push(...result.targets)
  }
  if (targets.length > 0) {
    console.log("## Targets\n")
    console.log(
      table(
        ["what", "target", "reached", ""],
        targets.map((t) => [t.what, t.target, t.reached, mark(t.met)])
      )
    )
    const missed = targets.filter((t) => !t.met).length
    console.log(`\n${targets.length - missed} of ${targets.length} targets met.`)
  }
  console.log(`\n_(total ${((Date.now() - started) / 1000).toFixed(0)} s, ${loadAverage()} at the end)_`)
}

main().then(
  // Sockets of clients under test may linger in keep-alive pools.
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error))
    process.exit(1)
  }
)
