import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"

// The decode path's functions (core's own names; none of them is a Node or Effect name).
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

describe("optimized code across a full GC", () => {
  it("keeps the decode path's optimized code when a GC runs between two replies", async () => {
    expect(existsSync(built), "core's dist is built (turbo builds it before the tests)").toBe(true)
    const out = await trace()
    expect(out.split("\n").filter((line) => line.startsWith("reply "))).toEqual([
      "reply 20000",
      "reply 20000",
      "reply 20000",
      "reply 20000"
    ])
    // Not vacuous: V8 did optimize the decode path.
    for (const name of ["stepOf", "split"]) {
      expect(out).toMatch(new RegExp(`completed optimizing .*<JSFunction ${name} .*TURBOFAN`))
    }
    // A full GC that collects a hidden class these functions were optimized for
    // marks them for deoptimization with the reason "weak objects".
    const thrownAway = out
      .split("\n")
      .filter((line) => line.includes("reason: weak objects"))
      .map((line) => /<SharedFunctionInfo (\w*)>/.exec(line)?.[1])
      .filter((name) => name !== undefined && DECODE_PATH.includes(name))
    expect(thrownAway).toEqual([])
  }, 90_000)
})
