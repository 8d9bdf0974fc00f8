// The conformance table on a runtime that runs a script (Bun, Deno): its main thread and a module Web Worker loaded
// from a file, each in its own process. The mirrors and the checks stay here, in Node.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { apisOf, cases, forRuntime, type Runtime } from "../src/cases.js"
import { hooksFor, startTarget } from "../src/harness.js"
import { binaryAvailable, binaryPath, launch, type ScriptHarness, type ScriptRuntime } from "../src/scripted.js"
import { verify } from "./support.js"

const ci = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false"

const versions: Record<ScriptRuntime, RegExp> = { bun: /^Bun\/\d+\./, deno: /^Deno\/\d+\./ }

export const describeScripted = (runtime: ScriptRuntime): void => {
  // Without the binary the suite skips locally, loudly; under CI a missing runtime is a failure.
  const skip = !binaryAvailable(runtime) && !ci
  if (skip) {
    console.warn(
      `\n${"!".repeat(78)}\n!! SKIPPING the ${runtime} conformance runs: no ${runtime} at ${binaryPath(runtime)}.\n` +
        `!! Install the conformance package's devDependencies or set ${runtime.toUpperCase()}_PATH.\n${"!".repeat(78)}\n`
    )
  }
  for (const worker of [false, true]) {
    const name: Runtime = worker ? `${runtime}-worker` : runtime
    // One process per runtime; each run has its own mirror and client, so runs overlap.
    describe.skipIf(skip).concurrent(name, () => {
      let harness: ScriptHarness

      beforeAll(async () => {
        harness = await launch(runtime, { worker })
      }, 60_000)

      afterAll(async () => {
        await harness?.close()
      })

      it(`runs on ${runtime}, ${worker ? "in a Web Worker" : "on the main thread"}`, () => {
        expect(harness.about.userAgent).toMatch(versions[runtime])
        expect(harness.about.mainThread).toBe(!worker)
        // The transport must not take Bun or Deno for a browser.
        expect(harness.about.browser).toBe(false)
        // Deno's worker loaded from a file has an opaque origin: the case of the fetch transport's URL fix.
        if (runtime === "deno" && worker) expect(harness.about.origin).toBe("null")
      })

      for (const c of cases) {
        const expected = forRuntime(c, name)
        if (expected === undefined) continue
        for (const api of apisOf(c)) {
          ;(expected.knownBug === undefined ? it : it.fails)(`${c.name} [${api}]`, async () => {
            const target = await startTarget(c)
            try {
              const outcome = await harness.run(c.name, target.url, api, hooksFor(c, name, target))
              verify(c, name, outcome, target)
            } catch (error) {
              if (expected.knownBug === undefined && harness.logs.length > 0)
                console.error(harness.logs.slice(-20).join("\n"))
              throw error
            } finally {
              await target.close()
            }
          })
        }
      }
    })
  }
}
