// Building the mirror's answers: reply text, chat-completion JSON, SSE events.
// Shared by the node:http server and the msw handlers, so it must stay free of
// `node:*` (the msw handlers may run in a browser).
import type { Fault } from "../Fault.js"
import type { RecordedRequest } from "../Mirror.js"

const encoder = new TextEncoder()

export const encode = (text: string): Uint8Array => encoder.encode(text)

export const concatBytes = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (parts.length === 1) return parts[0]!
  let size = 0
  for (const part of parts) size += part.length
  const out = new Uint8Array(size)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

// ---------------------------------------------------------------------------
// reply text

export const defaultSentence = "This reply comes from the easychat test mirror."

const textOf = (content: unknown): string => {
  if (typeof content === "string") return content
  // OpenAI content parts: [{ type: "text", text }, { type: "image_url", ... }]
  if (Array.isArray(content)) {
    return content
      .map((part) => (part !== null && typeof part === "object" && typeof part.text === "string" ? part.text : ""))
      .join("")
  }
  return ""
}

const messagesOf = (body: unknown): ReadonlyArray<{ readonly role?: unknown; readonly content?: unknown }> => {
  if (body === null || typeof body !== "object") return []
  const messages = (body as { messages?: unknown }).messages
  return Array.isArray(messages) ? messages.filter((m) => m !== null && typeof m === "object") : []
}

export const defaultReply = (request: RecordedRequest): string => {
  const users = messagesOf(request.body).filter((m) => m.role === "user")
  const last = users[users.length - 1]
  return `Echo: ${last === undefined ? "" : textOf(last.content)}\n${defaultSentence}`
}

// Split on code points, not UTF-16 units, so an emoji is never cut in half.
export const splitReply = (text: string, chunkSize: number, deltas: number | undefined): Array<string> => {
  const size = Math.max(1, Math.floor(chunkSize))
  const chars = Array.from(text)
  const pieces: Array<string> = []
  for (let i = 0; i < chars.length; i += size) pieces.push(chars.slice(i, i + size).join(""))
  if (deltas === undefined) return pieces
  // A fixed number of deltas (long benchmark streams): repeat the pieces cyclically.
  const out: Array<string> = []
  for (let i = 0; i < deltas; i++) out.push(pieces.length === 0 ? "" : pieces[i % pieces.length]!)
  return out
}

// ---------------------------------------------------------------------------
// chat completion objects

export interface Usage {
  readonly prompt_tokens: number
  readonly completion_tokens: number
  readonly total_tokens: number
}

// Deterministic, not a real tokenizer: a token is about 4 characters of prompt,
// and each delta counts as one completion token.
export const usageOf = (request: RecordedRequest, deltas: number): Usage => {
  let chars = 0
  for (const m of messagesOf(request.body)) chars += textOf(m.content).length
  const prompt = Math.ceil(chars / 4)
  return { prompt_tokens: prompt, completion_tokens: deltas, total_tokens: prompt + deltas }
}

export interface ChunkMeta {
  readonly id: string
  readonly created: number
  readonly model: string
}

export const defaultMeta: ChunkMeta = { id: "chatcmpl-mirror", created: 0, model: "gpt-3.5-turbo" }

export const chunkObject = (
  meta: ChunkMeta,
  delta: Record<string, unknown>,
  finishReason: string | null = null
): Record<string, unknown> => ({
  id: meta.id,
  object: "chat.completion.chunk",
  created: meta.created,
  model: meta.model,
  choices: [{ index: 0, delta, finish_reason: finishReason }]
})

export const completionObject = (meta: ChunkMeta, content: string, usage: Usage | undefined) => ({
  id: meta.id,
  object: "chat.completion",
  created: meta.created,
  model: meta.model,
  choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
  ...(usage === undefined ? {} : { usage })
})

// ---------------------------------------------------------------------------
// SSE

export interface SseEventInit {
  readonly event?: string
  readonly id?: string
  /** A string is sent as is; anything else as JSON. */
  readonly data: unknown
}

const dataText = (data: unknown): string => (typeof data === "string" ? data : JSON.stringify(data))

export const sseEvent = (init: SseEventInit | string): string => {
  if (typeof init === "string") return `data: ${init}\n\n`
  let out = ""
  if (init.event !== undefined) out += `event: ${init.event}\n`
  if (init.id !== undefined) out += `id: ${init.id}\n`
  // A multi-line payload takes one `data:` line per line, as the SSE format requires.
  for (const line of dataText(init.data).split("\n")) out += `data: ${line}\n`
  return out + "\n"
}

const dataEvent = (data: unknown): Uint8Array => encode(`data: ${dataText(data)}\n\n`)

/** A pause in a streamed answer: the time to first delta of `MirrorOptions.firstDeltaMs`. */
export interface Wait {
  readonly waitMs: number
}

/** One unit of a streamed answer: the bytes of an event, a pause, or what to do with the connection. */
export type StreamStep = Uint8Array | Wait | "stall" | "destroy"

export const isWait = (step: StreamStep): step is Wait => typeof step === "object" && "waitMs" in step

export type StreamFault = Extract<
  Fault,
  {
    kind:
      | "stall-mid-stream"
      | "close-mid-stream"
      | "malformed-json"
      | "event-error"
      | "error-chunk"
      | "invalid-utf8"
      | "oversize-event"
      | "no-trailing-blank-line"
      | "no-done"
      | "no-done-no-finish"
  }
>

export const streamFaultKinds: ReadonlySet<string> = new Set<StreamFault["kind"]>([
  "stall-mid-stream",
  "close-mid-stream",
  "malformed-json",
  "event-error",
  "error-chunk",
  "invalid-utf8",
  "oversize-event",
  "no-trailing-blank-line",
  "no-done",
  "no-done-no-finish"
])

export interface StreamPlan {
  readonly meta: ChunkMeta
  readonly pieces: ReadonlyArray<string>
  readonly usage: Usage | undefined
  readonly fault: StreamFault | undefined
  /** A pause after the role chunk, before the first content delta (and before a fault placed there). */
  readonly firstDeltaMs?: number
}

const faultPosition = (fault: StreamFault | undefined, deltas: number): number => {
  if (fault === undefined) return -1
  switch (fault.kind) {
    case "no-trailing-blank-line":
    case "no-done":
      return -1 // these change the end of the stream, not a position in it
    case "no-done-no-finish":
      return Math.min(fault.afterDeltas ?? deltas, deltas)
    default:
      return Math.min(fault.afterDeltas ?? 1, deltas)
  }
}

// The bytes `0xff 0xfe` can never appear in UTF-8, so they are spliced in after encoding.
const invalidUtf8Event = (meta: ChunkMeta): Uint8Array => {
  const [before, after] = JSON.stringify(chunkObject(meta, { content: "bad\u0000bytes" })).split("\\u0000")
  return concatBytes([encode(`data: ${before}`), new Uint8Array([0xff, 0xfe]), encode(`${after}\n\n`)])
}

/** What the injected fault does to the rest of the stream. */
type Injected = "continue" | "end"

function* inject(fault: StreamFault, meta: ChunkMeta): Generator<StreamStep, Injected> {
  switch (fault.kind) {
    case "stall-mid-stream":
      yield "stall"
      return "end"
    case "close-mid-stream":
      yield "destroy"
      return "end"
    case "malformed-json":
      yield encode("data: {not json\n\n")
      return "continue"
    case "event-error":
      yield encode(sseEvent({ event: "error", data: { message: fault.message ?? "Mirror test fault: event error" } }))
      return "end"
    case "error-chunk":
      yield dataEvent({
        error: { message: fault.message ?? "Mirror test fault: error chunk", type: fault.type ?? "server_error" }
      })
      return "end"
    case "invalid-utf8":
      yield invalidUtf8Event(meta)
      return "continue"
    case "oversize-event":
      yield dataEvent(chunkObject(meta, { content: "x".repeat(fault.size ?? 2 * 1024 * 1024) }))
      return "continue"
    default:
      // no-done-no-finish: the stream is cut here
      return "end"
  }
}

/**
 * The events of a streamed reply, produced lazily so that a 20,000-delta stream
 * costs little memory. Events of repeated pieces are encoded once.
 */
export function* streamSteps(plan: StreamPlan): Generator<StreamStep, void> {
  const { fault, meta, pieces } = plan
  const at = faultPosition(fault, pieces.length)
  const cache = new Map<string, Uint8Array>()
  yield dataEvent(chunkObject(meta, { role: "assistant" }))
  if (plan.firstDeltaMs !== undefined && plan.firstDeltaMs > 0) yield { waitMs: plan.firstDeltaMs }
  for (let i = 0; i <= pieces.length; i++) {
    if (i === at && fault !== undefined) {
      if ((yield* inject(fault, meta)) === "end") return
    }
    if (i === pieces.length) break
    const piece = pieces[i]!
    let bytes = cache.get(piece)
    if (bytes === undefined) {
      bytes = dataEvent(chunkObject(meta, { content: piece }))
      if (cache.size < 1024) cache.set(piece, bytes)
    }
    yield bytes
  }
  yield dataEvent(chunkObject(meta, {}, "stop"))
  if (plan.usage !== undefined) yield dataEvent({ ...chunkObject(meta, {}), choices: [], usage: plan.usage })
  if (fault?.kind === "no-done") return
  yield encode(fault?.kind === "no-trailing-blank-line" ? "data: [DONE]" : "data: [DONE]\n\n")
}

/**
 * Groups consecutive event bytes into writes of at most `batch` events; a
 * pause or a control step ("stall", "destroy") first flushes what is pending.
 */
export function* batchSteps(steps: Iterable<StreamStep>, batch: number): Generator<StreamStep, void> {
  const size = Math.max(1, Math.floor(batch))
  let pending: Array<Uint8Array> = []
  for (const step of steps) {
    if (isWait(step)) {
      if (pending.length > 0) yield concatBytes(pending)
      pending = []
      yield step
      continue
    }
    if (typeof step === "string") {
      if (pending.length > 0) yield concatBytes(pending)
      pending = []
      yield step
      return
    }
    pending.push(step)
    if (pending.length >= size) {
      yield concatBytes(pending)
      pending = []
    }
  }
  if (pending.length > 0) yield concatBytes(pending)
}

// ---------------------------------------------------------------------------
// fixtures: recorded SSE text served as is

/**
 * SSE text cut into its events, each with its blank line (a comment such as
 * `: keep-alive` is an event of its own); text after the last blank line, a
 * stream cut short, is a last event.
 */
export const sseEventTexts = (text: string): Array<string> => {
  const events: Array<string> = []
  let start = 0
  for (let end = text.indexOf("\n\n", start); end >= 0; end = text.indexOf("\n\n", start)) {
    events.push(text.slice(start, end + 2))
    start = end + 2
  }
  if (start < text.length) events.push(text.slice(start))
  return events
}

/** The `data` of an event (its `data:` lines joined), `undefined` for a comment. */
export const eventData = (event: string): string | undefined => {
  const lines = event.split("\n").filter((line) => line.startsWith("data:"))
  return lines.length === 0 ? undefined : lines.map((line) => line.slice(5).replace(/^ /, "")).join("\n")
}

const parsedChunks = (events: ReadonlyArray<string>): Array<unknown> =>
  events.map((event) => {
    const data = eventData(event)
    if (data === undefined || data === "[DONE]") return undefined
    try {
      return JSON.parse(data)
    } catch {
      return undefined
    }
  })

const hasFinish = (chunk: unknown): boolean =>
  Array.isArray((chunk as { choices?: unknown } | undefined)?.choices) &&
  (chunk as { choices: Array<{ finish_reason?: unknown } | null> }).choices.some(
    (choice) => choice?.finish_reason !== undefined && choice?.finish_reason !== null
  )

/**
 * The events of a fixture's stream, with a stream fault applied. `afterDeltas`
 * counts events here (comments included) and defaults to 1; `no-done-no-finish`
 * cuts by default before the first event that carries a `finish_reason`.
 */
export function* fixtureSteps(
  events: ReadonlyArray<string>,
  fault: StreamFault | undefined,
  firstDeltaMs?: number
): Generator<StreamStep> {
  if (firstDeltaMs !== undefined && firstDeltaMs > 0) yield { waitMs: firstDeltaMs }
  const chunks = parsedChunks(events)
  const first = chunks.find((chunk) => chunk !== undefined) as Partial<ChunkMeta> | undefined
  // Injected chunks (invalid-utf8, oversize-event) carry the fixture's own metadata.
  const meta: ChunkMeta = {
    id: typeof first?.id === "string" ? first.id : defaultMeta.id,
    created: typeof first?.created === "number" ? first.created : defaultMeta.created,
    model: typeof first?.model === "string" ? first.model : defaultMeta.model
  }
  const finishAt = chunks.findIndex(hasFinish)
  const at =
    fault === undefined || fault.kind === "no-done" || fault.kind === "no-trailing-blank-line"
      ? -1
      : Math.min(
          fault.afterDeltas ?? (fault.kind === "no-done-no-finish" ? (finishAt < 0 ? events.length : finishAt) : 1),
          events.length
        )
  for (let i = 0; i <= events.length; i++) {
    if (i === at && fault !== undefined) {
      if ((yield* inject(fault, meta)) === "end") return
    }
    if (i === events.length) break
    const event = events[i]!
    if (fault?.kind === "no-done" && eventData(event) === "[DONE]") continue
    const last = i === events.length - 1
    yield encode(fault?.kind === "no-trailing-blank-line" && last ? event.replace(/\n+$/, "") : event)
  }
}

/** How many events of a fixture's stream come before its first `finish_reason` (all of them when none has one). */
export const eventsBeforeFinish = (events: ReadonlyArray<string>): number => {
  const at = parsedChunks(events).findIndex(hasFinish)
  return at < 0 ? events.length : at
}

/**
 * The bytes of the steps re-cut into pieces of `size` bytes, across event
 * boundaries and through multi-byte characters; a control step first flushes
 * what is pending.
 */
export function* splitBytes(steps: Iterable<StreamStep>, size: number): Generator<StreamStep, void> {
  const width = Math.max(1, Math.floor(size))
  let pending: Uint8Array = new Uint8Array(0)
  for (const step of steps) {
    if (typeof step === "string" || isWait(step)) {
      if (pending.length > 0) yield pending
      pending = new Uint8Array(0)
      yield step
      continue
    }
    const bytes = pending.length === 0 ? step : concatBytes([pending, step])
    let offset = 0
    for (; offset + width <= bytes.length; offset += width) yield bytes.subarray(offset, offset + width)
    pending = bytes.subarray(offset)
  }
  if (pending.length > 0) yield pending
}
