// The pool a gateway builds for its one route: the client's requests sent as they are, its attempts counted
// in the gateway's metrics.

import { EasyChat, type InvalidRequest, Presets, ServerPool } from "@easychat/core"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { DEFAULT_ROUTE, instrument, type Metrics } from "./metrics.js"

/** The pool's options for a gateway: no sampling defaults unless the operator chose some. */
export const poolOptions = (chat: Presets.Options = {}): Presets.Options => ({
  ...chat,
  defaults: chat.defaults === undefined || chat.defaults === Presets.easyChatDefaults ? {} : chat.defaults
})

/** `EasyChat` over a `ServerPool` whose attempts are counted in `metrics`, as the default route's. */
export const layerPool = (
  options: Presets.Options,
  metrics: Metrics
): Layer.Layer<EasyChat.EasyChat | ServerPool.ServerPool, InvalidRequest, HttpClient.HttpClient> => {
  const pool = poolOptions(options)
  return Layer.effect(EasyChat.EasyChat, EasyChat.make(pool)).pipe(
    Layer.provideMerge(
      Layer.effect(
        ServerPool.ServerPool,
        Effect.map(ServerPool.make(pool), (made) => instrument(made, metrics, DEFAULT_ROUTE))
      )
    )
  )
}
