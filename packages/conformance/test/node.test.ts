// The conformance table on Node: the undici transport and the fetch transport on Node's global fetch, each through
// the Effect service and the Promise facade.
import * as FetchTransport from "@easychat/transport-fetch"
import * as NodeTransport from "@easychat/transport-node"
import { describe, it } from "vitest"
import { apisOf, cases, forRuntime, type Runtime } from "../src/cases.js"
import { hooksFor, startTarget } from "../src/harness.js"
import { runCase, type Transport } from "../src/runner.js"
import { verify } from "./support.js"

const transports: ReadonlyArray<readonly [Runtime, Transport]> = [
  ["node", { layer: () => NodeTransport.layer(), createClient: (options) => NodeTransport.createClient(options) }],
  [
    "fetch-node",
    { layer: () => FetchTransport.layer(), createClient: (options) => FetchTransport.createClient(options) }
  ]
]

for (const [runtime, transport] of transports) {
  // Each run has its own mirror and client: they can overlap.
  describe.concurrent(runtime, () => {
    for (const c of cases) {
      const expected = forRuntime(c, runtime)
      if (expected === undefined) continue
      for (const api of apisOf(c)) {
        ;(expected.knownBug === undefined ? it : it.fails)(`${c.name} [${api}]`, async () => {
          const target = await startTarget(c)
          try {
            const outcome = await runCase(c, target.url, transport, api, hooksFor(c, runtime, target))
            verify(c, runtime, outcome, target)
          } finally {
            await target.close()
          }
        })
      }
    }
  })
}
