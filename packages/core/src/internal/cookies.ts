import * as Cookies from "@effect/platform/Cookies"
import { CookieJar } from "tough-cookie"

/**
 * Cookies kept per origin: one tough-cookie jar per server, so cookies of one
 * origin never reach another (RFC 6265 ignores ports; a pool of mirrors on one
 * host must not share them). Expiry is judged against the Effect clock passed
 * in, so tests can move time.
 */
export interface CookieStore {
  /** The `Cookie` header for a request to `url` of `server`, if any. */
  readonly header: (server: string, url: string, now: number) => string | undefined
  /** Keeps the cookies a response to `url` set; cookies for another domain are refused. */
  readonly store: (server: string, url: string, cookies: Cookies.Cookies, now: number) => void
  /** True until `GET /` succeeded, and again once one of its cookies expired. */
  readonly needsInit: (server: string, now: number) => boolean
  readonly markInitialised: (server: string) => void
  /** Forgets a server's cookies (after a 401/403) so the next call initialises again. */
  readonly invalidate: (server: string) => void
  /** Every cookie value currently held for `server`, to keep them out of error messages. */
  readonly values: (server: string) => ReadonlyArray<string>
}

interface Entry {
  readonly jar: CookieJar
  initialised: boolean
  /** When the first of the stored cookies expires (epoch ms). */
  expiresAt: number | undefined
  readonly values: Set<string>
}

export const makeCookieStore = (): CookieStore => {
  const entries = new Map<string, Entry>()
  const entry = (server: string): Entry => {
    let e = entries.get(server)
    if (e === undefined) {
      e = { jar: new CookieJar(), initialised: false, expiresAt: undefined, values: new Set() }
      entries.set(server, e)
    }
    return e
  }
  return {
    header(server, url, now) {
      const e = entries.get(server)
      if (e === undefined) return undefined
      // Expiry is checked against the Effect clock, not tough-cookie's Date.now().
      const live = e.jar.getCookiesSync(url, { expire: false }).filter((c) => {
        const expiry = c.expiryTime()
        return expiry === undefined || expiry > now
      })
      return live.length === 0 ? undefined : live.map((c) => c.cookieString()).join("; ")
    },
    store(server, url, cookies, now) {
      const e = entry(server)
      for (const cookie of Object.values(cookies.cookies)) {
        // A cookie for another domain, or a Secure one over plain http to a
        // non-loopback host, is refused here (tough-cookie's rules).
        const kept = e.jar.setCookieSync(Cookies.serializeCookie(cookie), url, {
          ignoreError: true,
          now: new Date(now)
        })
        if (kept === undefined) continue
        if (kept.value.length >= 4) e.values.add(kept.value)
        const expiry = kept.expiryTime()
        if (expiry !== undefined && (e.expiresAt === undefined || expiry < e.expiresAt)) e.expiresAt = expiry
      }
    },
    needsInit(server, now) {
      const e = entries.get(server)
      return e === undefined || !e.initialised || (e.expiresAt !== undefined && e.expiresAt <= now)
    },
    markInitialised(server) {
      entry(server).initialised = true
    },
    invalidate(server) {
      entries.delete(server)
    },
    values(server) {
      return [...(entries.get(server)?.values ?? [])]
    }
  }
}
