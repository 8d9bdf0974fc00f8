/**
 * msw handlers that behave like `MirrorServer`, for fetch-level tests
 * (`setupServer` from `msw/node`, or `setupWorker` in a browser). The routes,
 * replies and faults come from the same code as the node:http server.
 *
 * What msw cannot do, compared with a real server: there is no socket, so no
 * connection tracking (each request's `closed` promise says how its answer
 * ended instead); `refuse` and `reset-before-headers` are network errors
 * (`Response.error()`); `close-mid-stream` errors the body stream;
 * `stall-before-headers` answers only when the request is aborted; raw header
 * case and repeats are not visible; `gzip` applies only when the request itself
 * carries `Accept-Encoding: gzip` (Node's fetch adds its own below the layer msw
 * sees). An aborted request errors the body being read, as a real connection would.
 *
 * Cancelling a mocked body (`response.body.cancel()`, `reader.cancel()`) never
 * reaches the handler and the returned promise never settles: msw 2.15 listens
 * to the interceptor's "response" event, so @mswjs/interceptors tees every mocked
 * response and the unread copy keeps the stream alive (see `complete()` in
 * `msw/src/core/handlers/RequestHandler.ts`). Abort the request instead.
 *
 * Cookies: the answers are plain `Response` objects, not msw's `HttpResponse`.
 * msw 2 records the `Set-Cookie` of an `HttpResponse` in its own global cookie
 * store (`decorateResponse` in `msw/src/core/utils/HttpResponse/decorators.ts`,
 * `storeResponseCookies` in `handleRequest.ts`) and later appends those cookies
 * to the `Cookie` header of every matching request (`getAllRequestCookies` in
 * `getRequestCookies.ts`), so a handler could not tell whether the client kept
 * its cookies. A plain `Response` skips that store; under Node the fetch
 * interceptor passes its headers through unchanged, so the client sees
 * `response.headers.get("set-cookie")` (all values joined by `", "`) and
 * `response.headers.getSetCookie()` (one string per cookie), exactly as from a
 * real server. In a browser `Set-Cookie` is never readable by scripts.
 *
 * @since 0.1.0
 */
import { type HttpHandler, http } from "msw"
import type { FaultPlan } from "./Fault.js"
import { type Answer, Mirror } from "./internal/mirror.js"
import { batchSteps, isWait, type StreamStep } from "./internal/reply.js"
import type { MirrorOptions, RecordedRequest, ResponseClosed } from "./Mirror.js"

export type { Fault, FaultPlan } from "./Fault.js"
export type { Fixture } from "./Fixtures.js"
export type { MirrorOptions, RecordedRequest, ResponseClosed } from "./Mirror.js"

/**
 * A recorded request and how its answer ended.
 *
 * @since 0.1.0
 * @category models
 */
export interface HandledRequest extends RecordedRequest {
  /**
   * Resolves when the answer was delivered (`finished: true`; a whole body
   * counts as delivered once handed to msw), or cut: body cancelled by the
   * client, request aborted, or a connection fault (`finished: false`).
   */
  readonly closed: Promise<ResponseClosed>
}

/**
 * @since 0.1.0
 * @category models
 */
export interface MirrorHandlers {
  /** The origin the handlers answer for, e.g. `https://mirror.test`. */
  readonly origin: string
  /** Pass to `setupServer(...handlers)` or `server.use(...handlers)`. */
  readonly handlers: ReadonlyArray<HttpHandler>
  /** Every `Cookie` (name → value) a client holds after following `GET /` to the end. */
  readonly cookies: Readonly<Record<string, string>>
  /** Every request answered since creation or the last `reset()`. */
  readonly requests: ReadonlyArray<HandledRequest>
  /** Replaces the chat-completion fault plan. */
  setFault(plan: FaultPlan | undefined): void
  /** Replaces the fault plan of the cookie pages. */
  setCookieFault(plan: FaultPlan | undefined): void
  /** Forgets requests and restores the faults of the options. */
  reset(): void
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const nullBodyStatus = new Set([101, 103, 204, 205, 304])

/** Settles a request's `closed` promise once, with the time it happened. */
type Settle = (finished: boolean) => void

// msw does not tie a mocked body to the request: an aborted fetch would leave
// a pending read hanging forever. Erroring the body on abort is what a real
// connection does when it is torn down.
const bodyStream = (
  steps: Iterable<StreamStep>,
  options: MirrorOptions,
  signal: AbortSignal,
  settle: Settle
): ReadableStream<Uint8Array> => {
  const writes = batchSteps(steps, options.batch ?? 1)[Symbol.iterator]()
  const interval = options.delayMs ?? 0
  let first = true
  let done = false
  return new ReadableStream<Uint8Array>({
    start(controller) {
      signal.addEventListener(
        "abort",
        () => {
          if (done) return
          done = true
          controller.error(signal.reason)
          settle(false)
        },
        { once: true }
      )
    },
    async pull(controller) {
      if (done) return
      let next = writes.next()
      while (!next.done && isWait(next.value)) {
        await sleep(next.value.waitMs)
        if (done) return
        next = writes.next()
      }
      if (next.done) {
        done = true
        controller.close()
        return settle(true)
      }
      const step = next.value
      // A stall never resolves: the reader waits until it cancels or aborts.
      if (step === "stall") return new Promise<void>(() => {})
      if (step === "destroy") {
        done = true
        // Erroring a stream drops what a reader has not taken yet (Node 24 reads ahead through its own
        // queues): the cut comes once what was written has had a turn to be read, as a socket's would.
        await sleep(10)
        controller.error(new TypeError("terminated: the mirror closed the connection"))
        return settle(false)
      }
      if (isWait(step)) return
      if (!first && interval > 0) await sleep(interval)
      first = false
      if (!done) controller.enqueue(step)
    },
    cancel() {
      done = true
      settle(false)
    }
  })
}

const toResponse = async (
  answer: Answer,
  request: Request,
  options: MirrorOptions,
  settle: Settle
): Promise<Response> => {
  switch (answer._tag) {
    case "Destroy":
      settle(false)
      return Response.error()
    case "Stall":
      // Nothing to answer until the client gives up; then the answer is moot.
      await new Promise<void>((resolve) => {
        if (request.signal.aborted) resolve()
        request.signal.addEventListener("abort", () => resolve(), { once: true })
      })
      settle(false)
      return Response.error()
    case "Whole":
    case "Stream": {
      if (answer.delayMs > 0) await sleep(answer.delayMs)
      const headers = new Headers()
      for (const [name, value] of answer.headers) headers.append(name, value)
      let body: BodyInit | null =
        answer._tag === "Stream"
          ? bodyStream(answer.steps, options, request.signal, settle)
          : nullBodyStatus.has(answer.status)
            ? null
            : (answer.body as Uint8Array<ArrayBuffer>)
      if (answer.gzip && body !== null) {
        // msw's fetch interceptor decompresses like a real fetch does.
        const plain = body instanceof ReadableStream ? body : new Response(body).body!
        body = plain.pipeThrough(new CompressionStream("gzip") as ReadableWritablePair<Uint8Array, Uint8Array>)
        headers.set("content-encoding", "gzip")
      }
      // A whole body counts as delivered once handed to msw.
      if (answer._tag === "Whole") settle(true)
      return new Response(body, { status: answer.status, headers })
    }
  }
}

/**
 * Handlers for a mirror at `origin` (every path of that origin).
 *
 * @example
 * const mirror = mirrorHandlers("https://mirror.test", { reply: "Hi!" })
 * const server = setupServer(...mirror.handlers)
 * server.listen()
 *
 * @since 0.1.0
 * @category constructors
 */
export const mirrorHandlers = (origin: string, options: MirrorOptions = {}): MirrorHandlers => {
  const base = new URL(origin).origin
  const mirror = new Mirror<Pick<HandledRequest, "closed">>(options)
  const handler = http.all(`${base}/*`, async ({ request }) => {
    const time = Date.now()
    const rawHeaders: Array<readonly [string, string]> = [...request.headers.entries()]
    let settle!: Settle
    const closed = new Promise<ResponseClosed>((resolve) => {
      settle = (finished) => resolve({ at: Date.now(), finished })
    })
    const recorded = mirror.record(
      { method: request.method, url: new URL(request.url), rawHeaders, rawBody: await request.text(), time },
      { closed }
    )
    return toResponse(mirror.answer(recorded), request, options, settle)
  })
  return {
    origin: base,
    handlers: [handler],
    cookies: mirror.issuedCookies,
    get requests() {
      return mirror.requests
    },
    setFault: (plan) => mirror.setFault(plan),
    setCookieFault: (plan) => mirror.setCookieFault(plan),
    reset: () => mirror.reset()
  }
}
