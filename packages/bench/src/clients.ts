// The streaming clients compared end to end, each used the way its users
// write it. Every one counts the content deltas and characters it received,
// so that a client that loses or merges pieces is caught.
import { EasyChat, Presets } from "@easychat/core"
import * as FetchTransport from "@easychat/transport-fetch"
import * as NodeTransport from "@easychat/transport-node"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Stream from "effect/Stream"
import { createParser } from "eventsource-parser"
import OpenAI from "openai"
import * as undici from "undici"
import { makeDeltaDecoder, onContent } from "./coreStep.js"
import { emptyTally, type Tally, tallyChunk, tallyDelta } from "./tally.js"

export interface Received {
  deltas: number
  characters: number
  /** `performance.now()` when the first content delta reached the caller. */
  first: number
  readonly probe: Probe | undefined
  /** What a client of the tool-call and reasoning streams counted (see `tally.ts`). */
  readonly tally?: Tally
}

/** Called every `every` deltas (the memory section samples RSS with it). */
export interface Probe {
  readonly every: number
  readonly at: () => void
}

export interface StreamClient {
  readonly name: string
  /** Streams one reply to the end. */
  readonly run: (probe?: Probe) => Promise<Received>
  readonly close: () => Promise<void>
}

export const model = "gpt-4o-mini"
export const messages = [{ role: "user" as const, content: "Tell me about server-sent events." }]

const received = (probe?: Probe): Received => ({ deltas: 0, characters: 0, first: 0, probe })

const count = (into: Received, content: string) => {
  if (into.deltas === 0) into.first = performance.now()
  into.deltas++
  into.characters += content.length
  if (into.probe !== undefined && into.deltas % into.probe.every === 0) into.probe.at()
}

/** Round-robin over the servers, for the clients that take one base URL. */
const rotate = <A>(items: ReadonlyArray<A>) => {
  let i = 0
  return () => items[i++ % items.length]!
}

/**
 * The packages our clients are made of: this checkout's, or another
 * checkout's build (`ab.ts` runs two builds side by side).
 */
export interface OursBuild {
  readonly Presets: typeof Presets
  readonly EasyChat: typeof EasyChat
  readonly node: typeof NodeTransport
  readonly fetch: typeof FetchTransport
  readonly Effect: typeof Effect
  readonly Layer: typeof Layer
  readonly ManagedRuntime: typeof ManagedRuntime
  readonly Stream: typeof Stream
}

const here: OursBuild = {
  Presets,
  EasyChat,
  node: NodeTransport,
  fetch: FetchTransport,
  Effect,
  Layer,
  ManagedRuntime,
  Stream
}

const oursOptions = (urls: ReadonlyArray<string>, build: OursBuild = here) => ({
  ...build.Presets.openAICompatible(urls[0]!),
  servers: urls,
  strategy: "round-robin" as const,
  model
})

/** Ours, Promise facade: `createClient` from a transport package, `for await` over text pieces. */
export const oursFacade = (kind: "node" | "fetch", urls: ReadonlyArray<string>, build = here): StreamClient => {
  const client = build[kind].createClient(oursOptions(urls, build))
  return {
    name: `ours, Promise facade, ${kind} transport`,
    run: async (probe) => {
      const into = received(probe)
      for await (const piece of client.stream({ messages })) count(into, piece)
      return into
    },
    close: () => client.close()
  }
}

/** Ours, Effect API: `EasyChat.stream` consumed a chunk (one network read) at a time. */
export const oursStream = (kind: "node" | "fetch", urls: ReadonlyArray<string>, build = here): StreamClient => {
  const { EasyChat, Effect, Layer, ManagedRuntime, Stream } = build
  const runtime = ManagedRuntime.make(EasyChat.layer(oursOptions(urls, build)).pipe(Layer.provide(build[kind].layer())))
  const program = (into: Received) =>
    Effect.flatMap(EasyChat.EasyChat, (chat) =>
      Stream.runForEachChunk(chat.stream({ messages }), (deltas) => {
        for (const delta of deltas) if (delta.content !== "") count(into, delta.content)
        return Effect.void
      })
    )
  return {
    name: `ours, Effect Stream, ${kind} transport`,
    run: async (probe) => {
      const into = received(probe)
      await runtime.runPromise(program(into))
      return into
    },
    close: () => runtime.dispose()
  }
}

/** The `openai` package as its README shows, pointed at the mirror. */
export const openai = (urls: ReadonlyArray<string>): StreamClient => {
  const next = rotate(urls.map((url) => new OpenAI({ baseURL: `${url}/v1`, apiKey: "sk-bench-not-a-secret" })))
  return {
    name: "openai client",
    run: async (probe) => {
      const into = received(probe)
      const stream = await next().chat.completions.create({ model, messages, stream: true })
      for await (const chunk of stream) {
        const content = chunk.choices[0]?.delta?.content
        if (typeof content === "string" && content !== "") count(into, content)
      }
      return into
    },
    close: async () => {}
  }
}

/**
 * Raw undici (`undici.request`, its keep-alive global agent) with
 * eventsource-parser behind a streaming TextDecoder: the hand-written client.
 */
export const rawUndici = (urls: ReadonlyArray<string>): StreamClient => {
  const next = rotate(urls.map((url) => `${url}/v1/chat/completions`))
  const body = JSON.stringify({ model, messages, stream: true })
  return {
    name: "raw undici + eventsource-parser",
    run: async (probe) => {
      const into = received(probe)
      const response = await undici.request(next(), {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        body
      })
      if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`)
      // Read to the end rather than break at [DONE]: breaking destroys the body and its socket.
      let done = false
      const parser = createParser({
        onEvent: (event) => {
          if (done || event.data === "[DONE]") {
            done = true
            return
          }
          const content = JSON.parse(event.data).choices[0]?.delta?.content
          if (typeof content === "string" && content !== "") count(into, content)
        }
      })
      const text = new TextDecoder()
      for await (const bytes of response.body) parser.feed(text.decode(bytes, { stream: true }))
      return into
    },
    close: async () => {}
  }
}

/** Bytes only, no decoding: how fast the mirror and loopback deliver, the ceiling of every client. */
export const drainOnly = (urls: ReadonlyArray<string>, expectedDeltas: number): StreamClient => {
  const next = rotate(urls.map((url) => `${url}/v1/chat/completions`))
  const body = JSON.stringify({ model, messages, stream: true })
  return {
    name: "bytes only (undici, no decoding): the mirror's ceiling",
    run: async () => {
      const response = await undici.request(next(), {
        method: "POST",
        headers: { "content-type": "application/json", accept: "text/event-stream" },
        body
      })
      let first = 0
      for await (const _ of response.body) if (first === 0) first = performance.now()
      return { deltas: expectedDeltas, characters: -1, first, probe: undefined }
    },
    close: async () => {}
  }
}

// Diagnostic rungs between raw undici and the engine: each adds one layer, so
// that the difference between two rungs is what that layer costs.

const chatBody = JSON.stringify({ model, messages, stream: true })
const chatHeaders = { "content-type": "application/json", accept: "text/event-stream" }

/** Core's decode path (SSE decoder + `stepOf`) in a plain loop over undici's reads: no Effect at all. */
export const coreOnUndici = (urls: ReadonlyArray<string>): StreamClient => {
  const next = rotate(urls.map((url) => `${url}/v1/chat/completions`))
  return {
    name: "diagnostic: core decode path on raw undici, no Effect",
    run: async (probe) => {
      const into = received(probe)
      const response = await undici.request(next(), { method: "POST", headers: chatHeaders, body: chatBody })
      const decoder = makeDeltaDecoder(onContent((content) => count(into, content)))
      let done = false
      for await (const bytes of response.body) if (!done) done = decoder.push(bytes)
      if (!done) decoder.end()
      return into
    },
    close: async () => {}
  }
}

/** Core's decode path in a plain loop over Node's `fetch` (`getReader()`): no Effect at all. */
export const coreOnFetch = (urls: ReadonlyArray<string>): StreamClient => {
  const next = rotate(urls.map((url) => `${url}/v1/chat/completions`))
  return {
    name: "diagnostic: core decode path on fetch, no Effect",
    run: async (probe) => {
      const into = received(probe)
      const response = await fetch(next(), { method: "POST", headers: chatHeaders, body: chatBody })
      const decoder = makeDeltaDecoder(onContent((content) => count(into, content)))
      const reader = response.body!.getReader()
      let done = false
      while (true) {
        const read = await reader.read()
        if (read.done) break
        if (!done) done = decoder.push(read.value)
      }
      if (!done) decoder.end()
      return into
    },
    close: async () => {}
  }
}

/**
 * Core's decode path over `@effect/platform`'s HttpClient on the Node
 * transport, the body consumed as a `Stream` one read per step, none of the
 * engine's machinery.
 */
export const coreOnPlatform = (urls: ReadonlyArray<string>): StreamClient => {
  const next = rotate(urls.map((url) => `${url}/v1/chat/completions`))
  const runtime = ManagedRuntime.make(NodeTransport.layer())
  const program = (into: Received) =>
    Effect.scoped(
      Effect.gen(function* () {
        const http = yield* HttpClient.HttpClient
        const request = HttpClientRequest.post(next(), { headers: chatHeaders }).pipe(
          HttpClientRequest.bodyText(chatBody, "application/json")
        )
        const response = yield* http.execute(request)
        const decoder = makeDeltaDecoder(onContent((content) => count(into, content)))
        let done = false
        yield* Stream.runForEachChunk(response.stream, (reads) => {
          for (const bytes of reads) if (!done) done = decoder.push(bytes)
          return Effect.void
        })
        if (!done) decoder.end()
      })
    )
  return {
    name: "diagnostic: core decode path on @effect/platform HttpClient + Stream",
    run: async (probe) => {
      const into = received(probe)
      await runtime.runPromise(program(into))
      return into
    },
    close: () => runtime.dispose()
  }
}

/** Ours, Promise facade, `streamDeltas` (one async generator less than `stream`). */
export const oursDeltas = (urls: ReadonlyArray<string>): StreamClient => {
  const client = NodeTransport.createClient(oursOptions(urls))
  return {
    name: "diagnostic: ours, Promise facade streamDeltas, node transport",
    run: async (probe) => {
      const into = received(probe)
      for await (const delta of client.streamDeltas({ messages })) if (delta.content !== "") count(into, delta.content)
      return into
    },
    close: () => client.close()
  }
}

// Clients of the tool-call and reasoning streams (section 8): each counts
// everything a delta carries (`tally.ts`); `deltas` is the tally's deltas and
// `characters` all the characters it counted.

const tallied = (tally: Tally): Received => ({
  deltas: tally.deltas,
  characters: tally.characters + tally.reasoning + tally.arguments,
  first: 0,
  probe: undefined,
  tally
})

/** Ours, Promise facade, `streamDeltas`: every delta of every choice, as it carries tool calls and reasoning. */
export const oursDeltasTally = (kind: "node" | "fetch", urls: ReadonlyArray<string>): StreamClient => {
  const client = here[kind].createClient(oursOptions(urls))
  return {
    name: `ours, Promise facade streamDeltas, ${kind} transport`,
    run: async () => {
      const tally = emptyTally()
      for await (const delta of client.streamDeltas({ messages })) tallyDelta(tally, delta)
      return tallied(tally)
    },
    close: () => client.close()
  }
}

/** Ours, Effect API: `EasyChat.stream` consumed a chunk at a time, every delta counted. */
export const oursStreamTally = (kind: "node" | "fetch", urls: ReadonlyArray<string>): StreamClient => {
  const runtime = ManagedRuntime.make(EasyChat.layer(oursOptions(urls)).pipe(Layer.provide(here[kind].layer())))
  const program = (tally: Tally) =>
    Effect.flatMap(EasyChat.EasyChat, (chat) =>
      Stream.runForEachChunk(chat.stream({ messages }), (deltas) => {
        for (const delta of deltas) tallyDelta(tally, delta)
        return Effect.void
      })
    )
  return {
    name: `ours, Effect Stream, ${kind} transport`,
    run: async () => {
      const tally = emptyTally()
      await runtime.runPromise(program(tally))
      return tallied(tally)
    },
    close: () => runtime.dispose()
  }
}

/** The `openai` package, `for await` over the chunks of `chat.completions.create({ stream: true })`. */
export const openaiTally = (urls: ReadonlyArray<string>): StreamClient => {
  const next = rotate(urls.map((url) => new OpenAI({ baseURL: `${url}/v1`, apiKey: "sk-bench-not-a-secret" })))
  return {
    name: "openai client",
    run: async () => {
      const tally = emptyTally()
      const stream = await next().chat.completions.create({ model, messages, stream: true })
      for await (const chunk of stream) tallyChunk(tally, chunk)
      return tallied(tally)
    },
    close: async () => {}
  }
}

/** Raw undici with eventsource-parser behind a streaming TextDecoder, `JSON.parse` of each chunk. */
export const rawUndiciTally = (urls: ReadonlyArray<string>): StreamClient => {
  const next = rotate(urls.map((url) => `${url}/v1/chat/completions`))
  return {
    name: "raw undici + eventsource-parser",
    run: async () => {
      const tally = emptyTally()
      const response = await undici.request(next(), { method: "POST", headers: chatHeaders, body: chatBody })
      if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`)
      let done = false
      const parser = createParser({
        onEvent: (event) => {
          if (done || event.data === "[DONE]") {
            done = true
            return
          }
          tallyChunk(tally, JSON.parse(event.data))
        }
      })
      const text = new TextDecoder()
      for await (const bytes of response.body) parser.feed(text.decode(bytes, { stream: true }))
      return tallied(tally)
    },
    close: async () => {}
  }
}
