import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import type * as Tracer from "effect/Tracer"
import type { ChatCompletion, ChatDelta, ChatRequest } from "../Chat.js"
import { type AttemptError, DecodeError, NoResponse } from "../Errors.js"
import { makeAccumulator } from "./accumulate.js"
import { completionOf, MAX_REPLY_DEPTH, nestsDeeperThan, parseJson } from "./completion.js"
import type { CookieStore } from "./cookies.js"
import { Delta } from "./delta.js"
import type { Delivered, Limit, Limits } from "./limits.js"
import type { Outgoing } from "./outgoing.js"
import { makeReader, type Reader, type ReaderContext, single } from "./reader.js"
import { contentTypeOf, isEventStream, isJson, isSuccess, type Responses } from "./response.js"
import type { Sender } from "./send.js"
import type { Settings } from "./settings.js"
import type { Watchdog } from "./watchdog.js"

/** What the driver gives one attempt: its server, its clock and watchdog, and how much of the call has been delivered. */
export interface AttemptContext {
  readonly server: string
  readonly number: number
  readonly clock: Clock.Clock
  /** When the attempt started (the clock's millis). */
  readonly start: number
  /** The attempt's next wait: first token, then idle, within the call's total. */
  readonly limit: Limit
  readonly watchdog: Watchdog
  readonly span: Tracer.Span | undefined
  readonly delivered: Delivered
}

/** An attempt that got through: a reader of what it yields, and the milliseconds until its response's headers. */
export interface Opened<A> {
  readonly reader: Reader<A>
  readonly latency: number
}

/** One server, from cookie set-up to a reader: a value the driver runs, or a typed error. */
export type Attempt<A> = (context: AttemptContext) => Effect.Effect<Opened<A>, AttemptError>

/** The parts every attempt of one client shares. */
export interface Parts {
  readonly settings: Settings
  readonly cookies: CookieStore
  readonly outgoing: Outgoing
  readonly sender: Sender
  readonly responses: Responses
  readonly limits: Limits
  readonly initCookies: (server: string) => Effect.Effect<void, AttemptError>
  readonly readerContext: ReaderContext
}

/** The attempts of one client: a chat stream, a whole chat reply, and any other request to the API. */
export interface Attempts {
  /**
   * Sends what `build` makes for `server` (cookies first; a 401/403
   * re-initialises them once) and checks the status. With `limit`, every
   * step counts against the attempt's budget.
   */
  readonly exchange: (
    context: AttemptContext,
    build: (now: number) => HttpClientRequest.HttpClientRequest,
    limit?: Limit,
    meanwhile?: () => void
  ) => Effect.Effect<HttpClientResponse.HttpClientResponse, AttemptError>
  readonly stream: (request: ChatRequest, every: boolean) => Attempt<ChatDelta>
  readonly whole: (request: ChatRequest) => Attempt<ChatCompletion>
}

export const makeAttempts = (parts: Parts): Attempts => {
  const { settings, cookies, outgoing, sender, responses, limits, initCookies, readerContext } = parts

  const exchange: Attempts["exchange"] = (context, build, limit, meanwhile) =>
    Effect.gen(function* () {
      const { server, clock, watchdog, span } = context
      const sending = Effect.suspend(() =>
        sender.send(server, build(clock.unsafeCurrentTimeMillis()), clock, watchdog, limit, meanwhile)
      )
      if (settings.cookieInit !== "off" && cookies.needsInit(server, clock.unsafeCurrentTimeMillis())) {
        yield* limits.within(server, limit, initCookies(server))
      }
      let response = yield* sending
      if ((response.status === 401 || response.status === 403) && settings.cookieInit !== "off") {
        yield* limits.within(server, limit, responses.drain(server, response))
        cookies.invalidate(server)
        yield* limits.within(server, limit, initCookies(server))
        response = yield* sending
      }
      span?.attribute("http.response.status_code", response.status)
      if (!isSuccess(response.status)) {
        const error = responses.statusError(server, response, outgoing.secretsOf(server))
        return yield* limits.within(server, limit, Effect.flatMap(error, Effect.fail))
      }
      return response
    })

  const tooLarge = (server: string) =>
    new DecodeError({
      reason: "EventTooLarge",
      detail: `the whole reply is larger than maxReplySize (${settings.maxReplySize} bytes)`,
      server
    })
  const noChoices = (server: string) => new NoResponse({ server, detail: "the reply has no choices" })

  /** A whole reply from a server that streams anyway: its deltas add up to the reply, within `maxReplySize`. */
  const joined = (context: AttemptContext, response: HttpClientResponse.HttpClientResponse) =>
    Effect.gen(function* () {
      const { server, clock, watchdog, start } = context
      // Its own first-token and idle limits; the call's total bounds `complete` as a whole.
      const delivered: Delivered = { deltas: 0, characters: 0 }
      const limit = limits.limitFor(clock, start, Number.POSITIVE_INFINITY, delivered)
      const reader = yield* makeReader(readerContext, server, delivered, limit, clock, watchdog, false).attach(response)
      const reply = makeAccumulator()
      let size = 0
      const read: Effect.Effect<ChatCompletion, AttemptError> = Effect.matchEffect(reader.pull, {
        onFailure: (end) => (end._tag === "None" ? Effect.succeed(reply.get()) : Effect.fail(end.value)),
        onSuccess: (batch) => {
          for (const delta of batch) {
            size += Delta.text(delta).length
            if (size > settings.maxReplySize) return Effect.fail(tooLarge(server))
            reply.add(delta)
          }
          return read
        }
      })
      const whole = yield* Effect.ensuring(read, Effect.sync(reader.close))
      // As a whole body without choices is: nothing to answer with, and another server may have it.
      if (whole.choices.length === 0) return yield* noChoices(server)
      return whole
    })

  /** A whole `application/json` reply, read within `maxReplySize` and the first-token limit. */
  const parsed = (context: AttemptContext, response: HttpClientResponse.HttpClientResponse) =>
    Effect.gen(function* () {
      const { server } = context
      const read = yield* Effect.timeoutFail(responses.readText(server, response, settings.maxReplySize), {
        duration: settings.timeouts.firstToken,
        onTimeout: () => limits.timeoutOf(server, "firstToken")
      })
      if (read.truncated) return yield* tooLarge(server)
      if (nestsDeeperThan(read.text, MAX_REPLY_DEPTH)) {
        return yield* new DecodeError({
          reason: "InvalidJson",
          detail: `the reply nests JSON deeper than ${MAX_REPLY_DEPTH} levels`,
          server
        })
      }
      const secrets = outgoing.secretsOf(server)
      const body = yield* Effect.try({
        try: () => parseJson(server, read.text, secrets),
        catch: (e) => e as DecodeError
      })
      const reply = completionOf(server, body, secrets)
      if (reply._tag === "Error") return yield* reply.error
      if (reply._tag === "NoChoices") return yield* noChoices(server)
      return reply.reply
    })

  return {
    exchange,
    stream: (request, every) => (context) =>
      Effect.gen(function* () {
        const { server, clock, start, limit, watchdog, delivered } = context
        // The reader, made while the server works on the request.
        let made: ReturnType<typeof makeReader> | undefined
        const makeOnce = () => (made ??= makeReader(readerContext, server, delivered, limit, clock, watchdog, every))
        // Cookie initialisation and the headers count against the first token and the total too.
        const response = yield* exchange(
          context,
          (now) => outgoing.chatRequest(server, request, true, now),
          limit,
          makeOnce
        )
        const latency = clock.unsafeCurrentTimeMillis() - start
        const contentType = contentTypeOf(response)
        if (isEventStream(contentType)) return { reader: yield* makeOnce().attach(response), latency }
        if (isJson(contentType))
          return yield* responses.jsonInsteadOfStream(server, response, outgoing.secretsOf(server))
        return yield* responses.unexpected(server, response, "text/event-stream", outgoing.secretsOf(server))
      }),
    whole: (request) => (context) =>
      Effect.gen(function* () {
        const { server, clock, start } = context
        const response = yield* exchange(context, (now) => outgoing.chatRequest(server, request, false, now))
        const latency = clock.unsafeCurrentTimeMillis() - start
        const contentType = contentTypeOf(response)
        if (isEventStream(contentType)) return { reader: single(yield* joined(context, response)), latency }
        if (!isJson(contentType)) {
          return yield* responses.unexpected(server, response, "application/json", outgoing.secretsOf(server))
        }
        return { reader: single(yield* parsed(context, response)), latency }
      })
  }
}
