// Bun answers `import "undici"` with a module whose classes have no methods: simulated here on Node (the real Bun
// run is packages/conformance/test/node-transport-on-bun.test.ts).
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Client } from "@easychat/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import * as NodeTransport from "../src/index.js"

vi.mock("undici", () => ({
  Agent: class Agent {},
  ProxyAgent: class ProxyAgent {},
  EnvHttpProxyAgent: class EnvHttpProxyAgent {}
}))

const refusal = {
  _tag: "UnsupportedRuntime",
  runtime: `Node ${process.versions.node}`,
  missing: [
    "Agent.prototype.request",
    "Agent.prototype.destroy",
    "ProxyAgent.prototype.request",
    "ProxyAgent.prototype.destroy",
    "EnvHttpProxyAgent.prototype.request",
    "EnvHttpProxyAgent.prototype.destroy"
  ]
}
const messages = [{ role: "user" as const, content: "Hello" }]

describe("on a runtime whose undici is partial", () => {
  let server: http.Server
  let url: string
  const received: Array<string> = []
  beforeAll(async () => {
    server = http.createServer((request, response) => {
      received.push(`${request.method} ${request.url}`)
      response.writeHead(500).end()
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve))
    // Nothing ever reached the network.
    expect(received).toEqual([])
  })

  it("unsupportedRuntime() names what is missing", () => {
    const error = NodeTransport.unsupportedRuntime()
    expect(error).toBeInstanceOf(NodeTransport.UnsupportedRuntime)
    expect(error).toMatchObject(refusal)
    expect(error?.message).toContain("Use @easychat/transport-fetch")
  })

  it("createClient throws UnsupportedRuntime at creation", () => {
    let thrown: unknown
    try {
      NodeTransport.createClient({ servers: [url] })
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(NodeTransport.UnsupportedRuntime)
    expect(thrown).toMatchObject(refusal)
  })

  it("the layer dies with UnsupportedRuntime as soon as it is built", async () => {
    const exit = await Effect.runPromiseExit(Effect.scoped(Layer.build(NodeTransport.layer())))
    expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
    const error = Exit.isFailure(exit) ? Cause.squash(exit.cause) : undefined
    expect(error).toBeInstanceOf(NodeTransport.UnsupportedRuntime)
    expect(error).toMatchObject(refusal)
  })

  it("core's facade over the layer rejects its first call with the error itself; close() resolves", async () => {
    const client = Client.make({ servers: [url] }, NodeTransport.layer())
    const error = await client.complete({ messages }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(NodeTransport.UnsupportedRuntime)
    expect(error).toMatchObject(refusal)
    await expect(client.close()).resolves.toBeUndefined()
  })
})
