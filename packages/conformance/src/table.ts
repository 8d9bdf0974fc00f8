/**
 * The README's table of cases, rendered from the cases themselves so that the
 * two cannot drift apart (`test/readme.test.ts` checks it).
 *
 * @since 0.1.0
 */
import { apisOf, type Case, cases, forRuntime, type Runtime, runtimes } from "./cases.js"

/** The markers around the generated part of the README. @since 0.1.0 */
export const begin =
  "<!-- cases:begin (generated from src/cases.ts; UPDATE_README=1 npx vitest run test/readme.test.ts) -->"
/** @since 0.1.0 */
export const end = "<!-- cases:end -->"

const heading: Record<Runtime, string> = {
  node: "node (undici)",
  "fetch-node": "fetch on Node",
  chromium: "Chromium",
  "chromium-worker": "Chromium worker",
  bun: "Bun",
  "bun-worker": "Bun worker",
  deno: "Deno",
  "deno-worker": "Deno worker"
}

const escapePipes = (text: string) => text.replace(/\|/g, "\\|")

const cell = (c: Case, runtime: Runtime, notes: Map<string, number>): string => {
  const expected = forRuntime(c, runtime)
  if (expected === undefined) return "—"
  const mark = expected.knownBug === undefined ? "✓" : "✗ bug"
  const why = c.differs?.[runtime]?.why
  if (why === undefined) return mark
  let note = notes.get(why)
  if (note === undefined) {
    note = notes.size + 1
    notes.set(why, note)
  }
  return `${mark} ≠[${note}](#difference-${note})`
}

/**
 * The table and the list of differences, between the markers.
 * @since 0.1.0 @category rendering
 */
export const render = (): string => {
  const notes = new Map<string, number>()
  const rows = cases.map((c) => {
    const cells = runtimes.map((runtime) => cell(c, runtime, notes))
    const title = escapePipes(c.title)
    return `| \`${c.name}\` | ${c.mode} | ${title} | ${cells.join(" | ")} | ${apisOf(c).join(", ")} |`
  })
  const bugs = cases.flatMap((c) => {
    const own = c.knownBug === undefined ? [] : [`\`${c.name}\`: ${c.knownBug}.`]
    const byRuntime = runtimes.flatMap((r) => {
      const bug = c.differs?.[r]?.knownBug
      return bug === undefined ? [] : [`\`${c.name}\` on ${r}: ${bug}.`]
    })
    return [...own, ...byRuntime]
  })
  return [
    begin,
    "",
    `| case | call | what it shows | ${runtimes.map((r) => heading[r]).join(" | ")} | faces |`,
    `| --- | --- | --- | ${runtimes.map(() => "---").join(" | ")} | --- |`,
    ...rows,
    "",
    "✓ the case runs there with the common expectation; ≠ with a runtime-specific expectation or note (below);",
    "✗ bug: it states the contract and fails today because of a bug outside this package (below), so it runs as an",
    "expected failure; — it does not run there. Faces: `effect` is `EasyChat.layer` over the transport's layer,",
    "`promise` is the transport's `createClient`.",
    "",
    "### Differences by runtime",
    "",
    ...[...notes.entries()].map(
      ([why, n]) =>
        `${n}. <a id="difference-${n}"></a>${cases
          .filter((c) => runtimes.some((r) => c.differs?.[r]?.why === why))
          .map((c) => `\`${c.name}\``)
          .join(", ")} on ${runtimes.filter((r) => cases.some((c) => c.differs?.[r]?.why === why)).join(", ")}: ${why}.`
    ),
    "",
    "### Known bugs outside this package",
    "",
    ...(bugs.length === 0 ? ["None."] : bugs.map((bug) => `- ${bug}`)),
    "",
    end
  ].join("\n")
}
