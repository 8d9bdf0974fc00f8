// The README's table of cases is the cases: regenerate it with UPDATE_README=1.
import { readFileSync, writeFileSync } from "node:fs"
import { describe, expect, it } from "vitest"
import { cases } from "../src/cases.js"
import { begin, end, render } from "../src/table.js"

const path = new URL("../README.md", import.meta.url)

// Markdown formatters pad table cells and rulers: compare cells, not their padding.
const normalise = (markdown: string) =>
  markdown
    .split("\n")
    .map((line) =>
      line.startsWith("|")
        ? line
            .split(/(?<!\\)\|/)
            .map((cell) => cell.trim().replace(/^-{3,}$/, "---"))
            .join("|")
        : line.trimEnd()
    )
    .join("\n")

describe("README", () => {
  it("lists every case as src/cases.ts defines it", () => {
    const readme = readFileSync(path, "utf8")
    const from = readme.indexOf(begin)
    const to = readme.indexOf(end)
    expect(from, "the README has the generated-table markers").toBeGreaterThanOrEqual(0)
    expect(to).toBeGreaterThan(from)
    const table = render()
    if (process.env.UPDATE_README) {
      writeFileSync(path, readme.slice(0, from) + table + readme.slice(to + end.length))
      return
    }
    expect(normalise(readme.slice(from, to + end.length))).toBe(normalise(table))
  })

  it("has unique case names", () => {
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length)
  })
})
