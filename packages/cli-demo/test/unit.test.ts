// The small pure parts, without a subprocess.
import {
  AllServersFailed,
  type ChatCompletion,
  type ChatDelta,
  HttpStatusError,
  InvalidRequest,
  Strategy,
  StreamInterrupted,
  Timeout
} from "@easychat/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import * as ExitCode from "../src/ExitCode.js"
import { isLoopback } from "../src/internal/gateway.js"
import { strategyNames } from "../src/internal/poolOptions.js"
import * as Printer from "../src/internal/printer.js"
import { parseFault } from "../src/internal/serve.js"
import { table } from "../src/internal/servers.js"
import { breakerChanges } from "../src/internal/verbose.js"
import { defaultPreset, parseDuration, parseTimeouts } from "../src/PoolOptions.js"

describe("--timeout", () => {
  it("reads durations with a unit", () => {
    expect(parseDuration("500ms")).toBe(500)
    expect(parseDuration("10s")).toBe(10_000)
    expect(parseDuration("1.5m")).toBe(90_000)
    expect(parseDuration("1h")).toBe(3_600_000)
    for (const bad of ["10", "0s", "-1s", "s", "10 parsecs", ""]) expect(parseDuration(bad)).toBeUndefined()
  })

  it("maps phases onto core's timeouts; the last value of a phase wins", () => {
    const parsed = Effect.runSync(parseTimeouts(["headers=2s", "first-token=500ms", "idle=10s", "total=2m", "idle=5s"]))
    expect(parsed).toEqual({ headers: 2000, firstToken: 500, idle: 5000, total: 120_000 })
  })

  it("rejects an unknown phase or a missing unit with UsageError", () => {
    for (const bad of ["lunch=1s", "10s", "idle=10"]) {
      const result = Effect.runSync(Effect.either(parseTimeouts([bad])))
      expect(Either.isLeft(result) && result.left).toBeInstanceOf(ExitCode.UsageError)
    }
  })
})

describe("--fault", () => {
  it("reads KIND and KIND:N", () => {
    expect(parseFault("status:429")).toEqual({ kind: "status", status: 429 })
    expect(parseFault("status")).toEqual({ kind: "status", status: 503 })
    expect(parseFault("close-mid-stream:3")).toEqual({ kind: "close-mid-stream", afterDeltas: 3 })
    expect(parseFault("stall-mid-stream")).toEqual({ kind: "stall-mid-stream" })
    expect(parseFault("html-200")).toEqual({ kind: "html-200" })
  })

  it("rejects unknown kinds and bad values", () => {
    for (const bad of ["meltdown", "status:99", "status:abc", "html-200:3", "close-mid-stream:-1"]) {
      expect(parseFault(bad)).toBeInstanceOf(ExitCode.UsageError)
    }
  })
})

describe("exit codes", () => {
  it("maps core errors onto codes", () => {
    const server = "http://127.0.0.1:1"
    expect(ExitCode.of(new InvalidRequest({ field: "temperature", rule: "is wrong" }))).toBe(2)
    expect(ExitCode.of(new AllServersFailed({ attempts: [] }))).toBe(3)
    expect(ExitCode.of(new Timeout({ server, phase: "total", millis: 1 }))).toBe(4)
    expect(ExitCode.of(new StreamInterrupted({ server, deltas: 1, characters: 4, detail: "cut" }))).toBe(5)
    expect(ExitCode.of(new HttpStatusError({ server, status: 400, statusText: "Bad Request", body: "" }))).toBe(1)
  })
})

describe("gateway host", () => {
  it("knows loopback addresses", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) expect(isLoopback(host)).toBe(true)
    for (const host of ["0.0.0.0", "192.168.1.2", "::", "example.com", "127.0.0.1.example.com"]) {
      expect(isLoopback(host)).toBe(false)
    }
  })
})

describe("--verbose breaker lines", () => {
  const health = (state: "closed" | "open" | "half-open", failures: number, openUntil?: number) => ({
    server: "http://a",
    state,
    failures,
    lastLatencyMs: undefined,
    openUntil,
    lastError: failures > 0 ? "TransportError" : undefined,
    estimateMs: undefined,
    failureRate: 0,
    weight: 1,
    priority: 0
  })

  it("reports state changes only", () => {
    expect(breakerChanges([health("closed", 1)], [health("closed", 2)], 0)).toEqual([])
    expect(breakerChanges([health("closed", 2)], [health("open", 3, 30_000)], 0)).toEqual([
      "· breaker http://a: closed → open after 3 consecutive failures (last: TransportError), skipped for 30 s"
    ])
    expect(breakerChanges([health("half-open", 3)], [health("closed", 0)], 0)).toEqual([
      "· breaker http://a: half-open → closed"
    ])
  })
})

describe("servers table", () => {
  it("pads every column but the last", () => {
    expect(
      table([
        ["SERVER", "STATUS", "ERROR"],
        ["http://a", "ok", ""],
        ["http://longer", "failed", "boom"]
      ])
    ).toBe("SERVER         STATUS  ERROR\nhttp://a       ok\nhttp://longer  failed  boom")
  })
})

describe("the preset without --preset", () => {
  it("is easychat for the EasyChat mirrors only, openai for another path, nextchat otherwise", () => {
    const preset = (servers: ReadonlyArray<string>, path?: string) => defaultPreset({ servers, path })
    expect(preset([])).toBe("easychat")
    expect(preset(["https://chat9.fastgpt.me", "https://chat1.fastgpt.me/"])).toBe("easychat")
    expect(preset(["https://chat9.fastgpt.me", "http://127.0.0.1:8787"])).toBe("nextchat")
    expect(preset(["http://127.0.0.1:8787"])).toBe("nextchat")
    expect(preset(["http://127.0.0.1:8787"], "/api/openai/v1/chat/completions")).toBe("nextchat")
    expect(preset(["http://127.0.0.1:8787"], "/v1/chat/completions")).toBe("openai")
    expect(preset([], "/v1/chat/completions")).toBe("openai")
    expect(preset(["http://localhost:11434/v1"])).toBe("openai")
  })
})

describe("the reply printer", () => {
  const delta = (fields: Partial<ChatDelta>): ChatDelta =>
    ({ choice: 0, content: "", server: "http://a", chunk: {}, ...fields }) as ChatDelta
  const reply = (fields: Partial<ChatCompletion>): ChatCompletion =>
    ({
      content: "",
      finishReason: "stop",
      choices: [],
      usage: undefined,
      model: undefined,
      raw: {},
      server: "http://a",
      ...fields
    }) as ChatCompletion
  const printed = (options: { styled: boolean; reasoning?: boolean }, f: (p: Printer.ReplyPrinter) => void) => {
    let out = ""
    f(Printer.make({ write: (text) => (out += text), styled: options.styled, reasoning: options.reasoning ?? true }))
    return out
  }
  const stream = (p: Printer.ReplyPrinter) => {
    for (const d of [
      delta({ reasoning: "Think" }),
      delta({ reasoning: "ing.\n\nDone" }),
      delta({ choice: 1, content: "other choice" }),
      delta({ content: "The answer" })
    ]) {
      p.delta(d)
    }
    p.done(reply({ content: "The answer" }), true)
  }

  it("dims the reasoning on a terminal, a blank line before the answer", () => {
    expect(printed({ styled: true }, stream)).toBe("\x1b[2mThink\x1b[22m\x1b[2ming.\n\nDone\x1b[22m\n\nThe answer\n")
  })

  it("prefixes each line of reasoning elsewhere, blank ones too", () => {
    expect(printed({ styled: false }, stream)).toBe(
      "[reasoning] Thinking.\n[reasoning]\n[reasoning] Done\nThe answer\n"
    )
  })

  it("hides the reasoning with --no-reasoning", () => {
    expect(printed({ styled: true, reasoning: false }, stream)).toBe("The answer\n")
  })

  it("prints a whole reply, then its tool calls and refusal, each on a line", () => {
    const whole = reply({
      content: "Let me check.",
      reasoning: "Weather needs a tool.",
      toolCalls: [{ id: "c1", type: "function", function: { name: "get_weather", arguments: '{"location":"Paris"}' } }],
      refusal: "No."
    })
    expect(printed({ styled: false }, (p) => p.done(whole, false))).toBe(
      '[reasoning] Weather needs a tool.\nLet me check.\n[tool call] get_weather({"location":"Paris"})\n[refusal] No.\n'
    )
    // An empty reply still ends its line.
    expect(printed({ styled: false }, (p) => p.done(reply({}), false))).toBe("\n")
  })
})

describe("--strategy", () => {
  it("offers core's strategies (written out, so that --help does not load core)", () => {
    expect([...strategyNames].sort()).toEqual([...Strategy.names].sort())
  })
})
