// Section 9: routing — which server a call gets, hedged first requests, and continuation after a cut,
// against a pool of local mirrors that differ as public mirrors do.
import { type ChatDelta, Client, Presets } from "@easychat/core"
import * as NodeTransport from "@easychat/transport-node"
import * as HttpClient from "@effect/platform/HttpClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { messages, model } from "./clients.js"
import { replyText } from "./corpus.js"
import {
  fmt,
  mark,
  median,
  type RunConfig,
  ratio,
  type SectionResult,
  settle,
  type TargetResult,
  table
} from "./report.js"
import * as Services from "./services.js"

const quantile = (values: ReadonlyArray<number>, q: number): number => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN
}

/** A transport layer that counts the chat requests it sends (hedges and continuations included). */
const counting = (counter: { posts: number }) =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.map(
      HttpClient.HttpClient,
      HttpClient.tapRequest((request) =>
        Effect.sync(() => {
          if (request.method === "POST") counter.posts++
        })
      )
    )
  ).pipe(Layer.provideMerge(NodeTransport.layer()))

interface CallResult {
  readonly ttfd: number
  readonly server: string | undefined
  readonly text: string
  readonly finished: boolean
  readonly error: { readonly _tag: string; readonly deltas?: number; readonly characters?: number } | undefined
  readonly continuedAt: number | undefined
}

const oneCall = async (client: Client.Client): Promise<CallResult> => {
  const t0 = performance.now()
  let ttfd = Number.NaN
  let server: string | undefined
  let text = ""
  let finished = false
  let continuedAt: number | undefined
  try {
    for await (const delta of client.streamDeltas({ messages }) as AsyncIterable<
      ChatDelta & { continuedFrom?: unknown }
    >) {
      if (delta.choice !== 0) continue
      if (delta.continuedFrom !== undefined && continuedAt === undefined) continuedAt = text.length
      if (delta.content !== "" && Number.isNaN(ttfd)) {
        ttfd = performance.now() - t0
        server = delta.server
      }
      text += delta.content
      if (delta.finishReason !== undefined) finished = true
    }
    return { ttfd, server, text, finished, error: undefined, continuedAt }
  } catch (error) {
    return { ttfd, server, text, finished, error: error as CallResult["error"], continuedAt }
  }
}

/** `calls` streamed calls, `concurrency` at a time. */
const runCalls = async (client: Client.Client, calls: number, concurrency: number): Promise<Array<CallResult>> => {
  const results: Array<CallResult> = new Array(calls)
  let next = 0
  const worker = async () => {
    while (next < calls) {
      const i = next++
      results[i] = await oneCall(client)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return results
}

export const run = async (config: RunConfig): Promise<SectionResult> => {
  const calls = config.quick ? 60 : 1000
  const concurrency = 20
  const deltas = 20
  const base = { reply: replyText, chunkSize: 4, deltas, batch: 1, usage: "never" as const }
  const fast = { ...base, firstDeltaMs: { median: 50, p99: 80 } }
  // Four fast mirrors, one slow, one that stalls before its first delta in 10% of requests.
  const mirrors = await Services.startMirrors([
    fast,
    fast,
    fast,
    fast,
    { ...base, firstDeltaMs: { median: 800, p99: 900 } },
    { ...fast, stallChance: 0.1 }
  ])
  const urls = mirrors.urls
  const slow = urls[4]!
  const options = (extra: Presets.Options): Presets.Options => ({
    ...Presets.openAICompatible(urls[0]!),
    servers: urls,
    model,
    // A stall is cut at 2 s, so that a call without hedging still ends (it fails over).
    timeouts: { firstToken: 2000 },
    ...extra
  })
  const targets: Array<TargetResult> = []
  const resourcesBefore = process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap")

  // Strategies: random (what gpt4free does), round-robin, latency.
  const strategyRows: Array<Array<string>> = []
  let fastMedian = Number.NaN
  for (const strategy of ["random", "round-robin", "latency"] as const) {
    const counter = { posts: 0 }
    const client = Client.make(options({ strategy }), counting(counter))
    const results = await runCalls(client, calls, concurrency)
    await client.close()
    const after = results.slice(50)
    const ttfds = results.map((r) => r.ttfd).filter((t) => !Number.isNaN(t))
    const slowShare = after.filter((r) => r.server === slow).length / after.length
    const failed = results.filter((r) => r.error !== undefined).length
    if (strategy === "random") {
      fastMedian = median(results.filter((r) => r.server !== undefined && r.server !== slow).map((r) => r.ttfd))
    }
    strategyRows.push([
      strategy,
      fmt(median(ttfds), 3),
      fmt(quantile(ttfds, 0.99), 3),
      `${fmt(slowShare * 100, 2)}%`,
      String(counter.posts),
      String(failed)
    ])
    if (strategy === "latency") {
      targets.push({
        what: "latency strategy: median time to first delta vs the fast mirrors' own",
        target: "≤ 1.25×",
        reached: ratio(median(ttfds) / fastMedian),
        met: median(ttfds) / fastMedian <= 1.25
      })
      targets.push({
        what: "latency strategy: calls on the slow mirror after the first 50",
        target: "< 5%",
        reached: `${fmt(slowShare * 100, 2)}%`,
        met: slowShare < 0.05
      })
    }
  }

  // Hedging with `after: "auto"` against none, on random and on latency: "auto" is the pool's p95 of time to
  // first delta, which under random includes the slow mirror's 800 ms, under latency the fast mirrors' own.
  const hedgeRows: Array<Array<string>> = []
  for (const strategy of ["random", "latency"] as const) {
    const p99s: Array<number> = []
    const posts: Array<number> = []
    for (const hedge of [undefined, { after: "auto" as const }]) {
      const counter = { posts: 0 }
      const client = Client.make(options({ strategy, ...(hedge ? { hedge } : {}) }), counting(counter))
      const results = await runCalls(client, calls, concurrency)
      await client.close()
      // After the first 50 calls, as for the slow mirror's share: "auto" hedges once the pool has measured.
      const ttfds = results
        .slice(50)
        .map((r) => r.ttfd)
        .filter((t) => !Number.isNaN(t))
      p99s.push(quantile(ttfds, 0.99))
      posts.push(counter.posts)
      hedgeRows.push([
        `${strategy}, ${hedge ? 'hedge after "auto"' : "no hedging"}`,
        fmt(median(ttfds), 3),
        fmt(quantile(ttfds, 0.99), 3),
        String(counter.posts),
        String(results.filter((r) => r.error !== undefined).length)
      ])
    }
    targets.push({
      what: `hedging ("auto", ${strategy}): 99th percentile time to first delta, none / hedged`,
      target: "≥ 3×",
      reached: ratio(p99s[0]! / p99s[1]!),
      met: p99s[0]! / p99s[1]! >= 3
    })
    targets.push({
      what: `hedging ("auto", ${strategy}): requests sent, hedged / none`,
      target: "≤ 1.15×",
      reached: ratio(posts[1]! / posts[0]!),
      met: posts[1]! / posts[0]! <= 1.15
    })
  }
  await mirrors.close()

  // Continuation: one mirror of two cuts every stream at a random point.
  const cutting = await Services.startMirrors([{ ...base, cutChance: 1 }, { ...base }])
  const continuationCalls = config.quick ? 20 : 200
  const continuationRows: Array<Array<string>> = []
  let continuedWhole = 0
  let interruptedCounted = 0
  let cutCalls = 0
  for (const continueAfterCut of [true, false]) {
    const client = Client.make(
      {
        ...Presets.openAICompatible(cutting.urls[0]!),
        servers: cutting.urls,
        model,
        strategy: "round-robin",
        // No breaker: the cutting mirror keeps getting half of the calls.
        breaker: { failures: 1_000_000 },
        continueAfterCut
      },
      NodeTransport.layer()
    )
    const results = await runCalls(client, continuationCalls, concurrency)
    await client.close()
    const cut = results.filter((r) => r.continuedAt !== undefined || r.error?._tag === "StreamInterrupted")
    const finished = results.filter((r) => r.error === undefined && r.finished).length
    if (continueAfterCut) {
      cutCalls = cut.length
      // The caller's text: the cut prefix, then the continuation (the mirror answers the same reply again).
      continuedWhole = cut.filter(
        (r) => r.finished && r.continuedAt !== undefined && r.text.length > r.continuedAt
      ).length
    } else {
      interruptedCounted = cut.filter((r) => r.error?.deltas !== undefined && r.error.deltas > 0).length
    }
    continuationRows.push([
      continueAfterCut ? "continueAfterCut" : "off",
      String(results.length),
      String(cut.length),
      String(finished),
      String(results.filter((r) => r.error?._tag === "StreamInterrupted").length)
    ])
  }
  await cutting.close()
  await settle(200)
  // Sockets, timers and handles still open in this process once every client is closed.
  const leaked = process.getActiveResourcesInfo().filter((r) => r !== "TTYWrap")
  const extra = leaked.length - resourcesBefore.length
  targets.push({
    what: "resources left open in this process (sockets, timers) after every client closed",
    target: "none",
    reached: extra <= 0 ? "none" : `${extra}: ${leaked.join(", ")}`,
    met: extra <= 0
  })
  targets.push({
    what: "continuation: cut calls that end with a finish reason, the prefix then the continuation",
    target: "all",
    reached: `${continuedWhole} / ${cutCalls}`,
    met: cutCalls > 0 && continuedWhole === cutCalls
  })

  const markdown = [
    `Six local mirrors in one child process: four answer their first delta in about 50 ms (log-normal, p99 80 ms), ` +
      `one in about 800 ms, one like the fast ones but stalling before its first delta in 10% of requests ` +
      `(\`firstToken\` 2 s). ${fmt(calls)} streamed calls of ${deltas} deltas, ${concurrency} at a time, Promise facade on ` +
      `the Node transport. Time to first delta in ms; "slow mirror" counts calls after the first 50; requests are ` +
      `chat POSTs sent, hedges and failovers included. The hedging table's times leave out the first 50 calls ` +
      `("auto" hedges only once the pool has 20 measurements; the first ${concurrency} calls start together).`,
    "",
    table(["strategy", "median", "p99", "slow mirror", "requests", "failed"], strategyRows),
    "",
    table(["strategy, hedging", "median", "p99", "requests", "failed"], hedgeRows),
    "",
    `Continuation: two mirrors, one cutting every stream at a random point after its first delta, round-robin, ` +
      `${continuationCalls} calls:`,
    "",
    table(["", "calls", "cut", "ended with a finish reason", "StreamInterrupted"], continuationRows),
    "",
    `Without continuation, ${interruptedCounted} StreamInterrupted errors carry the delivered counts (deltas > 0).`,
    "",
    table(
      ["target", "reached", ""],
      targets.map((t) => [`${t.what}: ${t.target}`, t.reached, mark(t.met)])
    )
  ].join("\n")
  return { title: "9. Routing: latency, hedging, continuation", markdown, targets }
}
