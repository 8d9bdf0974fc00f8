import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { MirrorServer } from "@easychat/testkit"
import { describe, expect, it } from "vitest"
import { chatRequests, run, start, stop } from "./helpers.js"

const configFile = (content: string): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "easychat-config-"))
  const file = path.join(dir, "easychat.yaml")
  fs.writeFileSync(file, content)
  return file
}

const routes = (a: string, b: string) => `
routes:
  - { name: first, models: [model-a], servers: ["${a}"] }
  - { name: second, models: [model-b], servers: ["${b}"] }
`

const ask = (url: string, model: string) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "routed" }] })
  })

describe("easychat gateway --config", () => {
  it.concurrent("routes by model from the file, and reloads on SIGHUP; a bad file keeps the routes in use", async () => {
    const [a, b] = await Promise.all([MirrorServer.start(), MirrorServer.start()])
    const file = configFile(routes(a.url, b.url))
    const gateway = start(["gateway", "--port", "0", "--config", file])
    try {
      const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/127\.0\.0\.1:\d+)/)
      expect(gateway.stdout()).toContain("2 route(s)")
      expect((await ask(url!, "model-a")).status).toBe(200)
      expect((await ask(url!, "model-b")).status).toBe(200)
      expect((await ask(url!, "model-c")).status).toBe(404)
      expect(chatRequests(a.requests)).toHaveLength(1)
      expect(chatRequests(b.requests)).toHaveLength(1)
      fs.writeFileSync(file, routes(a.url, b.url).replace(`"${b.url}"`, `"${b.url}", { url: "${b.url}", weight: -1 }`))
      gateway.child.kill("SIGHUP")
      await gateway.waitFor(/The routes in use stay/, "stderr")
      expect(gateway.stderr()).toContain("routes[1].servers[1].weight: must be a positive number")
      expect((await ask(url!, "model-a")).status).toBe(200)
      expect(chatRequests(a.requests)).toHaveLength(2)
      // Both models to the second mirror now.
      fs.writeFileSync(file, routes(b.url, b.url))
      gateway.child.kill("SIGHUP")
      await gateway.waitFor(/Routes: first, second/, "stderr")
      expect((await ask(url!, "model-a")).status).toBe(200)
      expect(chatRequests(a.requests)).toHaveLength(2)
      expect(chatRequests(b.requests)).toHaveLength(2)
      // SIGTERM drains, as without a file, and exits 0.
      gateway.child.kill("SIGTERM")
      expect((await gateway.ended).code).toBe(0)
      expect(gateway.stderr()).toContain("SIGTERM: no new connections; open requests get 10s to finish")
      await expect(fetch(`${url}/health`)).rejects.toThrow()
    } finally {
      await stop(gateway)
      await Promise.all([a.close(), b.close()])
    }
  })

  it.concurrent("refuses a bad file at start-up, and pool options beside --config", async () => {
    const bad = configFile("routes:\n  - models: [m]\n    servers: [ftp://x]\n    fallback: nowhere\n")
    const refused = await run(["gateway", "--port", "0", "--config", bad])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain(`${bad} is invalid:`)
    expect(refused.stderr).toContain("routes[0].servers[0]: must be an http or https URL")
    expect(refused.stderr).toContain('routes[0].fallback: names no route: "nowhere"')
    expect(refused.stdout).not.toContain("listening")
    const good = configFile(routes("http://127.0.0.1:1", "http://127.0.0.1:2"))
    const both = await run([
      "gateway",
      "--port",
      "0",
      "--config",
      good,
      "--server",
      "http://127.0.0.1:3",
      "--model",
      "m"
    ])
    expect(both.code).toBe(2)
    expect(both.stderr).toContain("--config describes the pools: --server, --model cannot be given with it")
  })
})
