// The input of the decoding sections: the bytes an OpenAI-compatible server
// streams for a chat completion, in the shape OpenAI sends them.

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
