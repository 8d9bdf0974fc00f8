import type { ChatRequest } from "../Chat.js"

/**
 * The usual chat request, checked without Schema: Schema's decoder was about
 * 0.1 ms of a cold call's time to first delta (a plain check: 0.01 ms).
 *
 * Only a plain object, messages of exactly `role` and text `content`, and no
 * field but those of `requestRules`, each with a valid value. Returns what
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

/**
 * The rule of one optional request field, by kind: `text` a non-empty string,
 * `flag` a boolean, `range` a number in [min, max] or null (null leaves a
 * preset's default out), `count` a positive integer, `server` an index or a
 * URL of the pool. `Chat.ChatRequest`'s schema words each kind's error.
 */
export type Rule =
  | { readonly kind: "text" }
  | { readonly kind: "flag" }
  | { readonly kind: "range"; readonly min: number; readonly max: number }
  | { readonly kind: "count" }
  | { readonly kind: "server" }

/**
 * The optional fields of a request, in the schema's order (they become the
 * body's JSON in it): the one table both `ChatRequest` and the fast check
 * are built from.
 */
export const requestRules = {
  model: { kind: "text" },
  stream: { kind: "flag" },
  temperature: { kind: "range", min: 0, max: 2 },
  top_p: { kind: "range", min: 0, max: 1 },
  presence_penalty: { kind: "range", min: -2, max: 2 },
  frequency_penalty: { kind: "range", min: -2, max: 2 },
  max_tokens: { kind: "count" },
  activeServer: { kind: "server" }
} as const satisfies Readonly<Record<string, Rule>>

/** What the fast check accepts of each kind: only values the schema takes unchanged. */
const accepts = (rule: Rule): ((u: unknown) => boolean) => {
  switch (rule.kind) {
    case "text":
      return (u) => typeof u === "string" && u.length > 0
    case "flag":
      return (u) => typeof u === "boolean"
    case "range": {
      // `null` is valid too, but rare: the decoder takes it.
      const { min, max } = rule
      return (u) => typeof u === "number" && u >= min && u <= max
    }
    case "count":
      return (u) => Number.isSafeInteger(u) && (u as number) > 0
    case "server":
      // A pinned call is rare: the decoder takes it.
      return () => false
  }
}

const FIELDS: ReadonlyArray<{ readonly name: string; readonly valid: (u: unknown) => boolean }> = Object.entries(
  requestRules as Readonly<Record<string, Rule>>
).map(([name, rule]) => ({ name, valid: accepts(rule) }))
