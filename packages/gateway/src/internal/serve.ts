// The gateway on Node's `http` server through `@effect/platform-node`: the app built from checked options,
// the send deadline, bodies in slices, and the drain when the layer's scope closes.

import * as http from "node:http"
import type { EasyChat, InvalidRequest } from "@easychat/core"
import { ServerPool } from "@easychat/core"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Tracer from "effect/Tracer"
import type { Options } from "../Gateway.js"
import * as app from "./app.js"
import { type Metrics, makeMetrics, metricsOf } from "./metrics.js"
import { type Checked, check, isLoopback } from "./options.js"
import type { Router } from "./routes.js"
import { makeDrain, sliceBodies, watchSends } from "./server.js"

/** What the app measures, into `metrics` (the pools the gateway builds count their attempts there too). */
export const observabilityOf = (settings: Checked, metrics: Metrics): app.Observability => ({
  metrics,
  access: settings.metrics,
  accessLog: settings.accessLog
})

/** Effect's default tracer, which records nothing. */
const silentTracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

const urlOf = (address: HttpServer.Address): string =>
  address._tag === "UnixAddress"
    ? `unix:${address.path}`
    : `http://${address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname}:${address.port}`

/**
 * The gateway's layer on Node, with the grace period of the drain read when
 * it closes (`Running.close` may choose it) rather than up front. `metrics`:
 * the ones its pools count in; `router`: the routes of a configuration.
 */
export const serve = (
  options: Options,
  graceOf: (settings: Checked) => number,
  metrics?: Metrics,
  router?: Router<never>
): Layer.Layer<never, HttpServerError.ServeError | InvalidRequest, EasyChat.EasyChat | ServerPool.ServerPool> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const settings = yield* check(options)
      const handler = app.make(
        settings,
        yield* Clock.currentTimeMillis,
        // A pool made by `layerChat` brings the metrics its attempts are counted in.
        observabilityOf(settings, metrics ?? metricsOf(yield* ServerPool.ServerPool) ?? makeMetrics()),
        router
      )
      const server = http.createServer()
      // `100 Continue` only once the request has passed its checks and its body is about to be read.
      server.on("checkContinue", app.checkContinue)
      const serving = Effect.gen(function* () {
        yield* watchSends(server, settings.sendTimeoutMs)
        // Added early, so it runs late: after the drain, whatever is still open is cut.
        yield* Effect.addFinalizer(() => Effect.sync(() => server.closeAllConnections()))
        const drain = yield* makeDrain(server)
        // The platform's span per request (a URL parsed, the headers copied, a span made) costs a cold
        // request about 0.4 ms before the handler runs; under the default tracer nobody sees it.
        const served = HttpServer.serveEffect(drain.app(sliceBodies(handler)))
        yield* (yield* Effect.tracer) === silentTracer
          ? HttpMiddleware.withTracerDisabledWhenEffect(served, () => true)
          : served
        // Added last, so it runs first, while the handler still answers the requests in progress.
        yield* Effect.addFinalizer(() => drain.run(graceOf(settings)))
        const url = urlOf((yield* HttpServer.HttpServer).address)
        if (settings.keys.length === 0 && !isLoopback(settings.host)) {
          yield* Effect.logWarning(
            `easychat gateway: ${url} accepts requests without a key from any host that can reach it; set keys`
          )
        }
        options.onListen?.(url)
      })
      return Layer.scopedDiscard(serving).pipe(
        Layer.provide(NodeHttpServer.layerServer(() => server, { port: settings.port, host: settings.host }))
      )
    })
  )
