import { MirrorPool, MirrorServer } from "@easychat/testkit"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { chatRequests, run, start, stop } from "./helpers.js"

const echo = (text: string) => `Echo: ${text}\nThis reply comes from the easychat test mirror.`

describe("easychat chat", () => {
  let mirror: MirrorServer.MirrorServer
  beforeAll(async () => {
    mirror = await MirrorServer.start()
  })
  afterAll(() => mirror.close())

  const requestsFor = (text: string) =>
    chatRequests(mirror.requests).filter((r) => JSON.stringify(r.body).includes(JSON.stringify(text)))

  it.concurrent("streams one reply for a prompt and exits 0", async () => {
    const result = await run(["chat", "--server", mirror.url, "Hello", "one-shot"])
    expect(result.stderr).toBe("")
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${echo("Hello one-shot")}\n`)
    const [request] = requestsFor("Hello one-shot")
    expect(request?.path).toBe("/api/openai/v1/chat/completions")
    expect(request?.body).toMatchObject({
      stream: true,
      model: "gpt-3.5-turbo",
      messages: [{ role: "user", content: "Hello one-shot" }]
    })
  })

  it.concurrent("reads the prompt from piped stdin", async () => {
    const result = await run(["chat", "--server", mirror.url], { input: "Piped question\nover two lines\n" })
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${echo("Piped question\nover two lines")}\n`)
  })

  it.concurrent("--json prints one object per delta, then the result", async () => {
    const result = await run(["chat", "--server", mirror.url, "--json", "json please"])
    expect(result.code).toBe(0)
    const lines = result.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l))
    const deltas = lines.slice(0, -1)
    const last = lines.at(-1)
    expect(deltas.length).toBeGreaterThan(3)
    for (const d of deltas) expect(d).toMatchObject({ type: "delta", server: mirror.url })
    expect(deltas.map((d) => d.content).join("")).toBe(echo("json please"))
    expect(deltas.at(-1).finishReason).toBe("stop")
    for (const d of deltas) expect(d).toMatchObject({ choice: 0, chunk: { object: "chat.completion.chunk" } })
    expect(last).toMatchObject({
      type: "result",
      content: echo("json please"),
      finishReason: "stop",
      choices: [{ index: 0, content: echo("json please"), finishReason: "stop" }],
      model: "gpt-3.5-turbo",
      raw: { object: "chat.completion" },
      server: mirror.url
    })
  })

  it.concurrent("--no-stream asks for the whole reply", async () => {
    const result = await run(["chat", "--server", mirror.url, "--no-stream", "whole reply"])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${echo("whole reply")}\n`)
    expect(requestsFor("whole reply")[0]?.body).toMatchObject({ stream: false })
  })

  it.concurrent("--no-stream --json prints only the result, with usage and model", async () => {
    const result = await run(["chat", "--server", mirror.url, "--no-stream", "--json", "whole json"])
    expect(result.code).toBe(0)
    const lines = result.stdout.trimEnd().split("\n")
    expect(lines).toHaveLength(1)
    expect(JSON.parse(lines[0]!)).toMatchObject({
      type: "result",
      content: echo("whole json"),
      finishReason: "stop",
      model: "gpt-3.5-turbo",
      server: mirror.url,
      usage: { total_tokens: expect.any(Number) }
    })
  })

  it.concurrent("sends the model, system prompt and sampling options", async () => {
    const result = await run([
      "chat",
      "--server",
      mirror.url,
      "--model",
      "gpt-4o-mini",
      "--system",
      "Be brief.",
      "--temperature",
      "1.5",
      "--top-p",
      "0.9",
      "--presence-penalty",
      "-1",
      "--frequency-penalty",
      "0.5",
      "--max-tokens",
      "50",
      "sampling options"
    ])
    expect(result.code).toBe(0)
    expect(requestsFor("sampling options")[0]?.body).toMatchObject({
      model: "gpt-4o-mini",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "sampling options" }
      ],
      temperature: 1.5,
      top_p: 0.9,
      presence_penalty: -1,
      frequency_penalty: 0.5,
      max_tokens: 50
    })
  })

  it.concurrent("--transport fetch gives the same reply", async () => {
    const result = await run(["chat", "--server", mirror.url, "--transport", "fetch", "over fetch"])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${echo("over fetch")}\n`)
    expect(requestsFor("over fetch")).toHaveLength(1)
  })

  it.concurrent("--local chats with the embedded mirror", async () => {
    const result = await run(["chat", "--local", "Hello"])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${echo("Hello")}\n`)
  })

  it.concurrent("takes its servers from EASYCHAT_SERVERS when --server is absent", async () => {
    const result = await run(["chat", "from the environment"], {
      env: { EASYCHAT_SERVERS: `${mirror.url}, http://127.0.0.1:1`, EASYCHAT_MODEL: "env-model" }
    })
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${echo("from the environment")}\n`)
    expect(requestsFor("from the environment")[0]?.body).toMatchObject({ model: "env-model" })
  })

  it.concurrent("sends the API key as a bearer token and never prints it", async () => {
    const key = "sk-test-0123456789abcdef"
    const flag = await run(["chat", "--server", mirror.url, "--api-key", key, "-v", "keyed by flag"])
    const env = await run(["chat", "--server", mirror.url, "keyed by env"], { env: { EASYCHAT_API_KEY: key } })
    for (const result of [flag, env]) {
      expect(result.code).toBe(0)
      expect(result.stdout + result.stderr).not.toContain(key)
    }
    expect(requestsFor("keyed by flag")[0]?.headers.authorization).toBe(`Bearer ${key}`)
    expect(requestsFor("keyed by env")[0]?.headers.authorization).toBe(`Bearer ${key}`)
  })
})

describe("easychat chat | a reader that stops early", () => {
  it.concurrent("exits quietly when stdout is closed (EPIPE)", async () => {
    const mirror = await MirrorServer.start({ reply: "many words ".repeat(20_000), chunkSize: 400, delayMs: 10 })
    const chat = start(["chat", "--server", mirror.url, "go"])
    try {
      await chat.waitFor(/many words/)
      chat.child.stdout!.destroy()
      const result = await chat.ended
      expect(result.code).toBe(0)
      expect(result.stderr).toBe("")
      // It stopped reading: the mirror's answer was cut, not finished.
      await expect(chatRequests(mirror.requests)[0]!.closed).resolves.toMatchObject({ finished: false })
    } finally {
      await stop(chat)
      await mirror.close()
    }
  })
})

describe("easychat chat over a pool", () => {
  it.concurrent("--pin sends every request to one server, by index or URL", async () => {
    const pool = await MirrorPool.start(3)
    try {
      const servers = pool.urls.flatMap((url) => ["--server", url])
      const byIndex = await run(["chat", ...servers, "--pin", "2", "pinned"])
      const byUrl = await run(["chat", ...servers, "--pin", `${pool.urls[1]}/`, "pinned"])
      expect(byIndex.code).toBe(0)
      expect(byUrl.code).toBe(0)
      expect(pool.servers.map((s) => chatRequests(s.requests).length)).toEqual([0, 1, 1])
      const wrong = await run(["chat", ...servers, "--pin", "3", "pinned"])
      expect(wrong.code).toBe(2)
      expect(wrong.stderr).toContain("activeServer must be an index from 0 to 2")
    } finally {
      await pool.close()
    }
  })

  it.concurrent("--verbose shows each failed attempt and the server that replied", async () => {
    const pool = await MirrorPool.start([{ fault: { kind: "status", status: 503 } }, { fault: { kind: "refuse" } }, {}])
    try {
      const servers = pool.urls.flatMap((url) => ["--server", url])
      const result = await run(["chat", ...servers, "--strategy", "round-robin", "--verbose", "fail over"])
      expect(result.code).toBe(0)
      expect(result.stdout).toBe(`${echo("fail over")}\n`)
      const lines = result.stderr.trimEnd().split("\n")
      expect(lines).toHaveLength(3)
      expect(lines[0]).toMatch(`attempt 1 on ${pool.urls[0]} failed: HttpStatusError: HTTP 503`)
      expect(lines[1]).toMatch(`attempt 2 on ${pool.urls[1]} failed: TransportError`)
      expect(lines[2]).toMatch(new RegExp(`replied by ${pool.urls[2]} \\(attempt 3, headers in \\d+ ms\\)`))
      // Without --verbose the failover is silent.
      const quiet = await run(["chat", ...servers, "--strategy", "round-robin", "fail over"])
      expect(quiet.code).toBe(0)
      expect(quiet.stderr).toBe("")
    } finally {
      await pool.close()
    }
  })

  it.concurrent("--verbose reports a breaker that opens", async () => {
    const pool = await MirrorPool.start([
      { fault: { kind: "status", status: 429, headers: { "retry-after": "30" } } },
      {}
    ])
    try {
      const servers = pool.urls.flatMap((url) => ["--server", url])
      const result = await run(["chat", ...servers, "--strategy", "round-robin", "-v", "breaker"])
      expect(result.code).toBe(0)
      expect(result.stderr).toMatch(
        new RegExp(
          `breaker ${pool.urls[0]}: closed → open after 1 consecutive failure \\(last: HttpStatusError\\), skipped for (29|30) s`
        )
      )
    } finally {
      await pool.close()
    }
  })

  it.concurrent("--access-code reaches a self-hosted NextChat and is never printed", async () => {
    const code = "open-sesame-42"
    const nextChat = await MirrorServer.start({ accessCode: code })
    try {
      const ok = await run(["chat", "--server", nextChat.url, "--access-code", code, "with code"])
      expect(ok.code).toBe(0)
      expect(ok.stdout).toBe(`${echo("with code")}\n`)
      expect(chatRequests(nextChat.requests)[0]?.headers.authorization).toBe(`Bearer nk-${code}`)
      const wrong = await run(["chat", "--server", nextChat.url, "-v", "--access-code", "not-the-code", "with code"], {
        env: { EASYCHAT_ACCESS_CODE: code }
      })
      expect(wrong.code).toBe(3)
      expect(wrong.stderr).toContain("HTTP 401")
      expect(wrong.stderr).toContain("wrong access code")
      expect(wrong.stdout + wrong.stderr).not.toContain("not-the-code")
      expect(wrong.stdout + wrong.stderr).not.toContain(code)
      const fromEnv = await run(["chat", "--server", nextChat.url, "code from env"], {
        env: { EASYCHAT_ACCESS_CODE: code }
      })
      expect(fromEnv.code).toBe(0)
    } finally {
      await nextChat.close()
    }
  })
})
