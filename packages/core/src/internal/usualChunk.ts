// The usual chunk, `{..., "choices": [{..., "delta": {..., "content": "text", ...}, ...}], ...}`
// with no error, no usage, no finish reason, choice index 0 and only plain values beside, is
// read by one regular expression: about 3× faster than JSON.parse on such a
// chunk, and it builds no objects. So is the usual reasoning chunk, the same
// with `"reasoning_content": "text"` (DeepSeek, vLLM) or `"reasoning": "text"`
// (Ollama, OpenRouter) instead, its content `null` or `""`. The expression
// only matches valid JSON (the grammar of RFC 8259 for strings, numbers and
// whitespace; keys without escapes; each special key at most once), so what
// it returns is what JSON.parse would give; anything else goes to JSON.parse.
// Fields that carry something besides the one text (another text, tool calls,
// a refusal, logprobs, another choice) are special: they may only be `null` here.
const WS = "[ \\t\\n\\r]*"
const CHAR = '[^"\\\\\\x00-\\x1f]'
const STRING = `"${CHAR}*(?:\\\\(?:["\\\\/bfnrt]|u[0-9a-fA-F]{4})${CHAR}*)*"`
const SCALAR = `(?:${STRING}|-?(?:0|[1-9][0-9]*)(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)`
/** A key other than `special`, without escapes, and a scalar value. */
const plain = (special: string) => `(?:(?!"(?:${special})")"${CHAR}*"${WS}:${WS}${SCALAR})`
/** `items` with `special` exactly once among them. */
const around = (item: string, special: string) => `(?:${item}${WS},${WS})*${special}(?:${WS},${WS}${item})*`
/** Keys that must be `null` for the usual chunk (`names` joined by `|`). */
const nullOnly = (names: string) => `"(?:${names})"${WS}:${WS}null`
const KEYS = [
  "content",
  "reasoning_content",
  "reasoning",
  "reasoning_details",
  "refusal",
  "tool_calls",
  "function_call"
]
/** A field of a delta whose one text is `key`'s: every other special key `null`, and a reasoning chunk's content `""` too. */
const deltaItem = (key: string) => {
  const others = KEYS.filter((k) => k !== key).join("|")
  const empty = key === "content" ? "" : `|"content"${WS}:${WS}""`
  return `(?:${plain(KEYS.join("|"))}|${nullOnly(others)}${empty})`
}
/** A delta whose one text is `key`'s (captured). */
const textDelta = (key: string) => `\\{${WS}${around(deltaItem(key), `"${key}"${WS}:${WS}(${STRING})`)}${WS}\\}`
const DELTA = `(?:${textDelta("content")}|${textDelta("reasoning_content")}|${textDelta("reasoning")})`
const CHOICE_ITEM = `(?:${plain("delta|finish_reason|index|logprobs")}|${nullOnly("finish_reason|logprobs")}|"index"${WS}:${WS}0)`
const CHOICE = `\\{${WS}${around(CHOICE_ITEM, `"delta"${WS}:${WS}${DELTA}`)}${WS}\\}`
const CHUNK_ITEM = `(?:${plain("choices|error|usage")}|"(?:error|usage)"${WS}:${WS}null)`
const USUAL_CHUNK_SOURCE = `^${WS}\\{${WS}${around(CHUNK_ITEM, `"choices"${WS}:${WS}\\[${WS}${CHOICE}${WS}\\]`)}${WS}\\}${WS}$`
const USUAL_CHUNK = new RegExp(USUAL_CHUNK_SOURCE)
// The same, with the indices of its groups (where the text starts: see `knownPrefix`), at about twice the cost.
const USUAL_CHUNK_INDICES = new RegExp(USUAL_CHUNK_SOURCE, "d")
/**
 * From a usual chunk's text (`key`'s string, captured) to its end: the rest of
 * its delta, of its choice, of the chunk (USUAL_CHUNK's tail, read at a
 * position: sticky).
 */
const textToEnd = (key: string) =>
  new RegExp(
    `(${STRING})(?:${WS},${WS}${deltaItem(key)})*${WS}\\}` +
      `(?:${WS},${WS}${CHOICE_ITEM})*${WS}\\}${WS}\\]` +
      `(?:${WS},${WS}${CHUNK_ITEM})*${WS}\\}${WS}$`,
    "y"
  )
/** By group: 1 content, 2 `reasoning_content`, 3 `reasoning`. */
const TEXT_TO_END = [undefined, textToEnd("content"), textToEnd("reasoning_content"), textToEnd("reasoning")]
// What any usual chunk holds: its text key with a string value. After a chunk
// that was not usual (a stream of tool-call fragments comes in runs), a chunk
// without it skips the expression, which would fail late, after backtracking
// through every level; in a run of usual chunks the check is not made (it
// costs about half as much as the expression's match).
const TEXT_KEY = new RegExp(`"(?:content|reasoning_content|reasoning)"${WS}:${WS}"`)
let lastWasUsual = true
// Longer chunks go to JSON.parse: the per-call saving no longer matters, and
// the expression's backtracking state grows with the number of escapes.
const USUAL_CHUNK_CHARS = 4096

// A stream's usual chunks are mostly alike but for their text (id, created, model, the choice's index,
// ...): the last usual chunk's text before its text literal, and the literal's group, are kept (for the
// process, not per stream: any chunk may use them, as the check below holds for any text). A chunk
// that starts with that prefix is read from there by USUAL_CHUNK's tail alone. The prefix was read by
// USUAL_CHUNK up to the literal (each token of it whole: it ends with `"key":` and spaces), so when the
// tail matches from there, USUAL_CHUNK matches the whole chunk; and a delta matches at most one of its
// three alternatives (each needs its own key a string and the other two absent or `null`), so
// USUAL_CHUNK's group is this one, the same literal. When the tail does not match, USUAL_CHUNK still may
// (a content `""` or `null` beside a reasoning text): it reads the chunk. A third less per chunk (0.21 →
// 0.14 µs on section 7's reply). The prefix is a slice of its chunk's text: it keeps one read's text alive.
// A chunk whose text is `""` (a stream's opening `{"role":"assistant","content":""}`) leaves the prefix as
// it was: its own prefix is not the one of the chunks that follow.
let knownPrefix = ""
let knownGroup = 0

/**
 * A kept prefix's back-off. `hits`: chunks read by the tail since the prefix was taken; with none, prefixes
 * change from chunk to chunk (a field before the choices that does), so the next ones (`skip` of them) are
 * read by the whole expression without its indices: 16, then twice as many each time the next prefix is
 * read by none, up to 1,024 (`next`).
 */
interface Backoff {
  hits: number
  skip: number
  next: number
}
const makeBackoff = (): Backoff => ({ hits: 0, skip: 0, next: 16 })

/** A new prefix is taken (`replacing`: another was kept). */
const retake = (backoff: Backoff, replacing: boolean): void => {
  if (replacing && backoff.hits === 0) {
    backoff.skip = backoff.next
    backoff.next = Math.min(backoff.next * 2, 1024)
  } else backoff.next = 16
  backoff.hits = 0
}

const usualBackoff = makeBackoff()
// Chunks read by the tail alone, for tests: a shortcut that never applies would go unseen otherwise.
let tailReads = 0

/** How many chunks were read by the expression's tail alone since `forgetKnownPrefix` (for tests). */
export const readByTail = (): number => tailReads

/** Forgets the last usual chunk's prefix and starts over (for tests). */
export const forgetKnownPrefix = (): void => {
  knownPrefix = ""
  knownGroup = 0
  Object.assign(usualBackoff, makeBackoff())
  tailReads = 0
  lastWasUsual = true
}

/** Group 1 a usual chunk's content, or 2 its `reasoning_content`, or 3 its `reasoning` (a JSON string literal). */
export type UsualMatch = ReadonlyArray<string | undefined>

/** The match of a usual chunk: group 1 its content, or 2 its `reasoning_content`, or 3 its `reasoning`; `null` when not one. */
export const matchUsual = (data: string): UsualMatch | null => {
  if (data.length > USUAL_CHUNK_CHARS || (!lastWasUsual && !TEXT_KEY.test(data))) return null
  if (usualBackoff.skip > 0) {
    usualBackoff.skip--
    const match = USUAL_CHUNK.exec(data)
    lastWasUsual = match !== null
    return match
  }
  // Not `startsWith`: optimized code compared it a character at a time (3× the whole match's cost).
  if (knownGroup !== 0 && data.slice(0, knownPrefix.length) === knownPrefix) {
    const tail = TEXT_TO_END[knownGroup]!
    tail.lastIndex = knownPrefix.length
    const literal = tail.exec(data)?.[1]
    if (literal !== undefined) {
      lastWasUsual = true
      usualBackoff.hits++
      tailReads++
      const match: Array<string | undefined> = [data, undefined, undefined, undefined]
      match[knownGroup] = literal
      return match
    }
  }
  const match = USUAL_CHUNK_INDICES.exec(data)
  lastWasUsual = match !== null
  if (match === null) return match
  const group = match[1] !== undefined ? 1 : match[2] !== undefined ? 2 : 3
  if (match[group] === '""') return match
  retake(usualBackoff, knownGroup !== 0)
  knownGroup = group
  knownPrefix = data.slice(0, match.indices![group]![0])
  return match
}

// The usual tool-call fragment: a chunk as the usual one whose delta's special key is `tool_calls`,
// one call `{"index":N,"function":{"arguments":"…"}}` with nothing else (a call's first chunk, with its
// `id`, `type` and `name`, goes to JSON.parse), every other special key `null` (content `""` too). The
// same grammar, so the same answer as JSON.parse or none. Fragments are most of a tool-call stream's
// chunks, and JSON.parse of each was its largest cost: with the prefix below, `stepOf` on section 8's
// tool-call chunks went from 2.0 to 0.25 µs a chunk, its decode path from 0.34–0.43 to 1.07–1.58 M
// chunks/s (1 KiB–64 KiB reads), the facade end to end from 2.3–2.4× to 4.6–4.9× the openai client.
const FRAGMENT_ITEM = `(?:${plain(KEYS.join("|"))}|${nullOnly(KEYS.filter((k) => k !== "tool_calls").join("|"))}|"content"${WS}:${WS}"")`
// Group 1 the call's index (an integer as JSON.parse reads it: no fraction, no exponent), 2 its arguments.
const FRAGMENT =
  `"tool_calls"${WS}:${WS}\\[${WS}\\{${WS}"index"${WS}:${WS}(0|[1-9][0-9]{0,8})${WS},${WS}` +
  `"function"${WS}:${WS}\\{${WS}"arguments"${WS}:${WS}(${STRING})${WS}\\}${WS}\\}${WS}\\]`
const FRAGMENT_DELTA = `\\{${WS}${around(FRAGMENT_ITEM, FRAGMENT)}${WS}\\}`
const FRAGMENT_CHOICE = `\\{${WS}${around(CHOICE_ITEM, `"delta"${WS}:${WS}${FRAGMENT_DELTA}`)}${WS}\\}`
const FRAGMENT_CHUNK_SOURCE = `^${WS}\\{${WS}${around(CHUNK_ITEM, `"choices"${WS}:${WS}\\[${WS}${FRAGMENT_CHOICE}${WS}\\]`)}${WS}\\}${WS}$`
const FRAGMENT_CHUNK = new RegExp(FRAGMENT_CHUNK_SOURCE)
const FRAGMENT_CHUNK_INDICES = new RegExp(FRAGMENT_CHUNK_SOURCE, "d")
/** From a fragment's arguments to its end: FRAGMENT_CHUNK's tail (sticky), as `textToEnd`. */
const FRAGMENT_TO_END = new RegExp(
  `(${STRING})${WS}\\}${WS}\\}${WS}\\](?:${WS},${WS}${FRAGMENT_ITEM})*${WS}\\}` +
    `(?:${WS},${WS}${CHOICE_ITEM})*${WS}\\}${WS}\\]` +
    `(?:${WS},${WS}${CHUNK_ITEM})*${WS}\\}${WS}$`,
  "y"
)
// What any fragment holds; a chunk without it skips the expression (see TEXT_KEY).
const ARGUMENTS_KEY = new RegExp(`"arguments"${WS}:${WS}"`)
// As for the usual chunk (see `knownPrefix`): the last fragment's text before its arguments, which holds
// the call's index, so a fragment that starts with it is read by the tail alone; and as its prefix is
// checked before the usual chunk's expression, a run of fragments skips that too (0.76 → 0.25 µs a
// chunk; without it the decode path read 0.60–0.87 M chunks/s). Fragments whose prefixes change from one
// to the next are read without the indices, with the same back-off (`Backoff`). The prefix is a
// slice of its chunk's text: it keeps one read's text alive. It is checked only right after a fragment:
// a text chunk checked against it cost 0.04 µs more (0.20 → 0.24 µs, a fifth) after a tool-call stream.
let fragmentPrefix = ""
let lastWasFragment = false
let fragmentIndex = 0
const fragmentBackoff = makeBackoff()
let fragmentReads = 0
let fragmentTailReads = 0

/** How many chunks were read as fragments, and how many of them by the tail alone (for tests). */
export const readAsFragment = (): { readonly all: number; readonly byTail: number } => ({
  all: fragmentReads,
  byTail: fragmentTailReads
})

/** Forgets the last fragment's prefix and starts over (for tests). */
export const forgetFragmentPrefix = (): void => {
  fragmentPrefix = ""
  lastWasFragment = false
  Object.assign(fragmentBackoff, makeBackoff())
  fragmentReads = 0
  fragmentTailReads = 0
}

/** A fragment's call index and arguments (a JSON string literal). */
export type FragmentMatch = readonly [index: number, literal: string]

/** The fragment that starts as the last one read did, by its tail alone; `null` when not one (try `matchFragment`). */
export const matchKnownFragment = (data: string): FragmentMatch | null => {
  if (!lastWasFragment) return null
  lastWasFragment = false
  if (data.length > USUAL_CHUNK_CHARS || data.slice(0, fragmentPrefix.length) !== fragmentPrefix) return null
  FRAGMENT_TO_END.lastIndex = fragmentPrefix.length
  const literal = FRAGMENT_TO_END.exec(data)?.[1]
  if (literal === undefined) return null
  lastWasFragment = true
  fragmentBackoff.hits++
  fragmentReads++
  fragmentTailReads++
  return [fragmentIndex, literal]
}

/** The usual tool-call fragment's call index and arguments, or `null` when `data` is not one. */
export const matchFragment = (data: string): FragmentMatch | null => {
  if (data.length > USUAL_CHUNK_CHARS || !ARGUMENTS_KEY.test(data)) return null
  if (fragmentBackoff.skip > 0) {
    const match = FRAGMENT_CHUNK.exec(data)
    if (match === null) return null
    fragmentBackoff.skip--
    fragmentReads++
    lastWasFragment = true
    return [Number(match[1]), match[2]!]
  }
  const match = FRAGMENT_CHUNK_INDICES.exec(data)
  if (match === null) return null
  retake(fragmentBackoff, fragmentPrefix !== "")
  fragmentIndex = Number(match[1])
  fragmentPrefix = data.slice(0, match.indices![2]![0])
  fragmentReads++
  lastWasFragment = true
  return [fragmentIndex, match[2]!]
}

/** A JSON string literal's value (without JSON.parse when it has no escape). */
export const stringOf = (literal: string): string =>
  literal.includes("\\") ? (JSON.parse(literal) as string) : literal.slice(1, -1)

/** The content of a usual text chunk (see USUAL_CHUNK), or `undefined` when `data` is not one. */
export const usualContent = (data: string): string | undefined => {
  const match = matchUsual(data)
  return match === null || match[1] === undefined ? undefined : stringOf(match[1])
}

/** The reasoning of a usual reasoning chunk (see USUAL_CHUNK), or `undefined` when `data` is not one. */
export const usualReasoning = (data: string): string | undefined => {
  const match = matchUsual(data)
  const literal = match?.[2] ?? match?.[3]
  return literal === undefined ? undefined : stringOf(literal)
}
