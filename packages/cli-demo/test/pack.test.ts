// The packed package runs on its own: the tarball `npm pack` makes, extracted outside the repository where no
// node_modules can be reached, runs its bin. So `npx` or `pnpm dlx` of the published tarball needs no workspace.
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { cleanEnv } from "./helpers.js"

const run = promisify(execFile)
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const { version } = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { version: string }

let scratch = ""
let bin = ""
let cwd = ""

beforeAll(async () => {
  scratch = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "easychat-pack-")))
  const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--json", "--pack-destination", scratch], {
    cwd: root
  })
  const [{ filename }] = JSON.parse(stdout) as [{ filename: string }]
  await run("tar", ["-xzf", path.join(scratch, filename), "-C", scratch])
  bin = path.join(scratch, "package", "dist", "bin.js")
  cwd = fs.mkdtempSync(path.join(scratch, "cwd-"))
}, 60_000)

afterAll(() => {
  if (scratch !== "") fs.rmSync(scratch, { recursive: true, force: true })
})

/** `easychat args...` from the extracted tarball, in a folder outside the repository, with no NODE_PATH. */
const easychat = (args: ReadonlyArray<string>) => {
  const { NODE_PATH: _, ...env } = cleanEnv()
  return run(process.execPath, [bin, ...args], { cwd, env, timeout: 30_000 })
}

describe("the packed package", () => {
  it("is extracted where no node_modules is reachable", () => {
    for (let at = path.dirname(bin); ; at = path.dirname(at)) {
      expect(fs.existsSync(path.join(at, "node_modules")), at).toBe(false)
      if (path.dirname(at) === at) break
    }
    expect(path.relative(root, cwd).startsWith("..")).toBe(true)
  })

  it("prints its version and help", async () => {
    const versionOut = await easychat(["--version"])
    expect(versionOut.stdout).toBe(`${version}\n`)
    const help = await easychat(["--help"])
    expect(help.stdout).toMatch(/^USAGE\n {2}easychat <command> \[options\]\n/)
    expect(help.stderr).toBe("")
  })

  it("answers from the embedded mirror", async () => {
    const { stdout, stderr } = await easychat(["chat", "--local", "hi"])
    expect(stdout).toMatch(/^Echo: hi\n/)
    expect(stderr).toBe("")
  })

  it("keeps core's resident objects (core's sideEffects names internal/resident.js)", () => {
    const chunks = path.join(scratch, "package", "dist", "chunks")
    const code = fs
      .readdirSync(chunks)
      .map((name) => fs.readFileSync(path.join(chunks, name), "utf8"))
      .join("\n")
    expect(code).toMatch(/\bdecoder\d*\s*=\s*new Decoder\b/)
    expect(code).toMatch(/\bdelta\d*\s*=\s*new Delta\(0,\s*"",\s*"",\s*"\{\}",\s*void 0\)/)
  })
})
