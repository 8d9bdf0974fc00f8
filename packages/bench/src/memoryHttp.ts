// An in-memory HttpClient: every request is answered 200 `text/event-stream`
// with a web `ReadableStream` body that yields the given byte chunks, one per
// read, the way a transport hands over its network reads. It lets the real EasyChat engine
// run without sockets, so only decoding and Effect machinery are measured.
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

export interface MemoryHttp {
  readonly layer: Layer.Layer<HttpClient.HttpClient>
  /** Sets the reads that the bodies of the next responses yield. */
  readonly serve: (body: ReadonlyArray<Uint8Array>) => void
}

export const make = (): MemoryHttp => {
  let body: ReadonlyArray<Uint8Array> = []
  const client = HttpClient.make((request) =>
    Effect.sync(() => {
      const reads = body
      let i = 0
      const stream = new ReadableStream<Uint8Array>(
        {
          pull: (controller) => {
            if (i < reads.length) controller.enqueue(reads[i++]!)
            else controller.close()
          }
        },
        { highWaterMark: 0 }
      )
      return HttpClientResponse.fromWeb(
        request,
        new Response(stream, { status: 200, headers: { "content-type": "text/event-stream" } })
      )
    })
  )
  return {
    layer: Layer.succeed(HttpClient.HttpClient, client),
    serve: (next) => {
      body = next
    }
  }
}
