import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { MirrorServer } from "@easychat/testkit"
import { describe, expect, it } from "vitest"
import { chatRequests, run, start, stop } from "./helpers.js"

const body = JSON.stringify({ messages: [{ role: "user", content: "through the gateway" }] })
// Keys have at least 16 printable ASCII characters.
const keyOne = "key-one-0123456789abcdef"
const keyTwo = "key-two-0123456789abcdef"

const tempFile = (content: string): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "easychat-gateway-"))
  const file = path.join(dir, "keys")
  fs.writeFileSync(file, content, { mode: 0o600 })
  return file
}

const post = (url: string, key?: string) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body
  })

/** A streamed chat request on its own connection: `started` on its first bytes, `ended` with all of them. */
const openStream = (url: string, content: string) => {
  let started!: () => void
  const first = new Promise<void>((resolve) => {
    started = resolve
  })
  const ended = new Promise<string>((resolve, reject) => {
    const request = http.request(
      `${url}/v1/chat/completions`,
      { method: "POST", headers: { "content-type": "application/json" }, agent: false },
      (response) => {
        const parts: Array<Buffer> = []
        response.on("data", (part: Buffer) => {
          parts.push(part)
          started()
        })
        response.on("end", () => resolve(Buffer.concat(parts).toString("utf8")))
        response.on("error", reject)
      }
    )
    request.on("error", reject)
    request.end(JSON.stringify({ messages: [{ role: "user", content }], stream: true }))
  })
  return { started: first, ended }
}

const refused = (url: string) =>
  fetch(`${url}/health`).then(
    () => false,
    () => true
  )

describe("easychat gateway", () => {
  it.concurrent("serves the pool behind keys and CORS until Ctrl-C, which drains it (exit 0)", async () => {
    const mirror = await MirrorServer.start()
    const gateway = start(
      ["gateway", "--port", "0", "--server", mirror.url, "--key", keyOne, "--cors", "http://app.example"],
      { env: { EASYCHAT_GATEWAY_KEYS: "ignored-when-flags-are-given" } }
    )
    try {
      const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/127\.0\.0\.1:\d+)/)
      await gateway.waitFor(/Ctrl-C stops it/)
      expect(gateway.stdout()).toContain("1 key(s) required; CORS for http://app.example")
      expect(gateway.stdout()).toContain("open requests get 10s to finish")
      expect(gateway.stdout() + gateway.stderr()).not.toContain(keyOne)
      expect((await post(url!)).status).toBe(401)
      expect((await post(url!, "ignored-when-flags-are-given")).status).toBe(401)
      const ok = await post(url!, keyOne)
      expect(ok.status).toBe(200)
      expect(await ok.json()).toMatchObject({
        object: "chat.completion",
        choices: [
          { message: { content: "Echo: through the gateway\nThis reply comes from the easychat test mirror." } }
        ]
      })
      expect(chatRequests(mirror.requests)).toHaveLength(1)
      const preflight = await fetch(`${url}/v1/chat/completions`, {
        method: "OPTIONS",
        headers: { origin: "http://app.example", "access-control-request-method": "POST" }
      })
      expect(preflight.headers.get("access-control-allow-origin")).toBe("http://app.example")
      gateway.child.kill("SIGINT")
      expect((await gateway.ended).code).toBe(0)
      expect(gateway.stderr()).toContain("SIGINT: no new connections")
      await expect(fetch(`${url}/health`)).rejects.toThrow()
    } finally {
      await stop(gateway)
      await mirror.close()
    }
  })

  it.concurrent("on SIGTERM: refuses connections, finishes short streams, ends the others with an error event, exits 0", async () => {
    // 20 ms between deltas of 4 characters: "short" lasts about 0.5 s, "long" about 20 s.
    const mirror = await MirrorServer.start({
      delayMs: 20,
      reply: (request) => (JSON.stringify(request.body).includes('"short"') ? "s".repeat(100) : "l".repeat(4000))
    })
    const gateway = start(["gateway", "--port", "0", "--server", mirror.url, "--grace", "2s"])
    try {
      const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/127\.0\.0\.1:\d+)/)
      expect(gateway.stdout()).toContain("open requests get 2s to finish")
      const long = openStream(url!, "long")
      await long.started
      const short = openStream(url!, "short")
      await short.started
      const signalled = Date.now()
      gateway.child.kill("SIGTERM")
      await gateway.waitFor(/SIGTERM: no new connections; open requests get 2s to finish/, "stderr")
      // The listener closes at once: a new connection is refused while the streams go on.
      const deadline = Date.now() + 1000
      while (!(await refused(url!))) {
        if (Date.now() > deadline) throw new Error("still accepting connections after SIGTERM")
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
      const finished = await short.ended
      expect(finished.trimEnd().endsWith("data: [DONE]")).toBe(true)
      const cut = await long.ended
      expect(Date.now() - signalled).toBeGreaterThanOrEqual(1900)
      expect(cut).not.toContain("[DONE]")
      const last = cut.trimEnd().split("\n\n").at(-1)!
      expect(last.startsWith("event: error\ndata: ")).toBe(true)
      expect(JSON.parse(last.slice("event: error\ndata: ".length))).toMatchObject({
        error: { type: "server_error", code: "gateway_shutdown" }
      })
      const result = await gateway.ended
      expect(result.code).toBe(0)
      expect(result.signal).toBeNull()
      const upstream = chatRequests(mirror.requests).find((r) => JSON.stringify(r.body).includes('"long"'))!
      expect((await upstream.closed).finished).toBe(false)
    } finally {
      await stop(gateway)
      await mirror.close()
    }
  })

  it.concurrent("exits at once on a second signal during the drain", async () => {
    const mirror = await MirrorServer.start({ delayMs: 50, reply: "l".repeat(4000) })
    const gateway = start(["gateway", "--port", "0", "--server", mirror.url, "--grace", "30s"])
    try {
      const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/127\.0\.0\.1:\d+)/)
      const long = openStream(url!, "long")
      // Cut without an end: the connection closes under it.
      const cut = long.ended.catch(() => "cut")
      await long.started
      gateway.child.kill("SIGTERM")
      await gateway.waitFor(/SIGTERM: no new connections/, "stderr")
      const before = Date.now()
      gateway.child.kill("SIGTERM")
      const result = await gateway.ended
      expect(Date.now() - before).toBeLessThan(5000)
      expect(result.code).toBe(143)
      expect(await cut).toBe("cut")
    } finally {
      await stop(gateway)
      await mirror.close()
    }
  })

  it.concurrent("takes its keys from EASYCHAT_GATEWAY_KEYS (commas or lines) and serves --local", async () => {
    const gateway = start(["gateway", "--port", "0", "--local"], {
      env: { EASYCHAT_GATEWAY_KEYS: `${keyOne},\n ${keyTwo}\n` }
    })
    try {
      const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/[\d.:]+)/)
      expect(gateway.stdout()).toContain("2 key(s) required")
      expect((await post(url!, keyTwo)).status).toBe(200)
      expect((await post(url!, keyOne)).status).toBe(200)
      expect((await post(url!, "key-three-0123456789")).status).toBe(401)
    } finally {
      await stop(gateway)
    }
  })

  it.concurrent("takes its keys from --key-file (comments and blank lines skipped), before the environment", async () => {
    const file = tempFile(`# the gateway's keys\n${keyOne}\n\n  # old: revoked-key-0123456789\n${keyTwo}\n`)
    const gateway = start(["gateway", "--port", "0", "--local", "--key-file", file], {
      env: { EASYCHAT_GATEWAY_KEYS: "from-the-environment-0123" }
    })
    try {
      const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/[\d.:]+)/)
      expect(gateway.stdout()).toContain("2 key(s) required")
      expect((await post(url!, keyOne)).status).toBe(200)
      expect((await post(url!, keyTwo)).status).toBe(200)
      expect((await post(url!, "revoked-key-0123456789")).status).toBe(401)
      expect((await post(url!, "from-the-environment-0123")).status).toBe(401)
    } finally {
      await stop(gateway)
    }
  })

  it.concurrent("refuses short, non-ASCII and unreadable keys at start-up, naming the rule and never the key", async () => {
    const file = tempFile(`${keyOne}\nshort-key\n`)
    const rule = "a key must be at least 16 characters, each printable ASCII other than space"
    const cases: Array<[Array<string>, Record<string, string>, string]> = [
      [["--key", "tiny"], {}, `--key (number 1): ${rule}`],
      [["--key-file", file], {}, `--key-file ${file} (line 2): ${rule}`],
      [[], { EASYCHAT_GATEWAY_KEYS: `${keyOne},clé-clé-clé-clé-clé` }, `EASYCHAT_GATEWAY_KEYS (key 2): ${rule}`],
      [["--key-file", `${file}.missing`], {}, `cannot read --key-file ${file}.missing: ENOENT`]
    ]
    for (const [args, env, message] of cases) {
      const result = await run(["gateway", "--port", "0", "--local", ...args], { env })
      expect(result.code).toBe(2)
      expect(result.stderr).toContain(message)
      for (const secret of ["tiny", "short-key", "clé"]) expect(result.stderr).not.toContain(secret)
      expect(result.stdout).not.toContain("listening")
    }
  })

  it.concurrent("refuses a non-loopback host without a key", async () => {
    const result = await run(["gateway", "--host", "0.0.0.0", "--port", "0", "--local"])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("refusing to serve on 0.0.0.0 without a key")
    expect(result.stderr).toContain("EASYCHAT_GATEWAY_KEYS")
    expect(result.stdout).not.toContain("listening")
  })

  it.concurrent("takes --host LOCALHOST for loopback: no warning about keys", async () => {
    const gateway = start(["gateway", "--host", "LOCALHOST", "--port", "0", "--local"])
    try {
      const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/\S+)/)
      expect((await fetch(`${url}/health`)).status).toBe(200)
      expect(gateway.stdout() + gateway.stderr()).not.toContain("without a key")
    } finally {
      await stop(gateway)
    }
  })

  it.concurrent("refuses bad limits and deadlines", async () => {
    for (const [args, message] of [
      [["--grace", "soon"], "--grace soon: expected a duration"],
      [["--send-timeout", "0"], "--send-timeout 0: expected a duration"],
      [["--max-concurrent", "0"], "--max-concurrent must be a positive integer"],
      [["--hostname", "http://x/"], "hostnames must be host names"]
    ] as const) {
      const result = await run(["gateway", "--port", "0", "--local", ...args])
      expect(result.code).toBe(2)
      expect(result.stderr).toContain(message)
    }
  })

  it.concurrent("forwards only what its clients sent, whatever the preset", async () => {
    const mirror = await MirrorServer.start()
    const plain = start(["gateway", "--port", "0", "--server", mirror.url])
    const easychat = start(["gateway", "--port", "0", "--server", mirror.url, "--preset", "easychat"])
    try {
      for (const gateway of [plain, easychat]) {
        const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/127\.0\.0\.1:\d+)/)
        const ok = await post(url!)
        expect(ok.status).toBe(200)
        await ok.text()
      }
      const [fromPlain, fromEasyChat] = chatRequests(mirror.requests)
      for (const request of [fromPlain!, fromEasyChat!]) {
        expect(request.body).not.toHaveProperty("temperature")
        expect(request.body).not.toHaveProperty("top_p")
      }
      // The preset still decides the headers: browser-like only for the mirrors' preset.
      expect(fromPlain!.headers).not.toHaveProperty("sec-ch-ua")
      expect(fromPlain!.headers).not.toHaveProperty("origin")
      expect(fromEasyChat!.headers).toMatchObject({ "sec-ch-ua": expect.any(String), origin: mirror.url })
    } finally {
      await stop(plain)
      await stop(easychat)
      await mirror.close()
    }
  })
})
