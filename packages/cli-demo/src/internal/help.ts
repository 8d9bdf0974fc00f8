// `--help`: one page per command, laid out here rather than by @effect/cli,
// whose page repeats a line about each option's type ("A user-defined piece of
// text.") above its description and lists the usage as `$ chat ...`. The
// arguments and options still come from the command's own HelpDoc, so each is
// described once, where it is defined. The pages are plain data: the build
// writes them to dist/help.json, and bin.ts prints `--help` from there without
// loading the command.
import type * as HelpDoc from "@effect/cli/HelpDoc"
import type * as Span from "@effect/cli/HelpDoc/Span"

/** An argument or an option: how it is written, and what it does. */
export type Entry = readonly [term: string, description: string]

export interface Page {
  /** `easychat chat [options] [<prompt>...]`. */
  readonly usage: string
  readonly description: string
  readonly commands?: ReadonlyArray<Entry>
  readonly arguments?: ReadonlyArray<Entry>
  readonly options: ReadonlyArray<Entry>
  /** A comment line and the command it explains. */
  readonly examples: ReadonlyArray<readonly [comment: string, command: string]>
  readonly exitCodes: ReadonlyArray<readonly [code: number, meaning: string]>
  /** A last line, such as where to read more. */
  readonly note?: string
}

const text = (span: Span.Span): string => {
  switch (span._tag) {
    case "Text":
    case "URI":
      return span.value
    case "Sequence":
      return text(span.left) + text(span.right)
    default:
      return text(span.value)
  }
}

const paragraphs = (doc: HelpDoc.HelpDoc): Array<string> => {
  switch (doc._tag) {
    case "Paragraph":
      return [text(doc.value)]
    case "Sequence":
      return [...paragraphs(doc.left), ...paragraphs(doc.right)]
    case "Enumeration":
      return doc.elements.flatMap(paragraphs)
    case "DescriptionList":
      return doc.definitions.flatMap(([span, block]) => [text(span), ...paragraphs(block)])
    default:
      return []
  }
}

/**
 * The entries listed under a section of a command's HelpDoc (`ARGUMENTS`,
 * `OPTIONS`). @effect/cli starts each description with a paragraph on its
 * type ("An integer."), which the term already says: it is left out, and its
 * closing notes are shortened ("This setting is optional." says nothing here).
 */
export const section = (doc: HelpDoc.HelpDoc, title: string): Array<Entry> => {
  const entries: Array<Entry> = []
  let current = ""
  const walk = (doc: HelpDoc.HelpDoc): void => {
    if (doc._tag === "Sequence") {
      walk(doc.left)
      walk(doc.right)
    } else if (doc._tag === "Header") {
      current = text(doc.value)
    } else if (doc._tag === "DescriptionList" && current === title) {
      for (const [span, block] of doc.definitions) entries.push(entry(text(span), paragraphs(block).slice(1)))
    }
  }
  walk(doc)
  return entries
}

const entry = (term: string, lines: ReadonlyArray<string>): Entry => {
  const repeated = term.endsWith("...")
  let name = repeated ? term.slice(0, -3) : term
  if (name.startsWith("(") && name.endsWith(")")) name = name.slice(1, -1)
  name = name.replace(/ \| /g, "|")
  // An argument says it is repeatable with `...`, an option in words.
  const argument = name.startsWith("<")
  const notes = lines.flatMap((line): Array<string> => {
    if (line === "This setting is optional.") return []
    const fallback = /^This setting is optional\. Defaults to: (.*)$/.exec(line)
    if (fallback !== null) return [`Default: ${fallback[1]}.`]
    if (/may be repeated zero or more times\.$/.test(line)) {
      return argument || lines.some((l) => /\brepeat/i.test(l) && l !== line) ? [] : ["Repeatable."]
    }
    return [line]
  })
  return [argument && repeated ? `${name}...` : name, notes.join(" ")]
}

/** `text` in lines of at most `width` characters (a longer word keeps its own line), each after `indent`. */
export const wrap = (text: string, width: number, indent: string): Array<string> => {
  const lines: Array<string> = []
  let line = ""
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line)
      line = word
    } else {
      line = line === "" ? word : `${line} ${word}`
    }
  }
  if (line !== "") lines.push(indent + line)
  return lines
}

/** The page as text for a terminal `width` columns wide; `heading` styles the section titles. */
export const render = (page: Page, width: number, heading: (title: string) => string = (t) => t): string => {
  const out: Array<string> = []
  const block = (title: string, lines: ReadonlyArray<string>) => {
    if (lines.length === 0) return
    out.push(heading(title), ...lines, "")
  }
  const list = (entries: ReadonlyArray<Entry>): Array<string> =>
    entries.flatMap(([term, description]) => [`  ${term}`, ...wrap(description, width, "      ")])
  block("USAGE", [`  ${page.usage}`])
  out.push(...wrap(page.description, width, ""), "")
  if (page.commands !== undefined) {
    const column = Math.max(...page.commands.map(([name]) => name.length)) + 4
    block(
      "COMMANDS",
      page.commands.flatMap(([name, description]) => {
        const [first = "", ...rest] = wrap(description, width, " ".repeat(column))
        return [`  ${name.padEnd(column - 2)}${first.trimStart()}`, ...rest]
      })
    )
  }
  block("ARGUMENTS", list(page.arguments ?? []))
  block("OPTIONS", list(page.options))
  block(
    "EXAMPLES",
    page.examples.flatMap(([comment, command], i) => [...(i > 0 ? [""] : []), `  # ${comment}`, `  ${command}`])
  )
  block(
    "EXIT CODES",
    page.exitCodes.map(([code, meaning]) => `  ${String(code).padStart(3)}  ${meaning}`)
  )
  if (page.note !== undefined) out.push(...wrap(page.note, width, ""), "")
  return `${out.join("\n").trimEnd()}\n`
}

/** Every page (`easychat` for the root's) and the version: what `--help` and `--version` print. */
export interface Pages {
  readonly version: string
  readonly pages: Readonly<Record<string, Page>>
}

/**
 * What `argv` (without runtime and script) asks of the command itself:
 * `--help` or `-h` (the page of the command named first, else the root's),
 * no arguments at all (the root's page), or `--version`. Words after `--`
 * are a prompt.
 */
export const requested = (argv: ReadonlyArray<string>): { readonly help: string } | "version" | undefined => {
  const end = argv.indexOf("--")
  const args = end < 0 ? argv : argv.slice(0, end)
  if (argv.length === 0) return { help: "easychat" }
  if (args.includes("--help") || args.includes("-h")) return { help: args[0] ?? "easychat" }
  if (args.includes("--version")) return "version"
  return undefined
}

/** Answers what `requested` found on stdout; `heading` styles the section titles. */
export const print = (
  { pages, version }: Pages,
  asked: { readonly help: string } | "version",
  heading?: (title: string) => string
): void => {
  if (asked === "version") {
    process.stdout.write(`${version}\n`)
    return
  }
  const page = Object.hasOwn(pages, asked.help) ? pages[asked.help]! : pages.easychat!
  process.stdout.write(render(page, Math.min(process.stdout.columns || 80, 100), heading))
}
