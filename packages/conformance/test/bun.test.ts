// The conformance table on Bun (the fetch transport on Bun's fetch): its main thread and a module Web Worker.
import { describeScripted } from "./scripted.js"

describeScripted("bun")
