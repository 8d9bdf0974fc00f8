import { describe, expect, it } from "@effect/vitest"
import {
  type AttemptError,
  DecodeError,
  HttpStatusError,
  InvalidRequest,
  NoResponse,
  StreamInterrupted,
  Timeout,
  TransportError,
  UnexpectedContentType,
  UpstreamError
} from "../src/Errors.js"
import { isRequestFault, type Verdict, verdictOf } from "../src/internal/policy.js"

const server = "http://a.test"
const http = (status: number, retryAfter?: number) =>
  new HttpStatusError({ server, status, statusText: "", body: "", ...(retryAfter === undefined ? {} : { retryAfter }) })
const timeout = (phase: Timeout["phase"]) => new Timeout({ server, phase, millis: 1000 })

/** Each error, whether it is the request's fault, and its verdict before and after the first delta. */
const table: ReadonlyArray<readonly [string, AttemptError, boolean, Verdict, Verdict]> = [
  ["InvalidRequest", new InvalidRequest({ field: "temperature", rule: "must be a number" }), true, "fail", "fail"],
  ["HTTP 400", http(400), true, "fail", "fail"],
  ["HTTP 422", http(422), true, "fail", "fail"],
  ["HTTP 401", http(401), false, "failover", "fail"],
  ["HTTP 403", http(403), false, "failover", "fail"],
  ["HTTP 404", http(404), false, "failover", "fail"],
  ["HTTP 408", http(408), false, "failover", "fail"],
  ["HTTP 413", http(413), false, "failover", "fail"],
  ["HTTP 429 with Retry-After", http(429, 7), false, "failover", "fail"],
  ["HTTP 500", http(500), false, "failover", "fail"],
  ["HTTP 502", http(502), false, "failover", "fail"],
  ["HTTP 503", http(503), false, "failover", "fail"],
  ["HTTP 504", http(504), false, "failover", "fail"],
  [
    "UnexpectedContentType",
    new UnexpectedContentType({ server, contentType: "text/html", expected: "application/json", body: "" }),
    false,
    "failover",
    "fail"
  ],
  ["NoResponse", new NoResponse({ server, detail: "the reply has no choices" }), false, "failover", "fail"],
  ["UpstreamError", new UpstreamError({ server, detail: "overloaded", code: "overloaded" }), false, "failover", "fail"],
  ["DecodeError", new DecodeError({ reason: "InvalidJson", detail: "not JSON", server }), false, "failover", "fail"],
  ["TransportError", new TransportError({ server, detail: "ECONNRESET" }), false, "failover", "fail"],
  ["Timeout headers", timeout("headers"), false, "failover", "fail"],
  ["Timeout firstToken", timeout("firstToken"), false, "failover", "fail"],
  ["Timeout idle", timeout("idle"), false, "failover", "fail"],
  // The call's own time is spent: no server would have any left.
  ["Timeout total", timeout("total"), false, "fail", "fail"],
  [
    "StreamInterrupted",
    new StreamInterrupted({ server, deltas: 0, characters: 0, detail: "cut" }),
    false,
    "failover",
    "fail"
  ]
]

describe("verdictOf", () => {
  for (const [name, error, , before, after] of table) {
    it(`${name}: ${before} before the first delta, ${after} after it`, () => {
      expect(verdictOf(error, 0)).toBe(before)
      expect(verdictOf(error, 1)).toBe(after)
      expect(verdictOf(error, 1000)).toBe(after)
    })
  }
})

describe("isRequestFault", () => {
  it("is true for InvalidRequest, 400 and 422 only", () => {
    const faults = table.filter(([, error]) => isRequestFault(error)).map(([name]) => name)
    expect(faults).toEqual(table.filter(([, , fault]) => fault).map(([name]) => name))
    expect(faults).toEqual(["InvalidRequest", "HTTP 400", "HTTP 422"])
  })

  it("only a request fault fails a call before its first delta, apart from the total timeout", () => {
    for (const [name, error] of table) {
      const fails = verdictOf(error, 0) === "fail"
      expect({ name, fails }).toEqual({ name, fails: isRequestFault(error) || name === "Timeout total" })
    }
  })
})
