import { createHash, timingSafeEqual } from "node:crypto"

const digest = (text: string): Buffer => createHash("sha256").update(text, "utf8").digest()

/**
 * Checks an `Authorization` header against the configured keys in constant
 * time: both sides are SHA-256 digests, so neither a key's length nor the
 * position of the first wrong byte shows in the timing, and every key is
 * compared whatever the outcome.
 */
export const makeKeyCheck = (keys: ReadonlyArray<string>) => {
  const digests = keys.map(digest)
  return (authorization: string | undefined): "ok" | "missing" | "wrong" => {
    const match = authorization === undefined ? null : /^\s*bearer\s+(.+?)\s*$/i.exec(authorization)
    if (match === null) return "missing"
    const presented = digest(match[1]!)
    let ok = false
    for (const key of digests) ok = timingSafeEqual(presented, key) || ok
    return ok ? "ok" : "wrong"
  }
}
