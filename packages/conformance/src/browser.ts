/**
 * Drives the fetch transport inside headless Chromium: bundles
 * `browser-entry.ts` with esbuild, serves it from a node:http server on
 * 127.0.0.1, and opens it in Debian's `chromium` through playwright-core.
 * Nothing here downloads a browser. Node-only.
 *
 * @since 0.1.0
 */
import { existsSync } from "node:fs"
import * as http from "node:http"
import { createRequire } from "node:module"
import type * as net from "node:net"
import { fileURLToPath } from "node:url"
import type { HookFlags } from "./browser-entry.js"
import type { Api, Outcome } from "./cases.js"
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

/** The part of esbuild's API used here (its types are not reachable from this package). */
interface Esbuild {
  build(options: {
    readonly entryPoints: ReadonlyArray<string>
    readonly bundle: boolean
    readonly write: false
    readonly format: "esm"
    readonly platform: "browser"
    readonly target: string
    readonly logLevel: "silent"
  }): Promise<{ readonly outputFiles: ReadonlyArray<{ readonly text: string }> }>
}

// esbuild is not a dependency of this package: it comes with vite, which comes with vitest. Resolving it along that
// chain (rather than by a pinned path in node_modules/.pnpm) survives version bumps.
const loadEsbuild = async (): Promise<Esbuild> => {
  const fromHere = createRequire(import.meta.url)
  const fromVitest = createRequire(fromHere.resolve("vitest/package.json"))
  const fromVite = createRequire(fromVitest.resolve("vite/package.json"))
  return (await import(fromVite.resolve("esbuild"))) as Esbuild
}

/**
 * The page's script: `browser-entry.ts` with core, the fetch transport and
 * Effect, as one ES module.
 * @since 0.1.0 @category constructors
 */
export const bundle = async (): Promise<string> => {
  const esbuild = await loadEsbuild()
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(new URL("./browser-entry.ts", import.meta.url))],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    logLevel: "silent"
  })
  return result.outputFiles[0]!.text
}

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>easychat conformance</title>
<script type="module" src="/entry.js"></script></head><body></body></html>
`

/** Serves the page and its script on 127.0.0.1 (its own port: every mirror is another origin). */
const serve = (script: string): Promise<{ readonly url: string; readonly close: () => Promise<void> }> =>
  new Promise((resolve, reject) => {
    const server = http.createServer((req, res) => {
      if (req.url === "/") res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(page)
      else if (req.url === "/entry.js")
        res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(script)
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
  /** Runs a case in the page; its hooks run here, in Node, called back from the page. */
  run(name: string, mirrorUrl: string, api: Api, hooks: Hooks): Promise<Outcome>
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
  const [{ chromium }, script] = await Promise.all([import("playwright-core"), bundle()])
  const site = await serve(script)
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
    return {
      version: browser.version(),
      origin: new URL(site.url).origin,
      logs,
      run: (name, mirrorUrl, api, next) => {
        hooks = next
        const flags: HookFlags = { probe: next.probe !== undefined, received: next.received !== undefined }
        return tab.evaluate(
          ([name, mirrorUrl, api, flags]) =>
            (
              globalThis as unknown as {
                runCase(name: string, url: string, api: Api, flags: HookFlags): Promise<Outcome>
              }
            ).runCase(name, mirrorUrl, api, flags),
          [name, mirrorUrl, api, flags] as const
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
