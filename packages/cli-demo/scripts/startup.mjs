#!/usr/bin/env node
// Start-up benchmark of the `easychat` command (not a test: figures depend on the machine and its load).
// Runs each command N times as a new process and prints the median, p90 and min wall time, the
// median CPU time (user + system: less sensitive than wall time to other jobs on the machine) and
// the largest max RSS, both from /usr/bin/time when present.
//
//   node packages/cli-demo/scripts/startup.mjs [--runs 15] [--bin path/to/bin.js] [-- args...]
//
// Without `-- args`, it measures `--help`, `--version`, `servers --help` and `chat --local hi`.
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const here = path.dirname(fileURLToPath(import.meta.url))
const argv = process.argv.slice(2)
const dash = argv.indexOf("--")
const own = dash >= 0 ? argv.slice(0, dash) : argv
const flag = (name, fallback) => (own.includes(name) ? own[own.indexOf(name) + 1] : fallback)
const runs = Number(flag("--runs", "15"))
const bin = path.resolve(flag("--bin", path.join(here, "..", "dist", "bin.js")))
const commands =
  dash >= 0 ? [argv.slice(dash + 1)] : [["--help"], ["--version"], ["servers", "--help"], ["chat", "--local", "hi"]]

if (!fs.existsSync(bin)) {
  process.stderr.write(`${bin} does not exist: build first (pnpm --filter @easychat/cli-demo build)\n`)
  process.exit(1)
}
const time = fs.existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined
const rssFile = path.join(os.tmpdir(), `easychat-startup-${process.pid}.txt`)

/** One run: wall milliseconds, CPU milliseconds and max RSS in KiB (or undefined), exit status. */
const once = (args) => {
  const command = time === undefined ? process.execPath : time
  const commandArgs =
    time === undefined ? [bin, ...args] : ["-f", "%M %U %S", "-o", rssFile, process.execPath, bin, ...args]
  const start = process.hrtime.bigint()
  const result = spawnSync(command, commandArgs, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env } })
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  // The last line: /usr/bin/time writes a line of its own before it when the command fails.
  const [rss, user, system] =
    time === undefined ? [] : fs.readFileSync(rssFile, "utf8").trim().split("\n").pop().split(" ").map(Number)
  const cpu = user === undefined ? undefined : (user + system) * 1000
  return { ms, cpu, rss, status: result.status, stderr: result.stderr.toString() }
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
const pad = (text, width) => String(text).padEnd(width)

const load = os.loadavg().map((l) => l.toFixed(2))
process.stdout.write(
  `easychat start-up: ${bin}\nnode ${process.version}, ${os.cpus().length} CPUs, load ${load.join(" ")}, ${runs} runs per command (after one warm-up)\n\n`
)
process.stdout.write(
  `${pad("command", 28)}${pad("median", 10)}${pad("p90", 10)}${pad("min", 10)}${pad("CPU", 10)}max RSS\n`
)
const ms = (value) => (value === undefined ? "n/a" : `${value.toFixed(0)} ms`)
for (const args of commands) {
  const first = once(args)
  if (first.status !== 0) {
    process.stderr.write(`easychat ${args.join(" ")} exited with ${first.status}:\n${first.stderr}\n`)
    process.exit(1)
  }
  const samples = Array.from({ length: runs }, () => once(args))
  const times = samples.map((s) => s.ms).sort((a, b) => a - b)
  const cpu = samples.every((s) => s.cpu !== undefined)
    ? percentile(
        samples.map((s) => s.cpu).sort((a, b) => a - b),
        50
      )
    : undefined
  const rss = samples.every((s) => s.rss !== undefined)
    ? `${(Math.max(...samples.map((s) => s.rss)) / 1024).toFixed(0)} MiB`
    : "n/a"
  process.stdout.write(
    `${pad(args.join(" "), 28)}${pad(ms(percentile(times, 50)), 10)}${pad(ms(percentile(times, 90)), 10)}${pad(ms(times[0]), 10)}${pad(ms(cpu), 10)}${rss}\n`
  )
}
fs.rmSync(rssFile, { force: true })
