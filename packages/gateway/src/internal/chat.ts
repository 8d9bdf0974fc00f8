import { type ChatDelta, type ChatRequestInput, EasyChat, type EasyChatError } from "@easychat/core"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { clientSecrets } from "./auth.js"
import { fromEasyChatError, makeChunkEvents } from "./openai.js"
import { failed, invalid, type Limit, logged, type Resolved, readJsonObject, routable } from "./request.js"
import { type Router, routed, withFallback } from "./routes.js"

/** Waits for Node's next tick, where it writes what a response corked. */
const nextTick = Effect.async<void>((resume) => {
  process.nextTick(() => resume(Effect.void))
})

export const sseHeaders = (server: string | undefined) => ({
  "cache-control": "no-cache",
  // Proxies such as nginx must not hold deltas back.
  "x-accel-buffering": "no",
  ...(server === undefined ? {} : { "x-easychat-server": server })
})

/**
 * `POST /v1/chat/completions`: the body is read (within its size and time
 * limits) before a place is taken among `maxConcurrent`, so that slow
 * clients hold none. The request goes to the pool as the client sent it,
 * routing fields aside (core validates it and sends only what it holds); the
 * answer is the upstream's: its whole body, or each of its chunks re-framed
 * as SSE.
 */
export const makeChatCompletions = <R>(settings: Resolved, limited: Limit, router: Router<R>) =>
  Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const secrets = () => clientSecrets(settings.keys, request.headers.authorization)
    return readJsonObject(request, settings).pipe(
      Effect.flatMap((body) =>
        routed(router, body, (table, route) =>
          limited(withFallback(router, table, route, routable(body, settings), (input) => answer(input, secrets)))
        )
      ),
      Effect.catchAll((error) => failed(error, secrets()))
    )
  })

const answer = (body: Record<string, unknown>, secrets: () => ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const stream = body.stream ?? false
    if (typeof stream !== "boolean") return yield* invalid("stream", "must be a boolean")
    // Core checks the rest (messages, ranges, ...) and answers InvalidRequest; it sets `stream` itself.
    const chat = yield* EasyChat.EasyChat
    if (!stream) {
      const reply = yield* chat.complete(body as ChatRequestInput)
      // The upstream's body as it was parsed: every choice and field (a server that streamed anyway:
      // the chat.completion its chunks add up to).
      return HttpServerResponse.unsafeJson(reply.raw, { headers: { "x-easychat-server": reply.server } })
    }
    // `everyChunk`: a delta for each chunk, the ones that carry nothing (the role chunk) included.
    // The call's own handle: one pull per upstream read, no `Stream` in between.
    const { pull } = yield* chat.call(body as ChatRequestInput, { everyChunk: true })
    // Until the first delta the pool may still fail over, and a failure still has an honest HTTP status.
    let first = Chunk.empty<ChatDelta>()
    let ended = false
    while (Chunk.isEmpty(first) && !ended) {
      const next = yield* Effect.either(pull)
      if (next._tag === "Right") first = next.right
      else if (Option.isNone(next.left)) ended = true
      else return yield* Effect.fail(next.left.value)
    }
    const events = makeChunkEvents()
    // One `Stream` step per upstream read, and a single layer (operators cost per step): the first batch,
    // each read, then `[DONE]` or, the status being sent, an error event in place of a silent end.
    let opening: Uint8Array | undefined = events.deltas(first)
    let flushed = false
    let over = false
    const finish = (error: Option.Option<EasyChatError>) => {
      over = true
      return Option.isNone(error)
        ? Effect.succeed(Chunk.of(events.end()))
        : Effect.map(logged(fromEasyChatError(error.value, secrets())), (e) => Chunk.of(events.error(e)))
    }
    const step = Effect.suspend((): Effect.Effect<Chunk.Chunk<Uint8Array>, Option.Option<never>> => {
      if (opening !== undefined) {
        const out = opening
        opening = undefined
        return Effect.succeed(Chunk.of(out))
      }
      if (!flushed) {
        flushed = true
        // Node sends what was written at the next tick, and this fiber would go on first through every
        // delta already read, to the end: let the first delta leave now (the client's time to first token).
        return Effect.zipRight(nextTick, step)
      }
      if (over) return Effect.fail(Option.none())
      if (ended) return finish(Option.none())
      return Effect.matchEffect(pull, {
        onSuccess: (batch) => {
          const out = events.deltas(batch)
          return Effect.succeed(out.length === 0 ? Chunk.empty<Uint8Array>() : Chunk.of(out))
        },
        onFailure: finish
      })
    })
    const server = Option.getOrUndefined(Option.map(Chunk.head(first), (d) => d.server))
    return HttpServerResponse.stream(Stream.repeatEffectChunkOption(step), {
      contentType: "text/event-stream; charset=utf-8",
      headers: sseHeaders(server)
    })
  })
