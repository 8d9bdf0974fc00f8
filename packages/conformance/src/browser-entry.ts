/**
 * The page side of the Chromium runs, bundled by `browser.ts`: the fetch
 * transport on the browser's own fetch, driven by the same cases and runner
 * as on Node. The Node side calls `window.runCase(name, mirrorUrl, api, hooks)`.
 *
 * @since 0.1.0
 */
import * as FetchTransport from "@easychat/transport-fetch"
import { type Api, byName, type Outcome, type Probe } from "./cases.js"
import { type Hooks, runCase, type Transport } from "./runner.js"

/** What the page exposes to the harness, and the hook the harness exposes to the page (see `Hooks`). */
export interface ConformancePage {
  runCase(name: string, mirrorUrl: string, api: Api, hooks: HookFlags): Promise<Outcome>
  conformanceHook?: (kind: keyof Hooks) => Promise<unknown>
  conformanceReady?: boolean
}

/** Which hooks the harness has for a run (functions cannot cross into the page, so the page calls back by name). */
export type HookFlags = { readonly [K in keyof Hooks]-?: boolean }

const page = globalThis as unknown as ConformancePage

// No options: the transport must detect the browser by itself (credentials, forbidden headers, redirects).
const transport: Transport = {
  layer: () => FetchTransport.layer(),
  createClient: (options) => FetchTransport.createClient(options)
}

page.runCase = (name, mirrorUrl, api, flags) => {
  const hooks: { -readonly [K in keyof Hooks]: Hooks[K] } = {}
  if (flags.probe) hooks.probe = () => page.conformanceHook!("probe") as Promise<Probe>
  if (flags.received) hooks.received = () => page.conformanceHook!("received") as Promise<void>
  return runCase(byName(name), mirrorUrl, transport, api, hooks)
}
page.conformanceReady = true
