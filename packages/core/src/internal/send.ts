import type * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import type * as BodyReader from "../BodyReader.js"
import { type AttemptError, TransportError } from "../Errors.js"
import type { Limit, Limits } from "./limits.js"
import type { Watchdog } from "./watchdog.js"

/** The messages (and codes) of an error and its causes, or `fallback`. */
export const describeCause = (error: unknown, fallback: string): string => {
  const parts: Array<string> = []
  let cause = error
  for (let depth = 0; depth < 4 && cause instanceof Error; depth++) {
    const code = (cause as { code?: unknown }).code
    const text = typeof code === "string" && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message
    if (text && !parts.includes(text)) parts.push(text)
    cause = cause.cause
  }
  return parts.length > 0 ? parts.join(": ") : fallback
}

export const describe = (error: HttpClientError.HttpClientError): string => describeCause(error.cause, error.reason)

/** Sends requests on the transport: each bounded, its failures typed, an abandoned answer's connection closed. */
export interface Sender {
  /** A request other than the chat request (cookie initialisation, models), bounded by the headers timeout. */
  readonly execute: (
    server: string,
    request: HttpClientRequest.HttpClientRequest
  ) => Effect.Effect<HttpClientResponse.HttpClientResponse, AttemptError>
  /**
   * The chat request, bounded by the headers timeout or, when shorter, what
   * is left of the attempt's `limit`. `meanwhile` runs once the request is on
   * its way: what the caller needs next is made while the server works.
   */
  readonly send: (
    server: string,
    request: HttpClientRequest.HttpClientRequest,
    clock: Clock.Clock,
    watchdog: Watchdog,
    limit: Limit | undefined,
    meanwhile: (() => void) | undefined
  ) => Effect.Effect<HttpClientResponse.HttpClientResponse, AttemptError>
}

export const makeSender = (
  transport: HttpClient.HttpClient,
  limits: Limits,
  reader: BodyReader.Service,
  untraced: HttpClient.HttpClient
): Sender => ({
  execute: (server, request) =>
    limits.headers(
      server,
      Effect.mapError(untraced.execute(request), (e) => new TransportError({ server, detail: describe(e) }))
    ),
  // The request runs in a fiber of its own that the attempt's watchdog interrupts (which aborts it) when its
  // deadline passes: no race of two fibers and a join around the one request every call makes.
  send: (server, request, clock, watchdog, limit, meanwhile) =>
    Effect.suspend(() => {
      const budget = limit?.()
      const { ms, phase } =
        budget !== undefined && budget.ms < limits.millis.headers
          ? budget
          : { ms: limits.millis.headers, phase: "headers" as const }
      if (ms <= 0) return Effect.fail(limits.timeoutOf(server, phase))
      const deadline = clock.unsafeCurrentTimeMillis() + ms
      // Armed once, before the wait starts; the wait fills in what expiry does.
      let onExpire: (() => void) | undefined
      const arming = watchdog.arm(deadline, () => onExpire?.())
      const run = Effect.flatMap(Effect.runtime<never>(), (caller) =>
        Effect.async<HttpClientResponse.HttpClientResponse, AttemptError>((resume) => {
          if (clock.unsafeCurrentTimeMillis() >= deadline) return resume(Effect.fail(limits.timeoutOf(server, phase)))
          let settled = false
          let cancel: (() => void) | undefined
          onExpire = () => {
            if (settled) return
            settled = true
            cancel?.()
            resume(Effect.fail(limits.timeoutOf(server, phase)))
          }
          // The request's fiber runs with the tracer off (the same as `untraced`, without its
          // `Effect.locally`), and its failures are ours to report, not an unhandled error's log line.
          const runtime = Runtime.setFiberRef(
            Runtime.setFiberRef(caller, FiberRef.currentTracerEnabled, false),
            FiberRef.unhandledErrorLogLevel,
            Option.none()
          )
          cancel = Runtime.runCallback(runtime)(transport.execute(request), {
            onExit: (exit) => {
              if (settled) {
                if (Exit.isSuccess(exit)) reader.abandon(exit.value)
                return
              }
              settled = true
              watchdog.disarm()
              if (Exit.isSuccess(exit)) return resume(Effect.succeed(exit.value))
              const failure = Cause.failureOption(exit.cause)
              resume(
                Option.isSome(failure)
                  ? Effect.fail(new TransportError({ server, detail: describe(failure.value) }))
                  : Effect.failCause(exit.cause as Cause.Cause<never>)
              )
            }
          })
          if (!settled) meanwhile?.()
          // The caller gave up: the request is interrupted, which aborts it.
          return Effect.sync(() => {
            if (settled) return
            settled = true
            watchdog.disarm()
            cancel?.()
          })
        })
      )
      // The watchdog's fiber is started first when the one asleep would wake too late.
      return arming === undefined ? run : Effect.zipRight(arming, run)
    })
})
