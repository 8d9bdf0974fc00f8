/**
 * Bundles an entry of this package (with core, the fetch transport and
 * Effect) into one ES module, for a page, a worker, or a Bun or Deno script.
 * Node-only.
 *
 * @since 0.1.0
 */
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"

/** The part of esbuild's API used here (its types are not reachable from this package). */
interface Esbuild {
  build(options: {
    readonly entryPoints: ReadonlyArray<string>
    readonly bundle: boolean
    readonly write: false
    readonly format: "esm"
    readonly platform: "browser"
    readonly target: string
    readonly logLevel: "silent"
  }): Promise<{ readonly outputFiles: ReadonlyArray<{ readonly text: string }> }>
}

// esbuild is not a dependency of this package: it comes with vite, which comes with vitest. Resolving it along that
// chain (rather than by a pinned path in node_modules/.pnpm) survives version bumps.
const loadEsbuild = async (): Promise<Esbuild> => {
  const fromHere = createRequire(import.meta.url)
  const fromVitest = createRequire(fromHere.resolve("vitest/package.json"))
  const fromVite = createRequire(fromVitest.resolve("vite/package.json"))
  return (await import(fromVite.resolve("esbuild"))) as Esbuild
}

/**
 * `entry` (a file of `src/`, such as `"browser-entry.ts"`) as one ES module. Bundled for the browser platform:
 * every entry is browser-safe, and Bun and Deno run browser code as it is.
 * @since 0.1.0 @category constructors
 */
export const bundle = async (entry: string): Promise<string> => {
  const esbuild = await loadEsbuild()
  const result = await esbuild.build({
    entryPoints: [fileURLToPath(new URL(`./${entry}`, import.meta.url))],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    logLevel: "silent"
  })
  return result.outputFiles[0]!.text
}
