// The small pure parts, without a subprocess.
import { AllServersFailed, HttpStatusError, InvalidRequest, StreamInterrupted, Timeout } from "@easychat/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { describe, expect, it } from "vitest"
import * as ExitCode from "../src/ExitCode.js"
import { isLoopback } from "../src/internal/gateway.js"
import { parseFault } from "../src/internal/serve.js"
import { table } from "../src/internal/servers.js"
import { breakerChanges } from "../src/internal/verbose.js"
import { parseDuration, parseTimeouts } from "../src/PoolOptions.js"

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
    lastError: failures > 0 ? "TransportError" : undefined
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
