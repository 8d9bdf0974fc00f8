import * as undici from "undici"

/**
 * The undici classes this package builds, and the methods it calls on them. Bun answers `import "undici"` with a
 * module of its own whose classes have none of these methods: a request would fail with `dispatcher.request is not
 * a function`, and closing with `dispatcher.destroy is not a function`.
 */
const used = {
  Agent: ["request", "destroy"],
  ProxyAgent: ["request", "destroy"],
  EnvHttpProxyAgent: ["request", "destroy"]
} as const

/** What `undici` lacks of what this package uses, as `Agent.prototype.request`; empty when it lacks nothing. @internal */
export const missingFrom = (module: Readonly<Record<string, unknown>>): ReadonlyArray<string> =>
  Object.entries(used).flatMap(([name, methods]) => {
    const made = module[name]
    if (typeof made !== "function") return [name]
    const prototype = (made as { readonly prototype?: Record<string, unknown> }).prototype
    return methods.filter((method) => typeof prototype?.[method] !== "function").map((m) => `${name}.prototype.${m}`)
  })

/** The runtime's name and version, for messages. @internal */
export const runtimeName = (versions: Readonly<Record<string, string | undefined>> | undefined): string => {
  if (versions?.bun !== undefined) return `Bun ${versions.bun}`
  if (versions?.deno !== undefined) return `Deno ${versions.deno}`
  if (versions?.node !== undefined) return `Node ${versions.node}`
  return "this runtime"
}

/** Why this runtime cannot run the package. @internal */
export interface Unsupported {
  readonly runtime: string
  readonly missing: ReadonlyArray<string>
}

/**
 * Checks `module` (the `undici` this runtime gives) by capability, not by runtime name: a Bun whose undici grows
 * these methods passes. @internal
 */
export const check = (
  module: Readonly<Record<string, unknown>>,
  versions: Readonly<Record<string, string | undefined>> | undefined
): Unsupported | undefined => {
  const missing = missingFrom(module)
  return missing.length === 0 ? undefined : { runtime: runtimeName(versions), missing }
}

let current: { readonly result: Unsupported | undefined } | undefined

/** `check` on this runtime's `undici`, computed once. @internal */
export const unsupported = (): Unsupported | undefined => {
  current ??= {
    result: check(undici as unknown as Record<string, unknown>, globalThis.process?.versions)
  }
  return current.result
}
