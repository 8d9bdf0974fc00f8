// `@easychat/transport-node` on a real Bun: Bun answers `import "undici"` with a partial module of its own, so the
// transport must refuse at once, with `UnsupportedRuntime` pointing at `@easychat/transport-fetch`, before any byte
// is sent; and `close()` must resolve. The script runs the built `dist` (`pnpm --filter @easychat/transport-node
// build`), as a Bun user would import it.
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

const ci = process.env.CI !== undefined && process.env.CI !== "" && process.env.CI !== "false"
const packageDir = fileURLToPath(new URL("..", import.meta.url))
const bun = join(packageDir, "node_modules", ".bin", process.platform === "win32" ? "bun.exe" : "bun")
// Without Bun the suite skips locally, loudly; under CI a missing Bun is a failure.
const skip = !existsSync(bun) && !ci
if (skip) {
  console.warn(
    `\n${"!".repeat(78)}\n!! SKIPPING transport-node on Bun: no bun at ${bun}.\n` +
      `!! It comes with this package's devDependencies (\`bun\`); run pnpm install.\n${"!".repeat(78)}\n`
  )
}

/** Runs in Bun; prints one JSON line: what each way of using the transport gave. */
const script = (url: string) => `
import * as NodeTransport from "@easychat/transport-node"
import { Client } from "@easychat/core"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"

const info = (error) => ({ tag: error?._tag, message: error?.message, runtime: error?.runtime, missing: error?.missing,
  isUnsupportedRuntime: error instanceof NodeTransport.UnsupportedRuntime })
const settle = async (promise) => promise.then((value) => ({ resolved: value ?? null }), (error) => ({ rejected: info(error) }))
const servers = [${JSON.stringify(url)}]
const messages = [{ role: "user", content: "Hello" }]
const out = { runtime: "Bun " + process.versions.bun }

try {
  const client = NodeTransport.createClient({ servers })
  out.createClient = { returned: true, complete: await settle(client.complete({ messages })), close: await settle(client.close()) }
} catch (error) {
  out.createClient = { threw: info(error) }
}

const exit = await Effect.runPromiseExit(Effect.scoped(Layer.build(NodeTransport.layer())))
out.layer = Exit.isSuccess(exit) ? { built: true } : { died: Cause.isDie(exit.cause), error: info(Cause.squash(exit.cause)) }

// Core's facade over the layer directly (as @easychat/ai-sdk's \`transport\` option does): the first call builds it.
const client = Client.make({ servers }, NodeTransport.layer())
out.facade = { complete: await settle(client.complete({ messages })), close: await settle(client.close()) }
out.closeUnused = await settle(Client.make({ servers }, NodeTransport.layer()).close())
out.unsupportedRuntime = info(NodeTransport.unsupportedRuntime())
console.log(JSON.stringify(out))
`

describe.skipIf(skip)("@easychat/transport-node on Bun", () => {
  let server: Http.Server
  let url: string
  const received: Array<string> = []

  beforeAll(async () => {
    server = Http.createServer((request, response) => {
      received.push(`${request.method} ${request.url}`)
      response.writeHead(500).end()
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })

  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve))
  })

  it("refuses at once with UnsupportedRuntime, sends nothing, and close() resolves", () => {
    expect(existsSync(bun), `no bun at ${bun}`).toBe(true)
    const dist = join(packageDir, "node_modules", "@easychat", "transport-node", "dist", "index.js")
    expect(existsSync(dist), `build transport-node first: ${dist} is missing`).toBe(true)

    const run = spawnSync(bun, ["-e", script(url)], { cwd: packageDir, encoding: "utf8", timeout: 60_000 })
    expect(run.status, run.stderr).toBe(0)
    const out = JSON.parse(run.stdout.trim().split("\n").at(-1)!)

    expect(out.runtime).toMatch(/^Bun \d+\.\d+/)
    const refusal = {
      tag: "UnsupportedRuntime",
      runtime: out.runtime,
      missing: expect.arrayContaining(["Agent.prototype.request"]),
      isUnsupportedRuntime: true,
      message: expect.stringContaining(`cannot run on ${out.runtime}`)
    }
    // The Promise facade throws at creation: there is no client to close.
    expect(out.createClient).toEqual({ threw: refusal })
    expect(out.createClient.threw.message).toContain("Use @easychat/transport-fetch")
    // The layer dies as soon as it is built, with the same error.
    expect(out.layer).toEqual({ died: true, error: refusal })
    // Core's facade over the layer: the first call rejects with the error itself; close() resolves.
    expect(out.facade).toEqual({ complete: { rejected: refusal }, close: { resolved: null } })
    expect(out.closeUnused).toEqual({ resolved: null })
    expect(out.unsupportedRuntime).toEqual(refusal)
    // Nothing reached the network.
    expect(received).toEqual([])
  }, 90_000)
})
