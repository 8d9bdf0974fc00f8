// Issue 7's fault matrix: every fault the mirror can inject, on both
// transports, before the first delta and after it, with failover on and off.
// Each cell checks the exact outcome, that every delta sent before the fault
// reached the caller in order and once, and that nothing is left behind.
import type { ChatDelta } from "@easychat/core"
import { type Fault, MirrorPool } from "@easychat/testkit"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { afterAll, describe, expect, it } from "vitest"
import { echo, messages, run, transports } from "./support.js"

const pieces = (text: string, size = 4) =>
  Array.from(text.matchAll(new RegExp(`[\\s\\S]{1,${size}}`, "gu")), (m) => m[0])
const ECHO = pieces(echo)
const BEFORE = 0
const AFTER = 2

type Expected =
  | { readonly ok: "healthy"; readonly text?: string } // the healthy mirror answered (after failover)
  | { readonly ok: "faulty"; readonly text?: string } // the faulty mirror's own reply was fine
  | { readonly error: string; readonly detail?: Record<string, unknown> } // what the caller gets

interface Cell {
  readonly fault: string
  readonly make: (afterDeltas: number) => Fault.Fault
  /** Faults tied to a position in the stream are tried before and after the first delta. */
  readonly positioned: boolean
  /** Before the first delta: what the failed attempt records (it fails over when there is a next server). */
  readonly before: Expected
  /** After the first delta (positioned faults only): no failover, whatever the pool. */
  readonly after?: Expected
}

const cells: ReadonlyArray<Cell> = [
  { fault: "refuse", make: () => ({ kind: "refuse" }), positioned: false, before: { error: "TransportError" } },
  {
    fault: "reset-before-headers",
    make: () => ({ kind: "reset-before-headers" }),
    positioned: false,
    before: { error: "TransportError" }
  },
  {
    fault: "stall-before-headers",
    make: () => ({ kind: "stall-before-headers" }),
    positioned: false,
    before: { error: "Timeout", detail: { phase: "headers" } }
  },
  {
    fault: "429 Retry-After",
    make: () => ({ kind: "status", status: 429, headers: { "Retry-After": "5" } }),
    positioned: false,
    before: { error: "HttpStatusError", detail: { status: 429, retryAfter: 5 } }
  },
  {
    fault: "503",
    make: () => ({ kind: "status", status: 503 }),
    positioned: false,
    before: { error: "HttpStatusError", detail: { status: 503 } }
  },
  {
    fault: "403",
    make: () => ({ kind: "status", status: 403 }),
    positioned: false,
    before: { error: "HttpStatusError", detail: { status: 403 } }
  },
  {
    fault: "html-200",
    make: () => ({ kind: "html-200" }),
    positioned: false,
    before: { error: "UnexpectedContentType", detail: { contentType: "text/html; charset=utf-8" } }
  },
  {
    fault: "json-string-error",
    make: () => ({ kind: "json-string-error" }),
    positioned: false,
    before: { error: "UpstreamError", detail: { code: "ECONNREFUSED" } }
  },
  {
    fault: "access-code 401",
    make: () => ({ kind: "access-code" }),
    positioned: false,
    before: { error: "HttpStatusError", detail: { status: 401, body: "empty access code" } }
  },
  {
    fault: "wrong-content-type-stream",
    make: () => ({ kind: "wrong-content-type-stream" }),
    positioned: false,
    before: { error: "UnexpectedContentType", detail: { expected: "text/event-stream" } }
  },
  {
    fault: "stall-mid-stream",
    make: (afterDeltas) => ({ kind: "stall-mid-stream", afterDeltas }),
    positioned: true,
    before: { error: "Timeout", detail: { phase: "firstToken" } },
    after: { error: "Timeout", detail: { phase: "idle" } }
  },
  {
    fault: "close-mid-stream",
    make: (afterDeltas) => ({ kind: "close-mid-stream", afterDeltas }),
    positioned: true,
    before: { error: "TransportError" },
    after: { error: "StreamInterrupted", detail: { deltas: AFTER } }
  },
  {
    fault: "malformed-json",
    make: (afterDeltas) => ({ kind: "malformed-json", afterDeltas }),
    positioned: true,
    before: { error: "DecodeError", detail: { reason: "InvalidJson" } },
    after: { error: "DecodeError", detail: { reason: "InvalidJson" } }
  },
  {
    fault: "event-error",
    make: (afterDeltas) => ({ kind: "event-error", afterDeltas }),
    positioned: true,
    before: { error: "UpstreamError" },
    after: { error: "UpstreamError" }
  },
  {
    fault: "error-chunk",
    make: (afterDeltas) => ({ kind: "error-chunk", afterDeltas }),
    positioned: true,
    before: { error: "UpstreamError" },
    after: { error: "UpstreamError" }
  },
  {
    fault: "oversize-event",
    make: (afterDeltas) => ({ kind: "oversize-event", afterDeltas }),
    positioned: true,
    before: { error: "DecodeError", detail: { reason: "EventTooLarge" } },
    after: { error: "DecodeError", detail: { reason: "EventTooLarge" } }
  },
  {
    fault: "no-done-no-finish",
    make: (afterDeltas) => ({ kind: "no-done-no-finish", afterDeltas }),
    positioned: true,
    before: { error: "StreamInterrupted", detail: { deltas: 0 } },
    after: { error: "StreamInterrupted", detail: { deltas: AFTER } }
  },
  {
    fault: "invalid-utf8",
    make: (afterDeltas) => ({ kind: "invalid-utf8", afterDeltas }),
    positioned: true,
    before: { ok: "faulty", text: `bad\uFFFD\uFFFDbytes${echo}` },
    after: { ok: "faulty", text: `${ECHO.slice(0, AFTER).join("")}bad\uFFFD\uFFFDbytes${ECHO.slice(AFTER).join("")}` }
  },
  {
    fault: "no-trailing-blank-line",
    make: () => ({ kind: "no-trailing-blank-line" }),
    positioned: false,
    before: { ok: "faulty" }
  },
  { fault: "no-done", make: () => ({ kind: "no-done" }), positioned: false, before: { ok: "faulty" } },
  { fault: "gzip", make: () => ({ kind: "gzip" }), positioned: false, before: { ok: "faulty" } }
]

const timeouts = { headers: 300, firstToken: 600, idle: 300, total: 10_000 }
const rows: Array<string> = []
afterAll(() => {
  // The matrix as docs/RELIABILITY.md shows it.
  console.log(
    ["| transport | fault | position | failover | outcome |", "| --- | --- | --- | --- | --- |", ...rows].join("\n")
  )
})

/** Whether `promise` settles within `ms`; the timer is cleared so it is not itself a leak. */
const within = async (promise: Promise<unknown>, ms: number): Promise<boolean> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([promise.then(() => true), late])
  } finally {
    clearTimeout(timer)
  }
}

const timersNow = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length

describe.each(transports)("on the %s transport", (transportName, transport) => {
  for (const cell of cells) {
    const positions = cell.positioned ? [BEFORE, AFTER] : [BEFORE]
    for (const position of positions) {
      for (const failover of [true, false]) {
        const where = position === BEFORE ? "before first delta" : "after first delta"
        it(`${cell.fault}, ${where}, failover ${failover ? "on" : "off"}`, async () => {
          const timersBefore = timersNow()
          const pool = await MirrorPool.start(
            failover ? [{ fault: cell.make(position) }, {}] : [{ fault: cell.make(position) }]
          )
          const [faulty, healthy] = pool.servers
          const seen: Array<ChatDelta> = []
          const outcome = await run(
            { servers: pool.urls, strategy: "round-robin", timeouts },
            (chat) =>
              Effect.either(Stream.runForEach(chat.stream({ messages }), (d) => Effect.sync(() => seen.push(d)))),
            transport()
          )
          const expected = position === BEFORE ? cell.before : cell.after!
          const text = seen.map((d) => d.content).join("")
          let summary: string
          if ("ok" in expected) {
            expect(outcome._tag).toBe("Right")
            const server = expected.ok === "healthy" ? healthy!.url : faulty!.url
            expect(text).toBe(expected.text ?? echo)
            expect(new Set(seen.map((d) => d.server))).toEqual(new Set([server]))
            summary = `ok from the ${expected.ok} mirror`
          } else if (position === BEFORE && failover) {
            // Before the first delta the fault is invisible: the healthy mirror answers.
            expect(outcome._tag).toBe("Right")
            expect(text).toBe(echo)
            expect(new Set(seen.map((d) => d.server))).toEqual(new Set([healthy!.url]))
            summary = `failover, ok (attempt 1: ${expected.error})`
          } else if (position === BEFORE) {
            expect(outcome._tag).toBe("Left")
            const error: any = outcome._tag === "Left" ? outcome.left : undefined
            expect(error._tag).toBe("AllServersFailed")
            expect(error.attempts).toHaveLength(1)
            expect(error.attempts[0].error).toMatchObject({
              _tag: expected.error,
              server: faulty!.url,
              ...expected.detail
            })
            expect(seen).toEqual([])
            summary = `AllServersFailed [${expected.error}]`
          } else {
            // After the first delta: the fault itself, every earlier delta delivered once, in order.
            expect(outcome._tag).toBe("Left")
            const error: any = outcome._tag === "Left" ? outcome.left : undefined
            expect(error).toMatchObject({ _tag: expected.error, server: faulty!.url, ...expected.detail })
            expect(seen.map((d) => d.content)).toEqual(ECHO.slice(0, AFTER))
            if (healthy) expect(healthy.requests.filter((r) => r.method === "POST")).toHaveLength(0)
            summary = `${expected.error}, ${AFTER} deltas delivered`
          }
          // Nothing left behind: every response the mirrors began has ended or been cut, no timer of ours runs.
          for (const server of pool.servers) {
            const settled = await within(Promise.all(server.requests.map((r) => r.closed)), 1500)
            expect(settled, `a response of ${server.url} was left open`).toBe(true)
          }
          if (transportName === "node") {
            // The Node transport's pool closed with its layer: no socket stays open.
            await pool.waitForConnectionsClosed(1500)
            expect(pool.openConnections()).toBe(0)
          }
          await pool.close()
          await new Promise((resolve) => setTimeout(resolve, 20))
          expect(timersNow(), "a timer outlived the call").toBeLessThanOrEqual(timersBefore)
          rows.push(`| ${transportName} | ${cell.fault} | ${where} | ${failover ? "on" : "off"} | ${summary} |`)
        })
      }
    }
  }
})
