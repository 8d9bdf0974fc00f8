#!/usr/bin/env node
import { run } from "./Cli.js"

// Node's ExperimentalWarning (undici's decompress interceptor emits one) is not the user's business;
// other warnings still print, as one line.
process.removeAllListeners("warning")
process.on("warning", (warning) => {
  if (warning.name !== "ExperimentalWarning") process.stderr.write(`warning: ${warning.message}\n`)
})

const code = await run(process.argv)
// Leave once stdout has drained, whatever handles are still open.
process.stdout.write("", () => process.exit(code))
