#!/usr/bin/env node
import * as fs from "node:fs"
import * as Help from "./internal/help.js"
import { bold } from "./internal/terminal.js"

/** The pages the build wrote beside this file (dist/help.json); none when running tsc's output alone. */
const builtPages = (): Help.Pages | undefined => {
  try {
    return JSON.parse(fs.readFileSync(new URL("./help.json", import.meta.url), "utf8")) as Help.Pages
  } catch {
    return undefined
  }
}

// `--help` and `--version` print from there, without loading the command (most of start-up).
const asked = Help.requested(process.argv.slice(2))
const pages = asked === undefined ? undefined : builtPages()
if (asked !== undefined && pages !== undefined) {
  Help.print(pages, asked, bold)
} else {
  // Node's ExperimentalWarning (undici's decompress interceptor emits one) is not the user's business;
  // other warnings still print, as one line.
  process.removeAllListeners("warning")
  process.on("warning", (warning) => {
    if (warning.name !== "ExperimentalWarning") process.stderr.write(`warning: ${warning.message}\n`)
  })
  const { run } = await import("./Cli.js")
  const code = await run(process.argv)
  // Leave once stdout has drained, whatever handles are still open.
  process.stdout.write("", () => process.exit(code))
}
