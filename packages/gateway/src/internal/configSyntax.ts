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
    else text = text.replace(/^Expected (.*), actual (.*)$/s, "must be $1 (got $2)")
    out.push({ path, rule: text })
  }
  return out
}

/** Line and column (from 1) of an offset. */
const lineOf = (text: string, offset: number) => {
  const before = text.slice(0, offset).split("\n")
  return `line ${before.length}, column ${before.at(-1)!.length + 1}`
}

/** The value of YAML or JSON text; an issue with its line and column when it does not parse. */
export const syntax = (text: string, format: Format): Either.Either<unknown, Issue> => {
  if (format === "json") {
    try {
      return Either.right(JSON.parse(text))
    } catch (error) {
      const offset = /position (\d+)/.exec(String((error as Error).message))
      const where = offset === null ? "" : `${lineOf(text, Number(offset[1]))}: `
      return Either.left({ path: "", rule: `${where}not valid JSON (${(error as Error).message})` })
    }
  }
  const document = YAML.parseDocument(text)
  const first = document.errors[0]
  if (first !== undefined) {
    const at = first.linePos?.[0]
    const where = at === undefined ? "" : `line ${at.line}, column ${at.col}: `
    const what = first.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")
    return Either.left({ path: "", rule: `${where}not valid YAML (${what})` })
  }
  return Either.right(document.toJS())
}
