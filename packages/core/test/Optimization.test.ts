import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

// The decode path's functions. `split` is also the name of an inner function
// of Effect's stream module, which this path never runs; the others are core's alone.
const DECODE_PATH = ["Delta", "stepOf", "pushInto", "split", "region"]

const script = fileURLToPath(new URL("./gc-between-replies.mjs", import.meta.url))
const built = fileURLToPath(new URL("../dist/index.js", import.meta.url))

const trace = () =>
  new Promise<string>((resolve, reject) =>
    execFile(
      process.execPath,
      ["--expose-gc", "--trace-deopt", "--trace-opt", script],
      { maxBuffer: 64 * 1024 * 1024, timeout: 60_000 },
      (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout))
    )
  )

/** The functions V8 marked for deoptimization because a GC collected something their code held. */
const thrownAwayAtGc = (out: string) =>
  out
    .split("\n")
    .filter((line) => line.includes("reason: weak objects"))
    .map((line) => /<SharedFunctionInfo (\w*)>/.exec(line)?.[1])

// The trace this reads is V8's own, and its lines and tiers change between
// V8 lines: it is written for the V8 of Node 20 and 22 (11.x, 12.x), where the
// resident objects were measured; Node 24's V8 13 prints another trace.
const traced = Number(process.versions.v8.split(".")[0]) <= 12

describe("optimized code across a full GC", () => {
  // The script runs core's dist: `pnpm test` builds it first (turbo); a bare
  // `vitest` after editing src would test a stale build.
  it.skipIf(!traced)(
    "keeps the decode path's optimized code when a GC runs between two replies",
    async () => {
      expect(existsSync(built), "core's dist is built (pnpm build)").toBe(true)
      // On a loaded machine V8 sometimes optimizes the decode path, or the
      // control, too late in a run for a GC to matter: up to five runs, until
      // one shows both. In every run, the decode path's code is never thrown away.
      let shown = false
      for (let run = 0; run < 5 && !shown; run++) {
        const out = await trace()
        expect(out.split("\n").filter((line) => line.startsWith("reply "))).toEqual([
          "reply 20000",
          "reply 20000",
          "reply 20000",
          "reply 20000"
        ])
        const thrownAway = thrownAwayAtGc(out)
        expect(thrownAway.filter((name) => name !== undefined && DECODE_PATH.includes(name))).toEqual([])
        // Not vacuous: V8 optimized the decode path, and this V8's trace reports
        // code thrown away at a GC (the control's reader, or its constructor when
        // V8 inlined the reader into its loop).
        const optimized = ["stepOf", "pushInto"].every((name) =>
          new RegExp(`completed optimizing .*<JSFunction ${name} .*TURBOFAN`).test(out)
        )
        shown = optimized && thrownAway.some((name) => name === "controlRead" || name === "Shape")
      }
      expect(shown, "one of five runs optimized the decode path and threw away the control's code at a GC").toBe(true)
    },
    90_000
  )
})
