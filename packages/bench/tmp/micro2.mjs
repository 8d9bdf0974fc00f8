import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as Chunk from "effect/Chunk"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Exit from "effect/Exit"
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000 }
const bench = async (name, f, N = 5000) => {
  for (let i = 0; i < 1000; i++) await f()
  const c0 = cpu()
  for (let i = 0; i < N; i++) await f()
  console.log(name.padEnd(50), ((cpu() - c0) / N * 1000).toFixed(1), "µs")
}
const run = (e) => () => Effect.runPromise(e)
await bench("runPromise(void)", run(Effect.void))
await bench("runSync(void)", () => Effect.runSync(Effect.void))
await bench("Stream.make runDrain", run(Stream.runDrain(Stream.make(1))))
await bench("Stream.fromChunk runForEachChunk", run(Stream.runForEachChunk(Stream.fromChunk(Chunk.of(1)), () => Effect.void)))
let i = 0
const pull = Effect.suspend(() => i++ % 2 === 1 ? Effect.fail(Option.none()) : Effect.succeed(Chunk.of(1)))
await bench("fromPull 1 pull runForEachChunk", run(Stream.runForEachChunk(Stream.fromPull(Effect.succeed(pull)), () => Effect.void)))
await bench("scope + pull x2 via runPromiseExit", async () => { const s = Effect.runSync(Scope.make()); await Effect.runPromiseExit(pull); await Effect.runPromiseExit(pull); await Effect.runPromise(Scope.close(s, Exit.void)) })
await bench("Stream.toPull in scope, 2 pulls", async () => { const s = Effect.runSync(Scope.make()); const p = await Effect.runPromise(Scope.extend(Stream.toPull(Stream.fromPull(Effect.succeed(pull))), s)); await Effect.runPromiseExit(p); await Effect.runPromiseExit(p); await Effect.runPromise(Scope.close(s, Exit.void)) })
