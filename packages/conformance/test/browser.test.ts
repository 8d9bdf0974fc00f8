// The conformance table inside headless Chromium: the fetch transport on the browser's fetch, on the page's main
// thread and in a module worker the page starts, against mirrors with CORS on other ports (cross-origin, same-site).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type BrowserHarness, chromiumAvailable, chromiumPath, launch } from "../src/browser.js"
import type { Where } from "../src/browser-entry.js"
import { apisOf, cases, forRuntime, type Runtime } from "../src/cases.js"
import { hooksFor, startTarget } from "../src/harness.js"
import { verify } from "./support.js"

const ci = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false"
// Without a browser the suite skips locally, loudly; under CI a missing browser is a failure.
const skip = !chromiumAvailable() && !ci
if (skip) {
  console.warn(
    `\n${"!".repeat(78)}\n!! SKIPPING the Chromium conformance runs: no chromium at ${chromiumPath()}.\n` +
      `!! Install it with packages/conformance/install-chromium.sh or set CHROMIUM_PATH.\n${"!".repeat(78)}\n`
  )
}

const places: ReadonlyArray<readonly [Runtime, Where]> = [
  ["chromium", "page"],
  ["chromium-worker", "worker"]
]

// One browser, one page; runs one at a time (the browser's cookie jar is shared, and cleared before each run).
describe.skipIf(skip)("chromium", () => {
  let browser: BrowserHarness

  beforeAll(async () => {
    browser = await launch()
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
  })

  it("runs a real Chromium, and a module worker in it", () => {
    expect(browser.version).toMatch(/^\d+\./)
    expect(browser.worker.mainThread).toBe(false)
    expect(browser.worker.userAgent).toMatch(/HeadlessChrome\//)
    // A worker is a browser too: the browser owns its cookies, redirects and forbidden headers.
    expect(browser.worker.browser).toBe(true)
  })

  for (const [runtime, where] of places) {
    describe(runtime, () => {
      for (const c of cases) {
        const expected = forRuntime(c, runtime)
        if (expected === undefined) continue
        for (const api of apisOf(c)) {
          ;(expected.knownBug === undefined ? it : it.fails)(`${c.name} [${api}]`, async () => {
            await browser.clearCookies()
            const target = await startTarget(c, { cors: true })
            try {
              const outcome = await browser.run(c.name, target.url, api, hooksFor(c, runtime, target), where)
              verify(c, runtime, outcome, target, browser)
            } catch (error) {
              // The page's console says what went wrong inside it.
              if (expected.knownBug === undefined && browser.logs.length > 0)
                console.error(browser.logs.slice(-20).join("\n"))
              throw error
            } finally {
              await target.close()
            }
          })
        }
      }
    })
  }
})
