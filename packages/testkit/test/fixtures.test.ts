import { setupServer } from "msw/node"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { Fixtures, MirrorServer } from "../src/index.js"
import { mirrorHandlers } from "../src/msw.js"
import { chatPath, post } from "./helpers.js"

type Json = Record<string, any>

const isObject = (value: unknown): value is Json => value !== null && typeof value === "object" && !Array.isArray(value)

// ---------------------------------------------------------------------------
// A strict reading of the SSE text: every event ends with a blank line, every
// line is a comment or `data: `, every data is JSON except a last `[DONE]`.

const strictEvents = (text: string): Array<{ readonly comment: boolean; readonly data: string }> => {
  expect(text.endsWith("\n\n")).toBe(true)
  return text
    .slice(0, -2)
    .split("\n\n")
    .map((block) => {
      const lines = block.split("\n")
      if (lines.every((line) => line.startsWith(":"))) return { comment: true, data: "" }
      for (const line of lines) expect(line.startsWith("data: ")).toBe(true)
      return { comment: false, data: lines.map((line) => line.slice(6)).join("\n") }
    })
}

// ---------------------------------------------------------------------------
// An accumulator in the manner of openai-node's ChatCompletionStream: text is
// concatenated, `role`/`id`/`type`/`name` come from the first fragment, array
// items with an `index` are merged by it, other arrays (logprobs) concatenated.

const firstWins = new Set(["role", "id", "type", "name", "format", "index"])

const merge = (target: Json, delta: Json): void => {
  for (const [key, value] of Object.entries(delta)) {
    const current = target[key]
    if (value === null || value === undefined) {
      if (!(key in target)) target[key] = null
    } else if (current === null || current === undefined) {
      target[key] = structuredClone(value)
    } else if (firstWins.has(key)) {
      // kept from the first fragment
    } else if (typeof value === "string" && typeof current === "string") {
      target[key] = current + value
    } else if (Array.isArray(value) && Array.isArray(current)) {
      for (const item of value) {
        const same =
          isObject(item) && typeof item.index === "number" ? current.find((c) => c.index === item.index) : undefined
        if (same === undefined) current.push(structuredClone(item))
        else merge(same, item)
      }
    } else if (isObject(value) && isObject(current)) {
      merge(current, value)
    } else {
      throw new Error(`cannot accumulate ${key}: ${JSON.stringify(current)} then ${JSON.stringify(value)}`)
    }
  }
}

interface Accumulated {
  readonly choices: Array<Json>
  readonly usage: unknown
}

const accumulate = (chunks: ReadonlyArray<unknown>): Accumulated => {
  const choices = new Map<number, Json>()
  let usage: unknown
  for (const chunk of chunks as ReadonlyArray<Json>) {
    for (const choice of chunk.choices as Array<Json>) {
      let acc = choices.get(choice.index)
      if (acc === undefined) choices.set(choice.index, (acc = { index: choice.index, message: {}, logprobs: null }))
      const { index: _index, delta, logprobs, ...rest } = choice
      merge(acc.message, delta)
      if (logprobs !== null && logprobs !== undefined) merge((acc.logprobs ??= {}), logprobs)
      // finish_reason, native_finish_reason: the last one sent
      for (const [key, value] of Object.entries(rest)) if (value !== null || !(key in acc)) acc[key] = value
    }
    if (chunk.usage !== null && chunk.usage !== undefined) usage = chunk.usage
  }
  const sorted = [...choices.values()].sort((a, b) => a.index - b.index)
  // As openai-node, the accumulated tool calls lose their stream-only `index`.
  for (const choice of sorted) {
    const calls = choice.message.tool_calls
    if (Array.isArray(calls)) choice.message.tool_calls = calls.map(({ index: _index, ...call }) => call)
  }
  return { choices: sorted, usage }
}

// Fields that carry nothing (`null`, `[]`) differ between the two shapes:
// `annotations: []` and `refusal: null` exist only in whole replies.
const dropEmpty = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(dropEmpty)
  if (!isObject(value)) return value
  const out: Json = {}
  for (const [key, item] of Object.entries(value)) {
    if (item === null || (Array.isArray(item) && item.length === 0)) continue
    out[key] = dropEmpty(item)
  }
  return out
}

const metaKeys = (whole: Json) => Object.keys(whole).filter((key) => !["object", "choices", "usage"].includes(key))

const expectConsistent = (fixture: Fixtures.Fixture): void => {
  const events = strictEvents(fixture.stream)
  expect(events.at(-1)!.data).toBe("[DONE]")
  const chunks = events.slice(0, -1).flatMap((event) => (event.comment ? [] : [JSON.parse(event.data) as Json]))
  expect(chunks.length).toBeGreaterThan(2)
  expect(Fixtures.chunksOf(fixture)).toEqual(chunks)

  const whole = Fixtures.wholeOf(fixture) as Json
  expect(whole.object).toBe("chat.completion")
  expect(metaKeys(whole)).toEqual(expect.arrayContaining(["id", "created", "model"]))
  for (const chunk of chunks) {
    expect(chunk.object).toBe("chat.completion.chunk")
    for (const key of metaKeys(whole)) expect([key, chunk[key]]).toEqual([key, whole[key]])
    // no metadata the whole reply lacks, except OpenAI's per-chunk padding
    for (const key of metaKeys(chunk)) expect([...metaKeys(whole), "obfuscation"]).toContain(key)
  }

  const accumulated = accumulate(chunks)
  expect(dropEmpty(accumulated.choices)).toEqual(dropEmpty(whole.choices))
  if (fixture.includeUsage) expect(accumulated.usage).toBeDefined()
  if (accumulated.usage !== undefined) expect(accumulated.usage).toEqual(whole.usage)
}

const hasCjk = (text: string) => /[\u3040-\u30ff\u4e00-\u9fff]/.test(text)
const hasEmoji = (text: string) => /\p{Extended_Pictographic}/u.test(text)

describe("the fixtures", () => {
  it("are the nine named ones, with distinct names", () => {
    expect(Fixtures.all.map((f) => f.name)).toEqual([
      "openai-parallel-tool-calls",
      "legacy-function-call",
      "deepseek-reasoning",
      "ollama-reasoning",
      "openrouter-reasoning",
      "two-choices",
      "logprobs",
      "refusal",
      "include-usage"
    ])
    for (const fixture of Fixtures.all) expect(fixture.description).not.toContain("\n")
  })

  for (const fixture of [...Fixtures.all, Fixtures.textReply('Hi — 你好 👋\n"quoted"', { chunkSize: 3 })]) {
    it(`${fixture.name}: the stream is SSE and accumulates to the whole reply`, () => {
      expectConsistent(fixture)
    })
  }

  it("the check fails when a fragment is missing or a whole reply differs", () => {
    const fixture = Fixtures.openaiParallelToolCalls
    const events = fixture.stream.split("\n\n")
    expect(() =>
      expectConsistent({ ...fixture, stream: [...events.slice(0, 3), ...events.slice(4)].join("\n\n") })
    ).toThrow()
    const whole = fixture.whole.replace("Tokyo, Japan", "Kyoto, Japan")
    expect(() => expectConsistent({ ...fixture, whole })).toThrow()
  })

  it("carry non-ASCII text and JSON escapes", () => {
    expect(Fixtures.all.filter((f) => hasCjk(f.stream) && hasEmoji(f.stream)).length).toBeGreaterThanOrEqual(2)
    expect(Fixtures.includeUsage.stream).toContain("\\n")
    expect(Fixtures.includeUsage.stream).toContain('\\"')
  })

  it("have the shapes their servers send", () => {
    const tools = Fixtures.chunksOf(Fixtures.openaiParallelToolCalls) as Array<Json>
    expect(JSON.stringify(tools[0]!.choices[0].delta)).toBe(
      '{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_Fq8ZpK2mW7xR4tN9vB3cL6hJ","type":"function","function":{"name":"get_weather","arguments":""}}],"refusal":null}'
    )
    const fragments = (index: number) =>
      tools.filter((c) => c.choices[0].delta.tool_calls?.[0].index === index && !c.choices[0].delta.tool_calls[0].id)
    expect(fragments(0).length).toBeGreaterThanOrEqual(10)
    expect(fragments(1).length).toBeGreaterThanOrEqual(10)
    expect(tools.at(-1)!.choices[0]).toEqual({ index: 0, delta: {}, logprobs: null, finish_reason: "tool_calls" })
    for (const chunk of tools)
      expect(Object.keys(chunk)).toEqual(expect.arrayContaining(["service_tier", "system_fingerprint"]))

    expect(Fixtures.deepseekReasoning.stream.startsWith(": keep-alive\n\n")).toBe(true)
    expect(Fixtures.openrouterReasoning.stream.startsWith(": OPENROUTER PROCESSING\n\n")).toBe(true)
    const router = Fixtures.chunksOf(Fixtures.openrouterReasoning) as Array<Json>
    expect(router.every((c) => c.provider === "DeepInfra")).toBe(true)
    expect(router.at(-1)!.usage.cost).toBeGreaterThan(0)

    const usage = Fixtures.chunksOf(Fixtures.includeUsage) as Array<Json>
    expect(usage.slice(0, -1).every((c) => c.usage === null && c.choices.length === 1)).toBe(true)
    expect(usage.at(-1)!.choices).toEqual([])

    const two = Fixtures.chunksOf(Fixtures.twoChoices) as Array<Json>
    expect(two.every((c) => c.choices.length === 1)).toBe(true)
    const order = two.map((c) => c.choices[0].index).join("")
    expect(order).toMatch(/0101/) // interleaved
    expect(
      two
        .filter((c) => c.choices[0].finish_reason === "stop")
        .map((c) => c.choices[0].index)
        .sort()
    ).toEqual([0, 1])

    const probs = Fixtures.chunksOf(Fixtures.logprobs) as Array<Json>
    const withContent = probs.filter((c) => c.choices[0].delta.content)
    for (const chunk of withContent) {
      const [token] = chunk.choices[0].logprobs.content
      expect(token.token).toBe(chunk.choices[0].delta.content)
      expect(token.bytes).toEqual([...new TextEncoder().encode(token.token)])
    }
  })
})

// ---------------------------------------------------------------------------
// serving them

const byName = new Map(Fixtures.all.map((f) => [f.name, f]))
const pick = (request: { readonly headers: Readonly<Record<string, string>> }) =>
  byName.get(request.headers["x-fixture"]!)!

const bytesOf = async (res: Response) => new Uint8Array(await res.arrayBuffer())
const utf8 = (text: string) => new TextEncoder().encode(text)

const servers: Array<MirrorServer.MirrorServer> = []
const startServer = async (options: MirrorServer.MirrorServerOptions) => {
  const server = await MirrorServer.start(options)
  servers.push(server)
  return server
}

const ask = (url: string, fixture: Fixtures.Fixture, stream: boolean) =>
  post(url, { messages: [{ role: "user", content: "Hi" }], stream }, { headers: { "x-fixture": fixture.name } })

describe("MirrorServer with a fixture", () => {
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()))
  })

  it("serves every fixture's exact bytes, streamed and whole", async () => {
    const server = await startServer({ fixture: pick })
    for (const fixture of Fixtures.all) {
      const streamed = await ask(server.chatUrl, fixture, true)
      expect(streamed.headers.get("content-type")).toBe("text/event-stream; charset=utf-8")
      expect(await bytesOf(streamed)).toEqual(utf8(fixture.stream))
      const whole = await ask(server.chatUrl, fixture, false)
      expect(whole.headers.get("content-type")).toBe("application/json")
      expect(await bytesOf(whole)).toEqual(utf8(fixture.whole))
    }
  })

  it("serves the same bytes split at arbitrary positions, batched, delayed", async () => {
    const fixture = Fixtures.deepseekReasoning
    for (const options of [
      { fixtureSplit: "bytes", chunkSize: 3 },
      { batch: 4, delayMs: 1 }
    ] as const) {
      const server = await startServer({ fixture, ...options })
      expect(await (await ask(server.chatUrl, fixture, true)).text()).toBe(fixture.stream)
    }
  })

  it("applies faults first", async () => {
    const fixture = Fixtures.openaiParallelToolCalls
    const events = fixture.stream.split(/(?<=\n\n)/)
    const server = await startServer({
      fixture,
      fault: [
        { kind: "status", status: 503 },
        { kind: "wrong-content-type-stream" },
        { kind: "no-done" },
        { kind: "close-mid-stream", afterDeltas: 2 }
      ]
    })
    expect((await ask(server.chatUrl, fixture, true)).status).toBe(503)
    expect(await (await ask(server.chatUrl, fixture, true)).text()).toBe(fixture.whole)
    expect(await (await ask(server.chatUrl, fixture, true)).text()).toBe(events.slice(0, -1).join(""))
    const cut = await ask(server.chatUrl, fixture, true)
    const reader = cut.body!.getReader()
    let text = ""
    await expect(
      (async () => {
        for (;;) {
          const { done, value } = await reader.read()
          if (done) return
          text += new TextDecoder().decode(value, { stream: true })
        }
      })()
    ).rejects.toThrow()
    expect(text).toBe(events.slice(0, 2).join(""))
  })
})

describe("msw handlers with a fixture", () => {
  const origin = "https://fixtures.test"
  const handlers = mirrorHandlers(origin, { fixture: pick })
  const byBytes = mirrorHandlers("https://bytes.test", { fixture: pick, fixtureSplit: "bytes", chunkSize: 5 })
  const batched = mirrorHandlers("https://batched.test", { fixture: pick, batch: 3 })
  const server = setupServer(...handlers.handlers, ...byBytes.handlers, ...batched.handlers)
  beforeAll(() => server.listen({ onUnhandledRequest: "error" }))
  afterAll(() => server.close())

  const reads = async (res: Response): Promise<Array<Uint8Array>> => {
    const out: Array<Uint8Array> = []
    const reader = res.body!.getReader()
    for (let next = await reader.read(); !next.done; next = await reader.read()) out.push(next.value)
    return out
  }
  const decode = (parts: ReadonlyArray<Uint8Array>) => parts.map((part) => new TextDecoder().decode(part))

  it("serve every fixture's exact bytes, one event per chunk", async () => {
    for (const fixture of Fixtures.all) {
      const streamed = await ask(`${origin}${chatPath}`, fixture, true)
      expect(streamed.headers.get("content-type")).toBe("text/event-stream; charset=utf-8")
      const parts = await reads(streamed)
      expect(decode(parts)).toEqual(fixture.stream.split(/(?<=\n\n)/))
      const whole = await ask(`${origin}${chatPath}`, fixture, false)
      expect(whole.headers.get("content-type")).toBe("application/json")
      expect(await bytesOf(whole)).toEqual(utf8(fixture.whole))
    }
  })

  it("split the bytes with fixtureSplit: bytes, and group events with batch", async () => {
    const fixture = Fixtures.twoChoices
    const parts = await reads(await ask(`https://bytes.test${chatPath}`, fixture, true))
    expect(parts.every((part) => part.length <= 5)).toBe(true)
    expect(parts.slice(0, -1).every((part) => part.length === 5)).toBe(true)
    expect(new TextDecoder().decode(Buffer.concat(parts))).toBe(fixture.stream)
    const events = fixture.stream.split(/(?<=\n\n)/)
    const grouped = await reads(await ask(`https://batched.test${chatPath}`, fixture, true))
    expect(grouped.length).toBe(Math.ceil(events.length / 3))
    expect(decode(grouped).join("")).toBe(fixture.stream)
  })

  it("apply faults first", async () => {
    handlers.setFault({ kind: "status", status: 429 })
    expect((await ask(`${origin}${chatPath}`, Fixtures.refusal, true)).status).toBe(429)
    handlers.setFault(undefined)
  })
})

describe("toolLoop", () => {
  const user = { role: "user", content: "Weather in Paris and Tokyo?" }
  const assistant = { role: "assistant", content: null, tool_calls: [{ id: "call_1", type: "function" }] }
  const request = (messages: ReadonlyArray<unknown>) => ({ body: { messages } }) as never

  it("answers the first fixture until the last message is a tool (or function) result", () => {
    const final = Fixtures.textReply("Paris 18 °C, Tokyo 24 °C.")
    const loop = Fixtures.toolLoop(Fixtures.openaiParallelToolCalls, final)
    expect(loop(request([user]))).toBe(Fixtures.openaiParallelToolCalls)
    expect(loop(request([user, assistant]))).toBe(Fixtures.openaiParallelToolCalls)
    expect(loop(request([user, assistant, { role: "tool", tool_call_id: "call_1", content: "18" }]))).toBe(final)
    expect(loop(request([user, { role: "function", name: "get_weather", content: "18" }]))).toBe(final)
    expect(loop({ body: undefined } as never)).toBe(Fixtures.openaiParallelToolCalls)
  })

  it("turns a string into a text reply, served by the mirror", async () => {
    const server = await MirrorServer.start({
      fixture: Fixtures.toolLoop(Fixtures.openaiParallelToolCalls, "Paris 18 °C, Tokyo 24 °C.")
    })
    try {
      const first = await post(server.chatUrl, { messages: [user], stream: true })
      expect(await first.text()).toBe(Fixtures.openaiParallelToolCalls.stream)
      const tool = { role: "tool", tool_call_id: "call_1", content: '{"temperature":18}' }
      const second = await post(server.chatUrl, { messages: [user, assistant, tool] })
      const whole = (await second.json()) as Json
      expect(whole.choices[0].message.content).toBe("Paris 18 °C, Tokyo 24 °C.")
      expect(await (await post(server.chatUrl, { messages: [user, assistant, tool], stream: true })).text()).toBe(
        Fixtures.textReply("Paris 18 °C, Tokyo 24 °C.").stream
      )
    } finally {
      await server.close()
    }
  })
})
