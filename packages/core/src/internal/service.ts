import * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type * as BodyReader from "../BodyReader.js"
import { type ChatCompletion, type ChatDelta, type ChatRequest, type StreamOptions, validate } from "../Chat.js"
import * as ChatCall from "../ChatCall.js"
import type { EasyChatError } from "../Errors.js"
import type * as ServerPool from "../ServerPool.js"
import { type Attempt, makeAttempts } from "./attempt.js"
import { type Continuation, makeContinuation } from "./continuation.js"
import { makeCookieInit } from "./cookieInit.js"
import { makeCookieStore } from "./cookies.js"
import { drive, one, type Plan } from "./failover.js"
import { checkEndpoint, type Forwarded, type ForwardRequest, forwardAttempt } from "./forward.js"
import { makeLimits } from "./limits.js"
import { listModels, type ServerModels } from "./models.js"
import { makeOutgoing } from "./outgoing.js"
import { makeResponses } from "./response.js"
import { makeSender } from "./send.js"
import type { Settings } from "./settings.js"

const planOf = <A>(
  request: ChatRequest,
  pinned: string | undefined,
  attempt: (request: ChatRequest) => Attempt<A>,
  continuation: ((request: ChatRequest) => Continuation<A> | undefined) | undefined
): Plan<A> => ({ attempt: attempt(request), pinned, continuation: continuation?.(request) })

/** What `EasyChat.make` exposes, built once when the layer is built. */
export interface Calls {
  readonly complete: (request: unknown) => Effect.Effect<ChatCompletion, EasyChatError>
  readonly stream: (request: unknown, options?: StreamOptions) => Stream.Stream<ChatDelta, EasyChatError>
  readonly call: (request: unknown, options?: StreamOptions) => Effect.Effect<ChatCall.ChatCall, never, Scope.Scope>
  readonly forward: (request: ForwardRequest) => Effect.Effect<Forwarded, EasyChatError>
  readonly models: Effect.Effect<ReadonlyArray<ServerModels>>
}

/**
 * One client's parts, each made once: what is sent, how responses are read
 * and checked, the attempts, and the driver that runs them.
 */
export const makeCalls = (
  settings: Settings,
  pool: ServerPool.Service,
  transport: HttpClient.HttpClient,
  bodyReader: BodyReader.Service
): Calls => {
  const limits = makeLimits(settings)
  const cookies = makeCookieStore()
  const outgoing = makeOutgoing(settings, cookies)
  // No `http.client` span per request: the `easychat.attempt` span already names the server and gets the
  // status, the client span cost about 0.4 ms per request (its attributes, the headers copied twice), and its
  // `traceparent`/`b3` headers are not what a browser sends to a mirror.
  const untraced = HttpClient.withTracerDisabledWhen(transport, () => true)
  const sender = makeSender(transport, limits, bodyReader, untraced)
  const responses = makeResponses(limits, bodyReader)
  const initCookies = makeCookieInit(settings, cookies, outgoing, sender, responses)
  const readerContext = {
    maxEventSize: settings.maxEventSize,
    secretsOf: outgoing.secretsOf,
    timeoutOf: limits.timeoutOf,
    bodyReader
  }
  const attempts = makeAttempts({ settings, cookies, outgoing, sender, responses, limits, initCookies, readerContext })
  const deps = { settings, pool, limits }
  /** The API's base path: the chat path without `/chat/completions` (`/v1`, `/api/openai/v1`). */
  const apiBase = settings.path.replace(/\/chat\/completions\/?$/, "")

  /**
   * The validated request, the server it is pinned to, if any, and what continues its reply after a cut
   * (no Effect: it runs before every call).
   */
  const plan = <A>(
    input: unknown,
    attempt: (request: ChatRequest) => Attempt<A>,
    continuation?: (request: ChatRequest) => Continuation<A> | undefined
  ) =>
    Either.flatMap(validate(input), (request) =>
      request.activeServer === undefined
        ? Either.right(planOf(request, settings.activeServer, attempt, continuation))
        : Either.map(pool.pin(request.activeServer), (pinned) => planOf(request, pinned, attempt, continuation))
    )

  const call = (input: unknown, options?: StreamOptions) =>
    Effect.flatMap(Effect.scope, (scope) => {
      const every = options?.everyChunk === true
      const stream = (request: ChatRequest) => attempts.stream(request, every)
      const continued = settings.continueAfterCut
        ? (request: ChatRequest) => makeContinuation(request, stream)
        : undefined
      return drive(deps, "easychat.stream", plan(input, stream, continued), scope)
    })

  /** A call whose attempts each yield one item (a whole reply, a forwarded head), within the call's total time. */
  const whole = <A>(name: string, planned: Either.Either<Plan<A>, EasyChatError>) =>
    Effect.scoped(
      Effect.gen(function* () {
        const call = yield* drive(deps, name, planned, yield* Effect.scope)
        return yield* Effect.timeoutFail(one(call), {
          duration: limits.millis.total,
          onTimeout: () => limits.timeoutOf(call.server(), "total")
        })
      })
    )

  return {
    call,
    stream: (input, options) => ChatCall.toStream(call(input, options)),
    // Checked when the Effect runs, not when it is made.
    complete: (input) => Effect.suspend(() => whole("easychat.complete", plan(input, attempts.whole))),
    forward: (request) =>
      Effect.suspend(() => {
        const planned = Either.map(
          checkEndpoint(request),
          (checked): Plan<Forwarded> => ({
            attempt: forwardAttempt({ attempts, outgoing, responses, limits }, apiBase, checked),
            pinned: settings.activeServer
          })
        )
        return whole("easychat.forward", planned)
      }),
    models: listModels({ settings, outgoing, sender, responses, limits }, apiBase)
  }
}
