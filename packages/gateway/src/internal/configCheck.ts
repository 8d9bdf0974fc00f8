// What Schema alone cannot check in a configuration: what spans routes (names, models served twice,
// fallbacks that name no route or make a cycle), the environment and files keys are read from, and core's
// own rules for each pool, checked by building it as the gateway will.

import * as fs from "node:fs/promises"
import * as nodePath from "node:path"
import { Presets, ServerPool } from "@easychat/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import type { Config, File, Issue, ParseOptions, Route } from "../Config.js"
import { keyProblem } from "./keys.js"

/** Core's field names (`servers.0.weight`) as paths of the file (`servers[0].weight`). */
const fieldPath = (field: string): string => field.replace(/\.(\d+)(?=\.|$)/g, "[$1]")

const literalModel = (models: ReadonlyArray<string>) => models.find((m) => !m.includes("*"))

/** The preset's values, then the route's. */
const poolOf = (route: File["routes"][number]): Presets.Options => {
  const preset = route.preset ?? "openai-compatible"
  const model = route.model ?? literalModel(route.models)
  const own: { -readonly [K in keyof Presets.Options]: Presets.Options[K] } = {}
  if (route.servers !== undefined) own.servers = route.servers
  if (route.path !== undefined) own.path = route.path
  if (model !== undefined) own.model = model
  if (route.headers !== undefined) own.headers = route.headers
  if (route.cookieInit !== undefined) own.cookieInit = route.cookieInit
  if (route.strategy !== undefined) own.strategy = route.strategy
  if (route.maxAttempts !== undefined) own.maxAttempts = route.maxAttempts
  if (route.breaker !== undefined) own.breaker = route.breaker
  if (route.timeouts !== undefined) own.timeouts = route.timeouts
  if (route.hedge !== undefined) own.hedge = route.hedge
  if (route.continueAfterCut !== undefined) own.continueAfterCut = route.continueAfterCut
  if (route.maxEventSize !== undefined) own.maxEventSize = route.maxEventSize
  if (route.maxReplySize !== undefined) own.maxReplySize = route.maxReplySize
  // The presets' values are plain data; the gateway sends only what clients send (no sampling defaults).
  const base: Presets.Options =
    preset === "easychat"
      ? { ...presets.easyChat, defaults: {} }
      : preset === "nextchat"
        ? { ...presets.nextChat, defaults: {} }
        : { ...presets.openAICompatible, defaults: {} }
  return { ...base, ...own }
}

/** The presets' values; a route names its servers, except `easychat`'s public mirrors. */
const presets = (() => {
  const { servers: _, ...openAICompatible } = Presets.openAICompatible("http://127.0.0.1")
  const { servers: __, ...nextChat } = Presets.nextChat("http://127.0.0.1")
  return { easyChat: Presets.easyChat, openAICompatible, nextChat }
})()

const keysOfText = (text: string): Array<string> =>
  text
    .split(/[,\r\n]/)
    .map((k) => k.trim())
    .filter((k) => k !== "" && !k.startsWith("#"))

/** The checks that span the file (names, models, fallbacks), the environment and core's own rules. */
export const check = (file: File, options: ParseOptions): Effect.Effect<Config, ReadonlyArray<Issue>> =>
  Effect.gen(function* () {
    const env = options.env ?? process.env
    const issues: Array<Issue> = []
    const names = new Map<string, number>()
    const literals = new Map<string, number>()
    const routes: Array<Route> = []
    for (const [i, route] of file.routes.entries()) {
      const at = `routes[${i}]`
      const name = route.name ?? route.models[0]!
      const twin = names.get(name)
      if (twin !== undefined) {
        issues.push({
          path: `${at}.${route.name === undefined ? "models[0]" : "name"}`,
          rule: `names the route ${JSON.stringify(name)} as routes[${twin}] does (a route without a name is named after its first model); give one of them a name`
        })
      } else names.set(name, i)
      for (const [j, model] of route.models.entries()) {
        if (model.includes("*")) continue
        const other = literals.get(model)
        if (other !== undefined && other !== i) {
          issues.push({ path: `${at}.models[${j}]`, rule: `${model} is already served by routes[${other}]` })
        } else literals.set(model, i)
      }
      const secret = (field: "apiKeyEnv" | "accessCodeEnv") => {
        const variable = route[field]
        if (variable === undefined) return undefined
        const value = env[variable]
        if (value === undefined || value === "") {
          issues.push({ path: `${at}.${field}`, rule: `names ${variable}, which is not set in the environment` })
          return undefined
        }
        return Redacted.make(value)
      }
      const apiKey = secret("apiKeyEnv")
      const accessCode = secret("accessCodeEnv")
      const pool = poolOf(route)
      if (route.servers === undefined && route.preset !== "easychat") {
        issues.push({ path: `${at}.servers`, rule: "is required (only the easychat preset has servers of its own)" })
      } else {
        // Core's own rules (URLs, headers, durations, hedging): the pool is built as the gateway will build it.
        const built = Effect.runSync(
          Effect.either(
            ServerPool.make({
              ...pool,
              ...(apiKey === undefined ? {} : { apiKey: Redacted.value(apiKey) }),
              ...(accessCode === undefined ? {} : { accessCode: Redacted.value(accessCode) })
            })
          )
        )
        if (Either.isLeft(built)) {
          const field = built.left.field
          const path = field === "apiKey" ? "apiKeyEnv" : field === "accessCode" ? "accessCodeEnv" : fieldPath(field)
          issues.push({ path: `${at}.${path}`, rule: built.left.rule })
        }
      }
      routes.push({ name, models: route.models, fallback: route.fallback, pool, apiKey, accessCode })
    }
    for (const [i, route] of routes.entries()) {
      if (route.fallback === undefined) continue
      if (!names.has(route.fallback)) {
        issues.push({
          path: `routes[${i}].fallback`,
          rule: `names no route: ${JSON.stringify(route.fallback)} (routes: ${[...names.keys()].join(", ")})`
        })
        continue
      }
      // Following fallbacks from this route must end: a cycle would send a failing request round forever.
      const chain = [route.name]
      let next: string | undefined = route.fallback
      while (next !== undefined) {
        if (chain.includes(next)) {
          if (next === route.name) {
            issues.push({ path: `routes[${i}].fallback`, rule: `makes a cycle: ${[...chain, next].join(" → ")}` })
          }
          break
        }
        chain.push(next)
        next = routes[names.get(next)!]?.fallback
      }
    }
    const keys: Array<Redacted.Redacted<string>> = []
    if (file.keysEnv !== undefined) {
      const value = env[file.keysEnv]
      if (value === undefined || value.trim() === "") {
        issues.push({ path: "keysEnv", rule: `names ${file.keysEnv}, which is not set in the environment` })
      } else {
        for (const [i, key] of keysOfText(value).entries()) {
          const problem = keyProblem(key)
          if (problem !== undefined) issues.push({ path: "keysEnv", rule: `${file.keysEnv}: key ${i + 1} ${problem}` })
          else keys.push(Redacted.make(key))
        }
      }
    }
    if (file.keysFile !== undefined) {
      const where = nodePath.resolve(options.dir ?? ".", file.keysFile)
      const text = yield* Effect.either(
        Effect.tryPromise({ try: () => fs.readFile(where, "utf8"), catch: (e) => (e as NodeJS.ErrnoException).code })
      )
      if (Either.isLeft(text)) issues.push({ path: "keysFile", rule: `cannot be read (${text.left ?? "error"})` })
      else {
        for (const [i, line] of text.right.split(/\r?\n/).entries()) {
          const key = line.trim()
          if (key === "" || key.startsWith("#")) continue
          const problem = keyProblem(key)
          if (problem !== undefined) issues.push({ path: "keysFile", rule: `line ${i + 1}: the key ${problem}` })
          else keys.push(Redacted.make(key))
        }
      }
    }
    if (issues.length > 0) return yield* Effect.fail(issues)
    const { routes: _, keysEnv: __, keysFile: ___, ...gateway } = file
    return { routes, gateway: { ...gateway, keys }, file: options.file }
  })
