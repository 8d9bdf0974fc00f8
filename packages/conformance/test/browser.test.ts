// The conformance table inside headless Chromium: the fetch transport on the browser's fetch, against mirrors with
// CORS on other ports (cross-origin, same-site).
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type BrowserHarness, chromiumAvailable, chromiumPath, launch } from "../src/browser.js"
import { apisOf, cases, forRuntime } from "../src/cases.js"
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

describe.skipIf(skip)("chromium", () => {
  let browser: BrowserHarness

  beforeAll(async () => {
    browser = await launch()
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
  })

  it("runs a real Chromium", () => {
    expect(browser.version).toMatch(/^\d+\./)
  })

  for (const c of cases) {
    const expected = forRuntime(c, "chromium")
    if (expected === undefined) continue
    for (const api of apisOf(c)) {
      ;(expected.knownBug === undefined ? it : it.fails)(`${c.name} [${api}]`, async () => {
        await browser.clearCookies()
        const target = await startTarget(c, { cors: true })
        try {
          const outcome = await browser.run(c.name, target.url, api, hooksFor(c, "chromium", target))
          verify(c, "chromium", outcome, target, browser)
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
