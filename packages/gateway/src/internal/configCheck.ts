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
import { echo } from "./configSyntax.js"
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

/** An environment variable's name by convention: one an error may print (anything else may be a pasted key). */
const VARIABLE = /^[A-Z_][A-Z0-9_]{0,63}$/

/** Why the variable `name` gives no value: its name when it looks like one, else never the text itself. */
const unset = (name: string): string =>
  VARIABLE.test(name)
    ? `names ${name}, which is not set in the environment`
    : "does not look like a variable name (not shown: it may be a key); name the environment variable that holds the key, e.g. VLLM_KEY"

/** A value of the file in an error: quoted, or `fallback` when it must not be echoed (see `echo`). */
const quoted = (value: string, fallback: string) => {
  const shown = echo(value)
  return shown === undefined ? fallback : JSON.stringify(shown)
}

/** The rule credentials in a server's URL break (they would end up in logs, metrics and `/health`). */
const CREDENTIALS = "credentials in a server URL are not allowed: use apiKeyEnv or headers"

/** Whether a server's URL carries a user name or password (`http://user:pass@host`). */
const hasCredentials = (url: string): boolean => {
  try {
    const parsed = new URL(url.trim())
    return parsed.username !== "" || parsed.password !== ""
  } catch {
    // Not a URL WHATWG can read: refused by core's own rule, without its text. A bare `user:pass@host`
    // without a scheme is caught here too.
    return /^[^/?#]*@/.test(url.replace(/^[a-z][a-z0-9+.-]*:\/\//i, ""))
  }
}

/** Core's rule, without the text it quotes: an unknown attribute of a server may be a pasted key. */
const coreRule = (rule: string): string =>
  rule.replace(/^has an unknown attribute ("(?:[^"\\]|\\.)*")/, (_, name: string) => {
    const shown = echo(JSON.parse(name) as string)
    return shown !== undefined && /^[a-z_-]{1,20}$/.test(shown)
      ? `has an unknown attribute ${name}`
      : "has an unknown attribute (not shown)"
  })

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
          rule: `names the route ${quoted(name, "(not shown)")} as routes[${twin}] does (a route without a name is named after its first model); give one of them a name`
        })
      } else names.set(name, i)
      for (const [j, model] of route.models.entries()) {
        if (model.includes("*")) continue
        const other = literals.get(model)
        if (other !== undefined && other !== i) {
          issues.push({
            path: `${at}.models[${j}]`,
            rule: `${echo(model) ?? "the model (not shown)"} is already served by routes[${other}]`
          })
        } else literals.set(model, i)
      }
      const secret = (field: "apiKeyEnv" | "accessCodeEnv") => {
        const variable = route[field]
        if (variable === undefined) return undefined
        const value = env[variable]
        if (value === undefined || value === "") {
          issues.push({ path: `${at}.${field}`, rule: unset(variable) })
          return undefined
        }
        return Redacted.make(value)
      }
      const apiKey = secret("apiKeyEnv")
      const accessCode = secret("accessCodeEnv")
      const pool = poolOf(route)
      let credentials = false
      for (const [j, server] of (route.servers ?? []).entries()) {
        const url = typeof server === "string" ? server.split(";")[0]! : server.url
        if (!hasCredentials(url)) continue
        credentials = true
        issues.push({ path: `${at}.servers[${j}]${typeof server === "string" ? "" : ".url"}`, rule: CREDENTIALS })
      }
      if (credentials) {
        // Refused above: core's rules would only repeat the server.
      } else if (route.servers === undefined && route.preset !== "easychat") {
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
          issues.push({ path: `${at}.${path}`, rule: coreRule(built.left.rule) })
        }
      }
      routes.push({ name, models: route.models, fallback: route.fallback, pool, apiKey, accessCode })
    }
    for (const [i, route] of routes.entries()) {
      if (route.fallback === undefined) continue
      if (!names.has(route.fallback)) {
        issues.push({
          path: `routes[${i}].fallback`,
          rule: `names no route: ${quoted(route.fallback, "(not shown)")} (routes: ${[...names.keys()].map((n) => echo(n) ?? "(not shown)").join(", ")})`
        })
        continue
      }
      // Following fallbacks from this route must end: a cycle would send a failing request round forever.
      const chain = [route.name]
      let next: string | undefined = route.fallback
      while (next !== undefined) {
        if (chain.includes(next)) {
          if (next === route.name) {
            const cycle = [...chain, next].map((n) => echo(n) ?? "(not shown)")
            issues.push({ path: `routes[${i}].fallback`, rule: `makes a cycle: ${cycle.join(" → ")}` })
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
        issues.push({ path: "keysEnv", rule: unset(file.keysEnv) })
      } else {
        for (const [i, key] of keysOfText(value).entries()) {
          const problem = keyProblem(key)
          if (problem !== undefined) {
            const variable = VARIABLE.test(file.keysEnv) ? file.keysEnv : "the variable"
            issues.push({ path: "keysEnv", rule: `${variable}: key ${i + 1} ${problem}` })
          } else keys.push(Redacted.make(key))
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
