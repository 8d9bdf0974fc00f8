// Routes from a configuration over the gateway's lifetime: built once at start, swapped whole on reload
// (`Routes.reload`, SIGHUP in the CLI, or a change of the watched file), the routes in use kept when the new
// configuration is refused.

import * as fs from "node:fs"
import * as nodePath from "node:path"
import type { EasyChat, ServerPool } from "@easychat/core"
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Config from "../Config.js"
import type { ConfigOptions, Options, RoutesService } from "../Gateway.js"
import type { Metrics } from "./metrics.js"
import * as routes from "./routes.js"

/** The gateway's options of a configuration, with `own` (the caller's, those it sets) over them. */
const optionsOf = (config: Config.Config, own: Options): Options => {
  const { keys, ...file } = config.gateway
  const defined = Object.fromEntries(Object.entries(own).filter(([, v]) => v !== undefined)) as Options
  return { ...file, keys: keys.map(Redacted.value), ...defined }
}

/** Whether the gateway's own settings differ between two configurations (they apply at the next start). */
const settingsChanged = (a: Config.Config, b: Config.Config) => {
  const plain = (c: Config.Config) => JSON.stringify({ ...c.gateway, keys: c.gateway.keys.map(Redacted.value) })
  return plain(a) !== plain(b)
}

/** Calls `reload` when the file changes, once changes have stopped for 200 ms. */
const watchFile = (path: string, reload: Effect.Effect<unknown, unknown>) =>
  Effect.gen(function* () {
    const run = Runtime.runFork(yield* Effect.runtime<never>())
    const name = nodePath.basename(path)
    let timer: ReturnType<typeof setTimeout> | undefined
    // The folder, not the file: editors replace a file (a rename), which ends a watch on the file itself.
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const watcher = fs.watch(nodePath.dirname(path), (_, changed) => {
          if (changed !== null && changed !== name) return
          clearTimeout(timer)
          timer = setTimeout(() => run(Effect.ignore(reload)), 200)
        })
        watcher.on("error", () => {})
        return watcher
      }),
      (watcher) =>
        Effect.sync(() => {
          clearTimeout(timer)
          watcher.close()
        })
    )
  })

/** A gateway's routes, ready to serve. */
export interface Reloadable {
  /** The gateway's options: the file's settings under the caller's. */
  readonly options: Options
  /** Where the handlers read the routes in use. */
  readonly router: routes.Router<never>
  /** The first route's pool: the app's own services (read only by `/metrics` without routes). */
  readonly context: Context.Context<EasyChat.EasyChat | ServerPool.ServerPool>
  readonly service: RoutesService
}

/**
 * Reads the configuration, builds its routes (their attempts counted in
 * `metrics`), and the `reload` that swaps them; with `watch`, reloads when
 * the file changes, for as long as the scope lasts.
 */
export const make = (
  options: ConfigOptions,
  metrics: Metrics
): Effect.Effect<Reloadable, Config.InvalidConfig, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function* () {
    const { config: source, watch, ...own } = options
    const initial = typeof source === "string" ? yield* Config.load(source) : source
    const file = typeof source === "string" ? source : source.file
    // Reloads build their pools on the transport the gateway was given.
    const transport = yield* Effect.context<HttpClient.HttpClient>()
    const first = yield* routes.build(initial, undefined, metrics)
    const table = yield* Ref.make(first)
    const current = yield* Ref.make(initial)
    const lock = yield* Effect.makeSemaphore(1)
    const reload = (next?: Config.Config) =>
      Effect.gen(function* () {
        const config =
          next ??
          (file === undefined
            ? yield* new Config.InvalidConfig({
                issues: [{ path: "", rule: "was not read from a file: give reload a configuration" }]
              })
            : yield* Config.load(file))
        const built = yield* Effect.provide(routes.build(config, yield* Ref.get(table), metrics), transport)
        yield* Ref.set(table, built)
        if (settingsChanged(yield* Ref.get(current), config)) {
          yield* Effect.logWarning(
            "easychat gateway: host, port, keys, CORS and limits changed in the configuration; they apply at the next start"
          )
        }
        yield* Ref.set(current, config)
        yield* Effect.logInfo(
          `easychat gateway: routes reloaded${file === undefined ? "" : ` from ${file}`}: ${built.routes.map((r) => r.name).join(", ")}`
        )
        return config
      }).pipe(
        lock.withPermits(1),
        Effect.tapError((error) => Effect.logWarning(`easychat gateway: the routes in use stay; ${error.message}`))
      )
    if (watch === true && file !== undefined) yield* watchFile(file, reload())
    return {
      options: optionsOf(initial, own),
      router: routes.configured(table),
      context: first.routes[0]!.context!,
      service: { reload, current: Ref.get(current) }
    }
  })
