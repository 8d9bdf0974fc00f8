// The conformance table on Deno (the fetch transport on Deno's fetch): its main thread and a module Web Worker.
import { describeScripted } from "./scripted.js"

describeScripted("deno")
