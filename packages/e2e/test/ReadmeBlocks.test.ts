// The READMEs are true: every code block marked `<!-- runnable -->` in README.md
// (root and packages/*) and docs/*.md typechecks (ts) and runs to exit 0, each
// against a fresh local mirror whose address replaces `127.0.0.1:8787`. The
// convention is in docs/README.md.
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { MirrorServer } from "@easychat/testkit"
import { afterAll, describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("../../../", import.meta.url))
const e2e = fileURLToPath(new URL("../", import.meta.url))

/** Fewer marked blocks than this means the marker is no longer found: the suite must not pass empty. */
const MIN_BLOCKS = 23
/** A block runs on its own and ends within this (a server it starts must be stopped by the block). */
const BLOCK_TIMEOUT_MS = 60_000
/** How many blocks run at once (each in its own process, against its own mirror): the CI machines have 2 cores. */
const RUN_LANES = 2
/** One tsc program checks every ts block at once; on a loaded 2-core machine it may take a while. */
const TYPECHECK_TIMEOUT_MS = 3 * BLOCK_TIMEOUT_MS
/** The address blocks use for a local mirror; each run gets a fresh one in its place. */
const MIRROR = "127.0.0.1:8787"
/**
 * Where a block's files are written (and removed) under the package it runs from: inside its node_modules,
 * which git and Biome ignore and from which the package's dependencies still resolve (its own name through
 * a link made by `scratchOf`).
 */
const SCRATCH = "node_modules/.cache/readme-blocks"

interface Block {
  readonly file: string
  /** 1-based line of the opening fence. */
  readonly line: number
  readonly lang: "ts" | "sh"
  readonly code: string
}

const MARKER = /^\s*<!--\s*runnable\s*-->\s*$/
const FENCE = /^\s*(`{3,}|~{3,})\s*([\w-]*)/
const LANGS: Record<string, Block["lang"]> = {
  ts: "ts",
  typescript: "ts",
  js: "ts",
  javascript: "ts",
  sh: "sh",
  bash: "sh",
  shell: "sh"
}

/** The marked blocks of one markdown text; a marker not followed by a fence of a known language is an error. */
const blocksOf = (file: string, text: string): ReadonlyArray<Block> => {
  const lines = text.split(/\r?\n/)
  const blocks: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    if (!MARKER.test(lines[i]!)) continue
    const open = FENCE.exec(lines[i + 1] ?? "")
    if (open === null) throw new Error(`${file}:${i + 1}: <!-- runnable --> is not followed by a code fence`)
    const lang = LANGS[open[2]!.toLowerCase()]
    if (lang === undefined) throw new Error(`${file}:${i + 2}: a runnable block must be ts, js or sh, not "${open[2]}"`)
    const fence = open[1]!
    const end = lines.findIndex(
      (l, j) => j > i + 1 && l.trim().startsWith(fence) && l.trim().replaceAll(fence[0]!, "") === ""
    )
    if (end < 0) throw new Error(`${file}:${i + 2}: the runnable block's fence is never closed`)
    blocks.push({ file, line: i + 2, lang, code: lines.slice(i + 2, end).join("\n") })
    i = end
  }
  return blocks
}

/** README.md at the root and in every package, and every page of docs/. */
const markdownFiles = (): ReadonlyArray<string> => {
  const files = ["README.md"]
  for (const dir of fs.readdirSync(path.join(root, "packages")).sort()) {
    if (fs.existsSync(path.join(root, "packages", dir, "README.md"))) files.push(`packages/${dir}/README.md`)
  }
  for (const page of fs.readdirSync(path.join(root, "docs")).sort())
    if (page.endsWith(".md")) files.push(`docs/${page}`)
  return files
}

/** The packages a block imports by name (`@scope/name` or `name`), without subpaths or `node:` modules. */
const importsOf = (code: string): ReadonlyArray<string> => {
  const names = new Set<string>()
  for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"'./][^"']*)["']/g)) {
    const spec = m[1]!
    if (spec.startsWith("node:")) continue
    const parts = spec.split("/")
    names.add(spec.startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0]!)
  }
  return [...names]
}

/** Whether `name` resolves from `dir` as Node would: its own package name, or node_modules up to the root. */
const resolves = (dir: string, name: string): boolean => {
  const own = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string }
  if (own.name === name) return true
  for (let at = dir; at.startsWith(root); at = path.dirname(at)) {
    if (fs.existsSync(path.join(at, "node_modules", name))) return true
  }
  return false
}

/**
 * Where a ts block runs: its own package (so that its dependencies resolve),
 * else the e2e package (core, transports, gateway, testkit, openai), else the
 * CLI's. The first of them that resolves every import.
 */
const dirOf = (block: Block): string => {
  const own = /^packages\/([^/]+)\//.exec(block.file)
  const candidates = [
    ...(own === null ? [] : [path.join(root, "packages", own[1]!)]),
    e2e,
    path.join(root, "packages/cli-demo")
  ]
  const imports = importsOf(block.code)
  const dir = candidates.find((d) => imports.every((name) => resolves(d, name)))
  if (dir === undefined)
    throw new Error(`${block.file}:${block.line}: no package resolves all of ${imports.join(", ")}`)
  return dir
}

/** A file name that says where a block comes from: `packages_core_README.md_42`. */
const nameOf = (block: Block) => `${block.file.replaceAll("/", "_")}_${block.line}`

interface Esbuild {
  transform(code: string, options: object): Promise<{ code: string }>
}
/** esbuild as vitest's vite resolves it (the e2e package does not depend on it directly). */
const loadEsbuild = async (): Promise<Esbuild> => {
  const fromHere = createRequire(import.meta.url)
  const fromVitest = createRequire(fromHere.resolve("vitest/package.json"))
  const fromVite = createRequire(fromVitest.resolve("vite/package.json"))
  return (await import(fromVite.resolve("esbuild"))) as Esbuild
}

interface Outcome {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly timedOut: boolean
  readonly output: string
}

/** Runs a command in its own process group, killed whole when it outlives the timeout. */
const exec = (
  command: string,
  args: ReadonlyArray<string>,
  cwd: string,
  env: NodeJS.ProcessEnv,
  timeoutMs = BLOCK_TIMEOUT_MS
) =>
  new Promise<Outcome>((resolve) => {
    const child: ChildProcess = spawn(command, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] })
    let output = ""
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()))
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      try {
        process.kill(-child.pid!, "SIGKILL")
      } catch {}
    }, timeoutMs)
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, timedOut, output })
    })
  })

const scratchDirs = new Set<string>()
const links: Array<string> = []

/**
 * The scratch folder of `dir`, made once. Node finds no package scope inside node_modules, so a block's
 * import of its own package would not resolve there: a link in the folder's own node_modules points back.
 */
const scratchOf = (dir: string): string => {
  const scratch = path.join(dir, SCRATCH)
  if (scratchDirs.has(scratch)) return scratch
  const { name } = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { name: string }
  const link = path.join(scratch, "node_modules", name)
  fs.mkdirSync(path.dirname(link), { recursive: true })
  if (!fs.existsSync(link)) fs.symlinkSync(dir, link, "dir")
  links.push(link)
  scratchDirs.add(scratch)
  return scratch
}
let counter = 0

/** Runs one block with `mirror` (host:port) in place of 127.0.0.1:8787, as `EASYCHAT_MIRROR` too. */
const runBlock = async (block: Block, mirror: string): Promise<Outcome> => {
  const code = block.code.replaceAll(MIRROR, mirror)
  const env = { ...process.env, EASYCHAT_MIRROR: `http://${mirror}`, NO_COLOR: "1", FORCE_COLOR: "0" }
  if (block.lang === "sh") return exec("bash", ["-e", "-o", "pipefail", "-c", code], root, env)
  const dir = dirOf(block)
  const scratch = scratchOf(dir)
  const esbuild = await loadEsbuild()
  const js = await esbuild.transform(`${code}\nexport {}\n`, {
    loader: "ts",
    format: "esm",
    target: "node20",
    sourcefile: `${block.file}:${block.line}`
  })
  const file = path.join(scratch, `${nameOf(block)}-${++counter}.mjs`)
  fs.writeFileSync(file, js.code)
  return exec(process.execPath, [file], dir, env)
}

/** At most `n` calls of the returned function run at once; the others wait their turn, in order. */
const lanes = (n: number) => {
  let free = n
  const waiting: Array<() => void> = []
  return async <A>(f: () => Promise<A>): Promise<A> => {
    if (free > 0) free--
    else await new Promise<void>((resolve) => waiting.push(resolve))
    try {
      return await f()
    } finally {
      const next = waiting.shift()
      if (next === undefined) free++
      else next()
    }
  }
}

/** Rejects when `promise` has not settled within `ms` (timed from the call, not from when a test was queued). */
const within = <A>(ms: number, what: string, promise: Promise<A>): Promise<A> => {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done after ${ms} ms`)), ms)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}

/**
 * A block that must fail to typecheck (a misspelled option), checked in every program with the blocks: it proves
 * that tsc reports errors in the blocks' files where they are written and that they are traced back to their block.
 */
const CANARY: Block = {
  file: "typecheck-canary.md",
  line: 1,
  lang: "ts",
  code: "const options: { readonly retries?: number } = { retires: 3 }\nconsole.log(options)"
}

interface Diagnostic {
  /** The file tsc names (relative to where it ran), `undefined` for a diagnostic of no file (the config, say). */
  readonly file: string | undefined
  readonly line: number
  readonly column: number
  /** `error TS…: message`, with its indented continuation lines. */
  readonly text: string
}

/** tsc's `--pretty false` output: `file(line,col): error TS…: …` or `error TS…: …`, continuation lines indented. */
const diagnosticsOf = (output: string): ReadonlyArray<Diagnostic> => {
  const diagnostics: Array<Diagnostic> = []
  for (const raw of output.split(/\r?\n/)) {
    if (raw.trim() === "") continue
    const at = /^(.+)\((\d+),(\d+)\): (error .*)$/.exec(raw)
    const last = diagnostics.at(-1)
    if (at !== null) diagnostics.push({ file: at[1]!, line: Number(at[2]), column: Number(at[3]), text: at[4]! })
    else if (/^\s/.test(raw) && last !== undefined)
      diagnostics[diagnostics.length - 1] = { ...last, text: `${last.text}\n${raw}` }
    else diagnostics.push({ file: undefined, line: 0, column: 0, text: raw })
  }
  return diagnostics
}

/** The @types/node a package sees (a program's `types` resolve from its tsconfig): who share it, share a program. */
const nodeTypesOf = (dir: string): string => {
  try {
    const at = createRequire(path.join(dir, "package.json")).resolve("@types/node/package.json")
    return fs.realpathSync(path.dirname(at))
  } catch {
    return dir
  }
}

interface Typecheck {
  /** Each error in a block, as `README:line:column (block at line N): error TS…`; and any tsc reports of no block. */
  readonly errors: ReadonlyArray<string>
  /** What tsc said about the canary of each program (each must hold an error naming `retires`). */
  readonly canaries: ReadonlyArray<string>
}

/**
 * Typechecks every ts block in as few tsc programs as can be (one, when every package sees the same @types/node):
 * each block is written under the package it runs from, so its imports resolve from there as when it runs; tsc's
 * diagnostics are mapped back to the README line by the file's name. One program loads effect's and the packages'
 * declarations once, where a program per package loaded them again for each.
 */
const typecheck = async (those: ReadonlyArray<Block>): Promise<Typecheck> => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
  const programs = new Map<string, Array<{ readonly block: Block; readonly dir: string }>>()
  for (const block of those) {
    const dir = dirOf(block)
    const key = nodeTypesOf(dir)
    programs.set(key, [...(programs.get(key) ?? []), { block, dir }])
  }
  const errors: Array<string> = []
  const canaries: Array<string> = []
  for (const members of programs.values()) {
    const home = path.join(scratchOf(members[0]!.dir), "types")
    const byName = new Map<string, Block>()
    const files: Array<string> = []
    for (const { block, dir } of [{ block: CANARY, dir: members[0]!.dir }, ...members]) {
      const types = path.join(scratchOf(dir), "types")
      fs.mkdirSync(types, { recursive: true })
      const file = path.join(types, `${nameOf(block)}.mts`)
      fs.writeFileSync(file, `${block.code}\nexport {}\n`)
      byName.set(path.basename(file), block)
      files.push(file)
    }
    const config = {
      extends: path.relative(home, path.join(root, "tsconfig.base.json")),
      compilerOptions: {
        noEmit: true,
        types: ["node"],
        declaration: false,
        declarationMap: false,
        sourceMap: false
      },
      files
    }
    fs.writeFileSync(path.join(home, "tsconfig.json"), JSON.stringify(config))
    const outcome = await exec(
      process.execPath,
      [tsc, "-p", "tsconfig.json", "--pretty", "false"],
      home,
      process.env,
      TYPECHECK_TIMEOUT_MS
    )
    if (outcome.timedOut) errors.push(`tsc in ${home}: still running after ${TYPECHECK_TIMEOUT_MS} ms`)
    const canary: Array<string> = []
    for (const d of diagnosticsOf(outcome.output)) {
      const block = d.file === undefined ? undefined : byName.get(path.basename(d.file))
      if (block === CANARY) canary.push(d.text)
      else if (block === undefined)
        errors.push(d.file === undefined ? d.text : `${d.file}(${d.line},${d.column}): ${d.text}`)
      else errors.push(`${block.file}:${block.line + d.line}:${d.column} (block at line ${block.line}): ${d.text}`)
    }
    canaries.push(canary.join("\n"))
  }
  return { errors, canaries }
}

afterAll(() => {
  // The links first, so that removing the folders can never reach the packages they point to.
  for (const link of links) fs.rmSync(link, { force: true })
  for (const dir of scratchDirs) {
    fs.rmSync(dir, { recursive: true, force: true })
    // node_modules/.cache too, when nothing else uses it.
    if (fs.readdirSync(path.dirname(dir)).length === 0) fs.rmdirSync(path.dirname(dir))
  }
})

const blocks = markdownFiles().flatMap((file) => blocksOf(file, fs.readFileSync(path.join(root, file), "utf8")))

describe("runnable blocks", () => {
  it(`finds at least ${MIN_BLOCKS} marked blocks`, () => {
    expect(blocks.length).toBeGreaterThanOrEqual(MIN_BLOCKS)
  })

  it("reads markers, fences and their errors", () => {
    const text = [
      "<!-- runnable -->",
      "```ts",
      "const a = 1",
      "```",
      "",
      "```sh",
      "echo not marked",
      "```",
      "<!-- runnable -->",
      "````sh",
      "echo ```",
      "````"
    ].join("\n")
    expect(blocksOf("x.md", text)).toEqual([
      { file: "x.md", line: 2, lang: "ts", code: "const a = 1" },
      { file: "x.md", line: 10, lang: "sh", code: "echo ```" }
    ])
    expect(() => blocksOf("x.md", "<!-- runnable -->\ntext")).toThrow(/not followed by a code fence/)
    expect(() => blocksOf("x.md", "<!-- runnable -->\n```python\npass\n```")).toThrow(/ts, js or sh/)
    expect(() => blocksOf("x.md", "<!-- runnable -->\n```ts\nconst a = 1")).toThrow(/never closed/)
  })

  it("fails a block that throws, and one that exits non-zero", async () => {
    const thrown = await runBlock({ file: "x.md", line: 1, lang: "ts", code: 'throw new Error("drifted")' }, MIRROR)
    expect(thrown.code).not.toBe(0)
    expect(thrown.output).toContain("drifted")
    const rejected = await runBlock(
      { file: "x.md", line: 1, lang: "ts", code: 'await Promise.reject(new Error("rejected"))' },
      MIRROR
    )
    expect(rejected.code).not.toBe(0)
    const exited = await runBlock({ file: "x.md", line: 1, lang: "sh", code: "true\nfalse\ntrue" }, MIRROR)
    expect(exited.code).not.toBe(0)
  })

  it("traces tsc diagnostics back to their file, line and column", () => {
    const output = [
      "node_modules/.cache/readme-blocks/types/README.md_58.mts(3,5): error TS2353: Object literal may only specify known properties.",
      "  The expected type comes from property 'x'.",
      "error TS5083: Cannot read file 'tsconfig.base.json'."
    ].join("\n")
    expect(diagnosticsOf(output)).toEqual([
      {
        file: "node_modules/.cache/readme-blocks/types/README.md_58.mts",
        line: 3,
        column: 5,
        text: "error TS2353: Object literal may only specify known properties.\n  The expected type comes from property 'x'."
      },
      { file: undefined, line: 0, column: 0, text: "error TS5083: Cannot read file 'tsconfig.base.json'." }
    ])
  })

  const run = lanes(RUN_LANES)
  const blockTimeout = BLOCK_TIMEOUT_MS + 10_000

  // The typecheck (one tsc process) runs while the blocks run, RUN_LANES at a time.
  it.concurrent(
    "the ts blocks typecheck (each in the package it runs from)",
    async ({ expect }) => {
      const { errors, canaries } = await typecheck(blocks.filter((block) => block.lang === "ts"))
      for (const canary of canaries) expect(canary, "the canary's misspelled option").toMatch(/error TS\d+:.*retires/)
      expect(errors.join("\n"), "type errors, by README:line:column").toBe("")
    },
    TYPECHECK_TIMEOUT_MS + 10_000
  )

  it.concurrent.for(blocks.map((block) => [`${block.file}:${block.line} (${block.lang})`, block] as const))(
    "%s",
    // Queued behind the blocks before it; `within` holds each to blockTimeout from when it gets a lane.
    { timeout: Math.ceil(blocks.length / RUN_LANES + 1) * blockTimeout },
    ([, block], { expect }) =>
      run(() =>
        within(
          blockTimeout,
          `${block.file}:${block.line}`,
          (async () => {
            const mirror = await MirrorServer.start()
            try {
              const outcome = await runBlock(block, `127.0.0.1:${mirror.port}`)
              const why = outcome.timedOut
                ? `still running after ${BLOCK_TIMEOUT_MS} ms`
                : `exit ${outcome.code ?? outcome.signal}`
              expect(outcome.code, `${block.file}:${block.line}: ${why}\n${outcome.output}`).toBe(0)
            } finally {
              await mirror.close()
            }
          })()
        )
      )
  )
})
