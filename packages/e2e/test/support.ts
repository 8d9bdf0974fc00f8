import { EasyChat, type Presets } from "@easychat/core"
import type { MirrorServer } from "@easychat/testkit"
import * as FetchTransport from "@easychat/transport-fetch"
import * as NodeTransport from "@easychat/transport-node"
import type * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"

export const messages = [{ role: "user" as const, content: "Hello" }]

/** The reply the mirror gives to `messages` (testkit's deterministic echo). */
export const echo = "Echo: Hello\nThis reply comes from the easychat test mirror."

export const transports: ReadonlyArray<readonly [string, () => Layer.Layer<HttpClient.HttpClient>]> = [
  ["node", () => NodeTransport.layer()],
  ["fetch", () => FetchTransport.layer()]
]

/** Runs `f` against an EasyChat built from `options` on a transport (Node by default). */
export const run = <A, E>(
  options: Presets.Options,
  f: (chat: EasyChat.Service) => Effect.Effect<A, E>,
  transport: Layer.Layer<HttpClient.HttpClient> = NodeTransport.layer()
): Promise<A> =>
  Effect.runPromise(
    Effect.flatMap(EasyChat.EasyChat, f).pipe(
      Effect.provide(EasyChat.layer(options)),
      Effect.provide(transport),
      Effect.orDie
    ) as Effect.Effect<A>
  )

export const failure = <A, E>(
  options: Presets.Options,
  f: (chat: EasyChat.Service) => Effect.Effect<A, E>,
  transport?: Layer.Layer<HttpClient.HttpClient>
): Promise<any> => run(options, (chat) => Effect.flip(f(chat)), transport)

export const posts = (server: MirrorServer.MirrorServer) => server.requests.filter((r) => r.method === "POST").length
export const gets = (server: MirrorServer.MirrorServer) => server.requests.filter((r) => r.method === "GET").length
