import type { Accumulator, ChatDelta } from "../Chat.js"
import { replyOf } from "./completion.js"

type Fields = Record<string, unknown>

const isObject = (u: unknown): u is Fields => typeof u === "object" && u !== null && !Array.isArray(u)

/** Text fields of a message delta that are pieces of one string. */
const TEXT = new Set(["content", "refusal", "reasoning_content", "reasoning"])

/** A fresh object without a prototype: a server's `__proto__` key stays a field. */
const fields = (): Fields => Object.create(null) as Fields

/**
 * A tool-call fragment (or a legacy `function_call`) added to the call it
 * continues. A later fragment's `null` (some servers repeat `id: null`,
 * `name: null`) takes nothing away.
 */
const mergeCall = (call: Fields, fragment: Fields) => {
  for (const key in fragment) {
    const value = fragment[key]
    if (key === "function" && isObject(value)) {
      const fn = isObject(call.function) ? call.function : (call.function = fields())
      mergeFunction(fn, value)
    } else if (key === "index") continue
    else if (value !== null || !(key in call)) call[key] = value
  }
}
const mergeFunction = (fn: Fields, fragment: Fields) => {
  for (const key in fragment) {
    const value = fragment[key]
    if (key === "arguments" && typeof value === "string") {
      fn.arguments = (typeof fn.arguments === "string" ? fn.arguments : "") + value
    } else if (key === "name" && typeof value === "string") {
      // Servers repeat the name on each fragment, or send it once: it is not a piece.
      if (typeof fn.name !== "string" || fn.name === "") fn.name = value
    } else if (value !== null || !(key in fn)) fn[key] = value
  }
}

/**
 * The call a fragment belongs to: its `index`; without one (Gemini sends
 * each call whole, in a chunk of its own), a new `id` opens the next call
 * and a fragment without an id continues the last one.
 */
const callOf = (calls: Array<Fields>, fragment: Fields): Fields => {
  if (Number.isInteger(fragment.index)) {
    const index = fragment.index as number
    return (calls[index] ??= fields())
  }
  const last = calls.at(-1)
  const id = fragment.id
  if (last !== undefined && (typeof id !== "string" || id === "" || id === last.id)) return last
  const call = fields()
  calls.push(call)
  return call
}

/** A chunk's message delta added to the message it continues (openai-node's rules, reasoning joined too). */
const mergeDelta = (message: Fields, calls: Array<Fields>, delta: Fields) => {
  for (const key in delta) {
    const value = delta[key]
    if (TEXT.has(key)) {
      if (typeof value === "string") message[key] = (typeof message[key] === "string" ? message[key] : "") + value
      else if (!(key in message)) message[key] = value
    } else if (key === "tool_calls" && Array.isArray(value)) {
      for (const fragment of value) if (isObject(fragment)) mergeCall(callOf(calls, fragment), fragment)
    } else if (key === "function_call" && isObject(value)) {
      const fn = isObject(message.function_call) ? message.function_call : (message.function_call = fields())
      mergeFunction(fn, value)
    } else if (key === "reasoning_details" && Array.isArray(value)) {
      const details = Array.isArray(message[key])
        ? (message[key] as Array<unknown>)
        : (message[key] = [] as Array<unknown>)
      for (const detail of value) mergeDetail(details, detail)
    } else if (value !== null || !(key in message)) message[key] = value
  }
}

/**
 * An OpenRouter `reasoning_details` entry: one with the `index` and `type` of an entry already there
 * continues it (its text pieces joined), as the whole reply holds one entry per index.
 */
const mergeDetail = (details: Array<unknown>, detail: unknown) => {
  const same =
    isObject(detail) && Number.isInteger(detail.index)
      ? details.find((d): d is Fields => isObject(d) && d.index === detail.index && d.type === detail.type)
      : undefined
  if (same === undefined || !isObject(detail)) {
    details.push(isObject(detail) ? { ...detail } : detail)
    return
  }
  for (const key in detail) {
    const value = detail[key]
    if (
      typeof value === "string" &&
      typeof same[key] === "string" &&
      key !== "type" &&
      key !== "format" &&
      key !== "id"
    )
      same[key] = same[key] + value
    else if (value !== null || !(key in same)) same[key] = value
  }
}

const mergeLogprobs = (choice: Fields, logprobs: Fields) => {
  const into = isObject(choice.logprobs) ? choice.logprobs : (choice.logprobs = fields())
  for (const key in logprobs) {
    const value = logprobs[key]
    if (Array.isArray(value)) into[key] = [...(Array.isArray(into[key]) ? into[key] : []), ...value]
    else if (value !== null || !(key in into)) into[key] = value
  }
}

interface Choice {
  readonly fields: Fields
  readonly message: Fields
  readonly calls: Array<Fields>
}

/**
 * Adds chunks up into the `chat.completion` object they stream, and reads it
 * as `replyOf` reads a whole reply. The deltas of one chunk share it: each
 * chunk is added once.
 */
export const makeAccumulator = (): Accumulator => {
  const top: Fields = fields()
  const choices = new Map<number, Choice>()
  let usage: unknown
  let last: object | undefined
  let server = ""
  const addChunk = (chunk: Readonly<Fields>) => {
    for (const key in chunk) {
      const value = chunk[key]
      if (key === "choices" || key === "object") continue
      if (key === "usage") {
        if (isObject(value)) usage = value
      } else top[key] = value
    }
    const list = Array.isArray(chunk.choices) ? chunk.choices : []
    for (let i = 0; i < list.length; i++) {
      const c: unknown = list[i]
      if (!isObject(c)) continue
      const index = Number.isInteger(c.index) ? (c.index as number) : i
      let choice = choices.get(index)
      if (choice === undefined) {
        const own = fields()
        own.index = index
        own.logprobs = null
        own.finish_reason = null
        const message = fields()
        message.role = "assistant"
        choice = { fields: own, message, calls: [] }
        choices.set(index, choice)
      }
      for (const key in c) {
        const value = c[key]
        if (key === "index") continue
        if (key === "delta") {
          if (isObject(value)) mergeDelta(choice.message, choice.calls, value)
        } else if (key === "logprobs") {
          if (isObject(value)) mergeLogprobs(choice.fields, value)
        } else if (value !== null || !(key in choice.fields)) choice.fields[key] = value
      }
    }
  }
  // A snapshot: plain objects, copied, so that later chunks never change a reply already read.
  const body = (): Fields => {
    const out: Fields = { ...top, object: "chat.completion" }
    out.choices = [...choices.values()]
      .sort((a, b) => (a.fields.index as number) - (b.fields.index as number))
      .map(({ fields, message, calls }) => {
        const whole: Fields = { ...message }
        const joined = calls.filter((call) => call !== undefined)
        if (joined.length > 0) whole.tool_calls = joined
        return { ...fields, message: whole }
      })
    if (usage !== undefined) out.usage = usage
    return structuredClone(out)
  }
  return {
    add: (delta: ChatDelta) => {
      server = delta.server
      const chunk = delta.chunk
      if (chunk === last) return
      last = chunk
      addChunk(chunk)
    },
    get: () => replyOf(server, body())
  }
}
