/**
 * Drives the fetch transport on Bun and on Deno: bundles `script-entry.ts`
 * and `worker-entry.ts` with esbuild into a temporary folder, spawns the
 * runtime on the script, and talks `remote.ts`'s messages over its stdin and
 * stdout. The runtimes are this package's devDependencies (`bun`, `deno`);
 * nothing here downloads one. Node-only.
 *
 * @since 0.1.0
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { existsSync } from "node:fs"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import { bundle } from "./bundle.js"
import type { Api, Outcome } from "./cases.js"
import { type About, askRuns, linePrefix, type Reply } from "./remote.js"
import type { Hooks } from "./runner.js"

/**
 * A runtime that runs a script file.
 * @since 0.1.0 @category models
 */
export type ScriptRuntime = "bun" | "deno"

const require = createRequire(import.meta.url)

/** Where the npm packages `bun` and `deno` put their binaries (their `bin` entries are wrappers). */
const installed: Record<ScriptRuntime, () => string> = {
  bun: () => path.join(path.dirname(require.resolve("bun/package.json")), "bin", "bun.exe"),
  deno: () => path.join(path.dirname(require.resolve("deno/package.json")), "deno")
}

/**
 * The binary of `runtime`: `BUN_PATH` or `DENO_PATH`, else this package's devDependency.
 * @since 0.1.0 @category constants
 */
export const binaryPath = (runtime: ScriptRuntime): string => {
  const fromEnv = process.env[runtime === "bun" ? "BUN_PATH" : "DENO_PATH"]
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv
  try {
    return installed[runtime]()
  } catch {
    return `(the ${runtime} package is not installed)`
  }
}

/** @since 0.1.0 @category predicates */
export const binaryAvailable = (runtime: ScriptRuntime): boolean => existsSync(binaryPath(runtime))

/**
 * One Bun or Deno process, ready to run cases.
 * @since 0.1.0 @category models
 */
export interface ScriptHarness {
  /** How the code that runs the cases sees itself (in the worker, with `worker: true`). */
  readonly about: About
  /** Runs a case there; its hooks run here, in Node. Runs may overlap. */
  run(name: string, mirrorUrl: string, api: Api, hooks: Hooks): Promise<Outcome>
  /** What the process printed besides the protocol, for diagnosing a failure. */
  readonly logs: ReadonlyArray<string>
  close(): Promise<void>
}

const argv = (runtime: ScriptRuntime, script: string, worker: boolean): Array<string> => [
  // Nothing may be installed or fetched: the bundle imports nothing.
  ...(runtime === "bun" ? ["--no-install"] : ["run", "-A", "--no-config", "--no-lock", "--no-remote", "--no-npm"]),
  script,
  ...(worker ? ["--worker"] : [])
]

/**
 * Bundles the scripts, spawns `runtime` on them (the cases in a module Web
 * Worker when `worker`) and waits until it is ready. Throws a clear error
 * when the binary is missing.
 * @since 0.1.0 @category constructors
 */
export const launch = async (runtime: ScriptRuntime, options: { readonly worker: boolean }): Promise<ScriptHarness> => {
  const binary = binaryPath(runtime)
  if (!existsSync(binary)) {
    throw new Error(
      `No ${runtime} at ${binary}: install this package's devDependencies or set ${runtime.toUpperCase()}_PATH`
    )
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), `easychat-conformance-${runtime}-`))
  const [main, worker] = await Promise.all([bundle("script-entry.ts"), bundle("worker-entry.ts")])
  await Promise.all([writeFile(path.join(dir, "main.mjs"), main), writeFile(path.join(dir, "worker.mjs"), worker)])
  const child: ChildProcessWithoutNullStreams = spawn(
    binary,
    argv(runtime, path.join(dir, "main.mjs"), options.worker),
    {
      cwd: dir,
      env: { ...process.env, NO_COLOR: "1", DO_NOT_TRACK: "1", DENO_NO_UPDATE_CHECK: "1", DENO_NO_PROMPT: "1" },
      stdio: ["pipe", "pipe", "pipe"]
    }
  )
  const logs: Array<string> = []
  const remote = askRuns((request) => child.stdin.write(`${JSON.stringify(request)}\n`))
  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    if (line.startsWith(linePrefix)) remote.receive(JSON.parse(line.slice(linePrefix.length)) as Reply)
    else logs.push(line)
  })
  readline.createInterface({ input: child.stderr }).on("line", (line) => logs.push(line))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  child.once("exit", (code, signal) =>
    remote.fail(new Error(`${runtime} exited (${signal ?? code}): ${logs.slice(-10).join("\n")}`))
  )
  child.stdin.on("error", () => {})
  const close = async () => {
    child.stdin.end()
    const timer = setTimeout(() => child.kill("SIGKILL"), 2000)
    await exited
    clearTimeout(timer)
    await rm(dir, { recursive: true, force: true })
  }
  try {
    const about = await Promise.race([
      remote.ready,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${runtime} was not ready within 20 s: ${logs.join("\n")}`)), 20_000).unref()
      )
    ])
    return { about, run: remote.run, logs, close }
  } catch (error) {
    await close()
    throw error
  }
}
