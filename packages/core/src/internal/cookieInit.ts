import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { type AttemptError, HttpStatusError } from "../Errors.js"
import type { CookieStore } from "./cookies.js"
import type { Outgoing } from "./outgoing.js"
import { isSuccess, REASONS, type Responses } from "./response.js"
import type { Sender } from "./send.js"
import type { Settings } from "./settings.js"

const MAX_REDIRECTS = 5

/**
 * `GET {server}/` once per origin (one at a time per origin), following
 * same-origin redirects and keeping every hop's cookies: what a browser does
 * before a mirror's page calls its API.
 */
export const makeCookieInit = (
  settings: Settings,
  cookies: CookieStore,
  outgoing: Outgoing,
  sender: Sender,
  responses: Responses
): ((server: string) => Effect.Effect<void, AttemptError>) => {
  const locks = new Map<string, Effect.Semaphore>()
  return (server) => {
    if (settings.cookieInit === "off") return Effect.void
    let lock = locks.get(server)
    if (lock === undefined) {
      lock = Effect.unsafeMakeSemaphore(1)
      locks.set(server, lock)
    }
    return lock.withPermits(1)(
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        if (!cookies.needsInit(server, now)) return
        cookies.invalidate(server)
        let url = `${server}/`
        for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
          const headers = outgoing.baseHeaders(server, url, now)
          delete headers["content-type"]
          headers.accept = "text/html,application/xhtml+xml,*/*;q=0.8"
          const response = yield* sender.execute(server, HttpClientRequest.get(url, { headers }))
          cookies.store(server, url, response.cookies, now)
          yield* responses.drain(server, response)
          const location = response.headers.location
          if (response.status >= 300 && response.status < 400 && location !== undefined) {
            const target = new URL(location, url)
            // Cookies are per origin: a redirect elsewhere is not followed.
            if (target.origin !== server) break
            url = target.href
            continue
          }
          if (!isSuccess(response.status) && settings.cookieInit === "required") {
            return yield* new HttpStatusError({
              server,
              status: response.status,
              statusText: REASONS[response.status] ?? "",
              body: "cookie initialisation (GET /) failed"
            })
          }
          break
        }
        cookies.markInitialised(server)
      })
    )
  }
}
