import { assert, describe, expect, it } from "@effect/vitest"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"
import { DecodeError } from "../src/Errors.js"
import * as Sse from "../src/Sse.js"

const utf8 = new TextEncoder()
const bytes = (input: string | ReadonlyArray<number> | Uint8Array): Uint8Array =>
  typeof input === "string" ? utf8.encode(input) : Uint8Array.from(input)

/** Feeds the chunks one by one, then ends the input. */
const feed = (
  chunks: ReadonlyArray<string | ReadonlyArray<number> | Uint8Array>,
  options?: Sse.DecoderOptions
): Array<Sse.SseEvent> => {
  const decoder = Sse.makeDecoder(options)
  const events: Array<Sse.SseEvent> = []
  for (const chunk of chunks) events.push(...decoder.push(bytes(chunk)))
  events.push(...decoder.end())
  return events
}

/** Every way to cut the input in two, and one byte at a time. */
const splits = (input: Uint8Array): Array<Array<Uint8Array>> => {
  const out: Array<Array<Uint8Array>> = [[input]]
  for (let i = 0; i <= input.length; i++) out.push([input.subarray(0, i), input.subarray(i)])
  out.push(Array.from(input, (b) => Uint8Array.of(b)))
  return out
}

const ev = (data: string, fields: Partial<Omit<Sse.SseEvent, "data">> = {}): Sse.SseEvent => ({
  event: "message",
  data,
  id: undefined,
  retry: undefined,
  ...fields
})

const datas = (events: ReadonlyArray<Sse.SseEvent>) => events.map((e) => e.data)

describe("Sse.makeDecoder", () => {
  describe("byte order mark", () => {
    it("strips one leading BOM", () => {
      expect(feed(["\uFEFFdata: a\n\n"])).toEqual([ev("a")])
    })

    it("strips a BOM split across chunks", () => {
      for (const chunks of splits(bytes("\uFEFFdata: a\n\n"))) expect(feed(chunks)).toEqual([ev("a")])
      expect(feed([[0xef], [0xbb], [0xbf], "data: a\n\n"])).toEqual([ev("a")])
    })

    it("strips only one BOM", () => {
      // The second BOM belongs to the field name, which is then unknown.
      expect(feed(["\uFEFF\uFEFFdata: a\n\ndata: b\n\n"])).toEqual([ev("b")])
    })

    it("keeps a BOM that is not at the start", () => {
      expect(feed(["data: a\n\n\uFEFFdata: b\n\n"])).toEqual([ev("a")])
      expect(feed(["data: \uFEFFa\n\n"])).toEqual([ev("\uFEFFa")])
      expect(feed(["\n\uFEFFdata: a\n\n"])).toEqual([])
    })

    it("treats the start of a BOM that does not follow as input", () => {
      // 0xEF alone is an invalid line: U+FFFD, an unknown field.
      expect(feed([[0xef], "\ndata: a\n\n"])).toEqual([ev("a")])
      expect(feed([[0xef, 0xbb], [0x0a], "data: a\n\n"])).toEqual([ev("a")])
      expect(feed([[0xef, 0xbb]])).toEqual([])
    })
  })

  describe("line ends", () => {
    it("accepts LF, CRLF and CR", () => {
      expect(feed(["data: a\ndata: b\n\n"])).toEqual([ev("a\nb")])
      expect(feed(["data: a\r\ndata: b\r\n\r\n"])).toEqual([ev("a\nb")])
      expect(feed(["data: a\rdata: b\r\r"])).toEqual([ev("a\nb")])
      expect(feed(["data: a\r\ndata: b\rdata: c\n\r\n"])).toEqual([ev("a\nb\nc")])
    })

    it("reads a CR at the end of a chunk and a LF at the start of the next as one line end", () => {
      expect(feed(["data: a\r", "\ndata: b\r\n\r", "\n"])).toEqual([ev("a\nb")])
      expect(feed(["data: a\r", "\n", "\r", "\n"])).toEqual([ev("a")])
    })

    it("still ends a line at a CR at the end of a chunk", () => {
      const decoder = Sse.makeDecoder()
      expect(decoder.push(bytes("data: a\r"))).toEqual([])
      expect(decoder.push(bytes("\r"))).toEqual([ev("a")])
      expect(decoder.push(bytes("data: b\r"))).toEqual([])
      expect(decoder.push(bytes("data: c\r\r"))).toEqual([ev("b\nc")])
      expect(decoder.end()).toEqual([])
    })

    it("reads LF then CR as two line ends", () => {
      expect(feed(["data: a\n\rdata: b\n\n"])).toEqual([ev("a"), ev("b")])
    })

    it("gives the same events for every split of every line end", () => {
      const input = bytes("data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\n\n")
      for (const chunks of splits(input)) expect(datas(feed(chunks))).toEqual(["a", "b", "c", "d"])
    })
  })

  describe("fields", () => {
    it("ignores comments", () => {
      expect(feed([": hello\ndata: a\n:\n: data: b\n\n"])).toEqual([ev("a")])
      expect(feed([":only a comment\n\n"])).toEqual([])
    })

    it("splits at the first colon and removes one leading space", () => {
      expect(datas(feed(["data:x\n\n"]))).toEqual(["x"])
      expect(datas(feed(["data: x\n\n"]))).toEqual(["x"])
      expect(datas(feed(["data:  x\n\n"]))).toEqual([" x"])
      expect(datas(feed(["data: a:b: c\n\n"]))).toEqual(["a:b: c"])
      expect(datas(feed(["data:\tx \n\n"]))).toEqual(["\tx "])
      expect(datas(feed(["data: \n\n"]))).toEqual([""])
    })

    it("reads a line without a colon as a field with an empty value", () => {
      expect(feed(["data\n\n"])).toEqual([ev("")])
      expect(feed(["data\ndata\n\n"])).toEqual([ev("\n")])
      expect(feed(["event\ndata: a\n\n"])).toEqual([ev("a")])
    })

    it("joins data lines with LF", () => {
      expect(feed(["data: a\ndata:\ndata: c\n\n"])).toEqual([ev("a\n\nc")])
      expect(feed(['data: {\ndata:   "k": 1\ndata: }\n\n'])).toEqual([ev('{\n  "k": 1\n}')])
    })

    it("dispatches an empty data line", () => {
      expect(feed(["data:\n\n"])).toEqual([ev("")])
      expect(feed(["data\n\n"])).toEqual([ev("")])
    })

    it("does not dispatch a block without data", () => {
      expect(feed(["event: ping\n\n", "id: 1\n\n", "retry: 5\n\n", ": x\n\n", "\n\n\n"])).toEqual([])
    })

    it("reads the event type, `message` by default, reset after each dispatch", () => {
      expect(feed(["event: update\ndata: a\n\ndata: b\n\n"])).toEqual([ev("a", { event: "update" }), ev("b")])
      expect(feed(["event:\ndata: a\n\n"])).toEqual([ev("a")])
      expect(feed(["event: a\nevent: b\ndata: x\n\n"])).toEqual([ev("x", { event: "b" })])
      // A block without data resets the type too.
      expect(feed(["event: lost\n\ndata: a\n\n"])).toEqual([ev("a")])
      expect(feed(["data: a\nevent: late\n\n"])).toEqual([ev("a", { event: "late" })])
    })

    it("keeps the last event ID across events", () => {
      expect(feed(["id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n"])).toEqual([
        ev("a", { id: "1" }),
        ev("b", { id: "1" }),
        ev("c", { id: "2" })
      ])
      // An ID in a block without data still sets it.
      expect(feed(["id: 7\n\ndata: a\n\n"])).toEqual([ev("a", { id: "7" })])
      // An empty ID clears it.
      expect(feed(["id: 1\ndata: a\n\nid\ndata: b\n\n"])).toEqual([ev("a", { id: "1" }), ev("b", { id: "" })])
    })

    it("ignores an ID that contains NUL", () => {
      expect(feed(["id: 1\ndata: a\n\nid: 2\u00003\ndata: b\n\n"])).toEqual([
        ev("a", { id: "1" }),
        ev("b", { id: "1" })
      ])
    })

    it("reads retry only when it is ASCII digits, and reports the most recent one", () => {
      expect(feed(["retry: 3000\ndata: a\n\ndata: b\n\n"])).toEqual([
        ev("a", { retry: 3000 }),
        ev("b", { retry: 3000 })
      ])
      for (const value of ["3s", "-1", "1.5", "  10", " 10 ", "", "１２", "0x10", "1e3"]) {
        expect(feed([`retry: 100\n\nretry:${value}\ndata: a\n\n`])).toEqual([ev("a", { retry: 100 })])
      }
      expect(feed(["retry: 007\ndata: a\n\n"])).toEqual([ev("a", { retry: 7 })])
    })

    it("ignores unknown fields", () => {
      expect(feed(["foo: bar\ndata: a\nDATA: b\ndata : c\ndatas: d\nRetry: 1\nID: 2\n\n"])).toEqual([ev("a")])
    })
  })

  describe("end of input", () => {
    it("dispatches an unterminated last event", () => {
      const decoder = Sse.makeDecoder()
      expect(decoder.push(bytes("data: a\n\ndata: b\n"))).toEqual([ev("a")])
      expect(decoder.end()).toEqual([ev("b")])
    })

    it("reads a pending partial line as a line", () => {
      const decoder = Sse.makeDecoder()
      expect(decoder.push(bytes("data: a\n\ndata: b"))).toEqual([ev("a")])
      expect(decoder.end()).toEqual([ev("b")])
      expect(feed(["data: a\nevent: last"])).toEqual([ev("a", { event: "last" })])
      expect(feed(["data: a\r"])).toEqual([ev("a")])
      expect(feed(["id: 1\ndata"])).toEqual([ev("", { id: "1" })])
    })

    it("dispatches nothing more when the input ends cleanly", () => {
      const decoder = Sse.makeDecoder()
      expect(decoder.push(bytes("data: a\n\n"))).toEqual([ev("a")])
      expect(decoder.end()).toEqual([])
      expect(feed([": comment"])).toEqual([])
      expect(feed(["event: x"])).toEqual([])
      expect(feed([])).toEqual([])
    })

    it("returns from push every event its chunk completed", () => {
      const decoder = Sse.makeDecoder()
      expect(decoder.push(bytes("data: a\n\ndata: b\n\ndata: c\n"))).toEqual([ev("a"), ev("b")])
      expect(decoder.push(bytes("\n"))).toEqual([ev("c")])
      expect(decoder.push(new Uint8Array(0))).toEqual([])
      expect(decoder.end()).toEqual([])
    })
  })

  describe("UTF-8", () => {
    it("decodes characters split at every byte position", () => {
      for (const text of ["é", "🌍", "世界", "Héllo 🌍 世界 ", "a\u0000b"]) {
        const input = bytes(`data: ${text}\n\nid: ${text}\nevent: ${text}\ndata: ${text}\n\n`)
        for (const chunks of splits(input)) {
          expect(feed(chunks)).toEqual([
            ev(text),
            ev(text, { event: text, id: text.includes("\0") ? undefined : text })
          ])
        }
      }
    })

    it("replaces invalid bytes with U+FFFD, as TextDecoder does", () => {
      const cases: Array<ReadonlyArray<number>> = [
        [0xff],
        [0x80, 0x41],
        [0xe4, 0xb8],
        [0xf0, 0x9f, 0x8c],
        [0xc0, 0x80],
        [0xed, 0xa0, 0x80],
        [0xf4, 0x90, 0x80, 0x80],
        [0xe4, 0xb8, 0x41, 0xff, 0xfe]
      ]
      for (const value of cases) {
        const expected = new TextDecoder().decode(Uint8Array.from(value))
        const input = Uint8Array.from([...bytes("data: "), ...value, 0x0a, 0x0a])
        for (const chunks of splits(input)) expect(datas(feed(chunks))).toEqual([expected])
        // At the end of a line, before CR and at the end of input.
        expect(datas(feed([Uint8Array.from([...bytes("data: "), ...value, 0x0d, 0x0d])]))).toEqual([expected])
        expect(datas(feed([Uint8Array.from([...bytes("data: "), ...value])]))).toEqual([expected])
      }
    })

    it("decodes large chunks with invalid bytes like small ones", () => {
      const wide = bytes(`data: ${"é世".repeat(2000)}\n\n`)
      const line = Uint8Array.from([...bytes("data: abc"), 0xff, 0xe4, 0xb8, 0x41, 0xf0, 0x9f, 0x0a, 0x0a])
      const input = new Uint8Array(wide.length + line.length * 2000)
      input.set(wide)
      for (let i = 0; i < 2000; i++) input.set(line, wide.length + i * line.length)
      const expected = new TextDecoder().decode(line.subarray(6, -2))
      for (const size of [2048, 4096, 8192, 65536]) {
        const chunks: Array<Uint8Array> = []
        for (let i = 0; i < input.length; i += size) chunks.push(input.subarray(i, i + size))
        const events = feed(chunks)
        expect(events).toHaveLength(2001)
        for (const event of events.slice(1)) assert.strictEqual(event.data, expected)
      }
    })

    it("decodes lines longer than 64 KiB whatever the chunking", () => {
      // Long lines are decoded in pieces as they arrive.
      const unit = Uint8Array.from([...bytes("Héllo 🌍 世界 "), 0xff, 0xe4, 0xb8, 0x41, 0xf0, 0x9f])
      const value = new Uint8Array(unit.length * 12_000)
      for (let i = 0; i < 12_000; i++) value.set(unit, i * unit.length)
      const text = new TextDecoder().decode(value)
      const input = Uint8Array.from([
        ...bytes("id: 1\r\nevent: long\r\ndata: "),
        ...value,
        ...bytes("\r\ndata: "),
        ...value,
        ...bytes("\r\n\r\n: "),
        ...value,
        ...bytes("\revent: "),
        ...value,
        ...bytes("\rdata: x\r\rdata: "),
        ...value
      ])
      const expected = [
        ev(`${text}\n${text}`, { id: "1", event: "long" }),
        ev("x", { id: "1", event: text }),
        ev(text, { id: "1" })
      ]
      for (const size of [1000, 4096, 65_535, 65_536, 100_000, 1 << 20]) {
        const chunks: Array<Uint8Array> = []
        for (let i = 0; i < input.length; i += size) chunks.push(input.subarray(i, i + size))
        expect(feed(chunks)).toEqual(expected)
      }
    })

    it("never cuts a large chunk between the CR and the LF of a CRLF", () => {
      // Large chunks are decoded in pieces of about 8 KiB, cut after a line end.
      for (let at = 8180; at < 8200; at++) {
        const first = `data: ${"a".repeat(at - 6)}\r\ndata: b\r\n\r\n`
        const rest = "data: c\r\n\r\n".repeat(2000)
        expect(datas(feed([first + rest]))).toEqual([`${"a".repeat(at - 6)}\nb`, ...Array(2000).fill("c")])
      }
    })

    it("decodes large chunks of mixed text like small ones", () => {
      const line = (i: number) => `data: {"n":${i},"content":"${i % 3 === 0 ? "Héllo 🌍 世界" : "hello"}"}\n\n`
      const text = Array.from({ length: 2000 }, (_, i) => line(i)).join("")
      const input = bytes(text)
      const expected = Array.from({ length: 2000 }, (_, i) => line(i).slice(6, -2))
      for (const size of [1, 7, 64, 1000, 3000, 8192, 65536]) {
        const chunks: Array<Uint8Array> = []
        for (let i = 0; i < input.length; i += size) chunks.push(input.subarray(i, i + size))
        expect(datas(feed(chunks))).toEqual(expected)
      }
    })
  })

  describe("maxEventSize", () => {
    const isTooLarge = (error: unknown) => error instanceof DecodeError && error.reason === "EventTooLarge"

    it("is 1 MiB by default", () => {
      assert.strictEqual(Sse.defaultMaxEventSize, 1024 * 1024)
      const data = "x".repeat(1024 * 1024 - 6)
      expect(datas(feed([`data: ${data}\n\n`]))).toEqual([data])
      expect(() => feed([`data: ${data}x\n\n`])).toThrow(DecodeError)
    })

    it("throws from push in the middle of an unterminated line", () => {
      const decoder = Sse.makeDecoder({ maxEventSize: 1024 })
      const piece = bytes("x".repeat(100))
      // 10 chunks hold 1000 bytes; the 11th passes 1024.
      for (let i = 0; i < 10; i++) expect(decoder.push(piece)).toEqual([])
      let thrown: unknown
      try {
        decoder.push(piece)
      } catch (error) {
        thrown = error
      }
      assert.isTrue(isTooLarge(thrown))
      // The decoder keeps failing.
      expect(() => decoder.push(bytes("\n\n"))).toThrow(DecodeError)
      expect(() => decoder.end()).toThrow(DecodeError)
    })

    it("throws as soon as the pending line passes the limit, not before", () => {
      const decoder = Sse.makeDecoder({ maxEventSize: 1000 })
      const piece = bytes("x".repeat(100))
      for (let i = 0; i < 10; i++) expect(decoder.push(piece)).toEqual([])
      expect(() => decoder.push(bytes("x"))).toThrow(DecodeError)
    })

    it("counts the UTF-8 bytes of data carried over from earlier chunks", () => {
      const attempt = (more: number) => {
        const decoder = Sse.makeDecoder({ maxEventSize: 100 })
        // 8 bytes of data in 4 UTF-16 units, then a pending line.
        decoder.push(bytes("data: éééé\n"))
        decoder.push(bytes(`data: ${"x".repeat(86 + more)}`))
      }
      attempt(0)
      expect(() => attempt(1)).toThrow(DecodeError)
    })

    it("counts the data of the event being built", () => {
      const line = `data: ${"y".repeat(94)}\n`
      const decoder = Sse.makeDecoder({ maxEventSize: 1024 })
      // Many small events are fine.
      for (let i = 0; i < 50; i++) expect(decoder.push(bytes(`${line}\n`))).toHaveLength(1)
      // One event of many lines is not.
      expect(() => {
        for (let i = 0; i < 50; i++) decoder.push(bytes(line))
      }).toThrow(DecodeError)
    })

    it("fails at the same line however the input is split", () => {
      const fits = bytes("data: 0123\n\n")
      const passes = bytes("data: 01234\n\n")
      for (const chunks of splits(fits)) expect(datas(feed(chunks, { maxEventSize: 10 }))).toEqual(["0123"])
      for (const chunks of splits(passes)) expect(() => feed(chunks, { maxEventSize: 10 })).toThrow(DecodeError)
    })

    it("counts UTF-8 bytes", () => {
      // "é" is 2 bytes: "data: éé" is 10 bytes.
      for (const chunks of splits(bytes("data: éé\n\n"))) {
        expect(datas(feed(chunks, { maxEventSize: 10 }))).toEqual(["éé"])
        expect(() => feed(chunks, { maxEventSize: 9 })).toThrow(DecodeError)
      }
    })

    it("counts an invalid byte as its U+FFFD", () => {
      // 6 + 8 × 3 = 30 bytes once decoded; 6 + 9 × 3 = 33.
      const line = (n: number) => Uint8Array.from([...bytes("data: "), ...Array(n).fill(0xff), 0x0a, 0x0a])
      expect(datas(feed([line(8)], { maxEventSize: 30 }))).toEqual(["\uFFFD".repeat(8)])
      expect(() => feed([line(9)], { maxEventSize: 30 })).toThrow(DecodeError)
    })

    it("counts the bytes of lines longer than 64 KiB", () => {
      for (const invalid of [false, true]) {
        // An invalid byte counts 3 bytes, its U+FFFD.
        const value = bytes("é".repeat(50_000) + "x".repeat(50_000))
        if (invalid) value[120_000] = 0xff
        const line = Uint8Array.from([...bytes("data: "), ...value, 0x0a, 0x0a])
        const exact = 6 + value.length + (invalid ? 2 : 0)
        for (const chunk of [1000, 65_536, 1 << 20]) {
          const chunks: Array<Uint8Array> = []
          for (let i = 0; i < line.length; i += chunk) chunks.push(line.subarray(i, i + chunk))
          expect(feed(chunks, { maxEventSize: exact })).toHaveLength(1)
          expect(() => feed(chunks, { maxEventSize: exact - 1 })).toThrow(DecodeError)
        }
      }
    })

    it("throws from push in the middle of a line longer than 64 KiB", () => {
      const decoder = Sse.makeDecoder({ maxEventSize: 100_000 })
      const piece = bytes("x".repeat(1000))
      for (let i = 0; i < 100; i++) expect(decoder.push(piece)).toEqual([])
      expect(() => decoder.push(bytes("x"))).toThrow(DecodeError)
    })

    it("counts a line longer than 64 KiB in the data of its event", () => {
      const input = bytes(`data: ${"x".repeat(70_000)}\ndata: ${"y".repeat(40_000)}\n\n`)
      for (const size of [1000, 65_536, input.length]) {
        const chunks: Array<Uint8Array> = []
        for (let i = 0; i < input.length; i += size) chunks.push(input.subarray(i, i + size))
        expect(() => feed(chunks, { maxEventSize: 100_000 })).toThrow(DecodeError)
        expect(feed(chunks, { maxEventSize: 110_006 })).toHaveLength(1)
      }
    })

    it("limits long comments and other fields too", () => {
      expect(() => feed([`: ${"z".repeat(2000)}\n`], { maxEventSize: 1024 })).toThrow(DecodeError)
      expect(() => feed([`event: ${"z".repeat(2000)}\n`], { maxEventSize: 1024 })).toThrow(DecodeError)
      expect(() => feed([`: ${"z".repeat(2000)}`], { maxEventSize: 1024 })).toThrow(DecodeError)
    })
  })

  it("decodes every byte once, whatever the chunking", () => {
    // Linear work, checked without a clock: the bytes handed to TextDecoder
    // add up to the input, even for one long line fed a byte at a time.
    const decode = TextDecoder.prototype.decode
    let decoded = 0
    TextDecoder.prototype.decode = function (this: TextDecoder, input?: AllowSharedBufferSource, options?) {
      decoded += input === undefined ? 0 : input.byteLength
      return decode.call(this, input, options)
    }
    try {
      const input = bytes(`data: ${"a".repeat(20_000)}\n\n${"data: b\r\n".repeat(500)}\n`)
      for (const size of [1, 3, 64, 4096]) {
        decoded = 0
        const chunks: Array<Uint8Array> = []
        for (let i = 0; i < input.length; i += size) chunks.push(input.subarray(i, i + size))
        expect(feed(chunks)).toHaveLength(2)
        assert.isAtMost(decoded, input.length)
      }
    } finally {
      TextDecoder.prototype.decode = decode
    }
  })
})

describe("Sse.decode", () => {
  const fromChunks = (...chunks: ReadonlyArray<string>) =>
    Stream.fromChunks(...chunks.map((chunk) => Chunk.of(bytes(chunk))))

  it.effect("decodes a stream of bytes", () =>
    Effect.gen(function* () {
      const events = yield* fromChunks("data: a\n", "\ndata: é", "\n\nevent: x\ndata: b\n\n").pipe(
        Sse.decode(),
        Stream.runCollect
      )
      expect(Chunk.toReadonlyArray(events)).toEqual([ev("a"), ev("é"), ev("b", { event: "x" })])
    })
  )

  it.effect("dispatches an unterminated last event at the end of the stream", () =>
    Effect.gen(function* () {
      const events = yield* fromChunks("data: a\n\ndata: b").pipe(Sse.decode(), Stream.runCollect)
      expect(datas(Chunk.toReadonlyArray(events))).toEqual(["a", "b"])
    })
  )

  it.effect("emits the events of one upstream chunk as one chunk", () =>
    Effect.gen(function* () {
      const upstream = Stream.fromChunks(
        Chunk.make(bytes("data: a\n\ndata: b\n\n"), bytes("data: c\n\n")),
        Chunk.of(bytes(": nothing\n")),
        Chunk.of(bytes("data: d\n\n"))
      )
      const chunks = yield* upstream.pipe(Sse.decode(), Stream.chunks, Stream.runCollect)
      expect(Chunk.toReadonlyArray(chunks).map((chunk) => datas(Chunk.toReadonlyArray(chunk)))).toEqual([
        ["a", "b", "c"],
        ["d"]
      ])
    })
  )

  it.effect("fails with EventTooLarge after delivering the events before it", () =>
    Effect.gen(function* () {
      const results = yield* fromChunks("data: a\n\ndata: b\n\ndata: ", "x".repeat(600), "x".repeat(600)).pipe(
        Sse.decode({ maxEventSize: 1024 }),
        Stream.either,
        Stream.runCollect
      )
      const items = Chunk.toReadonlyArray(results)
      expect(items.slice(0, 2)).toEqual([Either.right(ev("a")), Either.right(ev("b"))])
      assert.strictEqual(items.length, 3)
      const last = items[2]!
      assert.isTrue(Either.isLeft(last))
      if (Either.isLeft(last)) {
        assert.instanceOf(last.left, DecodeError)
        assert.strictEqual((last.left as DecodeError).reason, "EventTooLarge")
      }
    })
  )

  it.effect("delivers the events of the failing chunk that come before the failure", () =>
    Effect.gen(function* () {
      const results = yield* fromChunks(`data: a\n\ndata: ${"x".repeat(2000)}\n\n`).pipe(
        Sse.decode({ maxEventSize: 1024 }),
        Stream.either,
        Stream.runCollect
      )
      const items = Chunk.toReadonlyArray(results)
      expect(items[0]).toEqual(Either.right(ev("a")))
      assert.strictEqual(items.length, 2)
      assert.isTrue(Either.isLeft(items[1]!))
    })
  )

  it.effect("fails at the end of the stream when the last line is too large", () =>
    Effect.gen(function* () {
      const error = yield* fromChunks("data: a\n\n", "data: \u00ff\u00ff").pipe(
        Sse.decode({ maxEventSize: 8 }),
        Stream.runCollect,
        Effect.flip
      )
      assert.instanceOf(error, DecodeError)
    })
  )

  it.effect("passes the upstream error through, after the events before it", () =>
    Effect.gen(function* () {
      const results = yield* fromChunks("data: a\n\ndata: b").pipe(
        Stream.concat(Stream.fail("boom" as const)),
        Sse.decode(),
        Stream.either,
        Stream.runCollect
      )
      expect(Chunk.toReadonlyArray(results)).toEqual([Either.right(ev("a")), Either.left("boom")])
    })
  )

  it.effect("uses a fresh decoder each time the stream runs", () =>
    Effect.gen(function* () {
      const stream = fromChunks("id: 1\ndata: a\n\ndata: b").pipe(Sse.decode())
      const first = yield* Stream.runCollect(stream)
      const second = yield* Stream.runCollect(stream)
      expect(Chunk.toReadonlyArray(second)).toEqual(Chunk.toReadonlyArray(first))
      expect(Chunk.toReadonlyArray(first)).toEqual([ev("a", { id: "1" }), ev("b", { id: "1" })])
    })
  )
})
