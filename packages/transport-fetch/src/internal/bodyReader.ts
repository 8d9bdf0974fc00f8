import { BodyReader } from "@easychat/core"
import * as Effect from "effect/Effect"
import { madeOf } from "./client.js"

const empty = (): ReadableStream<Uint8Array> =>
  new ReadableStream({
    start: (controller) => controller.close()
  })

/**
 * The fetch reader: the web body of each response this package's clients made, read with
 * `BodyReader.fromWebStream` (cancelling it aborts the fetch); any other response through `BodyReader.fromStream`.
 *
 * @internal
 */
export const reader: BodyReader.Service = {
  name: "fetch",
  open: (response, sink) => {
    const own = madeOf(response)
    if (own === undefined) return BodyReader.fromStream.open(response, sink)
    // A response without a body (204, HEAD) ends at once, as undici's empty body does. `abort` goes through
    // `own` so that the reads keep the response alive: `HttpClient.make` aborts the fetch of a collected response.
    return Effect.sync(() => BodyReader.fromWebStream(own.body ?? empty(), sink, () => own.abort()))
  },
  abandon: (response) => {
    const own = madeOf(response)
    if (own === undefined) return BodyReader.fromStream.abandon(response)
    // Some bodies (msw's) never settle `cancel()`: nothing waits for it.
    own.body?.cancel().catch(() => {})
    own.abort()
  }
}
