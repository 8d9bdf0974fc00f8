// A configuration's text as a value Schema can check, and Schema's errors as issues a person can act on:
// each with its place in the file (`routes[1].servers[0].weight`) and the rule it breaks.

import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as YAML from "yaml"
import type { Format, Issue } from "../Config.js"

const pathText = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) => (typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`),
    ""
  )

/** The closest of `names` to `name`, if it is a likely typo. */
const closest = (name: string, names: ReadonlyArray<string>): string | undefined => {
  const distance = (a: string, b: string) => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i)
    for (let i = 1; i <= a.length; i++) {
      let previous = row[0]!
      row[0] = i
      for (let j = 1; j <= b.length; j++) {
        const current = row[j]!
        row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
        previous = current
      }
    }
    return row[b.length]!
  }
  let best: string | undefined
  let bestDistance = 3
  for (const candidate of names) {
    const d = distance(name.toLowerCase(), candidate.toLowerCase())
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best
}

/** Names of fields whose values may be secrets: they are never echoed in an error. */
const SECRET_NAME = /key|token|secret|passw|auth|cookie|code|credential|headers/i

/** Whether text holds what looks like a key: 16 or more letters and digits in a row, digits among them
 * (`openssl rand -hex 24`, `sk-…`, base64), which model names such as `Qwen2.5-Coder-32B-Instruct` are not. */
const keyLike = (text: string): boolean => (text.match(/[A-Za-z0-9+=]{16,}/g) ?? []).some((run) => /\d/.test(run))

/** The longest value an error echoes. */
const ECHO_MAX = 40

/**
 * A value of the file as an error may echo it: not at all under `headers` or a field whose name suggests a
 * secret, nor when it looks like a key; else at most 40 characters. `undefined`: do not echo it.
 */
export const echo = (value: string, path: ReadonlyArray<PropertyKey> = []): string | undefined => {
  if (path.some((key) => typeof key === "string" && SECRET_NAME.test(key))) return undefined
  if (keyLike(value) || /\p{Cc}/u.test(value)) return undefined
  return value.length > ECHO_MAX ? `${value.slice(0, ECHO_MAX - 1)}…` : value
}

/** Schema's "Expected …, actual …" as a rule, echoing the actual value only when `echo` allows it. */
const expectedText = (message: string, path: ReadonlyArray<PropertyKey>): string => {
  const expected = /^Expected (.*), actual (.*)$/s.exec(message)
  if (expected === null) {
    // Any other message that quotes the value: keep the rule, drop the value.
    const at = message.search(/,? actual /)
    return at < 0 ? message : message.slice(0, at)
  }
  const actual = expected[2]!
  const shown = /^[[{]/.test(actual) ? undefined : echo(actual, path)
  const got =
    shown !== undefined
      ? shown
      : actual.startsWith("[")
        ? "a list"
        : actual.startsWith("{")
          ? "a map"
          : "a value not shown here"
  return `must be ${expected[1]} (got ${got})`
}

/** Schema's issues as one line each, where a union's members agree only on the deepest, most precise one. */
export const issuesOf = (error: ParseResult.ParseError): Array<Issue> => {
  const raw = ParseResult.ArrayFormatter.formatErrorSync(error)
  const out: Array<Issue> = []
  const seen = new Set<string>()
  for (const issue of raw) {
    const path = pathText(issue.path)
    // A union member that failed at this place while another got further: the deeper issue says more.
    const deeper = raw.some(
      (other) => other.path.length > issue.path.length && issue.path.every((key, i) => other.path[i] === key)
    )
    if (deeper || seen.has(path)) continue
    seen.add(path)
    let text = issue.message
    if (issue._tag === "Unexpected") {
      const known = [...issue.message.matchAll(/"([^"]+)"/g)].map((m) => m[1]!)
      const key = String(issue.path.at(-1))
      const guess = closest(key, known)
      text = `is not a known key${guess === undefined ? "" : ` (did you mean ${guess}?)`}; known keys: ${known.join(", ")}`
    } else if (issue._tag === "Missing") text = "is required"
    else text = expectedText(text, issue.path)
    out.push({ path, rule: text })
  }
  return out
}

/** Line and column (from 1) of an offset. */
const lineOf = (text: string, offset: number) => {
  const before = text.slice(0, offset).split("\n")
  return `line ${before.length}, column ${before.at(-1)!.length + 1}`
}

/**
 * Where JSON text that `JSON.parse` refused goes wrong, and a rule of JSON it breaks in words of ours:
 * Node's own message quotes the text around the error, and the text may hold a key.
 */
const jsonError = (text: string): { readonly offset: number; readonly rule: string } | undefined => {
  let i = 0
  const fail = (rule: string, at = i): never => {
    throw { offset: at, rule }
  }
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++
  }
  const end = () => (i >= text.length ? fail("the text ends before the value does") : undefined)
  const word = (w: string) => {
    if (text.startsWith(w, i)) i += w.length
    else fail("unexpected character: a value is a string, number, object, array, true, false or null")
  }
  const string = () => {
    i++
    for (;;) {
      if (i >= text.length) fail("a string is not closed with a double quote")
      const c = text.charCodeAt(i)
      if (c === 0x22) return void i++
      if (c < 0x20) fail("a control character in a string (line breaks and tabs in a string must be escaped)")
      if (c === 0x5c) {
        const next = text[i + 1]
        if (next !== undefined && '"\\/bfnrt'.includes(next)) i += 2
        else if (next === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) i += 6
        else fail("an invalid escape in a string")
      } else i++
    }
  }
  const number = () => {
    const match = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i))
    if (match === null || /^[.eE\d]/.test(text.slice(i + match[0].length)) || match[0] === "-") {
      fail("a number is not written as JSON writes numbers")
    }
    i += match![0].length
  }
  const value = (depth: number): void => {
    if (depth > 1000) fail("values are nested too deeply")
    space()
    end()
    const c = text[i]!
    if (c === "{") {
      i++
      space()
      if (text[i] === "}") return void i++
      for (;;) {
        space()
        end()
        if (text[i] !== '"') fail("expected a property name in double quotes")
        string()
        space()
        end()
        if (text[i] !== ":") fail("expected : after a property name")
        i++
        value(depth + 1)
        space()
        end()
        if (text[i] === "}") return void i++
        if (text[i] !== ",") fail("expected , or } after a property's value")
        i++
      }
    }
    if (c === "[") {
      i++
      space()
      if (text[i] === "]") return void i++
      for (;;) {
        value(depth + 1)
        space()
        end()
        if (text[i] === "]") return void i++
        if (text[i] !== ",") fail("expected , or ] after an item of a list")
        i++
      }
    }
    if (c === '"') string()
    else if (c === "-" || (c >= "0" && c <= "9")) number()
    else if (c === "t") word("true")
    else if (c === "f") word("false")
    else if (c === "n") word("null")
    else fail("unexpected character: a value is a string, number, object, array, true, false or null")
  }
  try {
    value(0)
    space()
    if (i < text.length) fail("unexpected text after the end of the value")
    return undefined
  } catch (error) {
    if (typeof error === "object" && error !== null && "rule" in error) return error as { offset: number; rule: string }
    throw error
  }
}

/** What YAML errors say, in rules of ours where the `yaml` package's message would quote the text. */
const YAML_RULES: Readonly<Record<string, string>> = {
  ALIAS_PROPS: "an alias must not have an anchor or a tag",
  BAD_ALIAS: "an alias or anchor is not valid",
  BAD_DIRECTIVE: "a directive is not valid",
  BAD_DQ_ESCAPE: "an invalid escape in a double-quoted string",
  BAD_INDENT: "the indentation is not consistent",
  BAD_PROP_ORDER: "anchors and tags must come after the indicator",
  BAD_SCALAR_START: "a plain value starts with a character that is reserved (quote the value)",
  BLOCK_AS_IMPLICIT_KEY: "a block collection is used as a key",
  BLOCK_IN_FLOW: "block collections are not allowed within flow collections",
  DUPLICATE_KEY: "map keys must be unique",
  KEY_OVER_1024_CHARS: "a key is longer than 1024 characters",
  MISSING_CHAR: "a character is missing (a quote, a comma, a colon or a closing bracket)",
  MULTILINE_IMPLICIT_KEY: "implicit keys need to be on a single line",
  MULTIPLE_ANCHORS: "a node can have at most one anchor",
  MULTIPLE_DOCS: "the file holds more than one document",
  MULTIPLE_TAGS: "a node can have at most one tag",
  TAB_AS_INDENT: "tabs are not allowed as indentation",
  TAG_RESOLVE_FAILED: "a tag cannot be resolved",
  UNEXPECTED_TOKEN: "unexpected text"
}

/**
 * The `yaml` package's messages that quote nothing of the text, kept as they are (better than ours); any
 * other message (`Unexpected sk-… in …`, `Invalid escape sequence …`, a code frame) gives way to ours.
 */
const YAML_SAFE = [
  /^(Flow map|Flow sequence) must end with a [\]}]$/,
  /^(Flow map|Flow sequence) in block collection must be sufficiently indented and end with a [\]}]$/,
  /^Unexpected (scalar|[a-z]+-(map|seq|collection|scalar)|comment|space|newline) at node end$/,
  /^(Missing , between|Missing , or : between|Missing space after : in|Unexpected , in|Unexpected empty item in) (flow map|flow sequence)$/,
  /^(All (mapping|sequence) items must start at the same column|Map keys must be unique|Tabs are not allowed as indentation|Implicit keys need to be on a single line|Implicit map keys need to be followed by map values|Nested mappings are not allowed in compact mappings|A block sequence may not be used as an implicit map key|Block collections are not allowed within flow collections|Missing closing ["']quote|Sequence item without - indicator|Comments must be separated from other tokens by white space characters|A node can have at most one (anchor|tag)|Block scalar values in collections must be indented)$/
]

const yamlRule = (error: YAML.YAMLError): string => {
  const first = error.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")
  return YAML_SAFE.some((safe) => safe.test(first)) ? first : (YAML_RULES[error.code] ?? "a syntax error")
}

/** The value of YAML or JSON text; an issue with its line and column when it does not parse. */
export const syntax = (text: string, format: Format): Either.Either<unknown, Issue> => {
  if (format === "json") {
    try {
      return Either.right(JSON.parse(text))
    } catch (error) {
      // Never Node's message: it quotes the text around the error.
      const found = jsonError(text)
      const offset = found?.offset ?? /position (\d+)/.exec(String((error as Error).message))?.[1]
      const where = offset === undefined ? "" : `${lineOf(text, Number(offset))}: `
      return Either.left({ path: "", rule: `${where}not valid JSON (${found?.rule ?? "a syntax error"})` })
    }
  }
  const document = YAML.parseDocument(text)
  const first = document.errors[0]
  if (first !== undefined) {
    const at = first.linePos?.[0]
    const where = at === undefined ? "" : `line ${at.line}, column ${at.col}: `
    return Either.left({ path: "", rule: `${where}not valid YAML (${yamlRule(first)})` })
  }
  try {
    return Either.right(document.toJS())
  } catch {
    // Aliases that cannot be resolved (or too many of them): the message may name the text's anchors.
    return Either.left({ path: "", rule: "not valid YAML (its aliases cannot be resolved)" })
  }
}
