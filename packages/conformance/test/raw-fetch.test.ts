// The evidence behind the Bun and Deno rows of `differs` in src/cases.ts: each runtime's own fetch, without easychat,
// against the same mirror faults. If a runtime changes, this fails and the difference's text must change with it.
import { execFile } from "node:child_process"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { MirrorServer } from "@easychat/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { bundle } from "../src/bundle.js"
import type { RawTally } from "../src/raw-fetch-entry.js"
import { binaryAvailable, binaryPath, type ScriptRuntime } from "../src/scripted.js"

const ci = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false"
const calls = 12
const reply = "The quick brown fox jumps over the lazy dog."

let dir: string
let script: string

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "easychat-raw-fetch-"))
  script = path.join(dir, "raw-fetch.mjs")
  await writeFile(script, await bundle("raw-fetch-entry.ts"))
}, 30_000)

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

type Runtime = "node" | ScriptRuntime

const command = (runtime: Runtime): [string, ...Array<string>] =>
  runtime === "node"
    ? [process.execPath]
    : runtime === "bun"
      ? [binaryPath("bun"), "--no-install"]
      : [binaryPath("deno"), "run", "-A", "--no-config", "--no-lock", "--no-remote", "--no-npm"]

/** Runs `trial` on `runtime` against a mirror with `options`: how the calls ended, and the chat POSTs it saw. */
const trial = async (
  runtime: Runtime,
  name: "cut" | "reset-reused" | "reset-fresh",
  options: MirrorServer.MirrorServerOptions
): Promise<{ readonly tally: RawTally; readonly posts: number }> => {
  const mirror = await MirrorServer.start(options)
  try {
    const [file, ...args] = command(runtime)
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(file, [...args, script, mirror.url, name, String(calls)], { cwd: dir }, (error, out, err) =>
        error === null ? resolve(out) : reject(new Error(`${runtime}: ${error.message}\n${err}`))
      )
    )
    const posts = mirror.requests.filter((r) => r.method === "POST").length
    return { tally: JSON.parse(stdout.trim().split("\n").at(-1)!) as RawTally, posts }
  } finally {
    await mirror.close()
  }
}

const cut: MirrorServer.MirrorServerOptions = { reply, fault: { kind: "close-mid-stream", afterDeltas: 3 } }
const reset: MirrorServer.MirrorServerOptions = { reply, fault: { kind: "reset-before-headers" } }

describe.concurrent("raw fetch", () => {
  // What Node's fetch reads of the cut stream is everything the mirror sent before the cut (asked once, after
  // `beforeAll` bundled the script).
  let reference: Promise<Array<string>> | undefined
  const all = () => {
    reference ??= trial("node", "cut", cut).then(({ tally }) => Object.keys(tally))
    return reference
  }

  it("node: a cut stream's body errors after every event sent; a reset POST is sent once", async () => {
    const sent = await all()
    expect(sent).toHaveLength(1)
    expect(sent[0]).toMatch(/^events [1-9]/)
    expect((await trial("node", "reset-reused", reset)).posts).toBe(calls)
  })

  for (const runtime of ["bun", "deno"] as const) {
    const skip = !binaryAvailable(runtime) && !ci
    describe.skipIf(skip)(runtime, () => {
      it("a stream cut after three deltas", async () => {
        const { tally } = await trial(runtime, "cut", cut)
        const [events] = await all()
        if (runtime === "deno") expect(tally).toEqual({ [events!]: calls })
        else {
          // Bun: either every event, or none of them (the body errors before script reads anything).
          expect(
            Object.keys(tally).every((k) => k === events || k === "events 0"),
            JSON.stringify(tally)
          ).toBe(true)
        }
      })

      it("a POST reset before any answer", async () => {
        const reused = await trial(runtime, "reset-reused", reset)
        const fresh = await trial(runtime, "reset-fresh", reset)
        expect(reused.tally).toEqual({ rejected: calls })
        expect(fresh.tally).toEqual({ rejected: calls })
        // Deno resends the POST once when its reused connection is reset; on a fresh connection it does not.
        expect(reused.posts).toBe(runtime === "deno" ? 2 * calls : calls)
        expect(fresh.posts).toBe(calls)
      })
    })
  }
})
