/**
 * Whether this code runs in a browser (a window or a web/service worker), where cookies, redirects and some headers
 * belong to the browser. Deno, Bun, Node and edge workers have none of `document` or `importScripts`.
 *
 * @internal
 */
export const isBrowser = (): boolean =>
  typeof (globalThis as { document?: unknown }).document !== "undefined" ||
  typeof (globalThis as { importScripts?: unknown }).importScripts === "function"

const forbidden = new Set([
  "accept-charset",
  "accept-encoding",
  "access-control-request-headers",
  "access-control-request-method",
  "connection",
  "content-length",
  "cookie",
  "cookie2",
  "date",
  "dnt",
  "expect",
  "host",
  "keep-alive",
  "origin",
  "referer",
  "set-cookie",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "via",
  // No longer forbidden by the Fetch standard, but Chromium drops it and elsewhere it forces a CORS preflight that
  // mirrors do not answer; the browser sends its own.
  "user-agent"
])

/**
 * Whether a browser refuses to let a script set this request header (Fetch standard, "forbidden request-header").
 *
 * @internal
 */
export const isForbiddenHeader = (name: string): boolean => {
  const lower = name.toLowerCase()
  return forbidden.has(lower) || lower.startsWith("proxy-") || lower.startsWith("sec-")
}
