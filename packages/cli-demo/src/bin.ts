#!/usr/bin/env node
import { run } from "./Cli.js"

const code = await run(process.argv)
// Leave once stdout has drained, whatever handles are still open.
process.stdout.write("", () => process.exit(code))
