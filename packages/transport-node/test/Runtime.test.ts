import { Client } from "@easychat/core"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as undici from "undici"
import { afterEach, describe, expect, it, vi } from "vitest"
import * as NodeTransport from "../src/index.js"
import { check, missingFrom, runtimeName } from "../src/internal/runtime.js"

/** Bun 1.4's `undici`: the classes exist, with nothing on their prototypes. */
const bunUndici = {
  Agent: class Agent {},
  ProxyAgent: class ProxyAgent {},
  EnvHttpProxyAgent: class EnvHttpProxyAgent {},
  fetch: () => undefined
}
const everyMethod = [
  "Agent.prototype.request",
  "Agent.prototype.destroy",
  "ProxyAgent.prototype.request",
  "ProxyAgent.prototype.destroy",
  "EnvHttpProxyAgent.prototype.request",
  "EnvHttpProxyAgent.prototype.destroy"
]

describe("the runtime check (by capability)", () => {
  it("Node's undici has everything the transport calls", () => {
    expect(missingFrom(undici as unknown as Record<string, unknown>)).toEqual([])
    expect(NodeTransport.unsupportedRuntime()).toBeUndefined()
  })

  it("Bun's partial undici lacks every method, and the runtime is named from process.versions", () => {
    expect(check(bunUndici, { node: "24.3.0", bun: "1.4.4" })).toEqual({ runtime: "Bun 1.4.4", missing: everyMethod })
  })

  it("a missing class or one missing method is reported as such, whatever the runtime's name", () => {
    const { ProxyAgent: _, ...withoutProxy } = undici as unknown as Record<string, unknown>
    expect(check(withoutProxy, { node: "22.1.0" })).toEqual({ runtime: "Node 22.1.0", missing: ["ProxyAgent"] })
    class Partial {
      request() {}
    }
    const oneMissing = {
      ...bunUndici,
      Agent: Partial,
      ProxyAgent: undici.ProxyAgent,
      EnvHttpProxyAgent: undici.EnvHttpProxyAgent
    }
    expect(check(oneMissing, { deno: "2.9.6", node: "22.0.0" })).toEqual({
      runtime: "Deno 2.9.6",
      missing: ["Agent.prototype.destroy"]
    })
    // A Bun whose undici grows the methods passes: the name alone decides nothing.
    expect(check(undici as unknown as Record<string, unknown>, { bun: "9.0.0" })).toBeUndefined()
  })

  it("names an unknown runtime without failing", () => {
    expect(runtimeName(undefined)).toBe("this runtime")
    expect(runtimeName({})).toBe("this runtime")
  })

  it("UnsupportedRuntime says what is missing and to use transport-fetch", () => {
    const error = new NodeTransport.UnsupportedRuntime({ runtime: "Bun 1.4.4", missing: everyMethod.slice(0, 2) })
    expect(error._tag).toBe("UnsupportedRuntime")
    expect(error.message).toBe(
      "@easychat/transport-node cannot run on Bun 1.4.4: its undici module lacks Agent.prototype.request, " +
        "Agent.prototype.destroy. Use @easychat/transport-fetch on this runtime (its layer() and createClient() " +
        "take the same place)."
    )
  })
})

describe("closing never fails", () => {
  afterEach(() => {
    vi.restoreAllMocks()
  })

  const failures = [
    ["rejects", () => Promise.reject(new Error("already destroyed"))],
    [
      "throws",
      () => {
        throw new TypeError("dispatcher.destroy is not a function")
      }
    ]
  ] as const

  for (const [how, destroy] of failures) {
    it(`makeDispatcher's scope closes when destroy ${how}`, async () => {
      const spy = vi.spyOn(undici.Agent.prototype, "destroy").mockImplementation(destroy as never)
      const exit = await Effect.runPromiseExit(Effect.scoped(NodeTransport.makeDispatcher()))
      expect(spy).toHaveBeenCalledTimes(1)
      // Success, not a defect.
      expect(Exit.isSuccess(exit) ? "success" : exit.cause.toString()).toBe("success")
    })

    it(`createClient's close() resolves when destroy ${how}, and again after`, async () => {
      const spy = vi.spyOn(undici.Agent.prototype, "destroy").mockImplementation(destroy as never)
      const client = NodeTransport.createClient({ servers: ["http://127.0.0.1:9"] })
      // `health` builds the layer, and with it the dispatcher, without a request.
      expect(await client.health()).toHaveLength(1)
      await expect(client.close()).resolves.toBeUndefined()
      expect(spy).toHaveBeenCalledTimes(1)
      await expect(client.close()).resolves.toBeUndefined()
    })
  }

  it("close() of core's facade resolves when the layer died on build", async () => {
    const client = Client.make({ servers: ["http://127.0.0.1:9"] }, NodeTransport.layer({ proxy: "not a url" }))
    await expect(client.complete({ messages: [{ role: "user", content: "Hi" }] })).rejects.toThrow(
      'the `proxy` option is neither "env" nor a valid URL'
    )
    await expect(client.close()).resolves.toBeUndefined()
  })
})
