import { MirrorServer } from "@easychat/testkit"
import { describe, expect, it } from "vitest"
import { chatRequests, run, start, stop } from "./helpers.js"

const body = JSON.stringify({ messages: [{ role: "user", content: "through the gateway" }] })

describe("easychat gateway", () => {
  it.concurrent("serves the pool behind keys and CORS until Ctrl-C", async () => {
    const mirror = await MirrorServer.start()
    const gateway = start(
      ["gateway", "--port", "0", "--server", mirror.url, "--key", "key-one", "--cors", "http://app.example"],
      { env: { EASYCHAT_GATEWAY_KEYS: "ignored-when-flags-are-given" } }
    )
    try {
      const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/127\.0\.0\.1:\d+)/)
      await gateway.waitFor(/Ctrl-C stops it/)
      expect(gateway.stdout()).toContain("1 key(s) required; CORS for http://app.example")
      expect(gateway.stdout() + gateway.stderr()).not.toContain("key-one")
      const post = (key?: string) =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
          body
        })
      expect((await post()).status).toBe(401)
      expect((await post("ignored-when-flags-are-given")).status).toBe(401)
      const ok = await post("key-one")
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
      expect((await gateway.ended).code).toBe(130)
      await expect(fetch(`${url}/health`)).rejects.toThrow()
    } finally {
      await stop(gateway)
      await mirror.close()
    }
  })

  it.concurrent("takes its keys from EASYCHAT_GATEWAY_KEYS and serves --local", async () => {
    const gateway = start(["gateway", "--port", "0", "--local"], { env: { EASYCHAT_GATEWAY_KEYS: "a-key, b-key" } })
    try {
      const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/[\d.:]+)/)
      const post = (key: string) =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
          body
        })
      expect((await post("b-key")).status).toBe(200)
      expect((await post("c-key")).status).toBe(401)
    } finally {
      await stop(gateway)
    }
  })

  it.concurrent("refuses a non-loopback host without a key", async () => {
    const result = await run(["gateway", "--host", "0.0.0.0", "--port", "0", "--local"])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain("refusing to serve on 0.0.0.0 without a key")
    expect(result.stdout).not.toContain("listening")
  })

  it.concurrent("forwards only what its clients sent, whatever the preset", async () => {
    const mirror = await MirrorServer.start()
    const plain = start(["gateway", "--port", "0", "--server", mirror.url])
    const easychat = start(["gateway", "--port", "0", "--server", mirror.url, "--preset", "easychat"])
    try {
      for (const gateway of [plain, easychat]) {
        const [, url] = await gateway.waitFor(/Gateway listening on (http:\/\/127\.0\.0\.1:\d+)/)
        const ok = await fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body
        })
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
