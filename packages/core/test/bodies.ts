// Web bodies, clients and waits shared by the body reader's tests.
import { HttpClient, HttpClientResponse } from "@effect/platform"
import * as Effect from "effect/Effect"

export const sleep = (millis: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, millis)))

export const waitUntil = (what: string, check: () => boolean, millis = 2000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + millis
    while (!check()) {
      if (Date.now() > deadline) return yield* Effect.die(new Error(`timed out waiting for: ${what}`))
      yield* sleep(5)
    }
  })

/** A web stream fed by `next` (undefined ends it) one read per timer turn, as from a network; records its cancel. */
export const source = (next: (i: number) => Uint8Array | Error | undefined) => {
  let i = 0
  let pulls = 0
  let cancelled = false
  const stream = new ReadableStream<Uint8Array>(
    {
      pull: (controller) =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            pulls++
            if (cancelled) return resolve()
            const piece = next(i++)
            if (piece === undefined) controller.close()
            else if (piece instanceof Error) controller.error(piece)
            else controller.enqueue(piece)
            resolve()
          }, 1)
        ),
      cancel: () => {
        cancelled = true
      }
    },
    { highWaterMark: 0 }
  )
  return { stream, pulls: () => pulls, cancelled: () => cancelled }
}

export const bytesOf = (text: string) => new TextEncoder().encode(text)

/** An `HttpClient.make` client answering every request with a web `Response` over `body()`; records the signals. */
export const webClient = (body: () => ReadableStream<Uint8Array> | null) => {
  const signals: Array<AbortSignal> = []
  const client = HttpClient.make((request, _url, signal) => {
    signals.push(signal)
    return Effect.succeed(HttpClientResponse.fromWeb(request, new Response(body())))
  })
  return { client, signals }
}
