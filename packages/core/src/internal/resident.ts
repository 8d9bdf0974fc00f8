// A speed trick: objects of the decode path's classes kept alive for the life
// of the module. A full GC that finds none of them alive (between two replies,
// V8's memory reducer runs full GCs in an idle process) collects their hidden
// classes, and V8 throws away all code optimized for them, so the next reply
// would run the decode path unoptimized until it is compiled again. Keeping
// them took 6–18 ms of CPU off each 20,000-chunk stream that followed a full
// GC (interleaved runs, Node and fetch transports; test/Optimization.test.ts
// checks that V8 keeps the code). Exported, and imported by the package's
// entry: V8 keeps a module's top-level bindings that nothing uses only while
// its body runs. package.json lists this file under `sideEffects`, so that
// bundlers keep the import.
import { Delta } from "./delta.js"
import { Decoder } from "./sse.js"

/** @internal */
export const decoder = new Decoder()

/** @internal */
export const delta = new Delta(0, "", "", "{}", undefined)
