// The input of the decoding sections: the bytes an OpenAI-compatible server
// streams for a chat completion, in the shape OpenAI sends them.
import { emptyTally, type Tally, tallyChunk } from "./tally.js"

/**
 * A reply mixing what real chats carry: English prose and code (ASCII),
 * accented Latin, emoji (4-byte UTF-8, surrogate pairs) and CJK (3-byte).
 */
export const replyText = [
  "Sure! Here is a short overview of how server-sent events work, with an example in TypeScript.\n\n",
  "## How it works\n\nThe server answers with `Content-Type: text/event-stream` and keeps the connection open; ",
  'each event is a block of `field: value` lines ended by a blank line. ```ts\nconst res = await fetch(url, { method: "POST" })\n',
  "for await (const chunk of res.body) decoder.push(chunk)\n```\n\n",
  "En français : le serveur envoie des événements ; chaque bloc se termine par une ligne vide. Déjà-vu, naïve café, ",
  "Ærøskøbing, Straße, señor, façade, coöperate — «guillemets» et “quotes”.\n\n",
  "Emoji work too 🎉🚀✨ — even families 👨‍👩‍👧‍👦 and flags 🇫🇷🇯🇵 — and they must never be cut in half 😅.\n\n",
  "中文：服务器发送事件是一种单向的流式协议，浏览器通过 EventSource 接收。",
  "日本語：サーバー送信イベントは、テキストを少しずつ届けます。한국어: 서버 전송 이벤트는 텍스트를 조금씩 보냅니다.\n\n",
  "In short: decode bytes to text carefully, split on line ends, parse each `data:` line as JSON, and stop at `[DONE]`."
].join("")

/** A deterministic generator, so that every run and every decoder sees the same bytes. */
const prng = (seed: number) => () => {
  seed = (seed * 1664525 + 1013904223) >>> 0
  return seed / 2 ** 32
}

/** Splits text into token-sized pieces (1 to 6 code points), cycling through it until `count` pieces. */
export const tokenPieces = (text: string, count: number): Array<string> => {
  const chars = Array.from(text)
  const random = prng(42)
  const pieces: Array<string> = []
  let at = 0
  while (pieces.length < count) {
    const size = 1 + Math.floor(random() * 6)
    let piece = ""
    for (let i = 0; i < size; i++) {
      piece += chars[at]!
      at = (at + 1) % chars.length
    }
    pieces.push(piece)
  }
  return pieces
}

const meta = {
  id: "chatcmpl-9xKqBf3ZyX2mPd7LrV1nC8tE4hJ6w",
  object: "chat.completion.chunk",
  created: 1731412800,
  model: "gpt-4o-mini-2024-07-18",
  system_fingerprint: "fp_0ba0d124f1"
}

/** One `chat.completion.chunk`, fields in the order OpenAI sends them. */
export const chunkJson = (delta: Record<string, unknown>, finishReason: string | null = null): string =>
  JSON.stringify({ ...meta, choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }] })

export interface Corpus {
  readonly name: string
  readonly bytes: Uint8Array
  /** Events a decoder must dispatch (the `[DONE]` event included). */
  readonly events: number
  /** Content deltas (events whose `choices[0].delta.content` is a non-empty string). */
  readonly deltas: number
  /** Characters (UTF-16 units) of content, to check every decoder got all of it. */
  readonly characters: number
}

/**
 * A whole streamed reply: a role chunk, `deltas` content chunks, a finish
 * chunk, a usage chunk and `[DONE]`, with LF line ends (as OpenAI sends) or CRLF.
 */
export const chatCorpus = (deltas: number, lineEnd: "\n" | "\r\n" = "\n"): Corpus => {
  const pieces = tokenPieces(replyText, deltas)
  const blank = lineEnd + lineEnd
  const parts: Array<string> = [`data: ${chunkJson({ role: "assistant", content: "", refusal: null })}${blank}`]
  let characters = 0
  for (const piece of pieces) {
    parts.push(`data: ${chunkJson({ content: piece })}${blank}`)
    characters += piece.length
  }
  parts.push(`data: ${chunkJson({}, "stop")}${blank}`)
  parts.push(
    `data: ${JSON.stringify({ ...meta, choices: [], usage: { prompt_tokens: 42, completion_tokens: deltas, total_tokens: 42 + deltas } })}${blank}`
  )
  parts.push(`data: [DONE]${blank}`)
  return {
    name: lineEnd === "\n" ? "chat chunks" : "chat chunks, CRLF",
    bytes: new TextEncoder().encode(parts.join("")),
    events: parts.length,
    deltas,
    characters
  }
}

/** A chat corpus of about `bytes` bytes. */
export const chatCorpusOfSize = (bytes: number, lineEnd: "\n" | "\r\n" = "\n"): Corpus => {
  const probe = chatCorpus(1000, lineEnd)
  return chatCorpus(Math.max(10, Math.round((bytes / probe.bytes.length) * 1000)), lineEnd)
}

/**
 * A reply that is mostly CJK: Chinese and Japanese prose with CJK punctuation,
 * a little ASCII, and emoji (surrogate pairs, skin tones, ZWJ sequences, flags).
 */
export const cjkReplyText = [
  "当然可以！下面用几个要点说明服务器发送事件（SSE）是怎样工作的，并附上一个小例子。🙂\n\n",
  "## 原理\n\n服务器以 `text/event-stream` 作答，并保持连接不断开；每个事件由若干行「字段：值」组成，以空行结束。",
  "浏览器用 EventSource 接收，断线后会自动重连，还会带上最后一个事件的编号。🚀✨\n\n",
  "## 日本語での説明\n\nサーバー送信イベントは、サーバーからブラウザへ一方向にテキストを少しずつ届ける仕組みです。",
  "チャットの応答では、トークンが生成されるたびに小さなチャンクが送られ、画面に文字が順番に表示されます。👩🏻‍💻👨‍👩‍👧‍👦\n\n",
  "注意点：多字节字符（例如「漢字」或 🎉、🏳️‍🌈、🇨🇳🇯🇵）可能被拆到两次网络读取之间，所以解码器必须先按字节处理，",
  "等一行完整之后再转换成文字。文字化けを防ぐには、行がそろうまでバイトのまま保持するのが基本です。🙇‍♀️\n\n",
  "总结：按字节拆行，逐行解析 `data:` 中的 JSON，遇到 [DONE] 就停止读取。以上です、ご参考までに。🍣🍜🥟"
].join("")

const gpt4oToday = {
  id: "chatcmpl-CAbX8q2RnT5vYk7LmW3pZs9dHf1Ge",
  object: "chat.completion.chunk",
  created: 1756449012,
  model: "gpt-4o-2024-08-06",
  service_tier: "default",
  system_fingerprint: "fp_cbf1785567"
}

const OBFUSCATION_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/**
 * A streamed reply as OpenAI's API sends it today for `gpt-4o`, mostly CJK
 * and emoji: every chunk carries `service_tier`, `system_fingerprint` and an
 * `obfuscation` padding of 2 to 20 random characters; a role chunk, `deltas`
 * content chunks of 1 to 3 code points (a ZWJ sequence is cut like any other),
 * a finish chunk, a usage chunk (`stream_options.include_usage`) and `[DONE]`.
 */
export const cjkCorpus = (deltas: number): Corpus => {
  const random = prng(2025)
  const obfuscation = () => {
    let s = ""
    for (let n = 2 + Math.floor(random() * 19); n > 0; n--) s += OBFUSCATION_CHARS[Math.floor(random() * 62)]
    return s
  }
  const chunk = (rest: Record<string, unknown>) =>
    `data: ${JSON.stringify({ ...gpt4oToday, ...rest, obfuscation: obfuscation() })}\n\n`
  // With `include_usage`, every chunk carries `usage`: null until the last.
  const choice = (delta: unknown, finish: string | null = null) => ({
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    usage: null
  })
  const chars = Array.from(cjkReplyText)
  const parts: Array<string> = [chunk(choice({ role: "assistant", content: "", refusal: null }))]
  let characters = 0
  for (let i = 0, at = 0; i < deltas; i++) {
    let piece = ""
    for (let n = 1 + Math.floor(random() * 3); n > 0; n--) {
      piece += chars[at]!
      at = (at + 1) % chars.length
    }
    parts.push(chunk(choice({ content: piece })))
    characters += piece.length
  }
  parts.push(chunk(choice({}, "stop")))
  parts.push(
    chunk({
      choices: [],
      usage: {
        prompt_tokens: 27,
        completion_tokens: deltas,
        total_tokens: 27 + deltas,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: {
          reasoning_tokens: 0,
          audio_tokens: 0,
          accepted_prediction_tokens: 0,
          rejected_prediction_tokens: 0
        }
      }
    })
  )
  parts.push("data: [DONE]\n\n")
  return {
    name: "CJK and emoji chunks (gpt-4o today)",
    bytes: new TextEncoder().encode(parts.join("")),
    events: parts.length,
    deltas,
    characters
  }
}

/** A CJK corpus of about `bytes` bytes. */
export const cjkCorpusOfSize = (bytes: number): Corpus => {
  const probe = cjkCorpus(1000)
  return cjkCorpus(Math.max(10, Math.round((bytes / probe.bytes.length) * 1000)))
}

/** One event whose data is a chunk carrying about `bytes` bytes of content, then `[DONE]`. */
export const singleEventCorpus = (bytes: number): Corpus => {
  const unit = new TextEncoder().encode(replyText).length
  const text = replyText.repeat(Math.ceil(bytes / unit))
  const content = text.slice(0, Math.floor((text.length * bytes) / (unit * Math.ceil(bytes / unit))))
  const parts = [`data: ${chunkJson({ content })}\n\n`, "data: [DONE]\n\n"]
  return {
    name: "one large event",
    bytes: new TextEncoder().encode(parts.join("")),
    events: 2,
    deltas: 1,
    characters: content.length
  }
}

/** The corpus cut into network reads of `size` bytes (views, so cutting is not measured). */
export const split = (bytes: Uint8Array, size: number): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let i = 0; i < bytes.length; i += size) out.push(bytes.subarray(i, Math.min(bytes.length, i + size)))
  return out
}

// Streams that carry more than text (issue 19): tool calls and reasoning.

/** What a decoder must hand over from a tool-call or reasoning stream (see `tally.ts`). */
export interface RichCorpus {
  readonly name: string
  /** The SSE text, as the server sends it. */
  readonly text: string
  readonly bytes: Uint8Array
  /** `chat.completion.chunk` events (not `[DONE]`, not comments). */
  readonly chunks: number
  readonly expected: Tally
}

/** Splits text into token-sized pieces (1 to 6 code points) to its end, never through a code point. */
const tokensOf = (text: string, random: () => number): Array<string> => {
  const chars = Array.from(text)
  const pieces: Array<string> = []
  for (let at = 0; at < chars.length; ) {
    const size = 1 + Math.floor(random() * 6)
    pieces.push(chars.slice(at, at + size).join(""))
    at += size
  }
  return pieces
}

const sseOf = (chunks: ReadonlyArray<unknown>, head = ""): string =>
  `${head}${chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`).join("")}data: [DONE]\n\n`

/** What the stream's chunks carry, counted from the objects as `tallyChunk` counts them. */
const expectedOf = (chunks: ReadonlyArray<{ readonly choices: ReadonlyArray<unknown> }>): Tally => {
  const tally = emptyTally()
  for (const chunk of chunks) tallyChunk(tally, chunk)
  return tally
}

const richCorpus = (name: string, chunks: ReadonlyArray<{ readonly choices: ReadonlyArray<unknown> }>, head = "") => {
  const text = sseOf(chunks, head)
  return { name, text, bytes: new TextEncoder().encode(text), chunks: chunks.length, expected: expectedOf(chunks) }
}

const gpt4o = {
  id: "chatcmpl-BzK4qT7mWn2xR9vLp3sHcJ6dYfE8a",
  object: "chat.completion.chunk",
  created: 1753873620,
  model: "gpt-4o-2024-08-06",
  service_tier: "default",
  system_fingerprint: "fp_07871e2ad8"
}

/** The arguments of the parallel calls, in turn: short ones, and files whose content is the mixed-script reply. */
const toolCallArguments: ReadonlyArray<readonly [name: string, args: (n: number) => string]> = [
  ["get_weather", () => JSON.stringify({ location: "Paris, France", unit: "celsius" })],
  ["get_weather", () => JSON.stringify({ location: "東京, 日本", unit: "celsius" })],
  ["search_web", () => JSON.stringify({ query: "SSE 流式 协议 ブラウザ 🚀 EventSource", max_results: 5 })],
  ["write_file", (n) => JSON.stringify({ path: `notes/sse-概要-${n}.md`, content: replyText.repeat(4) })]
]

/**
 * gpt-4o calling tools in parallel: for each call a chunk with its id, name
 * and empty arguments, then its `arguments` one token-sized fragment per
 * chunk (`{"tool_calls":[{"index":1,"function":{"arguments":"\"Par"}}]}`),
 * calls after one another, until about `chunks` chunks; then the
 * `finish_reason: "tool_calls"` chunk. The arguments are JSON text holding
 * CJK, emoji and escapes.
 */
export const toolCallCorpus = (chunks: number): RichCorpus => {
  const random = prng(7)
  const choice = (delta: unknown, finish: string | null = null) => ({
    ...gpt4o,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }]
  })
  const out: Array<ReturnType<typeof choice>> = []
  for (let index = 0; out.length < chunks - 1; index++) {
    const [name, args] = toolCallArguments[index % toolCallArguments.length]!
    const id = `call_${(index * 2654435761).toString(36).padStart(8, "0")}Fq8ZpK2mW7xR4t`
    const head = { index, id, type: "function", function: { name, arguments: "" } }
    out.push(
      choice(
        index === 0 ? { role: "assistant", content: null, tool_calls: [head], refusal: null } : { tool_calls: [head] }
      )
    )
    for (const fragment of tokensOf(args(index), random)) {
      if (out.length >= chunks - 1) break
      out.push(choice({ tool_calls: [{ index, function: { arguments: fragment } }] }))
    }
  }
  out.push(choice({}, "tool_calls"))
  return richCorpus("tool calls (gpt-4o)", out)
}

/** What a reasoning model thinks before it answers: Chinese and English, with emoji. */
export const reasoningText = [
  "嗯，用户问的是服务器发送事件（SSE）是怎么工作的，还要一个 TypeScript 的例子。",
  "First, recall the wire format: each event is a block of `field: value` lines ended by a blank line; ",
  "the `data:` lines carry the payload. 我应该先解释协议，再给代码。",
  "Wait — should I mention reconnection and `Last-Event-ID`? 可能要简单提一下，但不是重点。🤔\n\n",
  "Edge cases: a multi-byte character (like 日本語 or 🎉) can be split across two network reads, ",
  "so the decoder has to work on bytes until a line is whole. 对，这一点很重要。",
  "Also `[DONE]` ends the stream for OpenAI-style servers. 好的，结构：1) 概念 2) 格式 3) 代码 4) 注意事项。✅\n\n"
].join("")

const deepseek = {
  id: "e3f1b2c4-7a9d-4e58-b0c6-2d4f8a1e9b37",
  object: "chat.completion.chunk",
  created: 1753873800,
  model: "deepseek-reasoner",
  system_fingerprint: "fp_393bca965e_prod0623_fp8_kvcache"
}

/**
 * DeepSeek `deepseek-reasoner`: `: keep-alive` comments, a role chunk, then
 * `reasoning_content` chunks (`content: null`), about 70% of `chunks`, then
 * `content` chunks (`reasoning_content: null`), both token-sized pieces of
 * mixed-script text; the finish chunk carries the usage.
 */
export const reasoningCorpus = (chunks: number): RichCorpus => {
  const thinking = Math.round((chunks - 2) * 0.7)
  const answering = chunks - 2 - thinking
  const chunk = (delta: unknown, finish: string | null = null, usage?: unknown) => ({
    ...deepseek,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(usage === undefined ? {} : { usage })
  })
  const out = [
    chunk({ role: "assistant", content: null, reasoning_content: "" }),
    ...tokenPieces(reasoningText, thinking).map((piece) => chunk({ content: null, reasoning_content: piece })),
    ...tokenPieces(replyText, answering).map((piece) => chunk({ content: piece, reasoning_content: null })),
    chunk({ content: "", reasoning_content: null }, "stop", {
      prompt_tokens: 13,
      completion_tokens: chunks,
      total_tokens: 13 + chunks,
      prompt_tokens_details: { cached_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: thinking },
      prompt_cache_hit_tokens: 0,
      prompt_cache_miss_tokens: 13
    })
  ]
  return richCorpus("reasoning (deepseek-reasoner)", out, ": keep-alive\n\n: keep-alive\n\n")
}
