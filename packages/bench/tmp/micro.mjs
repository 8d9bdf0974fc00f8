import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Schema from "effect/Schema"
import * as Chunk from "effect/Chunk"
import * as Option from "effect/Option"
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }
const bench = async (name, eff, N = 5000) => {
  for (let i = 0; i < 500; i++) await Effect.runPromise(eff)
  const c0 = cpu()
  for (let i = 0; i < N; i++) await Effect.runPromise(eff)
  console.log(name.padEnd(50), ((cpu() - c0) / N * 1000).toFixed(1), "µs")
}
await bench("runPromise(void)", Effect.void)
await bench("timeoutFail(void)", Effect.timeoutFail(Effect.void, { duration: 30000, onTimeout: () => "x" }))
await bench("timeoutFail(async)", Effect.timeoutFail(Effect.async((r) => { setImmediate(() => r(Effect.void)) }), { duration: 30000, onTimeout: () => "x" }))
await bench("async setImmediate", Effect.async((r) => { setImmediate(() => r(Effect.void)) }))
await bench("fork+interrupt sleep", Effect.scoped(Effect.forkScoped(Effect.sleep(30000))))
await bench("withSpan", Effect.withSpan(Effect.void, "x"))
await bench("withSpan nostack", Effect.withSpan(Effect.void, "x", { captureStackTrace: false }))
await bench("Stream.make runDrain", Stream.runDrain(Stream.make(1)))
await bench("Stream unwrap x2+span+catch+ensuring", Stream.runDrain(Stream.unwrap(Effect.succeed(Stream.unwrap(Effect.succeed(Stream.make(1))).pipe(Stream.withSpan("a", { captureStackTrace: false }), Stream.catchAll(() => Stream.empty), Stream.ensuring(Effect.void)))).pipe(Stream.withSpan("b", { captureStackTrace: false }))))
let i = 0
await bench("fromPull 22 pulls", Stream.runDrain(Stream.fromPull(Effect.succeed(Effect.suspend(() => i++ % 23 === 22 ? Effect.fail(Option.none()) : Effect.succeed(Chunk.of(1)))))))
await bench("fromPull 22 pulls + 8 layers", Stream.runDrain(Stream.unwrap(Effect.succeed(Stream.unwrap(Effect.succeed(Stream.fromPull(Effect.succeed(Effect.suspend(() => i++ % 23 === 22 ? Effect.fail(Option.none()) : Effect.succeed(Chunk.of(1))))).pipe(Stream.concat(Stream.execute(Effect.void))))).pipe(Stream.concat(Stream.execute(Effect.void)), Stream.tapError(() => Effect.void), Stream.withSpan("a", { captureStackTrace: false }), Stream.catchAll(() => Stream.empty), Stream.ensuring(Effect.void)))).pipe(Stream.withSpan("b", { captureStackTrace: false }))))
const S = Schema.Struct({ messages: Schema.Array(Schema.Struct({ role: Schema.String, content: Schema.String })), model: Schema.optional(Schema.String) })
const dec = Schema.decodeUnknown(S)
await bench("schema decode", dec({ messages: [{ role: "user", content: "hi" }] }))
