// Runs the built `easychat` binary as a real subprocess.
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { vi } from "vitest"

// Each run starts a Node process (a bundle, but a few hundred ms of CPU): on a busy machine that takes seconds.
vi.setConfig({ testTimeout: 120_000, hookTimeout: 60_000 })

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
export const bin = path.join(root, "dist", "bin.js")

const newest = (dir: string): number =>
  fs
    .readdirSync(dir, { withFileTypes: true })
    .reduce(
      (max, e) =>
        Math.max(max, e.isDirectory() ? newest(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).mtimeMs),
      0
    )

// A stale binary would test yesterday's code.
if (!fs.existsSync(bin) || fs.statSync(bin).mtimeMs < newest(path.join(root, "src"))) {
  throw new Error("dist/bin.js is missing or older than src/: run `pnpm --filter @easychat/cli-demo build` first")
}

/** The parent's environment without any EASYCHAT_* variable, history off, no colour hints. */
export const cleanEnv = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("EASYCHAT_") && key !== "NO_COLOR" && key !== "FORCE_COLOR") env[key] = value
  }
  return { ...env, EASYCHAT_HISTORY: "", ...extra }
}

export interface Result {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface RunOptions {
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  readonly input?: string
  readonly env?: Record<string, string>
  readonly timeoutMs?: number
}

// Start-up is CPU-bound: more than two at once per test file only makes each one slower.
const slots = { free: 2, waiting: [] as Array<() => void> }
const acquire = (): Promise<void> => {
  if (slots.free === 0) return new Promise((resolve) => slots.waiting.push(resolve))
  slots.free--
  return Promise.resolve()
}
const release = (): void => {
  const next = slots.waiting.shift()
  if (next !== undefined) next()
  else slots.free++
}

/** Runs `easychat args...` to the end. */
export const run = async (args: ReadonlyArray<string>, options: RunOptions = {}): Promise<Result> => {
  await acquire()
  try {
    return await runNow(args, options)
  } finally {
    release()
  }
}

const runNow = (args: ReadonlyArray<string>, options: RunOptions): Promise<Result> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      env: cleanEnv(options.env),
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d))
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`easychat ${args.join(" ")} did not end in time\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, options.timeoutMs ?? 45_000)
    child.on("error", reject)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
    if (options.input !== undefined) child.stdin!.end(options.input)
  })

/** A running `easychat` process, read as it writes. */
export interface Running {
  readonly child: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves with the first match of `pattern` in stdout (or stderr with `from`). */
  waitFor(pattern: RegExp, from?: "stdout" | "stderr", timeoutMs?: number): Promise<RegExpMatchArray>
  /** Resolves when the process has ended. */
  readonly ended: Promise<Result>
}

export const start = (args: ReadonlyArray<string>, options: { env?: Record<string, string> } = {}): Running => {
  const child = spawn(process.execPath, [bin, ...args], {
    env: cleanEnv(options.env),
    stdio: ["ignore", "pipe", "pipe"]
  })
  const out = { stdout: "", stderr: "" }
  const listeners = new Set<() => void>()
  const notify = () => {
    for (const l of listeners) l()
  }
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    out.stdout += d
    notify()
  })
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    out.stderr += d
    notify()
  })
  let done = false
  const ended = new Promise<Result>((resolve) =>
    child.on("close", (code, signal) => {
      done = true
      notify()
      resolve({ code, signal, stdout: out.stdout, stderr: out.stderr })
    })
  )
  return {
    child,
    stdout: () => out.stdout,
    stderr: () => out.stderr,
    ended,
    waitFor: (pattern, from = "stdout", timeoutMs = 45_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = out[from].match(pattern)
          if (match !== null) {
            cleanup()
            resolve(match)
          } else if (done) {
            cleanup()
            reject(new Error(`ended without ${pattern} on ${from}\nstdout: ${out.stdout}\nstderr: ${out.stderr}`))
          }
        }
        const timer = setTimeout(() => {
          cleanup()
          reject(new Error(`no ${pattern} on ${from} in time\nstdout: ${out.stdout}\nstderr: ${out.stderr}`))
        }, timeoutMs)
        const cleanup = () => {
          clearTimeout(timer)
          listeners.delete(check)
        }
        listeners.add(check)
        check()
      })
  }
}

/** Stops a process this test started, if it still runs. */
export const stop = async (running: Running): Promise<void> => {
  if (running.child.exitCode === null && running.child.signalCode === null) running.child.kill("SIGKILL")
  await running.ended
}

/** The chat requests a mirror received (the cookie GETs left out). */
export const chatRequests = <R extends { readonly method: string }>(requests: ReadonlyArray<R>): ReadonlyArray<R> =>
  requests.filter((r) => r.method === "POST")
