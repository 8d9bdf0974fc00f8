// Run by Optimization.test.ts as `node --expose-gc --trace-deopt --trace-opt`:
// the facade streams the same long reply four times over an in-memory
// HttpClient, with a full GC between replies (V8's memory reducer runs full
// GCs in a process idle between two questions). Prints each reply's piece count.
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Client, Presets } from "../dist/index.js"

const chunk = (i) =>
  `data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"piece ${i} é 😀"},"finish_reason":null}]}\n\n`
const bytes = new TextEncoder().encode(`${Array.from({ length: 20_000 }, (_, i) => chunk(i)).join("")}data: [DONE]\n\n`)
// 16 KiB reads, as Node's fetch delivers them.
const body = () => {
  let at = 0
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close()
      controller.enqueue(bytes.subarray(at, (at += 16_384)))
    }
  })
}
const transport = Layer.succeed(
  HttpClient.HttpClient,
  HttpClient.make((request) =>
    Effect.succeed(
      HttpClientResponse.fromWeb(request, new Response(body(), { headers: { "content-type": "text/event-stream" } }))
    )
  )
)
// A control: a reader optimized for a shape that no object keeps. The first
// GC throws it away for "weak objects", as it did the decode path before core
// kept its objects: the trace does report such deoptimizations here.
function Shape(a, b) {
  this.a = a
  this.b = b
}
const controlRead = (shape) => shape.a + shape.b
const control = () => {
  let sum = 0
  for (let i = 0; i < 200_000; i++) sum += controlRead(new Shape(i, 1))
  return sum
}
control()

const client = Client.make(Presets.openAICompatible("http://127.0.0.1:9"), transport)
for (let i = 0; i < 4; i++) {
  let pieces = 0
  for await (const _ of client.stream({ messages: [{ role: "user", content: "hi" }] })) pieces++
  console.log(`reply ${pieces}`)
  globalThis.gc()
}
await client.close()
