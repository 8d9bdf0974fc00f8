import type { ChatRequest } from "../Chat.js"

/**
 * The usual chat request, checked without Schema: Schema's decoder was about
 * 0.1 ms of a cold call's time to first delta (a plain check: 0.01 ms).
 *
 * Only a plain object, messages of exactly `role` and text `content`, and no
 * field but the ones below, each present with a valid value. Returns what
 * `ChatRequest`'s decoder returns for such a request (copies, fields in the
 * schema's order); anything else is `undefined`, and the decoder judges it.
 */
export const usualRequest = (input: unknown): ChatRequest | undefined => {
  if (!isPlain(input)) return undefined
  const keys = Reflect.ownKeys(input)
  const fields = input as Record<string, unknown>
  const messages = fields.messages
  if (!Object.hasOwn(fields, "messages") || !Array.isArray(messages) || messages.length === 0) return undefined
  const copies = new Array<{ role: string; content: string }>(messages.length)
  for (let i = 0; i < messages.length; i++) {
    const message: unknown = messages[i]
    if (typeof message !== "object" || message === null) return undefined
    const own = Reflect.ownKeys(message)
    const { role, content } = message as { role?: unknown; content?: unknown }
    if (own.length !== 2 || own[0] !== "role" || own[1] !== "content") return undefined
    if (typeof content !== "string" || typeof role !== "string" || !ROLES.has(role)) return undefined
    copies[i] = { role, content }
  }
  const request: Record<string, unknown> = { messages: copies }
  // The schema's order: each known field is checked, and copied, in turn.
  let checked = 1
  for (const field of FIELDS) {
    if (!Object.hasOwn(fields, field.name)) continue
    const value = fields[field.name]
    if (!field.valid(value)) return undefined
    request[field.name] = value
    checked++
  }
  // A field the list does not know, or a symbol: the decoder's job.
  if (checked !== keys.length) return undefined
  return request as ChatRequest
}

/** The roles a message may have (`Chat.Role`). */
export const roles: ReadonlyArray<string> = ["system", "user", "assistant", "tool", "developer", "function"]
const ROLES: ReadonlySet<string> = new Set(roles)

const isPlain = (u: unknown): u is object =>
  typeof u === "object" && u !== null && Object.getPrototypeOf(u) === Object.prototype

const between = (min: number, max: number) => (u: unknown) => typeof u === "number" && u >= min && u <= max

/** The optional fields of `ChatRequest` other than `activeServer`, in the schema's order, and their rules. */
const FIELDS: ReadonlyArray<{ readonly name: string; readonly valid: (u: unknown) => boolean }> = [
  { name: "model", valid: (u) => typeof u === "string" && u.length > 0 },
  { name: "stream", valid: (u) => typeof u === "boolean" },
  { name: "temperature", valid: between(0, 2) },
  { name: "top_p", valid: between(0, 1) },
  { name: "presence_penalty", valid: between(-2, 2) },
  { name: "frequency_penalty", valid: between(-2, 2) },
  { name: "max_tokens", valid: (u) => Number.isSafeInteger(u) && (u as number) > 0 }
]
