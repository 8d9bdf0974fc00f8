/**
 * Summarises a `node --cpu-prof` profile: the functions with the most self
 * time, and the packages (or files) they live in.
 *
 * usage: node dist/cpuprof.js <file.cpuprofile> [top=25] [--inclusive[=path part]]
 */
import * as fs from "node:fs"

interface ProfileNode {
  readonly id: number
  readonly callFrame: {
    readonly functionName: string
    readonly url: string
    readonly lineNumber: number
  }
  readonly children?: ReadonlyArray<number>
}

interface Profile {
  readonly nodes: ReadonlyArray<ProfileNode>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

/** `effect`, `@effect/platform`, `undici`, `core`, ... : where a function comes from. */
const originOf = (url: string): string => {
  if (url === "") return "(native / V8)"
  const modules = url.lastIndexOf("node_modules/")
  if (modules !== -1) {
    const rest = url.slice(modules + "node_modules/".length).split("/")
    return rest[0]!.startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]!
  }
  if (url.startsWith("node:")) return "node internals"
  const pkg = url.match(/packages\/([^/]+)\//)
  if (pkg !== null) return `@easychat/${pkg[1]}`
  return url
}

const shortUrl = (url: string): string => {
  const modules = url.lastIndexOf("node_modules/")
  if (modules !== -1) return url.slice(modules + "node_modules/".length)
  const pkg = url.indexOf("packages/")
  return pkg !== -1 ? url.slice(pkg) : url.replace(/^file:\/\//, "")
}

const keyOf = (frame: ProfileNode["callFrame"]): string => {
  const name = frame.functionName || "(anonymous)"
  return frame.url === "" ? name : `${name} (${shortUrl(frame.url)}:${frame.lineNumber + 1})`
}

/** Time with the function anywhere on the stack (each sample counted once per function). */
export const inclusive = (profile: Profile, top = 25, filter = ""): string => {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const totals = new Map<string, number>()
  let total = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0
    total += dt
    const seen = new Set<string>()
    for (let id: number | undefined = profile.samples[i]; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame
      if (filter !== "" && !frame.url.includes(filter)) continue
      const key = keyOf(frame)
      if (seen.has(key)) continue
      seen.add(key)
      totals.set(key, (totals.get(key) ?? 0) + dt)
    }
  }
  return [
    `Total sampled: ${(total / 1000).toFixed(0)} ms; inclusive time${filter === "" ? "" : ` of functions in ${filter}`}`,
    "",
    "| total | ms | function |",
    "| --- | --- | --- |",
    ...[...totals.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(
        ([key, micros]) =>
          `| ${((100 * micros) / total).toFixed(1)}% | ${(micros / 1000).toFixed(1)} | ${key.replace(/\|/g, "\\|")} |`
      )
  ].join("\n")
}

export const summarise = (profile: Profile, top = 25): string => {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<number, number>()
  let total = 0
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0
    self.set(profile.samples[i]!, (self.get(profile.samples[i]!) ?? 0) + dt)
    total += dt
  }
  const byFunction = new Map<string, number>()
  const byOrigin = new Map<string, number>()
  for (const [id, micros] of self) {
    const frame = byId.get(id)!.callFrame
    const name = frame.functionName || "(anonymous)"
    const key = keyOf(frame)
    byFunction.set(key, (byFunction.get(key) ?? 0) + micros)
    const origin = frame.url === "" && name.startsWith("(") ? name : originOf(frame.url)
    byOrigin.set(origin, (byOrigin.get(origin) ?? 0) + micros)
  }
  const pct = (micros: number) => `${((100 * micros) / total).toFixed(1)}%`
  const rows = (map: Map<string, number>, n: number) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([key, micros]) => `| ${pct(micros)} | ${(micros / 1000).toFixed(1)} | ${key.replace(/\|/g, "\\|")} |`)
  return [
    `Total sampled: ${(total / 1000).toFixed(0)} ms`,
    "",
    "| self | ms | where |",
    "| --- | --- | --- |",
    ...rows(byOrigin, 12),
    "",
    "| self | ms | function |",
    "| --- | --- | --- |",
    ...rows(byFunction, top)
  ].join("\n")
}

const [file, ...rest] = process.argv.slice(2)
if (file !== undefined && process.argv[1]?.endsWith("cpuprof.js")) {
  const profile = JSON.parse(fs.readFileSync(file, "utf8")) as Profile
  const top = Number(rest.find((arg) => /^\d+$/.test(arg)) ?? 25)
  const flag = rest.find((arg) => arg.startsWith("--inclusive"))
  console.log(flag === undefined ? summarise(profile, top) : inclusive(profile, top, flag.split("=")[1] ?? ""))
}
