// The gateway's options checked once, before anything is built: each rule broken is an `InvalidRequest`
// naming the option (never a key's value), and what passes comes out with its defaults and in milliseconds.

import { InvalidRequest } from "@easychat/core"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import type { Options } from "../Gateway.js"
import { KEY_RULE, keyProblem } from "./keys.js"
import type { Settings } from "./request.js"

/** The options of `Gateway.ts`, checked: every default applied, durations in milliseconds. */
export interface Checked extends Settings {
  readonly port: number
  readonly host: string
  readonly bodyTimeoutMs: number
  readonly allowRouting: boolean
  readonly hostnames: ReadonlyArray<string>
  readonly sendTimeoutMs: number
  readonly drainTimeoutMs: number
  readonly metrics: "open" | "keyed" | "off"
  readonly accessLog: "json" | "text" | "off"
}

export const DRAIN_TIMEOUT_RULE = "must be a number of milliseconds (0: at once) or a Duration"

const fail = (field: string, rule: string) => Either.left(new InvalidRequest({ field, rule }))

/** Milliseconds of a duration option (a number of milliseconds or a `Duration`); `undefined` when invalid. */
export const millisOf = (input: unknown): number | undefined => {
  if (typeof input === "number") return Number.isFinite(input) && input >= 0 ? input : undefined
  try {
    const duration = Duration.decode(input as Duration.DurationInput)
    return Duration.isFinite(duration) ? Duration.toMillis(duration) : undefined
  } catch {
    return undefined
  }
}

const isPositiveInteger = (n: unknown): n is number => typeof n === "number" && Number.isInteger(n) && n > 0
const isNonEmptyStrings = (list: unknown): list is ReadonlyArray<string> =>
  Array.isArray(list) && list.every((s) => typeof s === "string" && s.trim() !== "")

/** How a bound address appears in a `Host` header, without its port: IPv6 in brackets. */
const hostHeaderName = (host: string) => {
  const bare = host.toLowerCase().replace(/^\[|\]$/g, "")
  return bare.includes(":") ? `[${bare}]` : bare
}

/** 127.0.0.0/8, ::1 and localhost, in any case and with or without brackets: this machine only. */
export const isLoopback = (host: string) => {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "")
  return h === "localhost" || h === "::1" || h === "::ffff:127.0.0.1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
}

export const check = (options: Options): Either.Either<Checked, InvalidRequest> =>
  Either.gen(function* () {
    const port = options.port ?? 8080
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      return yield* fail("port", "must be an integer from 0 to 65535")
    const host = options.host ?? "127.0.0.1"
    if (typeof host !== "string" || host.trim() === "") return yield* fail("host", "must be a non-empty string")
    const keys = options.keys ?? []
    if (!Array.isArray(keys)) return yield* fail("keys", "must be a list of keys")
    // Which key, by its place: never the key itself.
    const refused = keys.findIndex((key) => keyProblem(key) !== undefined)
    if (refused >= 0) return yield* fail(keys.length === 1 ? "keys" : `keys[${refused}]`, KEY_RULE)
    const hostnames = options.hostnames ?? []
    // The port is left out of a `Host` before it is compared: a name with one would never match.
    if (
      !isNonEmptyStrings(hostnames) ||
      hostnames.some((h) => /[\s/]/.test(h.trim()) || /^[^[]*:|\]:/.test(h.trim()))
    ) {
      return yield* fail("hostnames", "must be host names such as gateway.lan, without scheme, port or path")
    }
    const cors = options.cors ?? []
    if (!isNonEmptyStrings(cors)) return yield* fail("cors", "must be origins such as https://app.example.com, or *")
    const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024
    if (!isPositiveInteger(maxBodyBytes)) return yield* fail("maxBodyBytes", "must be a positive integer")
    const maxConcurrent = options.maxConcurrent ?? 64
    if (!isPositiveInteger(maxConcurrent)) return yield* fail("maxConcurrent", "must be a positive integer")
    const bodyTimeoutMs = millisOf(options.bodyTimeout ?? 30_000)
    if (bodyTimeoutMs === undefined || bodyTimeoutMs <= 0) {
      return yield* fail("bodyTimeout", "must be a positive number of milliseconds or a Duration")
    }
    const sendTimeoutMs = millisOf(options.sendTimeout ?? 60_000)
    if (sendTimeoutMs === undefined || sendTimeoutMs <= 0) {
      return yield* fail("sendTimeout", "must be a positive number of milliseconds or a Duration")
    }
    const drainTimeoutMs = millisOf(options.drainTimeout ?? 10_000)
    if (drainTimeoutMs === undefined) return yield* fail("drainTimeout", DRAIN_TIMEOUT_RULE)
    const allowRouting = options.allowRouting ?? false
    if (typeof allowRouting !== "boolean") return yield* fail("allowRouting", "must be a boolean")
    const page = options.page ?? true
    if (typeof page !== "boolean") return yield* fail("page", "must be a boolean")
    const metrics = options.metrics ?? "keyed"
    if (metrics !== "open" && metrics !== "keyed" && metrics !== "off")
      return yield* fail("metrics", 'must be "open", "keyed" or "off"')
    const accessLog = options.accessLog ?? "off"
    if (accessLog !== "json" && accessLog !== "text" && accessLog !== "off")
      return yield* fail("accessLog", 'must be "json", "text" or "off"')
    const models = options.models ?? ["gpt-3.5-turbo"]
    if (!isNonEmptyStrings(models) || models.length === 0) {
      return yield* fail("models", "must hold at least one model name")
    }
    return {
      port,
      host,
      keys,
      cors,
      maxBodyBytes,
      maxConcurrent,
      models,
      bodyTimeoutMs,
      allowRouting,
      page,
      // A loopback address it is bound to other than the usual three (`127.0.0.2`) is this machine too.
      hostnames: [...hostnames.map((h) => h.trim().toLowerCase()), ...(isLoopback(host) ? [hostHeaderName(host)] : [])],
      sendTimeoutMs,
      drainTimeoutMs,
      metrics,
      accessLog
    }
  })
