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
/** A delta whose one text is `key`'s (captured); every other special key `null`, and a reasoning chunk's content `""` too. */
const textDelta = (key: string) => {
  const others = KEYS.filter((k) => k !== key).join("|")
  const empty = key === "content" ? "" : `|"content"${WS}:${WS}""`
  return `\\{${WS}${around(`(?:${plain(KEYS.join("|"))}|${nullOnly(others)}${empty})`, `"${key}"${WS}:${WS}(${STRING})`)}${WS}\\}`
}
const DELTA = `(?:${textDelta("content")}|${textDelta("reasoning_content")}|${textDelta("reasoning")})`
const CHOICE = `\\{${WS}${around(
  `(?:${plain("delta|finish_reason|index|logprobs")}|${nullOnly("finish_reason|logprobs")}|"index"${WS}:${WS}0)`,
  `"delta"${WS}:${WS}${DELTA}`
)}${WS}\\}`
const USUAL_CHUNK = new RegExp(
  `^${WS}\\{${WS}${around(
    `(?:${plain("choices|error|usage")}|"(?:error|usage)"${WS}:${WS}null)`,
    `"choices"${WS}:${WS}\\[${WS}${CHOICE}${WS}\\]`
  )}${WS}\\}${WS}$`
)
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

/** The match of a usual chunk: group 1 its content, or 2 its `reasoning_content`, or 3 its `reasoning`; `null` when not one. */
export const matchUsual = (data: string): RegExpExecArray | null => {
  if (data.length > USUAL_CHUNK_CHARS || (!lastWasUsual && !TEXT_KEY.test(data))) return null
  const match = USUAL_CHUNK.exec(data)
  lastWasUsual = match !== null
  return match
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
