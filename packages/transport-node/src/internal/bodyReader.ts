import { BodyReader } from "@easychat/core"
import * as Effect from "effect/Effect"
import { undiciResponseOf } from "./client.js"
import type { UndiciResponse } from "./response.js"

/**
 * Reads undici's body (a Node `Readable`) into `sink`, one call per read. Destroying the body aborts its undici
 * request, which closes the socket unless the body had ended.
 *
 * @internal
 */
export const fromResponse = (response: UndiciResponse, sink: BodyReader.Sink): BodyReader.Body => {
  const readable = response.source.body
  let state: "open" | "draining" | "closed" = "open"
  let drained = 0
  let timer: NodeJS.Timeout | undefined
  const detach = () => {
    state = "closed"
    if (timer !== undefined) clearTimeout(timer)
    readable.off("data", onData)
    readable.off("end", onEnd)
    readable.off("error", onError)
  }
  const cancel = () => {
    if (state === "closed") return
    const unfinished = !readable.readableEnded
    detach()
    // Through `response`, so that the listeners keep it alive: `HttpClient.make` aborts the request of a
    // response that is garbage-collected.
    if (unfinished) response.source.body.destroy()
  }
  function onData(bytes: Uint8Array) {
    if (state === "open") return sink.chunk(bytes)
    drained += bytes.length
    if (drained > BodyReader.DRAIN_BYTES) cancel()
  }
  function onEnd() {
    const wasOpen = state === "open"
    detach()
    if (wasOpen) sink.end()
  }
  function onError(cause: unknown) {
    const wasOpen = state === "open"
    detach()
    if (wasOpen) sink.fail(cause)
  }
  readable.on("error", onError)
  readable.on("end", onEnd)
  readable.on("data", onData)
  return {
    pause: () => {
      if (state === "open") readable.pause()
    },
    resume: () => {
      if (state === "open") readable.resume()
    },
    cancel,
    release: () => {
      if (state !== "open") return
      if (readable.readableEnded) return detach()
      state = "draining"
      // Unref'd: a drain never keeps the process alive.
      timer = setTimeout(cancel, BodyReader.DRAIN_MILLIS).unref()
      readable.resume()
    }
  }
}

/**
 * The undici reader: the raw body of each response this package's clients made, read directly; any other
 * response through `BodyReader.fromStream`.
 *
 * @internal
 */
export const reader: BodyReader.Service = {
  name: "undici",
  open: (response, sink) => {
    const own = undiciResponseOf(response)
    if (own === undefined) return BodyReader.fromStream.open(response, sink)
    return Effect.sync(() => fromResponse(own, sink))
  },
  abandon: (response) => {
    const own = undiciResponseOf(response)
    if (own === undefined) return BodyReader.fromStream.abandon(response)
    own.source.body.destroy()
  }
}
