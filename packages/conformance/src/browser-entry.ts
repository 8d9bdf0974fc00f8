/**
 * The page side of the Chromium runs, bundled by `browser.ts`: the fetch
 * transport on the browser's own fetch, driven by the same cases and runner
 * as on Node, on the page's main thread or in a module worker it starts
 * (`worker-entry.ts`, served as `/worker.js`). The Node side calls
 * `window.runCase(name, mirrorUrl, api, hooks, where)`.
 *
 * @since 0.1.0
 */
import { type Api, byName, type Outcome, type Probe } from "./cases.js"
import { type About, askRuns, fetchTransport, type HookFlags, type Reply } from "./remote.js"
import { type Hooks, runCase } from "./runner.js"

/**
 * Where a case runs in the page.
 * @since 0.1.0 @category models
 */
export type Where = "page" | "worker"

/** What the page exposes to the harness, and the hook the harness exposes to the page (see `Hooks`). */
export interface ConformancePage {
  runCase(name: string, mirrorUrl: string, api: Api, hooks: HookFlags, where: Where): Promise<Outcome>
  conformanceHook?: (kind: keyof Hooks) => Promise<unknown>
  conformanceReady?: boolean
  /** How the worker sees itself, once it is ready. */
  conformanceWorker?: About
}

const page = globalThis as unknown as ConformancePage

const hooksOf = (flags: HookFlags): Hooks => {
  const hooks: { -readonly [K in keyof Hooks]: Hooks[K] } = {}
  if (flags.probe) hooks.probe = () => page.conformanceHook!("probe") as Promise<Probe>
  if (flags.received) hooks.received = () => page.conformanceHook!("received") as Promise<void>
  return hooks
}

// A module worker: the bundle is an ES module, and `type: "module"` is how a site ships its bundle to a worker.
const worker = new Worker("/worker.js", { type: "module" })
const inWorker = askRuns((request) => worker.postMessage(request))
worker.onmessage = (event: MessageEvent<Reply>) => inWorker.receive(event.data)
worker.onerror = (event) => {
  console.error(`the worker failed: ${event.message}`)
  inWorker.fail(new Error(`the worker failed: ${event.message}`))
}

page.runCase = (name, mirrorUrl, api, flags, where) =>
  where === "worker"
    ? inWorker.run(name, mirrorUrl, api, hooksOf(flags))
    : runCase(byName(name), mirrorUrl, fetchTransport, api, hooksOf(flags))

void inWorker.ready.then((about) => {
  page.conformanceWorker = about
  page.conformanceReady = true
})
