import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Fixtures, Mirror, MirrorPool } from "@easychat/testkit"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Gateway } from "../src/index.js"
import { chatRequests, expectedReply, raw, withGateway } from "./fixtures.js"
import { list, parse } from "./routes.js"

const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const ci = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false"
const haveChromium = existsSync(chromiumPath)
// Without a browser the suite skips locally, loudly; under CI a missing browser is a failure.
if (!haveChromium && !ci) console.warn(`Page.test.ts: SKIPPED, no Chromium at ${chromiumPath} (set CHROMIUM_PATH)`)
const screenshotPath = fileURLToPath(new URL("../docs/page.png", import.meta.url))

const KEY = "page-test-key-0123456789abcdef"
const keys = [KEY]

/** A reply with English reasoning, then its answer, as a reasoning model streams it. */
const thinking = (reasoning: string, answer: string): Fixtures.Fixture => {
  const meta = { id: "chatcmpl-page", created: 1_753_874_000, model: "mirror-thinker" }
  return {
    name: "page-thinking",
    description: "reasoning_content deltas, then content deltas",
    includeUsage: false,
    stream: Mirror.sse([
      Mirror.chunk({ role: "assistant", content: "" }, meta),
      ...Mirror.splitReply(reasoning, { chunkSize: 6 }).map((r) => Mirror.chunk({ reasoning_content: r }, meta)),
      ...Mirror.splitReply(answer, { chunkSize: 6 }).map((c) => Mirror.chunk(c, meta)),
      Mirror.chunk({}, { ...meta, finishReason: "stop" }),
      "[DONE]"
    ]),
    whole: JSON.stringify({
      ...meta,
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: answer }, finish_reason: "stop" }]
    })
  }
}

/** The reasoning and the answer a fixture streams (`reasoning_content` or `reasoning`, and `content`). */
const textsOf = (fixture: Fixtures.Fixture) => {
  let reasoning = ""
  let answer = ""
  for (const chunk of Fixtures.chunksOf(fixture) as ReadonlyArray<{
    choices?: Array<{ delta?: Record<string, unknown> }>
  }>) {
    const delta = chunk.choices?.[0]?.delta ?? {}
    const thought = typeof delta.reasoning_content === "string" ? delta.reasoning_content : delta.reasoning
    if (typeof thought === "string") reasoning += thought
    if (typeof delta.content === "string") answer += delta.content
  }
  return { reasoning, answer }
}

describe.skipIf(!haveChromium && !ci)("the chat page in Chromium", () => {
  let browser: Browser

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`No Chromium at ${chromiumPath}: install Debian's chromium or set CHROMIUM_PATH`)
    const { chromium } = await import("playwright-core")
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync"
      ]
    })
  }, 30_000)

  afterAll(async () => {
    await browser?.close()
  })

  /** Opens the page in a fresh context (its own sessionStorage); gives the key through the form when given. */
  const open = async <A>(
    url: string,
    key: string | undefined,
    body: (tab: Page) => Promise<A>,
    prepare?: (tab: Page) => Promise<unknown>
  ): Promise<A> => {
    const context = await browser.newContext({ colorScheme: "light", viewport: { width: 1280, height: 800 } })
    try {
      const tab = await context.newPage()
      // Script errors and CSP violations: the page must run under its own policy.
      const problems: Array<string> = []
      tab.on("pageerror", (error) => problems.push(`pageerror: ${error.message}`))
      tab.on("console", (message) => {
        if (/Content.Security.Policy|Refused to/i.test(message.text())) problems.push(message.text())
      })
      await prepare?.(tab)
      await tab.goto(url)
      if (key !== undefined) {
        await tab.fill("#key", key)
        await tab.click("#key-form button[type=submit]")
        await tab.waitForFunction(() => (document.getElementById("model") as HTMLSelectElement).options.length > 0)
      }
      const result = await body(tab)
      expect(problems).toEqual([])
      return result
    } finally {
      await context.close()
    }
  }

  const send = async (tab: Page, text: string) => {
    await tab.fill("#prompt", text)
    await tab.click("#send")
  }
  const answerText = (tab: Page) => tab.locator(".assistant .answer").last().textContent()
  /** Waits for the last reply to end (its meta line set). */
  const finished = (tab: Page) =>
    tab.waitForFunction(() => {
      const metas = document.querySelectorAll(".assistant .meta")
      return (metas[metas.length - 1]?.textContent ?? "") !== ""
    })

  it("streams a reply: partial text shows before the end, then exactly what the mirror sent", async () => {
    await withGateway([{ delayMs: 80 }], { keys }, async ({ gateway }) => {
      await open(`${gateway.url}/`, KEY, async (tab) => {
        expect(await tab.locator("#model option").allTextContents()).toEqual(["gpt-3.5-turbo"])
        await send(tab, "Hello gateway")
        // Some of the reply, not all of it: it is painted as it arrives.
        const partial = await tab.waitForFunction(
          (full) => {
            const text = document.querySelector(".assistant .answer")?.textContent ?? ""
            return text.length > 0 && text.length < full.length ? text : false
          },
          expectedReply,
          { polling: "raf" }
        )
        const seen = (await partial.jsonValue()) as string
        expect(expectedReply.startsWith(seen)).toBe(true)
        expect(seen.length).toBeLessThan(expectedReply.length)
        await finished(tab)
        expect(await answerText(tab)).toBe(expectedReply)
        expect(await tab.locator(".assistant .meta").textContent()).toBe("finish: stop")
        expect(await tab.locator(".assistant .reasoning").isHidden()).toBe(true)
      })
    })
  })

  it("stops a reply: the upstream connection is closed before the mirror finished", async () => {
    const reply = "This reply is long and slow. ".repeat(40)
    await withGateway([{ delayMs: 100, reply }], { keys }, async ({ gateway, pool }) => {
      await open(`${gateway.url}/`, KEY, async (tab) => {
        await send(tab, "Tell me a long story")
        await tab.waitForFunction(() => (document.querySelector(".assistant .answer")?.textContent ?? "").length > 8)
        const startedAt = Date.now()
        await tab.click("#stop")
        const request = chatRequests(pool.servers[0]!)[0]!
        const closed = await Promise.race([
          request.closed,
          new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 5_000))
        ])
        expect(closed).toBeDefined()
        expect(closed!.finished).toBe(false)
        // About 4 s of deltas were left: the cut came from the stop, not from the end.
        expect(closed!.at - startedAt).toBeLessThan(2_000)
        await finished(tab)
        expect(await tab.locator(".assistant .meta").textContent()).toBe("stopped")
        const shown = (await answerText(tab)) ?? ""
        expect(shown.length).toBeGreaterThan(8)
        expect(shown.length).toBeLessThan(reply.length)
        expect(reply.startsWith(shown)).toBe(true)
        expect(await tab.locator("#send").isEnabled()).toBe(true)
      })
    })
  })

  it("shows reasoning apart from the answer (reasoning_content and reasoning)", async () => {
    const fixture = (request: Mirror.RecordedRequest) =>
      JSON.stringify(request.body).includes("ollama") ? Fixtures.ollamaReasoning : Fixtures.deepseekReasoning
    await withGateway([{ fixture }], { keys }, async ({ gateway }) => {
      await open(`${gateway.url}/`, KEY, async (tab) => {
        for (const [prompt, expected] of [
          ["What is 1+1?", textsOf(Fixtures.deepseekReasoning)],
          ["Ask ollama", textsOf(Fixtures.ollamaReasoning)]
        ] as const) {
          expect(expected.reasoning).not.toBe("")
          await send(tab, prompt)
          await finished(tab)
          const reply = tab.locator(".assistant").last()
          expect(await reply.locator(".reasoning-text").textContent()).toBe(expected.reasoning)
          expect(await reply.locator(".answer").textContent()).toBe(expected.answer)
          // A collapsible block, folded once the answer came; a click opens it.
          const details = reply.locator("details.reasoning")
          expect(await details.isVisible()).toBe(true)
          expect(await details.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(false)
          await details.locator("summary").click()
          expect(await details.evaluate((d) => (d as HTMLDetailsElement).open)).toBe(true)
        }
      })
    })
  })

  it("turns a failing server red in the health table once a request failed over", async () => {
    const healthy = thinking(
      "The user greets the gateway. A short, friendly answer will do; no tools are needed.",
      "Hello! This answer came from the second mirror: the first one failed, and the gateway failed over before the first token."
    )
    await withGateway(
      [{ fault: { kind: "status", status: 503 } }, { fixture: healthy, delayMs: 10 }],
      { keys, models: ["gpt-4o-mini", "llama3.2"], chat: { strategy: "round-robin", breaker: { failures: 1 } } },
      async ({ gateway, pool }) => {
        await open(`${gateway.url}/`, KEY, async (tab) => {
          const row = (server: string) => tab.locator(`#pools tr[data-server="${server}"]`)
          await row(pool.urls[0]!).waitFor()
          expect(await row(pool.urls[0]!).getAttribute("data-state")).toBe("closed")
          await send(tab, "Hello gateway")
          await finished(tab)
          expect(await answerText(tab)).toBe(textsOf(healthy).answer)
          await tab.waitForSelector(`#pools tr.open[data-server="${pool.urls[0]}"]`, { timeout: 5_000 })
          const failing = row(pool.urls[0]!)
          expect(await failing.locator(".state").textContent()).toBe("open")
          expect(await failing.locator(".error").textContent()).toBe("HttpStatusError")
          expect(
            await failing
              .locator("td")
              .first()
              .evaluate((td) => getComputedStyle(td).color)
          ).toBe("rgb(198, 40, 40)")
          expect(await row(pool.urls[1]!).getAttribute("data-state")).toBe("closed")
          expect(await tab.locator("#status .badge").textContent()).toBe("degraded")
          if (process.env.SCREENSHOT === "1") {
            await tab.setViewportSize({ width: 1280, height: 620 })
            await tab.locator(".assistant details.reasoning summary").click()
            await tab.fill("#prompt", "And what does the health table say?")
            await tab.screenshot({ path: screenshotPath })
          }
        })
      }
    )
  })

  it("renders one table per route when /health reports routes", async () => {
    const server = (url: string, state: string) => ({
      server: url,
      state,
      failures: state === "open" ? 3 : 0,
      lastLatencyMs: null,
      openUntil: null,
      lastError: state === "open" ? "Timeout" : null,
      estimateMs: state === "open" ? null : 120,
      failureRate: state === "open" ? 0.75 : 0,
      weight: 1,
      priority: 0
    })
    const health = {
      status: "degraded",
      servers: [],
      routes: [
        { name: "chat", models: ["gpt-4o-mini"], status: "ok", servers: [server("http://a.test", "closed")] },
        {
          name: "local",
          models: ["llama3.2", "qwen3:8b"],
          status: "degraded",
          servers: [server("http://b.test", "open"), server("http://c.test", "half-open")]
        }
      ]
    }
    await withGateway([{}], { keys }, async ({ gateway }) => {
      await open(
        `${gateway.url}/`,
        KEY,
        async (tab) => {
          await tab.waitForSelector('#pools tr[data-server="http://c.test"]')
          expect(await tab.locator("#pools h3").allTextContents()).toEqual(["chat ok", "local degraded"])
          expect(await tab.locator("#pools table").count()).toBe(2)
          const rows = tab.locator("#pools table").nth(1).locator("tbody tr")
          expect(await rows.evaluateAll((trs) => trs.map((tr) => [tr.className, tr.textContent]))).toEqual([
            ["open", "http://b.testopen\u201475%3Timeout"],
            ["half-open", "http://c.testhalf-open120 ms0%0"]
          ])
        },
        (tab) =>
          tab.route("**/health", (route) =>
            route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(health) })
          )
      )
    })
  })

  it("shows one table per route of a real configuration, and turns a route's failing server red", async () => {
    const mirrors = await MirrorPool.start([{ fault: { kind: "status", status: 503 } }, {}, {}])
    const [bad, good, other] = mirrors.urls as [string, string, string]
    const gateway = await Gateway.start({
      port: 0,
      keys,
      config: await parse(`
routes:
  - name: local
    models: [llama3.2]
    servers: ${list([bad, good])}
    strategy: round-robin
    breaker: { failures: 1 }
  - name: cloud
    models: [gpt-4o-mini]
    servers: ${list([other])}
`)
    })
    try {
      await open(`${gateway.url}/`, KEY, async (tab) => {
        const row = (server: string) => tab.locator(`#pools tr[data-server="${server}"]`)
        await row(other).waitFor()
        expect(await tab.locator("#model option").allTextContents()).toEqual(["llama3.2", "gpt-4o-mini"])
        expect(await tab.locator("#pools h3").allTextContents()).toEqual(["local ok", "cloud ok"])
        expect(await tab.locator("#pools table").count()).toBe(2)
        const serversOf = (table: number) =>
          tab
            .locator("#pools table")
            .nth(table)
            .locator("tbody tr")
            .evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.server))
        expect(await serversOf(0)).toEqual([bad, good])
        expect(await serversOf(1)).toEqual([other])
        await tab.selectOption("#model", "llama3.2")
        await send(tab, "Hello gateway")
        await finished(tab)
        expect(await answerText(tab)).toBe(expectedReply)
        // The local route failed over from its first server, whose breaker opened: red in its route's table.
        await tab.waitForSelector(`#pools tr.open[data-server="${bad}"]`, { timeout: 5_000 })
        expect(await tab.locator("#pools h3").allTextContents()).toEqual(["local degraded", "cloud ok"])
        expect(await row(bad).locator(".error").textContent()).toBe("HttpStatusError")
        expect(
          await row(bad)
            .locator("td")
            .first()
            .evaluate((td) => getComputedStyle(td).color)
        ).toBe("rgb(198, 40, 40)")
        expect(await row(good).getAttribute("data-state")).toBe("closed")
        expect(await row(other).getAttribute("data-state")).toBe("closed")
        expect(await tab.locator("#status .badge").textContent()).toBe("degraded")
        expect(chatRequests(mirrors.servers[2]!)).toHaveLength(0)
      })
    } finally {
      await gateway.close({ drainTimeout: 0 })
      await mirrors.close()
    }
  })

  it("asks for the key: without it the 401 message shows, with it the page works", async () => {
    await withGateway([{}], { keys }, async ({ gateway }) => {
      await open(`${gateway.url}/`, undefined, async (tab) => {
        const notice = tab.locator("#notice")
        await notice.waitFor()
        expect(await notice.textContent()).toContain("401: Missing API key")
        await tab.waitForFunction(() => document.getElementById("health-note")?.textContent?.includes("401"))
        expect(await tab.locator("#model option").count()).toBe(0)
        await tab.fill("#key", "a-wrong-key-of-enough-length")
        await tab.click("#key-form button[type=submit]")
        await tab.waitForFunction(() => document.getElementById("notice")?.textContent?.includes("Incorrect API key"))
        await tab.fill("#key", KEY)
        await tab.click("#key-form button[type=submit]")
        await tab.waitForFunction(() => (document.getElementById("model") as HTMLSelectElement).options.length > 0)
        expect(await notice.isHidden()).toBe(true)
        await send(tab, "Hello gateway")
        await finished(tab)
        expect(await answerText(tab)).toBe(expectedReply)
        await tab.waitForSelector("#pools tr[data-state=closed]")
        // The key stays in this tab's sessionStorage and is never shown.
        expect(await tab.evaluate(() => sessionStorage.getItem("easychat.gateway.key"))).toBe(KEY)
        expect(await tab.inputValue("#key")).toBe("")
        expect(await tab.evaluate(() => document.documentElement.outerHTML)).not.toContain(KEY)
        // Forgotten: the tab asks again, and shows nothing of the pool.
        await tab.click("#forget")
        await notice.waitFor()
        expect(await notice.textContent()).toContain("401: Missing API key")
        expect(await tab.evaluate(() => sessionStorage.getItem("easychat.gateway.key"))).toBeNull()
        await tab.waitForFunction(() => document.querySelectorAll("#pools tr").length === 0)
      })
    })
  })
})

describe("GET /", () => {
  it("serves the page without a key, with a content security policy, while the API still asks for one", async () => {
    await withGateway([{}], { keys }, async ({ gateway }) => {
      const page = await raw(`${gateway.url}/`)
      expect(page.status).toBe(200)
      expect(page.headers["content-type"]).toBe("text/html; charset=utf-8")
      expect(page.headers["cache-control"]).toBe("no-cache")
      expect(page.headers["x-content-type-options"]).toBe("nosniff")
      const csp = page.headers["content-security-policy"]!
      expect(csp).toContain("default-src 'none'")
      expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/]+=*'/)
      expect(csp).not.toContain("unsafe-inline")
      expect(page.text).toContain("<title>easychat gateway</title>")
      expect(page.text).not.toContain("innerHTML")
      expect((await raw(`${gateway.url}/health`)).status).toBe(401)
      expect((await raw(`${gateway.url}/v1/models`)).status).toBe(401)
      // Only the page: other paths still ask for the key.
      expect((await raw(`${gateway.url}/index.html`)).status).toBe(401)
    })
  })

  it("is not served with page: false", async () => {
    await withGateway([{}], { page: false }, async ({ gateway }) => {
      const response = await raw(`${gateway.url}/`)
      expect(response.status).toBe(404)
      expect(JSON.parse(response.text).error.code).toBe("unknown_url")
    })
    await withGateway([{}], { page: false, keys }, async ({ gateway }) => {
      expect((await raw(`${gateway.url}/`)).status).toBe(401)
      expect((await raw(`${gateway.url}/`, { headers: { authorization: `Bearer ${KEY}` } })).status).toBe(404)
    })
  })

  it("refuses a page option that is not a boolean", async () => {
    await expect(withGateway([{}], { page: "yes" as never }, async () => undefined)).rejects.toMatchObject({
      _tag: "InvalidRequest",
      field: "page"
    })
  })
})
