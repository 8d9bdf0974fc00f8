/**
 * Drives the fetch transport inside headless Chromium: bundles
 * `browser-entry.ts` and `worker-entry.ts` with esbuild, serves them from a node:http server on
 * 127.0.0.1, and opens it in Debian's `chromium` through playwright-core.
 * Nothing here downloads a browser. Node-only.
 *
 * @since 0.1.0
 */
import { existsSync } from "node:fs"
import * as http from "node:http"
import type * as net from "node:net"
import type { Where } from "./browser-entry.js"
import { bundle } from "./bundle.js"
import type { Api, Outcome } from "./cases.js"
import type { About, HookFlags } from "./remote.js"
import type { Hooks } from "./runner.js"

/**
 * The Chromium binary: `CHROMIUM_PATH`, else Debian's `/usr/bin/chromium`.
 * @since 0.1.0 @category constants
 */
export const chromiumPath = (): string => process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

/** @since 0.1.0 @category predicates */
export const chromiumAvailable = (): boolean => existsSync(chromiumPath())

const launchArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic"
]

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>easychat conformance</title>
<script type="module" src="/entry.js"></script></head><body></body></html>
`

/** Serves the page, its script and its worker's on 127.0.0.1 (its own port: every mirror is another origin). */
const serve = (
  script: string,
  workerScript: string
): Promise<{ readonly url: string; readonly close: () => Promise<void> }> =>
  new Promise((resolve, reject) => {
    const server = http.createServer((req, res) => {
      if (req.url === "/") res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page)
      else if (req.url === "/entry.js")
        res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(script)
      else if (req.url === "/worker.js")
        res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(workerScript)
      else res.writeHead(404).end()
    })
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      resolve({
        url: `http://127.0.0.1:${port}/`,
        close: () =>
          new Promise((done) => {
            server.closeAllConnections()
            server.close(() => done())
          })
      })
    })
  })

/**
 * A page in headless Chromium, ready to run cases.
 * @since 0.1.0 @category models
 */
export interface BrowserHarness {
  readonly version: string
  readonly origin: string
  /** How the page's module worker sees itself. */
  readonly worker: About
  /** Runs a case in the page or its worker; its hooks run here, in Node, called back from the page. */
  run(name: string, mirrorUrl: string, api: Api, hooks: Hooks, where?: Where): Promise<Outcome>
  /** Forgets every cookie: the browser's jar is shared by all mirrors on 127.0.0.1 (cookies ignore ports). */
  clearCookies(): Promise<void>
  /** What the page printed to its console or threw, for diagnosing a failure. */
  readonly logs: ReadonlyArray<string>
  close(): Promise<void>
}

/**
 * Bundles the entry, serves it, launches Chromium and opens the page.
 * Throws a clear error when the binary is missing.
 * @since 0.1.0 @category constructors
 */
export const launch = async (): Promise<BrowserHarness> => {
  const executablePath = chromiumPath()
  if (!existsSync(executablePath)) {
    throw new Error(
      `No Chromium at ${executablePath}: run packages/conformance/install-chromium.sh (Debian's chromium) ` +
        "or set CHROMIUM_PATH"
    )
  }
  const [{ chromium }, script, workerScript] = await Promise.all([
    import("playwright-core"),
    bundle("browser-entry.ts"),
    bundle("worker-entry.ts")
  ])
  const site = await serve(script, workerScript)
  const browser = await chromium.launch({ executablePath, args: launchArgs })
  try {
    const context = await browser.newContext()
    const tab = await context.newPage()
    const logs: Array<string> = []
    tab.on("console", (message) => logs.push(`${message.type()}: ${message.text()}`))
    tab.on("pageerror", (error) => logs.push(`pageerror: ${error.message}`))
    let hooks: Hooks = {}
    await tab.exposeFunction("conformanceHook", (kind: keyof Hooks) => {
      const hook = hooks[kind]
      return hook === undefined ? Promise.reject(new Error(`no ${kind} hook for this run`)) : hook()
    })
    await tab.goto(site.url)
    await tab.waitForFunction(() => (globalThis as { conformanceReady?: boolean }).conformanceReady === true, null, {
      timeout: 10_000
    })
    const worker = await tab.evaluate(() => (globalThis as unknown as { conformanceWorker: About }).conformanceWorker)
    return {
      version: browser.version(),
      origin: new URL(site.url).origin,
      worker,
      logs,
      run: (name, mirrorUrl, api, next, where = "page") => {
        hooks = next
        const flags: HookFlags = { probe: next.probe !== undefined, received: next.received !== undefined }
        return tab.evaluate(
          ([name, mirrorUrl, api, flags, where]) =>
            (
              globalThis as unknown as {
                runCase(name: string, url: string, api: Api, flags: HookFlags, where: Where): Promise<Outcome>
              }
            ).runCase(name, mirrorUrl, api, flags, where),
          [name, mirrorUrl, api, flags, where] as const
        )
      },
      clearCookies: () => context.clearCookies(),
      close: async () => {
        await browser.close()
        await site.close()
      }
    }
  } catch (error) {
    await browser.close()
    await site.close()
    throw error
  }
}
