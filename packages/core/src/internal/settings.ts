import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import { InvalidRequest } from "../Errors.js"
import type { CookieInit, DurationOption, Options, ServerOption } from "../Presets.js"
import { easyChat } from "../Presets.js"
import * as Strategy from "../Strategy.js"

/** Options resolved against the preset defaults and checked once. */
export interface Settings {
  readonly servers: ReadonlyArray<string>
  /** Each server's weight and priority tier, by origin. */
  readonly routing: ReadonlyMap<string, Routing>
  readonly path: string
  readonly model: string
  readonly headersFor: (server: string) => Record<string, string>
  /** The `Authorization` value, kept redacted so it never prints. */
  readonly authorization: Redacted.Redacted<string> | undefined
  readonly cookieInit: CookieInit
  readonly strategy: Strategy.Strategy
  readonly activeServer: string | undefined
  readonly maxAttempts: number
  readonly breaker: {
    readonly failures: number
    readonly cooldown: Duration.Duration
    readonly maxRetryAfter: Duration.Duration
  }
  readonly timeouts: {
    readonly headers: Duration.Duration
    readonly firstToken: Duration.Duration
    readonly idle: Duration.Duration
    readonly total: Duration.Duration
  }
  readonly maxEventSize: number
  readonly maxReplySize: number
  /** Body fields sent when the caller sends none (a caller's `null` leaves one out). */
  readonly defaults: ReadonlyArray<readonly [string, unknown]>
  /** Hedged first requests, when opted in: `after` in milliseconds or `"auto"`, and the most attempts at once. */
  readonly hedge: HedgeSettings | undefined
  /** Whether a stream cut after its first delta is continued on another server. */
  readonly continueAfterCut: boolean
}

/** The `hedge` option, checked. */
export interface HedgeSettings {
  readonly after: number | "auto"
  readonly max: number
}

/** How a server is routed: its share within its tier, and its tier (lower is preferred). */
export interface Routing {
  readonly weight: number
  readonly priority: number
}

const fail = (field: string, rule: string) => Either.left(new InvalidRequest({ field, rule }))

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// A header value with CR, LF or NUL would let a caller (or its input) inject headers.
const UNSAFE_VALUE = /[\r\n\0]/

/** Rejects header names that are not HTTP tokens and values with CR, LF or NUL. */
export const checkHeaders = (
  headers: Readonly<Record<string, string>>,
  field = "headers"
): Either.Either<void, InvalidRequest> => {
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) return fail(`${field}.${JSON.stringify(name)}`, "is not a valid header name")
    if (typeof value !== "string" || UNSAFE_VALUE.test(value)) {
      return fail(`${field}.${name}`, "must not contain CR, LF or NUL")
    }
  }
  return Either.void
}

/** `https://x.y/` and `https://x.y` are one server: keep the origin. */
export const normalizeServer = (server: string): string | undefined => {
  try {
    const url = new URL(server)
    if (url.protocol !== "http:" && url.protocol !== "https:") return undefined
    return url.origin
  } catch {
    return undefined
  }
}

/** Finds a pinned server by index or URL. */
export const pinnedServer = (
  servers: ReadonlyArray<string>,
  active: number | string,
  field: string
): Either.Either<string, InvalidRequest> => {
  if (typeof active === "number") {
    const server = Number.isInteger(active) ? servers[active] : undefined
    return server === undefined
      ? fail(field, `must be an index from 0 to ${servers.length - 1} or a URL of the pool, got ${active}`)
      : Either.right(server)
  }
  const origin = normalizeServer(active)
  return origin !== undefined && servers.includes(origin)
    ? Either.right(origin)
    : fail(field, `must be an index from 0 to ${servers.length - 1} or a URL of the pool`)
}

const duration = (
  value: DurationOption | undefined,
  fallback: Duration.DurationInput,
  field: string
): Either.Either<Duration.Duration, InvalidRequest> => {
  const decoded = Duration.decodeUnknown(value ?? fallback)
  if (decoded._tag === "None" || Duration.lessThanOrEqualTo(decoded.value, Duration.zero)) {
    return fail(field, "must be a positive number of milliseconds or an Effect duration")
  }
  return Either.right(decoded.value)
}

const bearer = (options: Options): Redacted.Redacted<string> | undefined => {
  if (options.apiKey !== undefined && options.apiKey !== "") return Redacted.make(`Bearer ${options.apiKey}`)
  if (options.accessCode !== undefined && options.accessCode !== "") {
    const code = options.accessCode.startsWith("nk-") ? options.accessCode : `nk-${options.accessCode}`
    return Redacted.make(`Bearer ${code}`)
  }
  return undefined
}

const isRecord = (u: unknown): u is Readonly<Record<string, unknown>> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * A `servers` entry: a URL, `url;weight=3;priority=1`, or `{ url, weight?, priority? }`.
 * Rejected entries name their field: `servers.2`, `servers.2.url`, `servers.2.weight`.
 */
const serverOf = (raw: ServerOption, i: number): Either.Either<{ readonly server: string } & Routing, InvalidRequest> =>
  Either.gen(function* () {
    const field = `servers.${i}`
    let url: unknown
    let weight: unknown
    let priority: unknown
    let urlField = field
    if (typeof raw === "string") {
      const [head, ...attributes] = raw.split(";")
      url = head!.trim()
      for (const attribute of attributes) {
        const eq = attribute.indexOf("=")
        const name = (eq < 0 ? attribute : attribute.slice(0, eq)).trim().toLowerCase()
        const text = eq < 0 ? "" : attribute.slice(eq + 1).trim()
        // `Number("")` is 0: an empty value is no number.
        const value = text === "" ? Number.NaN : Number(text)
        if (name === "weight") weight = value
        else if (name === "priority") priority = value
        else
          return yield* fail(field, `has an unknown attribute ${JSON.stringify(name)} (weight and priority are known)`)
      }
    } else if (isRecord(raw)) {
      ;({ url, weight, priority } = raw)
      urlField = `${field}.url`
    } else {
      return yield* fail(field, "must be a URL or { url, weight?, priority? }")
    }
    const server = typeof url === "string" ? normalizeServer(url) : undefined
    if (server === undefined) return yield* fail(urlField, "must be an http or https URL")
    if (weight !== undefined && !(typeof weight === "number" && Number.isFinite(weight) && weight > 0)) {
      return yield* fail(`${field}.weight`, "must be a positive finite number")
    }
    if (priority !== undefined && !(Number.isInteger(priority) && (priority as number) >= 0)) {
      return yield* fail(`${field}.priority`, "must be an integer ≥ 0")
    }
    return { server, weight: (weight as number | undefined) ?? 1, priority: (priority as number | undefined) ?? 0 }
  })

const strategyOf = (option: Options["strategy"]): Either.Either<Strategy.Strategy, InvalidRequest> => {
  if (option === undefined) return Either.right(Strategy.random)
  if (Strategy.isName(option)) return Either.right(Strategy.fromName(option))
  if (Strategy.isStrategy(option)) return Either.right(option)
  const names = Strategy.names
  return fail("strategy", `must be ${names.slice(0, -1).join(", ")} or ${names.at(-1)}, or a Strategy`)
}

/** Resolves options over the EasyChat preset and checks every rule once. */
export const resolve = (options: Options = {}): Either.Either<Settings, InvalidRequest> =>
  Either.gen(function* () {
    const o: Options = { ...easyChat, ...options }
    const servers: Array<string> = []
    const routing = new Map<string, Routing>()
    for (const [i, raw] of (o.servers ?? []).entries()) {
      const { server, weight, priority } = yield* serverOf(raw, i)
      // A server given twice keeps its first entry.
      if (routing.has(server)) continue
      servers.push(server)
      routing.set(server, { weight, priority })
    }
    if (servers.length === 0) return yield* fail("servers", "must hold at least one server")
    const path = o.path ?? "/api/openai/v1/chat/completions"
    if (!path.startsWith("/")) return yield* fail("path", "must start with /")
    const headers = o.headers ?? {}
    yield* checkHeaders(headers)
    const serverHeaders = o.serverHeaders ?? (() => ({}))
    for (const server of servers) yield* checkHeaders(serverHeaders(server), "serverHeaders")
    const authorization = bearer(o)
    if (authorization !== undefined) yield* checkHeaders({ authorization: Redacted.value(authorization) }, "apiKey")
    const activeServer =
      o.activeServer === undefined ? undefined : yield* pinnedServer(servers, o.activeServer, "activeServer")
    const maxAttempts = o.maxAttempts ?? servers.length
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) return yield* fail("maxAttempts", "must be an integer ≥ 1")
    const failures = o.breaker?.failures ?? 3
    if (!Number.isInteger(failures) || failures < 1) return yield* fail("breaker.failures", "must be an integer ≥ 1")
    const maxEventSize = o.maxEventSize ?? 1024 * 1024
    if (!Number.isInteger(maxEventSize) || maxEventSize < 1) {
      return yield* fail("maxEventSize", "must be a positive integer")
    }
    const maxReplySize = o.maxReplySize ?? 8 * 1024 * 1024
    if (!Number.isInteger(maxReplySize) || maxReplySize < 1) {
      return yield* fail("maxReplySize", "must be a positive integer")
    }
    const strategy = yield* strategyOf(o.strategy)
    const cookieInit = o.cookieInit ?? "best-effort"
    if (cookieInit !== "best-effort" && cookieInit !== "required" && cookieInit !== "off") {
      return yield* fail("cookieInit", "must be best-effort, required or off")
    }
    // Content-Encoding is negotiated by the transport that can decode it (fetch offers and decodes gzip;
    // undici's request neither offers nor decodes it): a caller's Accept-Encoding would get bytes no one decodes.
    const lower = Object.fromEntries(
      Object.entries(headers)
        .map(([k, v]) => [k.toLowerCase(), v] as const)
        .filter(([k]) => k !== "accept-encoding")
    )
    return {
      servers,
      routing,
      path,
      model: o.model ?? "gpt-3.5-turbo",
      headersFor: (server: string) => ({ ...serverHeaders(server), ...lower }),
      authorization,
      cookieInit,
      strategy,
      activeServer,
      maxAttempts,
      breaker: {
        failures,
        cooldown: yield* duration(o.breaker?.cooldown, "30 seconds", "breaker.cooldown"),
        maxRetryAfter: yield* duration(o.breaker?.maxRetryAfter, "60 seconds", "breaker.maxRetryAfter")
      },
      timeouts: {
        headers: yield* duration(o.timeouts?.headers, "30 seconds", "timeouts.headers"),
        firstToken: yield* duration(o.timeouts?.firstToken, "60 seconds", "timeouts.firstToken"),
        idle: yield* duration(o.timeouts?.idle, "30 seconds", "timeouts.idle"),
        total: yield* duration(o.timeouts?.total, "10 minutes", "timeouts.total")
      },
      maxEventSize,
      maxReplySize,
      defaults: Object.entries(o.defaults ?? {}),
      hedge: yield* hedgeOf(o.hedge),
      continueAfterCut: yield* continueAfterCutOf(o.continueAfterCut)
    }
  })

/** Checks the `hedge` option: `after` a positive duration or `"auto"`, `max` an integer ≥ 2. */
export const hedgeOf = (option: Options["hedge"]): Either.Either<HedgeSettings | undefined, InvalidRequest> => {
  if (option === undefined) return Either.right(undefined)
  if (typeof option !== "object" || option === null) return fail("hedge", "must be { after, max? }")
  const max = option.max ?? 2
  if (!Number.isInteger(max) || max < 2) return fail("hedge.max", "must be an integer ≥ 2")
  if (option.after === "auto") return Either.right({ after: "auto", max })
  const after = duration(option.after, 0, "hedge.after")
  return Either.isRight(after)
    ? Either.right({ after: Duration.toMillis(after.right), max })
    : fail("hedge.after", 'must be a positive number of milliseconds, an Effect duration or "auto"')
}

const continueAfterCutOf = (option: unknown): Either.Either<boolean, InvalidRequest> =>
  option === undefined || typeof option === "boolean"
    ? Either.right(option === true)
    : fail("continueAfterCut", "must be true or false")
