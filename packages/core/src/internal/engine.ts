import * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientError from "@effect/platform/HttpClientError"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Cause from "effect/Cause"
import * as Channel from "effect/Channel"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Runtime from "effect/Runtime"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { type ChatCompletion, type ChatDelta, type ChatRequest, type StreamOptions, validate } from "../Chat.js"
import {
  AllServersFailed,
  type Attempt,
  type AttemptError,
  DecodeError,
  type EasyChatError,
  HttpStatusError,
  type InvalidRequest,
  InvalidRequest as InvalidRequestError,
  isEasyChatError,
  NoResponse,
  type Phase,
  StreamInterrupted,
  Timeout,
  TransportError,
  UnexpectedContentType
} from "../Errors.js"
import type * as ServerPool from "../ServerPool.js"
import { isRequestFault } from "../ServerPool.js"
import * as Sse from "../Sse.js"
import { makeAccumulator } from "./accumulate.js"
import * as Body from "./body.js"
import { makeCookieStore } from "./cookies.js"
import { credentialForms } from "./redact.js"
import {
  completionOf,
  Delta,
  DONE,
  excerpt,
  isActivity,
  MAX_REPLY_DEPTH,
  nestsDeeperThan,
  parseJson,
  serverMessage,
  stepOf,
  upstreamFromBody
} from "./reply.js"
import type { Settings } from "./settings.js"

/** How much of one call's stream has reached the caller. */
interface Delivered {
  deltas: number
  characters: number
}

/**
 * Takes what a body has decoded so far without Effect (`poll`), or waits for
 * the next read with a plain callback (`wait`). The Promise facade uses these
 * between reads; the end of an attempt, failures and failover go through `pull`.
 */
interface Waiting {
  readonly poll: () => Chunk.Chunk<ChatDelta> | undefined
  /**
   * Calls `wake` once when `poll` or `pull` has something. `false` when the
   * caller must `pull` instead: something is ready already, the body has
   * stopped, or no watchdog guards the wait yet.
   */
  readonly wait: (wake: () => void) => boolean
  /** Forgets a `wait` (the caller gave up). */
  readonly unwait: () => void
}

/** An attempt's body being read: `pull` takes the deltas decoded so far, or waits for the next read. */
interface Reader extends Waiting {
  readonly pull: Effect.Effect<Chunk.Chunk<ChatDelta>, Option.Option<AttemptError>>
  /** Stops reading; an unfinished body's connection is closed. */
  readonly close: () => void
}

/** How long the next wait of an attempt may take, and the phase that ends when it runs out. */
type Limit = () => { readonly ms: number; readonly phase: Phase }

const REASONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  409: "Conflict",
  413: "Payload Too Large",
  422: "Unprocessable Entity",
  425: "Too Early",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout"
}

const MAX_REDIRECTS = 5

/** The messages (and codes) of an error and its causes, or `fallback`. */
const describeCause = (error: unknown, fallback: string): string => {
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

const describe = (error: HttpClientError.HttpClientError): string => describeCause(error.cause, error.reason)

/**
 * Effect's own tracer, which records nothing: with it in place a streaming
 * call makes no spans (each costs a few Effect operations and random ids).
 */
const silentTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

/** The end of a body, once its queue is empty. */
const END: Effect.Effect<never, Option.Option<never>> = Effect.fail(Option.none())

/**
 * How many bytes of a body are decoded ahead of the caller before the body
 * pauses. At 64 KiB an Effect `Stream` caller kept batches alive long enough
 * to be promoted, and RSS grew with a stream's length in some runs.
 */
const HIGH_WATER = 16 * 1024

const contentTypeOf = (response: HttpClientResponse.HttpClientResponse) =>
  (response.headers["content-type"] ?? "").toLowerCase()
const isJson = (contentType: string) => contentType.includes("application/json") || contentType.includes("+json")
const isEventStream = (contentType: string) => contentType.includes("text/event-stream")

/** Seconds from a `Retry-After` header: delta-seconds or an HTTP date. */
const retryAfterOf = (value: string | undefined, now: number): number | undefined => {
  if (value === undefined) return undefined
  if (/^\s*\d+\s*$/.test(value)) return Number(value)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000))
}

/** One pull of a streaming call: the deltas decoded since the last pull; `None` at the end. */
export type Pull = Effect.Effect<Chunk.Chunk<ChatDelta>, Option.Option<EasyChatError>>

/** A streaming call as the Promise facade drives it: `pull`, and between reads the current body's `Waiting`. */
export interface Call extends Waiting {
  readonly pull: Pull
  /**
   * Opens the call (failing over as `pull` does) and succeeds with an empty
   * batch once a body is being read, its watchdog running: the caller then
   * takes the first batch with `poll` and `wait`, as every later one.
   */
  readonly start: Pull
}

/** A request to another endpoint of the API, relative to its base (`/embeddings`). */
export interface ForwardRequest {
  readonly endpoint: string
  readonly body: unknown
  readonly stream?: boolean
}

/** The checked answer of a forwarded request, its body still to be read. */
export interface Forwarded {
  readonly server: string
  readonly status: number
  readonly contentType: string
  readonly body: Stream.Stream<Uint8Array, EasyChatError>
}

/** What one server reports at `GET {apiBase}/models`. */
export interface ServerModels {
  readonly server: string
  readonly models: ReadonlyArray<Readonly<Record<string, unknown>>> | undefined
}

export interface Engine {
  readonly forward: (request: ForwardRequest) => Effect.Effect<Forwarded, EasyChatError>
  readonly models: Effect.Effect<ReadonlyArray<ServerModels>>
  readonly complete: (request: unknown) => Effect.Effect<ChatCompletion, EasyChatError>
  readonly stream: (request: unknown, options?: StreamOptions) => Stream.Stream<ChatDelta, EasyChatError>
  /** `stream` without a `Stream` between the reads and the caller, for the Promise facade. */
  readonly open: (request: unknown, scope: Scope.Scope, every?: boolean) => Effect.Effect<Call>
}

/** The engine behind each `EasyChat` service, for the Promise facade. */
export const engines = new WeakMap<object, Engine>()

/**
 * One sleeper per attempt fails whatever wait outlives its deadline: the
 * response headers, then each read of the body. It sleeps until the armed
 * deadline or, with nothing armed, for as long as the next wait could last;
 * so arming costs a few stores, not a fiber or a race per wait.
 */
interface Watchdog {
  /**
   * Runs `expire` once if `deadline` passes before `disarm` or another `arm`.
   * When the sleeper would wake too late and must be a fiber, returns the
   * Effect that starts one in time: run it before waiting.
   */
  readonly arm: (deadline: number, expire: () => void) => Effect.Effect<void> | undefined
  readonly disarm: () => void
  /** Whether the sleeper wakes by `deadline`, so that `arm` starts none. */
  readonly wakesBy: (deadline: number) => boolean
  /** The attempt is over: a timer is cleared, a fiber exits when it wakes (or with the call's scope). */
  readonly stop: () => void
}

/**
 * Effect's live clock, whose `sleep` is a `setTimeout`: on it the watchdog
 * sleeps with a timer of its own. Forking a sleeping fiber cost about 0.4 ms
 * of CPU per cold call, most of it before the first delta.
 */
const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)
/** The longest delay `setTimeout` takes; a longer sleep never ends, as with Effect's `sleep`. */
const MAX_TIMER_MILLIS = 2 ** 31 - 1

/**
 * `nextMillis`: how long the next wait could last, slept through when nothing
 * is armed (> 0). A clock other than the live one (a `TestClock`) gets a fiber
 * asleep on it, forked in `scope`.
 */
const makeWatchdog = (clock: Clock.Clock, scope: Scope.Scope, nextMillis: () => number): Watchdog => {
  let until = Number.POSITIVE_INFINITY
  let deadline = Number.POSITIVE_INFINITY
  let expire: (() => void) | undefined
  // A sleeper started for an earlier deadline replaces the one asleep; an old fiber exits when it wakes.
  let generation = 0
  let stopped = false
  let timer: ReturnType<typeof setTimeout> | undefined
  /** Fires a deadline that has passed; how long to sleep next, or `undefined` when this sleeper is done. */
  const wake = (own: number): number | undefined => {
    if (stopped || own !== generation) return undefined
    const now = clock.unsafeCurrentTimeMillis()
    if (expire !== undefined && now >= deadline) {
      const fire = expire
      expire = undefined
      fire()
      if (stopped) return undefined
    }
    const ms = expire !== undefined ? deadline - now : nextMillis()
    until = now + ms
    return ms
  }
  const loop = (own: number): Effect.Effect<void> =>
    Effect.suspend(() => {
      const ms = wake(own)
      return ms === undefined ? Effect.void : Effect.flatMap(clock.sleep(Duration.millis(ms)), () => loop(own))
    })
  const sleep = (own: number, ms: number) => {
    if (timer !== undefined) clearTimeout(timer)
    timer =
      ms > MAX_TIMER_MILLIS
        ? undefined
        : setTimeout(
            () => {
              timer = undefined
              const next = wake(own)
              if (next !== undefined) sleep(own, next)
            },
            Math.max(ms, 0)
          )
  }
  return {
    arm: (at, onExpire) => {
      deadline = at
      expire = onExpire
      if (until <= at || stopped) return undefined
      until = at
      const own = ++generation
      if (clock !== liveClock) return Effect.asVoid(Effect.forkIn(loop(own), scope))
      sleep(own, at - clock.unsafeCurrentTimeMillis())
      return undefined
    },
    disarm: () => {
      expire = undefined
    },
    wakesBy: (at) => until <= at,
    stop: () => {
      stopped = true
      expire = undefined
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
    }
  }
}

export const make = (settings: Settings, pool: ServerPool.Service, transport: HttpClient.HttpClient): Engine => {
  // No `http.client` span per request: the `easychat.attempt` span already names the server and gets the
  // status, the client span cost about 0.4 ms per request (its attributes, the headers copied twice), and its
  // `traceparent`/`b3` headers are not what a browser sends to a mirror.
  const http = HttpClient.withTracerDisabledWhen(transport, () => true)
  const cookies = makeCookieStore()
  const defaulted = new Set(settings.defaults.map(([name]) => name))
  const initLocks = new Map<string, Effect.Semaphore>()
  const { timeouts, maxEventSize } = settings
  const millis = (d: Duration.Duration) => Duration.toMillis(d)

  const secretsOf = (server: string): ReadonlyArray<string> => {
    const secrets = [...cookies.values(server)]
    if (settings.authorization !== undefined) secrets.push(...credentialForms(Redacted.value(settings.authorization)))
    return secrets
  }

  const withHeadersTimeout = <A, R>(server: string, effect: Effect.Effect<A, AttemptError, R>) =>
    Effect.timeoutFail(effect, {
      duration: timeouts.headers,
      onTimeout: () => timeoutOf(server, "headers")
    })

  /** Bounds `effect` by what is left of an attempt's first-token and total budget. */
  const within = <A>(server: string, limit: Limit | undefined, effect: Effect.Effect<A, AttemptError>) =>
    limit === undefined
      ? effect
      : Effect.suspend(() => {
          const { ms, phase } = limit()
          return ms <= 0
            ? Effect.fail(timeoutOf(server, phase))
            : Effect.timeoutFail(effect, { duration: ms, onTimeout: () => timeoutOf(server, phase) })
        })

  /** Sends a request other than the chat request (cookie initialisation), bounded by the headers timeout. */
  const execute = (server: string, request: HttpClientRequest.HttpClientRequest) =>
    withHeadersTimeout(
      server,
      Effect.mapError(http.execute(request), (e) => new TransportError({ server, detail: describe(e) }))
    )

  /**
   * Sends the chat request, bounded by the headers timeout or, when shorter, the attempt's budget. The
   * request runs in a fiber of its own that the attempt's watchdog interrupts (which aborts it) when that
   * passes: no race of two fibers and a join around the one request every call makes.
   */
  const send = (
    server: string,
    request: HttpClientRequest.HttpClientRequest,
    clock: Clock.Clock,
    watchdog: Watchdog,
    limit: Limit | undefined,
    meanwhile: (() => void) | undefined
  ): Effect.Effect<HttpClientResponse.HttpClientResponse, AttemptError> =>
    Effect.suspend(() => {
      const budget = limit?.()
      const { ms, phase } =
        budget !== undefined && budget.ms < phaseMillis.headers
          ? budget
          : { ms: phaseMillis.headers, phase: "headers" as const }
      if (ms <= 0) return Effect.fail(timeoutOf(server, phase))
      const deadline = clock.unsafeCurrentTimeMillis() + ms
      // Armed once, before the wait starts; the wait fills in what expiry does.
      let onExpire: (() => void) | undefined
      const arming = watchdog.arm(deadline, () => onExpire?.())
      const run = Effect.flatMap(Effect.runtime<never>(), (caller) =>
        Effect.async<HttpClientResponse.HttpClientResponse, AttemptError>((resume) => {
          if (clock.unsafeCurrentTimeMillis() >= deadline) return resume(Effect.fail(timeoutOf(server, phase)))
          let settled = false
          let cancel: (() => void) | undefined
          onExpire = () => {
            if (settled) return
            settled = true
            cancel?.()
            resume(Effect.fail(timeoutOf(server, phase)))
          }
          // The request's fiber runs with the tracer off (the same as `http`'s wrapper, without its
          // `Effect.locally`), and its failures are ours to report, not an unhandled error's log line.
          const runtime = Runtime.setFiberRef(
            Runtime.setFiberRef(caller, FiberRef.currentTracerEnabled, false),
            FiberRef.unhandledErrorLogLevel,
            Option.none()
          )
          cancel = Runtime.runCallback(runtime)(transport.execute(request), {
            onExit: (exit) => {
              if (settled) {
                if (Exit.isSuccess(exit)) Body.abandon(exit.value)
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
          // The request is on its way (undici writes it in this tick): what the caller will need next is
          // made while the server works.
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

  // Reads and drops a body we do not need, so the connection can be reused.
  const drain = (server: string, response: HttpClientResponse.HttpClientResponse) =>
    Effect.ignore(
      withHeadersTimeout(
        server,
        Effect.mapError(Stream.runDrain(response.stream), () => undefined as never)
      )
    )

  /**
   * Reads at most `limit` bytes of a body as text. Error pages and whole
   * replies are read this way so a hostile server cannot grow memory; reading
   * stops (and the connection is released) once the limit is passed.
   */
  const readText = (server: string, response: HttpClientResponse.HttpClientResponse, limit: number) =>
    Effect.suspend(() => {
      const decoder = new TextDecoder()
      return Stream.runFoldWhile(
        response.stream,
        { text: "", bytes: 0, truncated: false },
        (state) => !state.truncated,
        (state, bytes) => {
          const room = limit - state.bytes
          const piece = bytes.length > room ? bytes.subarray(0, room) : bytes
          return {
            text: state.text + decoder.decode(piece, { stream: true }),
            bytes: state.bytes + bytes.length,
            truncated: bytes.length > room
          }
        }
      ).pipe(
        Effect.map((state) => (state.truncated ? state : { ...state, text: state.text + decoder.decode() })),
        Effect.mapError((e) => new TransportError({ server, detail: describe(e) }))
      )
    })

  // An error page only feeds a short excerpt: 64 KiB is plenty.
  const ERROR_BODY_LIMIT = 64 * 1024
  const readErrorBody = (server: string, response: HttpClientResponse.HttpClientResponse) =>
    Effect.orElseSucceed(
      withHeadersTimeout(
        server,
        Effect.map(readText(server, response, ERROR_BODY_LIMIT), (r) => r.text)
      ),
      () => ""
    )

  const baseHeaders = (server: string, url: string, now: number): Record<string, string> => {
    const headers = settings.headersFor(server)
    const cookie = cookies.header(server, url, now)
    if (cookie !== undefined) headers.cookie = cookie
    return headers
  }

  /** The headers of a request to the API: the preset's, the cookies, and the key (the cookie page gets none). */
  const apiHeaders = (server: string, url: string, now: number): Record<string, string> => {
    const headers = baseHeaders(server, url, now)
    if (settings.authorization !== undefined) headers.authorization = Redacted.value(settings.authorization)
    return headers
  }

  /** `GET {server}/` once per origin, following same-origin redirects and keeping every hop's cookies. */
  const initCookies = (server: string): Effect.Effect<void, AttemptError> => {
    if (settings.cookieInit === "off") return Effect.void
    let lock = initLocks.get(server)
    if (lock === undefined) {
      lock = Effect.unsafeMakeSemaphore(1)
      initLocks.set(server, lock)
    }
    return lock.withPermits(1)(
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        if (!cookies.needsInit(server, now)) return
        cookies.invalidate(server)
        let url = `${server}/`
        for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
          const headers = baseHeaders(server, url, now)
          delete headers["content-type"]
          headers.accept = "text/html,application/xhtml+xml,*/*;q=0.8"
          const response = yield* execute(server, HttpClientRequest.get(url, { headers }))
          cookies.store(server, url, response.cookies, now)
          yield* drain(server, response)
          const location = response.headers.location
          if (response.status >= 300 && response.status < 400 && location !== undefined) {
            const target = new URL(location, url)
            // Cookies are per origin: a redirect elsewhere is not followed.
            if (target.origin !== server) break
            url = target.href
            continue
          }
          if ((response.status < 200 || response.status >= 300) && settings.cookieInit === "required") {
            return yield* new HttpStatusError({
              server,
              status: response.status,
              statusText: REASONS[response.status] ?? "",
              body: "cookie initialisation (GET /) failed"
            })
          }
          break
        }
        cookies.markInitialised(server)
      })
    )
  }

  const chatRequest = (server: string, request: ChatRequest, stream: boolean, now: number) => {
    const { messages, activeServer: _, stream: __, model, ...extra } = request
    const body: Record<string, unknown> = { messages, stream, model: model ?? settings.model }
    // A preset's default goes where the caller sent nothing; the caller's `null` leaves it out.
    for (const [name, value] of settings.defaults) if (!Object.hasOwn(extra, name)) body[name] = value
    for (const name in extra) if (extra[name] !== null || !defaulted.has(name)) body[name] = extra[name]
    const url = `${server}${settings.path}`
    const headers = apiHeaders(server, url, now)
    if (!stream && headers.accept === "text/event-stream") headers.accept = "application/json"
    return HttpClientRequest.post(url, { headers }).pipe(
      HttpClientRequest.bodyText(JSON.stringify(body), "application/json")
    )
  }

  const statusError = (server: string, response: HttpClientResponse.HttpClientResponse) =>
    Effect.gen(function* () {
      const text = yield* readErrorBody(server, response)
      let body = excerpt(text, secretsOf(server))
      try {
        body = excerpt(serverMessage(JSON.parse(text)) ?? body, secretsOf(server))
      } catch {
        // Not JSON: the excerpt of the text stays.
      }
      const retryAfter = retryAfterOf(response.headers["retry-after"], yield* Clock.currentTimeMillis)
      return new HttpStatusError({
        server,
        status: response.status,
        statusText: REASONS[response.status] ?? "",
        body,
        ...(retryAfter === undefined ? {} : { retryAfter })
      })
    })

  /**
   * Sends the chat request; a 401/403 re-initialises the server's cookies
   * once. With `limit`, every step counts against the attempt's budget.
   */
  const open = (
    server: string,
    request: ChatRequest,
    stream: boolean,
    clock: Clock.Clock,
    watchdog: Watchdog,
    span: Tracer.Span | undefined,
    limit?: Limit,
    meanwhile?: () => void
  ) =>
    Effect.gen(function* () {
      const needsInit = () =>
        settings.cookieInit !== "off" && cookies.needsInit(server, clock.unsafeCurrentTimeMillis())
      if (needsInit()) yield* within(server, limit, initCookies(server))
      const sendChat = Effect.suspend(() =>
        send(
          server,
          chatRequest(server, request, stream, clock.unsafeCurrentTimeMillis()),
          clock,
          watchdog,
          limit,
          meanwhile
        )
      )
      let response = yield* sendChat
      if ((response.status === 401 || response.status === 403) && settings.cookieInit !== "off") {
        yield* within(server, limit, drain(server, response))
        cookies.invalidate(server)
        yield* within(server, limit, initCookies(server))
        response = yield* sendChat
      }
      span?.attribute("http.response.status_code", response.status)
      if (response.status < 200 || response.status >= 300) {
        return yield* within(server, limit, Effect.flatMap(statusError(server, response), Effect.fail))
      }
      return response
    })

  const unexpected = (server: string, response: HttpClientResponse.HttpClientResponse, expected: string) =>
    Effect.flatMap(readErrorBody(server, response), (text) =>
      Effect.fail(
        new UnexpectedContentType({
          server,
          contentType: contentTypeOf(response),
          expected,
          body: excerpt(text, secretsOf(server))
        })
      )
    )

  /** A JSON answer to a stream request: an error body, or the wrong content type. */
  const jsonInsteadOfStream = (server: string, response: HttpClientResponse.HttpClientResponse) =>
    Effect.gen(function* () {
      const text = yield* readErrorBody(server, response)
      let body: unknown
      try {
        body = JSON.parse(text)
      } catch {
        body = undefined
      }
      const error = body === undefined ? undefined : upstreamFromBody(server, body, secretsOf(server))
      return yield* Effect.fail(
        error ??
          new UnexpectedContentType({
            server,
            contentType: contentTypeOf(response),
            expected: "text/event-stream",
            body: excerpt(text, secretsOf(server))
          })
      )
    })

  /**
   * Decodes one response body. Each network read is decoded as it arrives, in
   * one synchronous batch (SSE, JSON, content), into a queue that the caller
   * takes whole at each pull; the body pauses while the caller is more than
   * `HIGH_WATER` bytes behind. Deltas decoded before a fault reach the caller
   * before the fault does. The reader is made first and attached to the body
   * once it arrives: a stream makes it while the server works on the request.
   */
  const makeReader = (
    server: string,
    delivered: Delivered,
    limit: Limit,
    clock: Clock.Clock,
    watchdog: Watchdog,
    every: boolean
  ): { readonly attach: (response: HttpClientResponse.HttpClientResponse) => Effect.Effect<Reader> } => {
    const decoder = Sse.makeDecoder({ maxEventSize })
    // Read when the body arrives: a 401 or 403 before it re-initialises the server's cookies.
    let secrets: ReadonlyArray<string> = []
    type Pull = Reader["pull"]
    let queue: Array<ChatDelta> = []
    let behind = 0
    let paused = false
    let finished = false
    // What the caller gets once the queue is empty: the end, a failure or a defect.
    let stop: Pull | undefined
    let waiting: ((pull: Pull) => void) | undefined
    let deadline = 0
    let phase: Phase = "firstToken"
    let body: Body.Body | undefined

    const take = (): Chunk.Chunk<ChatDelta> => {
      const out = queue
      queue = []
      behind = 0
      if (paused) {
        paused = false
        body?.resume()
      }
      return Chunk.unsafeFromArray(out)
    }
    // The queue is taken when the woken fiber runs, not when it is woken:
    // reads that arrive in between join the same batch.
    const ready: Pull = Effect.suspend(() => (queue.length > 0 ? Effect.succeed(take()) : (stop ?? END)))
    const wake = () => {
      const resume = waiting
      if (resume === undefined || (queue.length === 0 && stop === undefined)) return
      waiting = undefined
      resume(ready)
    }
    /** Ends the body for good: what the caller gets once the queue is empty, and the connection closed. */
    const halt = (end: Pull): Pull => {
      stop = end
      body?.cancel()
      return end
    }
    const failWith = (error: unknown) =>
      halt(
        isEasyChatError(error) && error._tag !== "AllServersFailed"
          ? Effect.fail(
              Option.some(
                error._tag === "DecodeError" && error.server === undefined
                  ? new DecodeError({ ...error, server })
                  : error
              )
            )
          : Effect.die(error)
      )
    // Deltas that are no piece of the reply (usage alone; with `every`, those that carry nothing) wait
    // here until one that is: an attempt that fails before its first piece leaves nothing with the caller.
    let held: Array<ChatDelta> | undefined
    // The choices that have begun and not finished: a cut stream ended only when none is left.
    const open = new Set<number>()
    const deliver = (delta: Delta) => {
      const piece = isActivity(delta)
      if (!piece && delivered.deltas === 0) {
        ;(held ??= []).push(delta)
        return
      }
      if (held !== undefined) flush()
      if (delta.finishReason !== undefined) {
        finished = true
        open.delete(delta.choice)
      } else if (piece) open.add(delta.choice)
      delivered.deltas++
      delivered.characters += delta.content.length
      queue.push(delta)
    }
    // Returns true at `[DONE]`.
    const run = (events: ReadonlyArray<Sse.SseEvent>): boolean => {
      for (let i = 0; i < events.length; i++) {
        const step = stepOf(server, events[i]!, secrets, every)
        if (step === undefined) continue
        if (step === DONE) return true
        if (Array.isArray(step)) for (const delta of step) deliver(delta)
        else deliver(step)
      }
      return false
    }
    /** What is held reaches the caller: a piece arrived, or the reply ended whole. */
    const flush = () => {
      if (held !== undefined) {
        for (const h of held) {
          delivered.deltas++
          queue.push(h)
        }
      }
      held = undefined
    }
    const sink: Body.Sink = {
      chunk: (bytes) => {
        if (stop !== undefined) return
        try {
          // `push` throws at an oversize event and its chunk's earlier events would be lost with it:
          // a read larger than `maxEventSize` goes in slices of at most that size, so an event
          // completed before the overflow was always returned by an earlier slice.
          for (let at = 0; at < bytes.length; at += maxEventSize) {
            const slice = bytes.length <= maxEventSize ? bytes : bytes.subarray(at, at + maxEventSize)
            if (run(decoder.push(slice))) {
              // `[DONE]`: the rest of the body is read and dropped so that the connection is reused.
              flush()
              stop = END
              body?.release()
              break
            }
          }
        } catch (error) {
          failWith(error)
        }
        behind += bytes.length
        if (waiting !== undefined) wake()
        // Only with deltas queued: `take` is what resumes the body, and a caller
        // with nothing to take would wait on a body that never reads again.
        else if (behind >= HIGH_WATER && queue.length > 0 && !paused && stop === undefined) {
          paused = true
          body?.pause()
        }
      },
      end: () => {
        if (stop !== undefined) return
        try {
          const done = run(decoder.end())
          // Without `[DONE]`, the reply ended whole only when every choice that began has finished.
          const whole = done || (finished && open.size === 0)
          if (whole) flush()
          stop = whole
            ? END
            : Effect.fail(
                Option.some(
                  new StreamInterrupted({
                    server,
                    ...delivered,
                    detail: "the stream ended without [DONE] or a finish_reason"
                  })
                )
              )
        } catch (error) {
          failWith(error)
        }
        wake()
      },
      fail: (cause) => {
        if (stop !== undefined) return
        const detail = describeCause(cause, "the connection failed")
        stop = Effect.fail(
          Option.some(
            delivered.deltas > 0
              ? new StreamInterrupted({ server, ...delivered, detail })
              : new TransportError({ server, detail })
          )
        )
        wake()
      }
    }
    const close = () => {
      waiting = undefined
      if (stop === END) return
      stop ??= Effect.interrupt
      body?.cancel()
    }

    // The attempt's watchdog fails a wait that outlives its limit.
    const expire = (): void => {
      const resume = waiting
      if (resume === undefined) return
      waiting = undefined
      resume(halt(Effect.fail(Option.some(timeoutOf(server, phase)))))
    }
    const wait: Pull = Effect.async<Chunk.Chunk<ChatDelta>, Option.Option<AttemptError>>((resume) => {
      waiting = resume
      return Effect.sync(() => {
        waiting = undefined
      })
    })

    /** Starts a wait: its deadline, or `undefined` when its limit has already passed. */
    const startWait = (): number | undefined => {
      const next = limit()
      phase = next.phase
      if (next.ms <= 0) return undefined
      deadline = clock.unsafeCurrentTimeMillis() + next.ms
      return deadline
    }
    const pull = Effect.suspend((): Pull => {
      if (queue.length > 0) return Effect.succeed(take())
      if (stop !== undefined) return stop
      if (startWait() === undefined) return halt(Effect.fail(Option.some(timeoutOf(server, phase))))
      const arming = watchdog.arm(deadline, expire)
      return arming === undefined ? wait : Effect.zipRight(arming, wait)
    })
    const poll = () => (queue.length > 0 ? take() : undefined)
    const waitFor = (wake: () => void): boolean => {
      if (queue.length > 0 || stop !== undefined) return false
      if (startWait() === undefined || !watchdog.wakesBy(deadline)) return false
      watchdog.arm(deadline, expire)
      waiting = wake
      return true
    }
    const unwait = () => {
      waiting = undefined
    }
    const reader: Reader = { pull, close, poll, wait: waitFor, unwait }
    return {
      attach: (response) =>
        Effect.suspend(() => {
          secrets = secretsOf(server)
          return Effect.map(Body.open(response, sink), (opened) => {
            body = opened
            return reader
          })
        })
    }
  }

  /** A body as a `Stream` (a whole request answered with SSE is joined from it). */
  const decodeBody = (
    server: string,
    response: HttpClientResponse.HttpClientResponse,
    delivered: Delivered,
    limit: Limit,
    clock: Clock.Clock,
    watchdog: Watchdog
  ): Stream.Stream<ChatDelta, AttemptError> =>
    Stream.fromPull(
      Effect.tap(
        Effect.suspend(() => makeReader(server, delivered, limit, clock, watchdog, false).attach(response)),
        (reader) => Effect.addFinalizer(() => Effect.sync(reader.close))
      ).pipe(Effect.map((reader) => reader.pull))
    )

  const phaseMillis = {
    headers: millis(timeouts.headers),
    firstToken: millis(timeouts.firstToken),
    idle: millis(timeouts.idle),
    total: millis(timeouts.total)
  } as const
  const timeoutOf = (server: string, phase: Phase) => new Timeout({ server, phase, millis: phaseMillis[phase] })

  /**
   * The limit of an attempt's next wait: the first token (counted from the
   * attempt's start) until a delta arrived, then the idle gap; never past the
   * call's total.
   */
  const limitFor =
    (clock: Clock.Clock, attemptStart: number, callEnd: number, delivered: Delivered): Limit =>
    () => {
      const now = clock.unsafeCurrentTimeMillis()
      const own =
        delivered.deltas > 0
          ? { ms: phaseMillis.idle, phase: "idle" as const }
          : { ms: attemptStart + phaseMillis.firstToken - now, phase: "firstToken" as const }
      const total = callEnd - now
      return total < own.ms ? { ms: total, phase: "total" } : own
    }

  /** What the watchdog sleeps through when nothing is armed: the next wait's limit. */
  const nextWait = (limit: Limit) => () => Math.max(limit().ms, 0) || phaseMillis.idle

  /** Opens one attempt of a streaming call: the response, checked, and a reader on its body. */
  const openAttempt = (
    server: string,
    request: ChatRequest,
    delivered: Delivered,
    clock: Clock.Clock,
    start: number,
    limit: Limit,
    watchdog: Watchdog,
    span: Tracer.Span | undefined,
    every: boolean
  ): Effect.Effect<{ readonly reader: Reader; readonly latency: number }, AttemptError> =>
    Effect.gen(function* () {
      // The reader, made while the server works on the request.
      let made: ReturnType<typeof makeReader> | undefined
      const makeOnce = () => {
        made ??= makeReader(server, delivered, limit, clock, watchdog, every)
        return made
      }
      // Cookie initialisation and the headers count against the first token and the total too.
      const response = yield* open(server, request, true, clock, watchdog, span, limit, makeOnce)
      const latency = clock.unsafeCurrentTimeMillis() - start
      const contentType = contentTypeOf(response)
      if (isEventStream(contentType)) return { reader: yield* makeOnce().attach(response), latency }
      if (isJson(contentType)) return yield* jsonInsteadOfStream(server, response)
      return yield* unexpected(server, response, "text/event-stream")
    })

  const attemptComplete = (
    server: string,
    request: ChatRequest
  ): Effect.Effect<ChatCompletion, AttemptError, Scope.Scope> =>
    Effect.gen(function* () {
      const clock = yield* Effect.clock
      const start = clock.unsafeCurrentTimeMillis()
      // Only a server that streams anyway gets the first-token and idle limits.
      const joined: Delivered = { deltas: 0, characters: 0 }
      const limit = limitFor(clock, start, Number.POSITIVE_INFINITY, joined)
      const watchdog = makeWatchdog(clock, yield* Effect.scope, nextWait(limit))
      yield* Effect.addFinalizer(() => Effect.sync(watchdog.stop))
      const span = Option.getOrUndefined(yield* Effect.option(Effect.currentSpan))
      const response = yield* open(server, request, false, clock, watchdog, span)
      const latency = clock.unsafeCurrentTimeMillis() - start
      const contentType = contentTypeOf(response)
      if (isEventStream(contentType)) {
        // A server that streams anyway: its deltas add up to the reply, within `maxReplySize`.
        const reply = makeAccumulator()
        let size = 0
        const tooLarge = new DecodeError({
          reason: "EventTooLarge",
          detail: `the whole reply is larger than maxReplySize (${settings.maxReplySize} bytes)`,
          server
        })
        yield* Stream.runForEachChunk(decodeBody(server, response, joined, limit, clock, watchdog), (batch) => {
          for (const delta of batch) {
            size += Delta.text(delta).length
            if (size > settings.maxReplySize) return Effect.fail(tooLarge)
            reply.add(delta)
          }
          return Effect.void
        })
        const whole = reply.get()
        // As a whole body without choices is: nothing to answer with, and another server may have it.
        if (whole.choices.length === 0) return yield* new NoResponse({ server, detail: "the reply has no choices" })
        yield* pool.onSuccess(server, latency)
        return whole
      }
      if (!isJson(contentType)) return yield* unexpected(server, response, "application/json")
      const read = yield* Effect.timeoutFail(readText(server, response, settings.maxReplySize), {
        duration: timeouts.firstToken,
        onTimeout: () => timeoutOf(server, "firstToken")
      })
      if (read.truncated) {
        return yield* new DecodeError({
          reason: "EventTooLarge",
          detail: `the whole reply is larger than maxReplySize (${settings.maxReplySize} bytes)`,
          server
        })
      }
      const text = read.text
      if (nestsDeeperThan(text, MAX_REPLY_DEPTH)) {
        return yield* new DecodeError({
          reason: "InvalidJson",
          detail: `the reply nests JSON deeper than ${MAX_REPLY_DEPTH} levels`,
          server
        })
      }
      const body = yield* Effect.try({
        try: () => parseJson(server, text, secretsOf(server)),
        catch: (e) => e as DecodeError
      })
      const reply = completionOf(server, body, secretsOf(server))
      if (reply._tag === "Error") return yield* reply.error
      if (reply._tag === "NoChoices") {
        return yield* new NoResponse({ server, detail: "the reply has no choices" })
      }
      yield* pool.onSuccess(server, latency)
      return reply.reply
    })

  /** The validated request and the server it is pinned to, if any (no Effect: it runs before every call). */
  const prepare = (
    input: unknown
  ): Either.Either<{ readonly request: ChatRequest; readonly pinned: string | undefined }, InvalidRequest> =>
    Either.flatMap(validate(input), (request) =>
      request.activeServer === undefined
        ? Either.right({ request, pinned: settings.activeServer })
        : Either.map(pool.pin(request.activeServer), (pinned) => ({ request, pinned }))
    )

  /** After a failed attempt: record it, and say whether another server may be tried. */
  const afterFailure = (server: string, error: AttemptError, attempts: Array<Attempt>, number: number) =>
    Effect.gen(function* () {
      yield* pool.onFailure(server, error)
      attempts.push({ server, error })
      yield* Effect.logDebug("easychat: attempt failed, failing over").pipe(
        Effect.annotateLogs({ server, attempt: number, error: error._tag, reason: error.message })
      )
    })

  /**
   * A streaming call is one pull over its attempts: it reads the current
   * attempt's body and, when an attempt fails before its first delta, opens
   * the next one. One `Stream` step per batch and no operator per attempt:
   * the fixed cost of a call is most of its time to first delta.
   */
  const openCall = (input: unknown, scope: Scope.Scope, every = false): Effect.Effect<Call> =>
    Effect.gen(function* () {
      const clock = yield* Effect.clock
      const traced = (yield* Effect.tracer) !== silentTracer
      // Made and registered in one step, so that an interrupt cannot leave a span that never ends.
      const callSpan = traced
        ? yield* Effect.uninterruptible(
            Effect.tap(Effect.makeSpan("easychat.stream", { captureStackTrace: false }), (span) =>
              Scope.addFinalizerExit(scope, (exit) => Effect.sync(() => span.end(clock.unsafeCurrentTimeNanos(), exit)))
            )
          )
        : undefined
      let prepared: { readonly request: ChatRequest; readonly pinned: string | undefined } | undefined
      let callEnd = 0
      const tried = new Set<string>()
      const attempts: Array<Attempt> = []
      const delivered: Delivered = { deltas: 0, characters: 0 }
      let current = ""
      interface Current {
        readonly server: string
        readonly number: number
        readonly span: Tracer.Span | undefined
        readonly watchdog: Watchdog
        reader: Reader | undefined
        latency: number
      }
      let attempt: Current | undefined
      // Set by `start`: an opened attempt returns an empty batch instead of waiting for its first read.
      let openOnly = false
      const failed = (error: EasyChatError): Pull => Effect.fail(Option.some(error))

      /** Ends the current attempt: its reader, its span (with `easychat.outcome`) and its claim on the server. */
      const endAttempt = (outcome: string | undefined, exit: Exit.Exit<unknown, unknown>) =>
        Effect.suspend(() => {
          const ended = attempt
          if (ended === undefined) return Effect.void
          attempt = undefined
          ended.reader?.close()
          ended.watchdog.stop()
          if (outcome !== undefined) ended.span?.attribute("easychat.outcome", outcome)
          ended.span?.end(clock.unsafeCurrentTimeNanos(), exit)
          return pool.release(ended.server)
        })
      yield* Scope.addFinalizerExit(scope, (exit) => endAttempt(undefined, exit))

      const onAttemptError = (error: AttemptError): Pull =>
        Effect.suspend(() => {
          const { server, number } = attempt!
          const ended = endAttempt(error._tag, Exit.fail(error))
          // After the first delta there is no failover; a request fault or the call's total
          // limit fails over nowhere.
          if (delivered.deltas > 0 || isRequestFault(error) || (error._tag === "Timeout" && error.phase === "total")) {
            return Effect.zipRight(Effect.zipRight(pool.onFailure(server, error), ended), failed(error))
          }
          return Effect.zipRight(Effect.zipRight(afterFailure(server, error, attempts, number), ended), nextAttempt)
        })
      const onAttemptEnd: Pull = Effect.suspend(() => {
        const { server, latency } = attempt!
        return Effect.zipRight(
          Effect.zipRight(pool.onSuccess(server, latency), endAttempt("ok", Exit.void)),
          Effect.fail(Option.none())
        )
      })
      const read: Pull = Effect.catchAll(
        Effect.suspend(() => attempt!.reader!.pull),
        (error): Pull => (Option.isNone(error) ? onAttemptEnd : onAttemptError(error.value))
      )
      const nextAttempt: Pull = Effect.suspend(() => {
        if (current !== "" && clock.unsafeCurrentTimeMillis() >= callEnd) return failed(timeoutOf(current, "total"))
        if (attempts.length >= settings.maxAttempts) return failed(new AllServersFailed({ attempts }))
        const { request, pinned } = prepared!
        return Effect.flatMap(pool.choose(tried, pinned), (chosen): Pull => {
          if (Option.isNone(chosen)) return failed(new AllServersFailed({ attempts }))
          const server = chosen.value
          const number = attempts.length + 1
          tried.add(server)
          current = server
          const opening = (span: Tracer.Span | undefined): Pull => {
            const start = clock.unsafeCurrentTimeMillis()
            const limit = limitFor(clock, start, callEnd, delivered)
            const watchdog = makeWatchdog(clock, scope, nextWait(limit))
            attempt = { server, number, span, watchdog, reader: undefined, latency: 0 }
            const attempting = openAttempt(server, request, delivered, clock, start, limit, watchdog, span, every)
            // Under a tracer, what the attempt makes (the cookie request's spans, log lines) is the attempt's.
            return Effect.matchEffect(span === undefined ? attempting : Effect.withParentSpan(attempting, span), {
              onFailure: onAttemptError,
              onSuccess: (opened): Pull => {
                attempt!.reader = opened.reader
                attempt!.latency = opened.latency
                return openOnly ? Effect.succeed(Chunk.empty()) : read
              }
            })
          }
          if (callSpan === undefined) return opening(undefined)
          const span = Effect.makeSpan("easychat.attempt", {
            parent: callSpan,
            attributes: { "easychat.server": server, "easychat.attempt": number },
            captureStackTrace: false
          })
          return Effect.flatMap(span, opening)
        })
      })
      const first: Pull = Effect.suspend(() => {
        const ready = prepare(input)
        if (Either.isLeft(ready)) return failed(ready.left)
        prepared = ready.right
        callEnd = clock.unsafeCurrentTimeMillis() + phaseMillis.total
        return nextAttempt
      })
      const pull: Pull = Effect.suspend(() =>
        attempt?.reader !== undefined ? read : prepared === undefined ? first : nextAttempt
      )
      return {
        pull,
        start: Effect.suspend(() => {
          openOnly = true
          return pull
        }),
        poll: () => attempt?.reader?.poll(),
        wait: (wake) => attempt?.reader?.wait(wake) ?? false,
        unwait: () => attempt?.reader?.unwait()
      }
    })

  // One channel step per batch: `Stream.fromPull` adds an `unwrap`, an `Option`
  // and a tuple to each step, and costs more to start (time to first delta).
  const stream = (input: unknown, options?: StreamOptions): Stream.Stream<ChatDelta, EasyChatError> =>
    Stream.fromChannel(
      Channel.unwrapScoped(
        Effect.map(
          Effect.flatMap(Effect.scope, (scope) => openCall(input, scope, options?.everyChunk === true)),
          ({ pull }) => {
            const loop: Channel.Channel<
              Chunk.Chunk<ChatDelta>,
              unknown,
              Option.Option<EasyChatError>,
              unknown
            > = Channel.flatMap(Channel.fromEffect(pull), (batch) => Channel.zipRight(Channel.write(batch), loop))
            return Channel.catchAll(loop, (end) => (Option.isNone(end) ? Channel.void : Channel.fail(end.value)))
          }
        )
      )
    )

  /**
   * Tries one server after another, as the pool chooses them, until an attempt succeeds, a request
   * fault ends the call (it would fail anywhere), or no server is left: the one failover of a whole
   * call and of a forwarded request.
   */
  const failover = <A>(
    pinned: string | undefined,
    attempt: (server: string, number: number) => Effect.Effect<A, AttemptError>,
    onServer: (server: string) => void
  ): Effect.Effect<A, EasyChatError> =>
    Effect.gen(function* () {
      const tried = new Set<string>()
      const attempts: Array<Attempt> = []
      while (attempts.length < settings.maxAttempts) {
        const chosen = yield* pool.choose(tried, pinned)
        if (Option.isNone(chosen)) break
        const server = chosen.value
        const number = attempts.length + 1
        tried.add(server)
        onServer(server)
        const result = yield* attempt(server, number).pipe(
          Effect.tapError((error) =>
            isRequestFault(error) ? pool.onFailure(server, error) : afterFailure(server, error, attempts, number)
          ),
          Effect.ensuring(pool.release(server)),
          Effect.either
        )
        if (result._tag === "Right") return result.right
        if (isRequestFault(result.left)) return yield* result.left
      }
      return yield* new AllServersFailed({ attempts })
    })

  const complete = (input: unknown): Effect.Effect<ChatCompletion, EasyChatError> => {
    let current = ""
    return Effect.gen(function* () {
      const { request, pinned } = yield* prepare(input)
      return yield* failover(
        pinned,
        (server, number) =>
          attemptComplete(server, request).pipe(
            Effect.scoped,
            Effect.tapBoth({
              onSuccess: () => Effect.annotateCurrentSpan({ "easychat.outcome": "ok" }),
              onFailure: (error) => Effect.annotateCurrentSpan({ "easychat.outcome": error._tag })
            }),
            Effect.withSpan("easychat.attempt", {
              attributes: { "easychat.server": server, "easychat.attempt": number },
              captureStackTrace: false
            })
          ),
        (server) => {
          current = server
        }
      )
    }).pipe(
      Effect.timeoutFail({
        duration: timeouts.total,
        onTimeout: () => timeoutOf(current, "total")
      }),
      Effect.withSpan("easychat.complete", { captureStackTrace: false })
    )
  }

  /** The API's base path: the chat path without `/chat/completions` (`/v1`, `/api/openai/v1`). */
  const apiBase = settings.path.replace(/\/chat\/completions\/?$/, "")

  /** One attempt of a forwarded request: cookies, the request (a 401/403 re-initialises cookies once), checks. */
  const forwardAttempt = (server: string, request: ForwardRequest) =>
    Effect.gen(function* () {
      const url = `${server}${apiBase}${request.endpoint}`
      const build = (now: number) => {
        const headers = apiHeaders(server, url, now)
        headers.accept = request.stream === true ? "text/event-stream" : "application/json"
        return HttpClientRequest.post(url, { headers }).pipe(
          HttpClientRequest.bodyText(JSON.stringify(request.body), "application/json")
        )
      }
      if (settings.cookieInit !== "off") yield* initCookies(server)
      let response = yield* execute(server, build(yield* Clock.currentTimeMillis))
      if ((response.status === 401 || response.status === 403) && settings.cookieInit !== "off") {
        yield* drain(server, response)
        cookies.invalidate(server)
        yield* initCookies(server)
        response = yield* execute(server, build(yield* Clock.currentTimeMillis))
      }
      if (response.status < 200 || response.status >= 300)
        return yield* Effect.flatMap(statusError(server, response), Effect.fail)
      const contentType = contentTypeOf(response)
      if (request.stream === true ? !isEventStream(contentType) : !isJson(contentType)) {
        if (request.stream === true && isJson(contentType)) return yield* jsonInsteadOfStream(server, response)
        return yield* unexpected(server, response, request.stream === true ? "text/event-stream" : "application/json")
      }
      return response
    })

  /**
   * Another endpoint of the API (`/embeddings`, `/completions`, ...) through the pool: the same
   * choice, cookies, headers, breakers and failover as a chat call, until the answer's status and
   * content type are checked; then its body as it comes, each gap bounded by the idle timeout.
   */
  const forward = (request: ForwardRequest): Effect.Effect<Forwarded, EasyChatError> => {
    let current = ""
    return Effect.gen(function* () {
      // A path of the API, and the caller's query (Azure's `?api-version=`) as it came.
      if (!/^\/[A-Za-z0-9/_.-]*(\?[\x21-\x7e]*)?$/.test(request.endpoint) || request.endpoint.includes("..")) {
        return yield* new InvalidRequestError({
          field: "endpoint",
          rule: "must be a path such as /embeddings, with an optional query"
        })
      }
      return yield* failover(
        settings.activeServer,
        (server) =>
          Effect.gen(function* () {
            const start = yield* Clock.currentTimeMillis
            const response = yield* forwardAttempt(server, request)
            yield* pool.onSuccess(server, (yield* Clock.currentTimeMillis) - start)
            const body = response.stream.pipe(
              Stream.mapError(
                (e): EasyChatError => new StreamInterrupted({ server, deltas: 0, characters: 0, detail: describe(e) })
              ),
              Stream.timeoutFail(() => timeoutOf(server, "idle"), timeouts.idle)
            )
            return { server, status: response.status, contentType: contentTypeOf(response), body }
          }),
        (server) => {
          current = server
        }
      )
    }).pipe(
      Effect.timeoutFail({ duration: timeouts.total, onTimeout: () => timeoutOf(current, "total") }),
      Effect.withSpan("easychat.forward", { captureStackTrace: false })
    )
  }

  /** Each server's `GET {apiBase}/models` list; `undefined` for a server without one (or down). */
  const models = Effect.forEach(
    settings.servers,
    (server) =>
      Effect.gen(function* () {
        const url = `${server}${apiBase}/models`
        const headers = apiHeaders(server, url, yield* Clock.currentTimeMillis)
        delete headers["content-type"]
        headers.accept = "application/json"
        const response = yield* execute(server, HttpClientRequest.get(url, { headers }))
        if (response.status < 200 || response.status >= 300 || !isJson(contentTypeOf(response))) {
          yield* drain(server, response)
          return { server, models: undefined }
        }
        const read = yield* readText(server, response, settings.maxReplySize)
        const body: unknown = read.truncated
          ? undefined
          : yield* Effect.orElseSucceed(
              Effect.try(() => JSON.parse(read.text)),
              () => undefined
            )
        const data = typeof body === "object" && body !== null ? (body as { data?: unknown }).data : undefined
        return {
          server,
          models: Array.isArray(data)
            ? data.filter((m): m is Record<string, unknown> => typeof m === "object" && m !== null)
            : undefined
        }
      }).pipe(
        // A server that stalls or answers nonsense has no list; the others still answer.
        Effect.timeoutFail({ duration: timeouts.headers, onTimeout: () => timeoutOf(server, "headers") }),
        Effect.orElseSucceed(() => ({ server, models: undefined }))
      ),
    { concurrency: "unbounded" }
  )

  return { complete, stream, open: openCall, forward, models }
}
