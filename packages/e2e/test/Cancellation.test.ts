// Cancelling a call closes its HTTP connection: an Effect interrupt, an
// AbortSignal, and `break` in a `for await`, on both transports. The mirror
// sees the socket close within 100 ms of the cancel.
import { Client } from "@easychat/core"
import { MirrorServer } from "@easychat/testkit"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { messages, run, transports } from "./support.js"

let server: MirrorServer.MirrorServer

// The first interruption in a vitest worker pays a one-off cost of the test
// runner (source maps for the first stack trace, hundreds of ms): pay it here,
// unmeasured, so the bound below measures the client.
beforeAll(async () => {
  const warm = await MirrorServer.start({ deltas: 1000, delayMs: 5 })
  for (const [, transport] of transports) {
    await run(
      { servers: [warm.url] },
      (chat) =>
        Effect.gen(function* () {
          const fiber = yield* Effect.fork(Stream.runDrain(chat.stream({ messages })))
          yield* Effect.sleep("30 millis")
          yield* Fiber.interrupt(fiber)
        }),
      transport()
    )
  }
  await warm.close()
})

beforeEach(async () => {
  // A long, slow stream: it is still running when the test cancels it.
  server = await MirrorServer.start({ deltas: 10_000, delayMs: 5 })
})
afterEach(() => server.close())

const BOUND_MS = 100

const closedWithin = async (cancelledAt: number) => {
  const post = server.requests.find((r) => r.method === "POST")!
  const closed = await Promise.race([
    post.closed,
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 2000))
  ])
  expect(closed, "the mirror never saw the connection close").toBeDefined()
  expect(closed!.finished).toBe(false)
  expect(closed!.at - cancelledAt).toBeLessThanOrEqual(BOUND_MS)
}

// The 100 ms bound is a wall-clock bound on a 2-core machine: a test may be retried
// when another process steals the core at that moment; the socket must close every time.
describe.each(transports)("on the %s transport", { retry: 2 }, (_name, transport) => {
  it("interrupting the Effect stream closes the connection", async () => {
    let cancelledAt = 0
    await run(
      { servers: [server.url] },
      (chat) =>
        Effect.gen(function* () {
          const seen: Array<string> = []
          const fiber = yield* Effect.fork(
            Stream.runForEach(chat.stream({ messages }), (d) => Effect.sync(() => seen.push(d.content)))
          )
          while (seen.length < 3) yield* Effect.sleep("5 millis")
          cancelledAt = Date.now()
          yield* Fiber.interrupt(fiber)
        }),
      transport()
    )
    await closedWithin(cancelledAt)
  })

  it("an AbortSignal rejects the Promise with an AbortError and closes the connection", async () => {
    const client = Client.make({ servers: [server.url] }, transport())
    const controller = new AbortController()
    let cancelledAt = 0
    const pieces: Array<string> = []
    const consume = async () => {
      for await (const piece of client.stream({ messages }, { signal: controller.signal })) {
        pieces.push(piece)
        if (pieces.length === 3) {
          cancelledAt = Date.now()
          controller.abort()
        }
      }
    }
    await expect(consume()).rejects.toMatchObject({ name: "AbortError" })
    await closedWithin(cancelledAt)
    expect(pieces.length).toBeGreaterThanOrEqual(3)
    await client.close()
  })

  it("break in a for await closes the connection", async () => {
    const client = Client.make({ servers: [server.url] }, transport())
    let cancelledAt = 0
    for await (const _ of client.stream({ messages })) {
      cancelledAt = Date.now()
      break
    }
    await closedWithin(cancelledAt)
    await client.close()
  })

  it("aborting complete() while the server has not answered closes the connection", async () => {
    await server.setFault({ kind: "stall-before-headers" })
    const client = Client.make({ servers: [server.url], cookieInit: "off" }, transport())
    const controller = new AbortController()
    const call = client.complete({ messages }, { signal: controller.signal })
    while (server.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
    const cancelledAt = Date.now()
    controller.abort()
    await expect(call).rejects.toMatchObject({ name: "AbortError" })
    await closedWithin(cancelledAt)
    await client.close()
  })
})
