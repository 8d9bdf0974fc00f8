// `Gateway.start`'s Promise face: a layer built in a scope of its own, and the `Running` that closes it.

import { InvalidRequest } from "@easychat/core"
import * as Cause from "effect/Cause"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import type { CloseOptions, RoutesService, Running } from "../Gateway.js"
import { DRAIN_TIMEOUT_RULE, millisOf } from "./options.js"

/**
 * Builds `live`; its failure rejects with the tagged error itself, as the
 * rest of easychat's Promise API does. `setGrace` hands `close`'s
 * `drainTimeout` to the layer's drain; `routesOf` finds the routes of a
 * gateway started from a configuration.
 */
export const started = async <ROut>(
  live: Layer.Layer<ROut, unknown>,
  url: () => string,
  setGrace: (drainTimeout: number | undefined) => void,
  routesOf: (context: Context.Context<ROut>) => Option.Option<RoutesService>
): Promise<Running> => {
  const scope = Effect.runSync(Scope.make())
  const exit = await Effect.runPromiseExit(Layer.buildWithScope(live, scope))
  if (Exit.isFailure(exit)) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    throw Cause.squash(exit.cause)
  }
  let closing: Promise<void> | undefined
  const close = (closeOptions: CloseOptions = {}): Promise<void> => {
    if (closing !== undefined) return closing
    if (closeOptions.drainTimeout !== undefined) {
      const grace = millisOf(closeOptions.drainTimeout)
      setGrace(grace)
      if (grace === undefined) {
        return Promise.reject(new InvalidRequest({ field: "drainTimeout", rule: DRAIN_TIMEOUT_RULE }))
      }
    }
    closing = Effect.runPromise(Scope.close(scope, Exit.void))
    return closing
  }
  const routes = routesOf(exit.value)
  if (routes._tag === "None") return { url: url(), close }
  const reload = async (config?: Parameters<RoutesService["reload"]>[0]) => {
    const done = await Effect.runPromiseExit(routes.value.reload(config))
    if (Exit.isSuccess(done)) return done.value
    throw Cause.squash(done.cause)
  }
  return { url: url(), close, reload }
}
