import { builtinModules } from "node:module"
import { fileURLToPath } from "node:url"
import * as esbuild from "esbuild"
import { describe, expect, it } from "vitest"

// Bundles this package with core as a runtime without Node would (Deno, Bun's browser target, a worker, a
// browser): `platform: "neutral"` resolves no Node builtin on its own. Both packages are bundled from `src` (core
// through an alias), so an import added today is caught without a build; their dependencies (effect,
// @effect/platform, tough-cookie) are bundled as published.

const source = (path: string) => fileURLToPath(new URL(path, import.meta.url))
const entry = source("../src/index.ts")
const coreEntry = source("../../core/src/index.ts")

const nodeBuiltins = new Set(builtinModules.filter((name) => !name.startsWith("_")))
/** `node:fs`, `fs`, `fs/promises`: what only Node (or its emulation) provides. */
const isNodeBuiltin = (specifier: string) =>
  specifier.startsWith("node:") || nodeBuiltins.has(specifier) || nodeBuiltins.has(specifier.split("/")[0]!)

interface NodeImport {
  readonly specifier: string
  readonly importer: string
}

/**
 * Bundles `options` for the neutral platform and lists every Node builtin that any bundled module imports
 * (statically, dynamically or through `require`), read from esbuild's metafile: the builtins are left external so
 * that the metafile records them instead of failing the build at the first one.
 */
const nodeImportsOf = async (options: esbuild.BuildOptions): Promise<ReadonlyArray<NodeImport>> => {
  const result = await esbuild.build({
    ...options,
    bundle: true,
    write: false,
    metafile: true,
    logLevel: "silent",
    format: "esm",
    platform: "neutral",
    // What a bundler for a browser or a worker reads; neutral reads no main field by default.
    mainFields: ["module", "main"],
    alias: { "@easychat/core": coreEntry },
    plugins: [
      {
        name: "node-builtins-external",
        setup(build) {
          build.onResolve({ filter: /.*/ }, (args) =>
            isNodeBuiltin(args.path) ? { path: args.path, external: true } : undefined
          )
        }
      }
    ]
  })
  return Object.entries(result.metafile.inputs).flatMap(([importer, input]) =>
    input.imports.filter((i) => i.external && isNodeBuiltin(i.path)).map((i) => ({ specifier: i.path, importer }))
  )
}

describe("the browser, Deno, Bun and worker bundle of core + transport-fetch", () => {
  it("imports nothing from Node", async () => {
    expect(await nodeImportsOf({ entryPoints: [entry] })).toEqual([])
  }, 60_000)

  it("the check flags a Node import (negative control)", async () => {
    // The same build and check on an entry that also reaches Node: `node:` and bare builtins, static and dynamic.
    const found = await nodeImportsOf({
      stdin: {
        contents: [
          `export * from ${JSON.stringify(entry)}`,
          `export { Readable } from "node:stream"`,
          `export { Buffer } from "buffer"`,
          `export const load = () => import("fs/promises")`
        ].join("\n"),
        resolveDir: source("."),
        loader: "ts",
        sourcefile: "control.ts"
      }
    })
    expect([...found].sort((a, b) => a.specifier.localeCompare(b.specifier))).toEqual(
      ["buffer", "fs/promises", "node:stream"].map((specifier) => ({
        specifier,
        importer: expect.stringMatching(/(^|\/)control\.ts$/)
      }))
    )
  }, 60_000)
})
