import { UpstreamError } from "../Errors.js"
import { redact } from "./redact.js"

/** At most this many characters of a server's body travel in an error message. */
export const EXCERPT = 200

/**
 * A short, one-line, redacted excerpt of a server's text. Secrets go before
 * and after whitespace is folded (folding can join a secret), and before
 * the cut (which only removes text).
 */
export const excerpt = (text: string, secrets: ReadonlyArray<string> = []): string => {
  const out = redact(redact(text, secrets).replace(/\s+/g, " ").trim(), secrets)
  return out.length > EXCERPT ? `${out.slice(0, EXCERPT)}…` : out
}

export const isObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * The server's own words in an error body: OpenAI's `error.message`,
 * NextChat's `msg`, or a plain `message` / `error` string.
 */
export const serverMessage = (body: unknown): string | undefined => {
  if (!isObject(body)) return undefined
  const error = body.error
  if (isObject(error) && typeof error.message === "string") return error.message
  if (typeof body.msg === "string") return body.msg
  if (typeof body.message === "string") return body.message
  if (typeof error === "string") return error
  return undefined
}

const codeOf = (body: unknown): string | undefined => {
  if (!isObject(body)) return undefined
  const error = body.error
  if (isObject(error) && (typeof error.code === "string" || typeof error.type === "string")) {
    return String(error.code ?? error.type)
  }
  return undefined
}

/**
 * A real NextChat whose own upstream is down answers 200 with a JSON string
 * holding a markdown-fenced error (`"```json\n{\"cause\": {...}}\n```"`).
 */
export const upstreamFromString = (server: string, text: string, secrets: ReadonlyArray<string>): UpstreamError => {
  const unfenced = text
    .trim()
    .replace(/^```[a-z]*\s*/i, "")
    .replace(/\s*```$/, "")
  try {
    const inner: unknown = JSON.parse(unfenced)
    if (isObject(inner)) {
      const cause = isObject(inner.cause) ? inner.cause : inner
      const code = typeof cause.code === "string" ? cause.code : undefined
      const message = serverMessage(inner) ?? (typeof cause.message === "string" ? cause.message : undefined)
      const syscall = typeof cause.syscall === "string" ? `${cause.syscall} ` : ""
      const detail = message ?? (code !== undefined ? `the mirror's upstream failed: ${syscall}${code}` : unfenced)
      return new UpstreamError({ server, detail: excerpt(detail, secrets), ...(code ? { code } : {}) })
    }
  } catch {
    // Not JSON inside the fence: the text itself is the message.
  }
  return new UpstreamError({ server, detail: excerpt(unfenced, secrets) })
}

/** An `{"error": ...}` body, or `undefined` when the body is not an error. */
export const upstreamFromBody = (
  server: string,
  body: unknown,
  secrets: ReadonlyArray<string>
): UpstreamError | undefined => {
  if (typeof body === "string") return upstreamFromString(server, body, secrets)
  if (!isObject(body) || body.error === undefined || body.error === null || body.error === false) return undefined
  const code = codeOf(body)
  const detail = excerpt(serverMessage(body) ?? JSON.stringify(body.error), secrets)
  return new UpstreamError({ server, detail, ...(code ? { code } : {}) })
}
