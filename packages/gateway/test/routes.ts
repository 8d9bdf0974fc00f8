import * as Effect from "effect/Effect"
import { Config } from "../src/index.js"

/** A configuration from YAML, with an empty environment. */
export const parse = (yaml: string) => Effect.runPromise(Config.parse(yaml, "yaml", { env: {} }))

/** A YAML list of strings. */
export const list = (items: ReadonlyArray<string>) => `[${items.map((u) => JSON.stringify(u)).join(", ")}]`
