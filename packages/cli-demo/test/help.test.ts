import { describe, expect, it } from "vitest"
import { run } from "./helpers.js"

describe("--help", () => {
  it.concurrent("the root page lists the commands, examples and exit codes", async () => {
    for (const args of [["--help"], ["-h"], []]) {
      const result = await run(args)
      expect(result.code).toBe(0)
      expect(result.stderr).toBe("")
      expect(result.stdout).toMatch(/^USAGE\n {2}easychat <command> \[options\]\n/)
      for (const command of ["chat", "serve", "servers", "gateway"]) {
        expect(result.stdout).toMatch(new RegExp(`^ {2}${command} +\\S`, "m"))
      }
      expect(result.stdout).toContain(
        '\nEXAMPLES\n  # One reply from the embedded test mirror (no network)\n  easychat chat --local "Hello, easychat"\n'
      )
      expect(result.stdout).toContain("\nEXIT CODES\n    0  success\n")
    }
  })

  it.concurrent("a command's page: its usage, each option described once, examples at the end", async () => {
    const result = await run(["chat", "--local", "--help"])
    expect(result.code).toBe(0)
    const out = result.stdout
    expect(out).toMatch(/^USAGE\n {2}easychat chat \[options\] \[<prompt>\.\.\.\]\n/)
    expect(out).not.toContain("$ ")
    // @effect/cli's line about each option's type is left out.
    expect(out).not.toMatch(
      /A user-defined piece of text|An integer\.|A floating point number|A true or false value|One of the following/
    )
    expect(out).toMatch(/\n {2}-s, --server URL\n {6}A server base URL/)
    expect(out).toMatch(/\n {2}--timeout PHASE=DURATION\n {6}A phase limit[^\n]*\n[^\n]*Repeatable\.\n/)
    expect(out).toMatch(/\n {2}-h, --help\n {6}Show this help\.\n/)
    expect(out.indexOf("OPTIONS")).toBeLessThan(out.indexOf("EXAMPLES"))
    expect(out.indexOf("EXAMPLES")).toBeLessThan(out.indexOf("EXIT CODES"))
    const serve = await run(["serve", "-h"])
    expect(serve.stdout).toMatch(/\n {2}-p, --port PORT\n {6}The port \(default 8787; 0 picks a free one\)\.\n/)
  })

  it.concurrent("gateway's page shows a config file among its examples", async () => {
    const result = await run(["gateway", "--help"])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(
      /\nEXAMPLES\n[\s\S]*\n {2}# [^\n]*config file\n {2}easychat gateway --config easychat\.yaml\n/
    )
  })

  it.concurrent("after --, -h and --help are words of the prompt", async () => {
    const result = await run(["chat", "--local", "--", "-h"])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^Echo: -h\n/)
  })

  it.concurrent("--version prints the version alone", async () => {
    const result = await run(["--version"])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^\d+\.\d+\.\d+\n$/)
  })
})
