// Bundles the `easychat` command (src/bin.ts and everything it imports, dependencies
// included) into dist/bin.js, after tsc has built the library. One file parses much
// faster than the ~650 modules it replaces; each command's handler, imported
// dynamically, becomes a chunk in dist/chunks/ that loads only when that command runs.
// dist/help.json holds the `--help` pages and the version, which the bundle prints
// without loading the command.
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as esbuild from "esbuild"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const chunks = path.join(root, "dist", "chunks")

fs.rmSync(chunks, { recursive: true, force: true })
await esbuild.build({
  entryPoints: { bin: path.join(root, "src", "bin.ts") },
  outdir: path.join(root, "dist"),
  chunkNames: "chunks/[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // Whitespace only: names stay readable in `--verbose` stack traces.
  minifyWhitespace: true,
  // CommonJS dependencies (undici, tough-cookie) call require() for Node's modules.
  banner: {
    js: 'import { createRequire as __easychatRequire } from "node:module";\nconst require = __easychatRequire(import.meta.url);'
  },
  logLevel: "warning",
  legalComments: "none"
})

// From tsc's dist/Cli.js, just built: the pages of the same sources.
const { helpPages } = await import(pathToFileURL(path.join(root, "dist", "Cli.js")).href)
fs.writeFileSync(path.join(root, "dist", "help.json"), `${JSON.stringify(helpPages())}\n`)
