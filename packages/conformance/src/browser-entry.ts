/**
 * The page side of the Chromium runs, bundled by `browser.ts`: the fetch
 * transport on the browser's own fetch, driven by the same cases and runner
 * as on Node. The Node side calls `window.runCase(name, mirrorUrl, api, probe)`.
 *
 * @since 0.1.0
 */
import * as FetchTransport from "@easychat/transport-fetch"
import { type Api, byName, type Outcome, type Probe } from "./cases.js"
import { runCase, type Transport } from "./runner.js"

/** What the page exposes to the harness, and the probe the harness exposes to the page. */
export interface ConformancePage {
  runCase(name: string, mirrorUrl: string, api: Api, probe: boolean): Promise<Outcome>
  conformanceProbe?: () => Promise<Probe>
  conformanceReady?: boolean
}

const page = globalThis as unknown as ConformancePage

// No options: the transport must detect the browser by itself (credentials, forbidden headers, redirects).
const transport: Transport = {
  layer: () => FetchTransport.layer(),
  createClient: (options) => FetchTransport.createClient(options)
}

page.runCase = (name, mirrorUrl, api, probe) =>
  runCase(byName(name), mirrorUrl, transport, api, probe ? { probe: () => page.conformanceProbe!() } : {})
page.conformanceReady = true
