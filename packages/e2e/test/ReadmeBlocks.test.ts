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
const MIN_BLOCKS = 18
/** A block runs on its own and ends within this (a server it starts must be stopped by the block). */
const BLOCK_TIMEOUT_MS = 60_000
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
const exec = (command: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv) =>
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
    }, BLOCK_TIMEOUT_MS)
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

  it(
    "the ts blocks typecheck (each in the package it runs from)",
    async () => {
      const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc")
      const byDir = new Map<string, Array<Block>>()
      for (const block of blocks)
        if (block.lang === "ts") byDir.set(dirOf(block), [...(byDir.get(dirOf(block)) ?? []), block])
      const errors: Array<string> = []
      for (const [dir, those] of byDir) {
        const scratch = path.join(scratchOf(dir), "types")
        fs.mkdirSync(scratch, { recursive: true })
        for (const block of those)
          fs.writeFileSync(path.join(scratch, `${nameOf(block)}.mts`), `${block.code}\nexport {}\n`)
        const config = {
          extends: path.relative(scratch, path.join(root, "tsconfig.base.json")),
          compilerOptions: {
            noEmit: true,
            types: ["node"],
            declaration: false,
            declarationMap: false,
            sourceMap: false
          },
          include: ["*.mts"]
        }
        fs.writeFileSync(path.join(scratch, "tsconfig.json"), JSON.stringify(config))
        const outcome = await exec(
          process.execPath,
          [tsc, "-p", "tsconfig.json", "--pretty", "false"],
          scratch,
          process.env
        )
        if (outcome.code !== 0) errors.push(outcome.output.trim())
      }
      expect(errors.join("\n"), "type errors, by README_line.mts").toBe("")
    },
    4 * BLOCK_TIMEOUT_MS
  )

  it.each(blocks.map((block) => [`${block.file}:${block.line} (${block.lang})`, block] as const))(
    "%s",
    async (_, block) => {
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
    },
    BLOCK_TIMEOUT_MS + 10_000
  )
})
