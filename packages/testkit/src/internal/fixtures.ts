// The fixtures' data: each reply written as the chunk objects and the whole
// object a real server sends, in the server's key order, then serialized here
// with `JSON.stringify` so that the bytes are deterministic. The whole replies
// are written out in full rather than derived from the chunks, so that the
// tests' accumulation of the stream checks something.
// Free of `node:*`: the msw handlers may run in a browser.
import type { Fixture, TextReplyOptions } from "../Fixtures.js"
import type { RecordedRequest } from "../Mirror.js"
import { splitReply } from "./reply.js"

// ---------------------------------------------------------------------------
// serializers

const data = (value: unknown): string => `data: ${JSON.stringify(value)}\n\n`
const comment = (text: string): string => `: ${text}\n\n`
const done = "data: [DONE]\n\n"

const sseText = (head: ReadonlyArray<string>, chunks: ReadonlyArray<unknown>): string =>
  head.join("") + chunks.map(data).join("") + done

/** OpenAI's whole replies are indented by two spaces; most other servers send compact JSON. */
const pretty = (value: unknown): string => JSON.stringify(value, null, 2)
const compact = (value: unknown): string => JSON.stringify(value)

// ---------------------------------------------------------------------------
// OpenAI

interface OpenAiMeta {
  readonly id: string
  readonly created: number
  readonly model: string
  readonly fingerprint: string | null
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// OpenAI pads every chunk with random characters (`obfuscation`, sent unless
// `stream_options.include_obfuscation: false`) so that sizes do not reveal the
// tokens; a seeded generator keeps the fixture's bytes fixed.
const paddings = (seed: number): (() => string) => {
  let state = seed >>> 0
  const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0)
  return () => {
    const length = 1 + (next() % 12)
    let out = ""
    for (let i = 0; i < length; i++) out += alphabet[next() % alphabet.length]
    return out
  }
}

interface ChunkBody {
  readonly choices: ReadonlyArray<unknown>
  /** Present (`null` until the last chunk) when the request asked `stream_options.include_usage`. */
  readonly usage?: unknown
}

// `seed` undefined: no padding, as with `include_obfuscation: false`.
const openAiChunks = (meta: OpenAiMeta, seed: number | undefined, bodies: ReadonlyArray<ChunkBody>): Array<unknown> => {
  const pad = seed === undefined ? undefined : paddings(seed)
  return bodies.map((body) => ({
    id: meta.id,
    object: "chat.completion.chunk",
    created: meta.created,
    model: meta.model,
    service_tier: "default",
    system_fingerprint: meta.fingerprint,
    choices: body.choices,
    ...("usage" in body ? { usage: body.usage } : {}),
    ...(pad === undefined ? {} : { obfuscation: pad() })
  }))
}

const choiceDelta = (delta: unknown, options: { index?: number; logprobs?: unknown; finish?: string | null } = {}) => ({
  index: options.index ?? 0,
  delta,
  logprobs: options.logprobs ?? null,
  finish_reason: options.finish ?? null
})

/** One choice per chunk, as OpenAI streams them. */
const one = (delta: unknown, options?: Parameters<typeof choiceDelta>[1]): ChunkBody => ({
  choices: [choiceDelta(delta, options)]
})

const openAiWhole = (meta: OpenAiMeta, choices: ReadonlyArray<unknown>, usage: unknown) => ({
  id: meta.id,
  object: "chat.completion",
  created: meta.created,
  model: meta.model,
  choices,
  usage,
  service_tier: "default",
  system_fingerprint: meta.fingerprint
})

const openAiUsage = (prompt: number, completion: number) => ({
  prompt_tokens: prompt,
  completion_tokens: completion,
  total_tokens: prompt + completion,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: 0,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0
  }
})

// ---------------------------------------------------------------------------
// 1. parallel tool calls

const toolsMeta: OpenAiMeta = {
  id: "chatcmpl-BzK4qT7mWn2xR9vLp3sHcJ6dYfE8a",
  created: 1753873620,
  model: "gpt-4o-2024-08-06",
  fingerprint: "fp_07871e2ad8"
}

const parisCall = {
  id: "call_Fq8ZpK2mW7xR4tN9vB3cL6hJ",
  fragments: ['{"', "location", '":"', "Paris", ",", " France", '","', "unit", '":"', "c", "elsius", '"}']
}
const tokyoCall = {
  id: "call_T3nV8qL5zX1cM7kR2wP9dG4s",
  fragments: ['{"', "location", '":"', "Tok", "yo", ",", " Japan", '","', "unit", '":"', "c", "elsius", '"}']
}

const argumentChunks = (index: number, fragments: ReadonlyArray<string>): Array<ChunkBody> =>
  fragments.map((fragment) => one({ tool_calls: [{ index, function: { arguments: fragment } }] }))

export const openaiParallelToolCalls: Fixture = {
  name: "openai-parallel-tool-calls",
  description: "OpenAI gpt-4o calling get_weather twice in parallel, each call's arguments in about 12 fragments",
  includeUsage: false,
  stream: sseText(
    [],
    openAiChunks(toolsMeta, 1, [
      one({
        role: "assistant",
        content: null,
        tool_calls: [
          { index: 0, id: parisCall.id, type: "function", function: { name: "get_weather", arguments: "" } }
        ],
        refusal: null
      }),
      ...argumentChunks(0, parisCall.fragments),
      one({
        tool_calls: [{ index: 1, id: tokyoCall.id, type: "function", function: { name: "get_weather", arguments: "" } }]
      }),
      ...argumentChunks(1, tokyoCall.fragments),
      one({}, { finish: "tool_calls" })
    ])
  ),
  whole: pretty(
    openAiWhole(
      toolsMeta,
      [
        {
          index: 0,
          message: {
            role: "assistant",
            content: null,
            tool_calls: [
              {
                id: "call_Fq8ZpK2mW7xR4tN9vB3cL6hJ",
                type: "function",
                function: { name: "get_weather", arguments: '{"location":"Paris, France","unit":"celsius"}' }
              },
              {
                id: "call_T3nV8qL5zX1cM7kR2wP9dG4s",
                type: "function",
                function: { name: "get_weather", arguments: '{"location":"Tokyo, Japan","unit":"celsius"}' }
              }
            ],
            refusal: null,
            annotations: []
          },
          logprobs: null,
          finish_reason: "tool_calls"
        }
      ],
      openAiUsage(84, 52)
    )
  )
}

// ---------------------------------------------------------------------------
// 2. legacy function_call

// gpt-3.5-turbo-0125 answers the legacy `functions` parameter, with a null fingerprint.
const legacyMeta: OpenAiMeta = {
  id: "chatcmpl-BzK5aLm3Qw8eTy6uIo2pAs4dFg7hJ",
  created: 1753873680,
  model: "gpt-3.5-turbo-0125",
  fingerprint: null
}

export const legacyFunctionCall: Fixture = {
  name: "legacy-function-call",
  description: "OpenAI's legacy `functions` answer: one function_call (CJK arguments), finish_reason function_call",
  includeUsage: false,
  stream: sseText(
    [],
    openAiChunks(legacyMeta, 2, [
      one({ role: "assistant", content: null, function_call: { name: "get_weather", arguments: "" }, refusal: null }),
      ...['{"', "location", '":"', "東", "京", '","', "unit", '":"', "c", "elsius", '"}'].map((fragment) =>
        one({ function_call: { arguments: fragment } })
      ),
      one({}, { finish: "function_call" })
    ])
  ),
  whole: pretty(
    openAiWhole(
      legacyMeta,
      [
        {
          index: 0,
          message: {
            role: "assistant",
            content: null,
            function_call: { name: "get_weather", arguments: '{"location":"東京","unit":"celsius"}' },
            refusal: null,
            annotations: []
          },
          logprobs: null,
          finish_reason: "function_call"
        }
      ],
      openAiUsage(71, 11)
    )
  )
}

// ---------------------------------------------------------------------------
// 3. DeepSeek reasoner

const deepseekMeta = {
  id: "e3f1b2c4-7a9d-4e58-b0c6-2d4f8a1e9b37",
  created: 1753873800,
  model: "deepseek-reasoner",
  system_fingerprint: "fp_393bca965e_prod0623_fp8_kvcache"
}

const deepseekChunk = (delta: unknown, finish: string | null = null, usage?: unknown) => ({
  id: deepseekMeta.id,
  object: "chat.completion.chunk",
  created: deepseekMeta.created,
  model: deepseekMeta.model,
  system_fingerprint: deepseekMeta.system_fingerprint,
  choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  ...(usage === undefined ? {} : { usage })
})

const deepseekUsage = {
  prompt_tokens: 13,
  completion_tokens: 42,
  total_tokens: 55,
  prompt_tokens_details: { cached_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 27 },
  prompt_cache_hit_tokens: 0,
  prompt_cache_miss_tokens: 13
}

export const deepseekReasoning: Fixture = {
  name: "deepseek-reasoning",
  description:
    "DeepSeek deepseek-reasoner (vLLM answers alike): `: keep-alive` comments, reasoning_content then content, usage on the finish chunk; the whole reply starts with DeepSeek's keep-alive blank lines",
  includeUsage: false,
  stream: sseText(
    [comment("keep-alive"), comment("keep-alive")],
    [
      deepseekChunk({ role: "assistant", content: null, reasoning_content: "" }),
      ...[
        "嗯",
        "，用户",
        "问",
        '"',
        "1",
        "+",
        "1",
        '"',
        "等于",
        "几",
        "。",
        "\n",
        "这",
        "很",
        "简单",
        "：",
        "答案",
        "是",
        "2",
        "。"
      ].map((fragment) => deepseekChunk({ content: null, reasoning_content: fragment })),
      ...["**", "答案", "：", "2", "**", "\n\n", "1", " +", " 1", " =", " 2", " 🙂"].map((fragment) =>
        deepseekChunk({ content: fragment, reasoning_content: null })
      ),
      deepseekChunk({ content: "", reasoning_content: null }, "stop", deepseekUsage)
    ]
  ),
  // Until a non-stream answer is ready DeepSeek writes blank lines; JSON allows them before the value.
  whole:
    "\n\n" +
    compact({
      id: deepseekMeta.id,
      object: "chat.completion",
      created: deepseekMeta.created,
      model: deepseekMeta.model,
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: "**答案：2**\n\n1 + 1 = 2 🙂",
            reasoning_content: '嗯，用户问"1+1"等于几。\n这很简单：答案是2。'
          },
          logprobs: null,
          finish_reason: "stop"
        }
      ],
      usage: deepseekUsage,
      system_fingerprint: deepseekMeta.system_fingerprint
    })
}

// ---------------------------------------------------------------------------
// 4. Ollama

const ollamaMeta = { id: "chatcmpl-428", created: 1753873900, model: "qwen3:8b", system_fingerprint: "fp_ollama" }

// Ollama's Go structs: every delta carries `role` and `content`; `finish_reason` is
// always present; `usage` and an empty `reasoning` are omitted.
const ollamaChunk = (choices: ReadonlyArray<unknown>, usage?: unknown) => ({
  id: ollamaMeta.id,
  object: "chat.completion.chunk",
  created: ollamaMeta.created,
  model: ollamaMeta.model,
  system_fingerprint: ollamaMeta.system_fingerprint,
  choices,
  ...(usage === undefined ? {} : { usage })
})

const ollamaUsage = { prompt_tokens: 18, completion_tokens: 27, total_tokens: 45 }

export const ollamaReasoning: Fixture = {
  name: "ollama-reasoning",
  description:
    "Ollama's OpenAI-compatible endpoint with qwen3:8b thinking: delta.reasoning then delta.content, usage asked with include_usage",
  includeUsage: true,
  stream: sseText(
    [],
    [
      ...[
        "Okay",
        ",",
        " the",
        " user",
        " wants",
        " a",
        " greeting",
        " in",
        " Japanese",
        ".",
        ' "',
        "こんにちは",
        '"',
        " works",
        "."
      ].map((fragment) =>
        ollamaChunk([{ index: 0, delta: { role: "assistant", content: "", reasoning: fragment }, finish_reason: null }])
      ),
      ...["こんにちは", "！", " 👋", "\n\n", "(", "Hello", "!)"].map((fragment) =>
        ollamaChunk([{ index: 0, delta: { role: "assistant", content: fragment }, finish_reason: null }])
      ),
      ollamaChunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: "stop" }]),
      ollamaChunk([], ollamaUsage)
    ]
  ),
  whole: compact({
    id: ollamaMeta.id,
    object: "chat.completion",
    created: ollamaMeta.created,
    model: ollamaMeta.model,
    system_fingerprint: ollamaMeta.system_fingerprint,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: "こんにちは！ 👋\n\n(Hello!)",
          reasoning: 'Okay, the user wants a greeting in Japanese. "こんにちは" works.'
        },
        finish_reason: "stop"
      }
    ],
    usage: ollamaUsage
  })
}

// ---------------------------------------------------------------------------
// 5. OpenRouter

const openrouterMeta = {
  id: "gen-1753874000-Zq7kP3xVb9LmN2cR8tWy",
  provider: "DeepInfra",
  model: "deepseek/deepseek-r1-0528",
  created: 1753874000
}

const openrouterChunk = (delta: unknown, finish: string | null = null, usage?: unknown) => ({
  id: openrouterMeta.id,
  provider: openrouterMeta.provider,
  model: openrouterMeta.model,
  object: "chat.completion.chunk",
  created: openrouterMeta.created,
  choices: [{ index: 0, delta, finish_reason: finish, native_finish_reason: finish, logprobs: null }],
  ...(usage === undefined ? {} : { usage })
})

const openrouterUsage = {
  prompt_tokens: 14,
  completion_tokens: 63,
  total_tokens: 77,
  cost: 0.000146,
  is_byok: false,
  prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
  cost_details: {
    upstream_inference_cost: null,
    upstream_inference_prompt_cost: 0.000007,
    upstream_inference_completions_cost: 0.000139
  },
  completion_tokens_details: { reasoning_tokens: 41, image_tokens: 0 }
}

const reasoningText = (text: string) => ({ type: "reasoning.text", text, format: "unknown", index: 0 })

export const openrouterReasoning: Fixture = {
  name: "openrouter-reasoning",
  description:
    "OpenRouter routing deepseek-r1 to a provider: `: OPENROUTER PROCESSING` comments, delta.reasoning with reasoning_details, `provider` on every chunk, a last usage chunk with cost",
  includeUsage: true,
  stream: sseText(
    [comment("OPENROUTER PROCESSING"), comment("OPENROUTER PROCESSING")],
    [
      ...[
        "The user",
        " asks",
        " for",
        " the",
        " boiling",
        " point",
        " of",
        " water",
        " at",
        " sea",
        " level",
        ".\n",
        "That",
        "'s",
        " 100",
        " °C",
        "."
      ].map((fragment) =>
        openrouterChunk({
          role: "assistant",
          content: "",
          reasoning: fragment,
          reasoning_details: [reasoningText(fragment)]
        })
      ),
      ...["Water", " boils", " at", " **100", " °C**", " (212", " °F)", " at", " sea", " level", "."].map((fragment) =>
        openrouterChunk({ role: "assistant", content: fragment })
      ),
      openrouterChunk({ role: "assistant", content: "" }, "stop"),
      // OpenRouter's usage chunk repeats an empty choice instead of `choices: []`.
      openrouterChunk({ role: "assistant", content: "" }, null, openrouterUsage)
    ]
  ),
  whole: compact({
    id: openrouterMeta.id,
    provider: openrouterMeta.provider,
    model: openrouterMeta.model,
    object: "chat.completion",
    created: openrouterMeta.created,
    choices: [
      {
        logprobs: null,
        finish_reason: "stop",
        native_finish_reason: "stop",
        index: 0,
        message: {
          role: "assistant",
          content: "Water boils at **100 °C** (212 °F) at sea level.",
          refusal: null,
          reasoning: "The user asks for the boiling point of water at sea level.\nThat's 100 °C.",
          reasoning_details: [
            reasoningText("The user asks for the boiling point of water at sea level.\nThat's 100 °C.")
          ]
        }
      }
    ],
    usage: openrouterUsage
  })
}

// ---------------------------------------------------------------------------
// 6. two choices

const twoMeta: OpenAiMeta = {
  id: "chatcmpl-BzK6wE9rT2yU5iO8pA1sD4fG7hJkL",
  created: 1753874100,
  model: "gpt-4o-mini-2024-07-18",
  fingerprint: "fp_560af6e559"
}

const firstChoice = ["Hello", "!", " 👋", " How", " can", " I", " help", " you", " today", "?"]
const secondChoice = ["你好", "！", "有什么", "可以", "帮", "你的", "吗", "？", "😊"]

// n: 2 interleaves the choices, one per chunk; the shorter one finishes first.
const interleaved = (): Array<ChunkBody> => {
  const out: Array<ChunkBody> = [
    one({ role: "assistant", content: "", refusal: null }, { index: 0 }),
    one({ role: "assistant", content: "", refusal: null }, { index: 1 })
  ]
  for (let i = 0; i < Math.max(firstChoice.length, secondChoice.length); i++) {
    if (i < firstChoice.length) out.push(one({ content: firstChoice[i] }, { index: 0 }))
    if (i < secondChoice.length) out.push(one({ content: secondChoice[i] }, { index: 1 }))
    if (i === secondChoice.length - 1) out.push(one({}, { index: 1, finish: "stop" }))
  }
  out.push(one({}, { index: 0, finish: "stop" }))
  return out
}

const textChoice = (index: number, content: string) => ({
  index,
  message: { role: "assistant", content, refusal: null, annotations: [] },
  logprobs: null,
  finish_reason: "stop"
})

export const twoChoices: Fixture = {
  name: "two-choices",
  description: "OpenAI gpt-4o-mini with n: 2: the chunks of choice 0 (English) and choice 1 (Chinese) interleaved",
  includeUsage: false,
  stream: sseText([], openAiChunks(twoMeta, 6, interleaved())),
  whole: pretty(
    openAiWhole(
      twoMeta,
      [textChoice(0, "Hello! 👋 How can I help you today?"), textChoice(1, "你好！有什么可以帮你的吗？😊")],
      openAiUsage(9, 19)
    )
  )
}

// ---------------------------------------------------------------------------
// 7. logprobs

const logprobsMeta: OpenAiMeta = {
  id: "chatcmpl-BzK7eR4tY7uI0oP3aS6dF9gH2jKlZ",
  created: 1753874200,
  model: "gpt-4o-mini-2024-07-18",
  fingerprint: "fp_560af6e559"
}

const utf8 = new TextEncoder()

const tokenLogprob = ([token, logprob]: readonly [string, number]) => ({
  token,
  logprob,
  bytes: Array.from(utf8.encode(token)),
  top_logprobs: []
})

const tokens: ReadonlyArray<readonly [string, number]> = [
  ["Hello", -0.31],
  ["!", -0.0012],
  [" 👋", -1.25],
  [" Nice", -0.48],
  [" to", -0.000021],
  [" meet", -0.0003],
  [" you", -0.0000021],
  [".", -0.062]
]

export const logprobs: Fixture = {
  name: "logprobs",
  description: "OpenAI gpt-4o-mini with logprobs: true: each content chunk carries its token's logprob and bytes",
  includeUsage: false,
  stream: sseText(
    [],
    openAiChunks(logprobsMeta, 7, [
      one({ role: "assistant", content: "", refusal: null }, { logprobs: { content: [], refusal: null } }),
      ...tokens.map((token) =>
        one({ content: token[0] }, { logprobs: { content: [tokenLogprob(token)], refusal: null } })
      ),
      one({}, { finish: "stop" })
    ])
  ),
  whole: pretty(
    openAiWhole(
      logprobsMeta,
      [
        {
          index: 0,
          message: { role: "assistant", content: "Hello! 👋 Nice to meet you.", refusal: null, annotations: [] },
          logprobs: { content: tokens.map(tokenLogprob), refusal: null },
          finish_reason: "stop"
        }
      ],
      openAiUsage(10, 8)
    )
  )
}

// ---------------------------------------------------------------------------
// 8. refusal

const refusalMeta: OpenAiMeta = {
  id: "chatcmpl-BzK8rT5yU8iO1pA4sD7fG0hJ3kLzX",
  created: 1753874300,
  model: "gpt-4o-2024-08-06",
  fingerprint: "fp_07871e2ad8"
}

export const refusal: Fixture = {
  name: "refusal",
  description: "OpenAI gpt-4o refusing a structured-output request: delta.refusal fragments, content null",
  includeUsage: false,
  stream: sseText(
    [],
    openAiChunks(refusalMeta, 8, [
      one({ role: "assistant", content: null, refusal: "" }),
      ...["I'm", " sorry", ",", " I", " can't", " assist", " with", " that", " request", "."].map((fragment) =>
        one({ refusal: fragment })
      ),
      one({}, { finish: "stop" })
    ])
  ),
  whole: pretty(
    openAiWhole(
      refusalMeta,
      [
        {
          index: 0,
          message: {
            role: "assistant",
            content: null,
            refusal: "I'm sorry, I can't assist with that request.",
            annotations: []
          },
          logprobs: null,
          finish_reason: "stop"
        }
      ],
      openAiUsage(112, 10)
    )
  )
}

// ---------------------------------------------------------------------------
// 9. include_usage

const usageMeta: OpenAiMeta = {
  id: "chatcmpl-BzK9tY6uI9oP2aS5dF8gH1jK4lZxC",
  created: 1753874400,
  model: "gpt-4o-mini-2024-07-18",
  fingerprint: "fp_560af6e559"
}

const haiku = [
  "Here's",
  " a",
  " ha",
  "iku",
  " about",
  ' "',
  "spring",
  '":\n\n',
  "春",
  "の",
  "海",
  " 🌊",
  "\n",
  "waves",
  " fold",
  " into",
  " foam",
  " —",
  "\n",
  "the",
  " gul",
  "ls",
  " say",
  " nothing",
  "."
]

export const includeUsage: Fixture = {
  name: "include-usage",
  description:
    "OpenAI gpt-4o-mini asked stream_options.include_usage: `usage: null` on every chunk, then a usage chunk with no choices",
  includeUsage: true,
  stream: sseText(
    [],
    openAiChunks(usageMeta, 9, [
      { ...one({ role: "assistant", content: "", refusal: null }), usage: null },
      ...haiku.map((piece) => ({ ...one({ content: piece }), usage: null })),
      { ...one({}, { finish: "stop" }), usage: null },
      { choices: [], usage: openAiUsage(25, 25) }
    ])
  ),
  whole: pretty(
    openAiWhole(
      usageMeta,
      [textChoice(0, 'Here\'s a haiku about "spring":\n\n春の海 🌊\nwaves fold into foam —\nthe gulls say nothing.')],
      openAiUsage(25, 25)
    )
  )
}

export const all: ReadonlyArray<Fixture> = [
  openaiParallelToolCalls,
  legacyFunctionCall,
  deepseekReasoning,
  ollamaReasoning,
  openrouterReasoning,
  twoChoices,
  logprobs,
  refusal,
  includeUsage
]

// ---------------------------------------------------------------------------
// builders

export const textReply = (text: string, options: TextReplyOptions = {}): Fixture => {
  const meta: OpenAiMeta = {
    id: options.id ?? "chatcmpl-testkit-text-reply",
    created: options.created ?? 1753874500,
    model: options.model ?? "gpt-4o-mini-2024-07-18",
    fingerprint: "fp_560af6e559"
  }
  const pieces = splitReply(text, options.chunkSize ?? 4, undefined)
  return {
    name: options.name ?? "text-reply",
    description: "A plain OpenAI-style text reply (textReply)",
    includeUsage: false,
    stream: sseText(
      [],
      openAiChunks(meta, undefined, [
        one({ role: "assistant", content: "", refusal: null }),
        ...pieces.map((piece) => one({ content: piece })),
        one({}, { finish: "stop" })
      ])
    ),
    whole: pretty(openAiWhole(meta, [textChoice(0, text)], openAiUsage(0, pieces.length)))
  }
}

const lastRole = (request: RecordedRequest): unknown => {
  const messages = (request.body as { messages?: unknown } | undefined)?.messages
  if (!Array.isArray(messages) || messages.length === 0) return undefined
  const last = messages[messages.length - 1]
  return last !== null && typeof last === "object" ? (last as { role?: unknown }).role : undefined
}

export const toolLoop = (first: Fixture, final: Fixture | string): ((request: RecordedRequest) => Fixture) => {
  const answer = typeof final === "string" ? textReply(final) : final
  return (request) => {
    const role = lastRole(request)
    return role === "tool" || role === "function" ? answer : first
  }
}
