import { EasyChat, Presets } from "@easychat/core"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import * as inspector from "node:inspector"
import * as fs from "node:fs"

const enc = new TextEncoder()
const events = []
for (let i = 0; i < 20; i++) events.push(enc.encode(`data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"abcd"},"finish_reason":${i === 19 ? '"stop"' : "null"}}]}\n\n`))
events.push(enc.encode("data: [DONE]\n\n"))
const client = HttpClient.make((request) =>
  Effect.sync(() => {
    let i = 0
    const body = new ReadableStream({ pull(c) { if (i < events.length) c.enqueue(events[i++]); else c.close() } }, { highWaterMark: 0 })
    return HttpClientResponse.fromWeb(request, new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } }))
  })
)
const mode = process.argv[2] ?? "stream"
const opts = { ...Presets.openAICompatible("http://127.0.0.1:1"), model: "m" }
const runtime = ManagedRuntime.make(EasyChat.layer(opts).pipe(Layer.provide(Layer.succeed(HttpClient.HttpClient, client))))
const messages = [{ role: "user", content: "hi" }]
let got = 0
const programs = {
  stream: Effect.flatMap(EasyChat.EasyChat, (chat) => Stream.runForEachChunk(chat.stream({ messages }), (d) => { got += d.length; return Effect.void })),
  raw: Effect.flatMap(client.post("http://127.0.0.1:1/x"), (r) => Stream.runDrain(r.stream)),
  notrace: Effect.withTracerEnabled(Effect.flatMap(EasyChat.EasyChat, (chat) => Stream.runForEachChunk(chat.stream({ messages }), (d) => { got += d.length; return Effect.void })), false),
}
const program = programs[mode]
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }
for (let i = 0; i < 500; i++) await runtime.runPromise(program)
const N = 3000
let session
if (process.argv[3]) { session = new inspector.Session(); session.connect(); await new Promise(r => session.post("Profiler.enable", r)); await new Promise(r => session.post("Profiler.start", r)) }
const c0 = cpu(), t0 = performance.now()
for (let i = 0; i < N; i++) await runtime.runPromise(program)
console.log(mode, "CPU µs/request", ((cpu() - c0) / N * 1000).toFixed(0), "wall µs", ((performance.now() - t0) / N * 1000).toFixed(0), got)
if (session) { const { profile } = await new Promise(r => session.post("Profiler.stop", (e, p) => r(p))); fs.writeFileSync(process.argv[3], JSON.stringify(profile)) }
await runtime.dispose()
