import { createHash, timingSafeEqual } from "node:crypto"
import { Errors } from "@easychat/core"

const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest()

/**
 * The token of an `Authorization: Bearer <token>` header (the scheme in any
 * case, whitespace around it), or `undefined`. No regular expression: a
 * lazy group before trailing whitespace backtracks in quadratic time on
 * `Bearer a<64k spaces>b`; `trim` and a prefix check are linear.
 */
export const bearerToken = (authorization: string | undefined): string | undefined => {
  if (authorization === undefined) return undefined
  const value = authorization.trim()
  if (value.length < 8 || value.slice(0, 6).toLowerCase() !== "bearer") return undefined
  const rest = value.slice(6)
  const token = rest.trimStart()
  // At least one whitespace between the scheme and the token (`Bearerabc` is no bearer token).
  return token.length === rest.length || token === "" ? undefined : token
}

/**
 * Checks an `Authorization` header against the configured keys in constant
 * time: both sides are SHA-256 digests, so neither a key's length nor the
 * position of the first wrong byte shows in the timing, and every key is
 * compared whatever the outcome.
 */
export const makeKeyCheck = (keys: ReadonlyArray<string>) => {
  const digests = keys.map(digest)
  return (authorization: string | undefined): "ok" | "missing" | "wrong" => {
    const token = bearerToken(authorization)
    if (token === undefined) return "missing"
    const presented = digest(token)
    let ok = false
    for (const key of digests) ok = timingSafeEqual(presented, key) || ok
    return ok ? "ok" : "wrong"
  }
}

// Shorter strings are too common to mask without garbling a message; keys are longer than this.
const MIN_SECRET_LENGTH = 8

/**
 * The client secrets the gateway knows for a request: its keys, and the
 * token the client presented (with no keys configured, often the client's
 * own OpenAI key). Computed only when an error is answered.
 */
export const clientSecrets = (
  keys: ReadonlyArray<string>,
  authorization: string | undefined
): ReadonlyArray<string> => {
  const token = bearerToken(authorization)
  return token === undefined || keys.includes(token) ? keys : [...keys, token]
}

/**
 * `text` without its clients' secrets, by core's one redaction function:
 * core masks the secrets it knows (the pool's keys, cookies), the gateway
 * masks its clients', which an upstream may echo (a key sent in a body
 * field, quoted in an error). A presented token shorter than 8 characters
 * (`"unused"`) is no secret worth masking every occurrence of.
 */
export const redact = (text: string, secrets: ReadonlyArray<string>): string => {
  const long = secrets.filter((secret) => secret.length >= MIN_SECRET_LENGTH)
  const masked = Errors.redact(text, long)
  // Core cuts a long excerpt (with "…") before the gateway masks its clients' secrets: one cut there
  // would leave its beginning.
  if (!masked.endsWith("…")) return masked
  const kept = masked.slice(0, -1)
  for (const secret of long) {
    for (let n = Math.min(secret.length - 1, kept.length); n >= 4; n--) {
      if (kept.endsWith(secret.slice(0, n))) return `${kept.slice(0, -n)}[redacted]…`
    }
  }
  return masked
}
