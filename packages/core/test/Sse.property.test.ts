import { describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import * as fc from "fast-check"
import { DecodeError } from "../src/Errors.js"
import * as Sse from "../src/Sse.js"

/**
 * The reference: WHATWG's algorithm read literally, on the whole input at
 * once (decode, split on line ends, interpret each line), with the lenient end
 * of input and the size rule of `Sse`: at each line, the UTF-8 bytes of the
 * event's data values so far plus those of the line must not pass the limit.
 */
const reference = (
  input: Uint8Array,
  maxEventSize = Number.POSITIVE_INFINITY
): { readonly events: Array<Sse.SseEvent>; readonly failed: boolean } => {
  const utf8Bytes = (s: string) => new TextEncoder().encode(s).length
  // TextDecoder strips one leading BOM and replaces invalid bytes.
  const lines = new TextDecoder().decode(input).split(/\r\n|\r|\n/)
  // Text after the last line end is a line too, at the end of input.
  if (lines[lines.length - 1] === "") lines.pop()
  const events: Array<Sse.SseEvent> = []
  let data: Array<string> = []
  let type = ""
  let id: string | undefined
  let retry: number | undefined
  let size = 0
  const dispatch = () => {
    if (data.length > 0) events.push({ event: type === "" ? "message" : type, data: data.join("\n"), id, retry })
    data = []
    type = ""
    size = 0
  }
  for (const line of lines) {
    if (size + utf8Bytes(line) > maxEventSize) return { events, failed: true }
    if (line === "") {
      dispatch()
      continue
    }
    if (line.startsWith(":")) continue
    const colon = line.indexOf(":")
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? "" : line.slice(colon + 1)
    if (value.startsWith(" ")) value = value.slice(1)
    if (field === "data") {
      data.push(value)
      size += utf8Bytes(value)
    } else if (field === "event") {
      type = value
    } else if (field === "id") {
      if (!value.includes("\0")) id = value
    } else if (field === "retry") {
      if (/^[0-9]+$/.test(value)) retry = Number(value)
    }
  }
  dispatch()
  return { events, failed: false }
}

const feed = (chunks: ReadonlyArray<Uint8Array>): Array<Sse.SseEvent> => {
  const decoder = Sse.makeDecoder()
  const events: Array<Sse.SseEvent> = []
  for (const chunk of chunks) events.push(...decoder.push(chunk))
  events.push(...decoder.end())
  return events
}

/** Decodes with `Sse.decode`, which keeps the events before a failure. */
const decodeStream = (chunks: ReadonlyArray<Uint8Array>, maxEventSize: number) => {
  const results = Stream.fromChunks(...chunks.map((chunk) => Chunk.of(chunk))).pipe(
    Sse.decode({ maxEventSize }),
    Stream.either,
    Stream.runCollect,
    Effect.runSync,
    Chunk.toReadonlyArray
  )
  const events = results.filter(Either.isRight).map((r) => r.right)
  const failures = results.filter(Either.isLeft).map((l) => l.left)
  return { events, failures }
}

const cut = (input: Uint8Array, points: ReadonlyArray<number>): Array<Uint8Array> => {
  const at = [...new Set(points.map((p) => p % (input.length + 1)))].sort((a, b) => a - b)
  const chunks: Array<Uint8Array> = []
  let from = 0
  for (const p of at) {
    chunks.push(input.subarray(from, p))
    from = p
  }
  chunks.push(input.subarray(from))
  return chunks
}

// Text that looks like what servers send, and what breaks naive decoders.
const char = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("a", "b", "z", "0", "7", "{", "}", '"', ",", " ", ":", "  ") },
  { weight: 3, arbitrary: fc.constantFrom("é", "ß", "🌍", "🚀", "世", "界", "\u2028", "\uFEFF", "\u0000", "\t") },
  { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 1 }) }
)
const value = fc.string({ unit: char, maxLength: 24 }).map((s) => s.replace(/[\r\n]/g, "."))
const field = fc.constantFrom("data", "event", "id", "retry", "foo", "Data", "data ", "")
const line = fc.oneof(
  { weight: 6, arbitrary: value.map((v) => `data: ${v}`) },
  { weight: 2, arbitrary: value.map((v) => `data:${v}`) },
  { weight: 1, arbitrary: fc.constantFrom("data", "data:", "data: ", "", "", "", ":", ": ping") },
  { weight: 1, arbitrary: value.map((v) => `event: ${v}`) },
  { weight: 1, arbitrary: value.map((v) => `id: ${v}`) },
  { weight: 1, arbitrary: fc.oneof(fc.nat(), value).map((v) => `retry: ${v}`) },
  { weight: 1, arbitrary: value.map((v) => `:${v}`) },
  { weight: 1, arbitrary: fc.tuple(field, value).map(([f, v]) => `${f}:${v}`) },
  { weight: 1, arbitrary: field }
)
const lineEnd = fc.constantFrom("\n", "\n", "\r\n", "\r")
const sseText = fc
  .tuple(
    fc.constantFrom("", "", "", "\uFEFF", "\uFEFF\uFEFF"),
    fc.array(fc.tuple(line, lineEnd), { maxLength: 30 }),
    fc.constantFrom("", "\n", "\n\n", "\r\n\r\n")
  )
  .map(([bom, lines, tail]) => bom + lines.map(([l, e]) => l + e).join("") + tail)
const sseBytes = sseText.map((text) => new TextEncoder().encode(text))

// Raw bytes: pieces of SSE syntax among arbitrary (often invalid) UTF-8.
const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0))
const rawBytes = fc
  .array(
    fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(ascii("\ndata: "), ascii("\n\ndata:"), ascii("\r\ndata: ")) },
      {
        weight: 1,
        arbitrary: fc.constantFrom(ascii("\nid: "), ascii("\nevent:"), ascii("\n:"), ascii("\r"), ascii("\n"))
      },
      {
        weight: 3,
        arbitrary: fc.constantFrom(
          [0xef, 0xbb, 0xbf],
          [0xe4, 0xb8],
          [0xe4, 0xb8, 0x96],
          [0xf0, 0x9f],
          [0xc3],
          [0x80],
          [0xff]
        )
      },
      { weight: 4, arbitrary: fc.integer({ min: 0, max: 255 }).map((b) => [b]) },
      { weight: 4, arbitrary: fc.constantFrom(ascii("a"), ascii("bc"), ascii(" "), ascii(":")) }
    ),
    { maxLength: 80 }
  )
  .map((pieces) => Uint8Array.from(pieces.flat()))

const splitPoints = fc.array(fc.nat(), { maxLength: 12 })

describe("Sse properties", () => {
  it("gives the same events for any split of the same bytes", () => {
    fc.assert(
      fc.property(sseBytes, splitPoints, (input, points) => {
        expect(feed(cut(input, points))).toEqual(feed([input]))
      }),
      { numRuns: 500 }
    )
  }, 120_000)

  it("gives the same events one byte at a time", () => {
    fc.assert(
      fc.property(sseBytes, (input) => {
        expect(feed(Array.from(input, (b) => Uint8Array.of(b)))).toEqual(feed([input]))
      }),
      { numRuns: 200 }
    )
  }, 120_000)

  it("agrees with the reference decoder", () => {
    fc.assert(
      fc.property(sseBytes, splitPoints, (input, points) => {
        expect(feed(cut(input, points))).toEqual(reference(input).events)
      }),
      { numRuns: 500 }
    )
  }, 120_000)

  it("agrees with the reference decoder on invalid UTF-8", () => {
    fc.assert(
      fc.property(rawBytes, splitPoints, (input, points) => {
        expect(feed(cut(input, points))).toEqual(reference(input).events)
      }),
      { numRuns: 500 }
    )
  }, 120_000)

  it("agrees with the reference decoder on large chunks", () => {
    // Large texts take another path (and another TextDecoder) than small ones.
    const large = fc
      .tuple(fc.array(fc.oneof(sseBytes, rawBytes), { minLength: 40, maxLength: 80 }), fc.nat({ max: 2 }))
      .map(([parts, wide]) => {
        const all = [new TextEncoder().encode(wide === 0 ? "" : `data: ${"é世".repeat(1500)}\n\n`), ...parts]
        const out = new Uint8Array(all.reduce((n, p) => n + p.length, 0))
        let at = 0
        for (const p of all) {
          out.set(p, at)
          at += p.length
        }
        return out
      })
    fc.assert(
      fc.property(
        large,
        fc.array(fc.oneof(fc.integer({ min: 1, max: 9000 }), fc.integer({ min: 16_384, max: 70_000 })), {
          maxLength: 8
        }),
        (input, sizes) => {
          const chunks: Array<Uint8Array> = []
          let at = 0
          let i = 0
          while (at < input.length) {
            const size = sizes.length === 0 ? 4096 : sizes[i++ % sizes.length]!
            chunks.push(input.subarray(at, at + size))
            at += size
          }
          expect(feed(chunks)).toEqual(reference(input).events)
        }
      ),
      { numRuns: 100 }
    )
  }, 120_000)

  it("agrees with the reference decoder on lines longer than 64 KiB", () => {
    // Such lines are decoded in pieces as they arrive.
    const longLine = fc
      .tuple(
        fc.constantFrom("data: ", "data:", "event: ", "id: ", ": ", "retry: ", "x: "),
        rawBytes.map((unit) => unit.filter((b) => b !== 0x0a && b !== 0x0d)).filter((unit) => unit.length > 0),
        fc.integer({ min: 64 * 1024 - 100, max: 150 * 1024 }),
        fc.constantFrom("\n", "\r\n", "\r", "")
      )
      .map(([field, unit, size, end]) => {
        const line = new Uint8Array(size)
        for (let i = 0; i < size; i += unit.length) line.set(unit.subarray(0, size - i), i)
        return Uint8Array.from([...new TextEncoder().encode(field), ...line, ...new TextEncoder().encode(end)])
      })
    const input = fc
      .tuple(sseBytes, longLine, sseBytes, longLine, sseBytes)
      .map((parts) => Uint8Array.from(parts.flatMap((part) => [...part])))
    fc.assert(
      fc.property(input, splitPoints, fc.constantFrom(0, 1000, 8192, 65536), (input, points, size) => {
        const sized: Array<number> = []
        if (size > 0) for (let at = size; at < input.length; at += size) sized.push(at)
        expect(feed(cut(input, [...points, ...sized]))).toEqual(reference(input).events)
      }),
      { numRuns: 40 }
    )
  }, 120_000)

  it("fails with EventTooLarge at the same event however the input is split", () => {
    // Events of many data lines, small chunks and limits around their sizes.
    const longEvents = fc
      .array(fc.tuple(fc.array(value, { minLength: 1, maxLength: 8 }), lineEnd), { maxLength: 6 })
      .map((events) =>
        new TextEncoder().encode(
          events.map(([data, end]) => data.map((d) => `data: ${d}${end}`).join("") + end).join("")
        )
      )
    fc.assert(
      fc.property(
        fc.oneof(sseBytes, rawBytes, longEvents),
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 40, max: 300 })),
        (input, points, maxEventSize) => {
          const expected = reference(input, maxEventSize)
          const { events, failures } = decodeStream(cut(input, points), maxEventSize)
          expect(events).toEqual(expected.events)
          expect(failures.length).toBe(expected.failed ? 1 : 0)
          for (const failure of failures) {
            expect(failure).toBeInstanceOf(DecodeError)
            expect((failure as DecodeError).reason).toBe("EventTooLarge")
          }
        }
      ),
      { numRuns: 500 }
    )
  }, 120_000)
})
