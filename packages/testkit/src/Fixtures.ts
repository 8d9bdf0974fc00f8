/**
 * Replies in the shapes real servers send today (OpenAI, DeepSeek, Ollama,
 * OpenRouter), written out from their documented and observed formats (not
 * captured traffic) and served byte for byte: each fixture holds the streamed
 * answer (SSE) and the whole answer (JSON) of the same reply, for tests of
 * clients that must lose nothing — tool calls, reasoning, refusals, logprobs,
 * every choice.
 *
 * Serve one with the `fixture` option of `MirrorServer.start` or
 * `mirrorHandlers`, or read its chunks with `chunksOf`. Free of `node:*`, so
 * that the msw handlers can use it in a browser (import it from
 * `@easychat/testkit/fixtures` there: the main entry loads node:http).
 *
 * @since 0.2.0
 */
import * as internal from "./internal/fixtures.js"
import { eventData, sseEventTexts } from "./internal/reply.js"
import type { RecordedRequest } from "./Mirror.js"

/**
 * A reply as one server sends it, streamed and whole. Accumulating the stream's
 * chunks (text fields concatenated per choice, tool-call fragments joined by
 * `index`, `logprobs.content` concatenated) gives the whole reply's choices and,
 * when the stream carries it, its usage; `id`, `created`, `model` and the other
 * metadata are the same in every chunk and in the whole reply.
 *
 * @since 0.2.0
 * @category models
 */
export interface Fixture {
  /** e.g. `"openai-parallel-tool-calls"`. */
  readonly name: string
  /** One line: which server answers this way. */
  readonly description: string
  /** The exact text of the streamed answer: SSE events, comments and `data: [DONE]` as the server sends them. */
  readonly stream: string
  /** The exact JSON text of the whole (`stream: false`) answer. */
  readonly whole: string
  /**
   * Whether the stream answers a request with `stream_options.include_usage`.
   * Informational: some servers (DeepSeek) send usage unasked.
   */
  readonly includeUsage: boolean
}

/**
 * OpenAI gpt-4o calling `get_weather` for Paris and Tokyo in parallel, each
 * call's `arguments` in about 12 fragments; `finish_reason: "tool_calls"`.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const openaiParallelToolCalls: Fixture = internal.openaiParallelToolCalls

/**
 * OpenAI's answer to the legacy `functions` parameter: one `function_call`
 * whose arguments hold CJK text; `finish_reason: "function_call"`.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const legacyFunctionCall: Fixture = internal.legacyFunctionCall

/**
 * DeepSeek `deepseek-reasoner` (vLLM answers alike): `: keep-alive` comments
 * first, `reasoning_content` deltas then `content` deltas (Chinese, an emoji),
 * usage with `reasoning_tokens` and `prompt_cache_hit_tokens` on the finish
 * chunk. The whole reply begins with DeepSeek's keep-alive blank lines.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const deepseekReasoning: Fixture = internal.deepseekReasoning

/**
 * Ollama's OpenAI-compatible endpoint with `qwen3:8b` thinking: `reasoning`
 * deltas then `content` deltas (Japanese, an emoji), `fp_ollama`, a usage chunk.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const ollamaReasoning: Fixture = internal.ollamaReasoning

/**
 * OpenRouter: `: OPENROUTER PROCESSING` comments, `reasoning` with
 * `reasoning_details` deltas, `provider` and `native_finish_reason` on every
 * chunk, a last usage chunk with `cost`.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const openrouterReasoning: Fixture = internal.openrouterReasoning

/**
 * OpenAI with `n: 2`: the chunks of choice 0 (English) and choice 1 (Chinese)
 * interleaved, each choice with its own finish chunk.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const twoChoices: Fixture = internal.twoChoices

/**
 * OpenAI with `logprobs: true`: every content chunk carries its token's
 * `logprob` and UTF-8 `bytes` (an emoji among them).
 *
 * @since 0.2.0
 * @category fixtures
 */
export const logprobs: Fixture = internal.logprobs

/**
 * OpenAI refusing a structured-output request: `refusal` deltas, `content: null`.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const refusal: Fixture = internal.refusal

/**
 * OpenAI text with `stream_options.include_usage`: `"usage": null` on every
 * chunk, then a chunk with `choices: []` and the usage. Text with CJK, an emoji,
 * quotes and line ends.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const includeUsage: Fixture = internal.includeUsage

/**
 * Every fixture above, in that order.
 *
 * @since 0.2.0
 * @category fixtures
 */
export const all: ReadonlyArray<Fixture> = internal.all

/**
 * @since 0.2.0
 * @category models
 */
export interface TextReplyOptions {
  /** Default `"text-reply"`. */
  readonly name?: string
  readonly id?: string
  /** Seconds since the epoch. */
  readonly created?: number
  /** Default `"gpt-4o-mini-2024-07-18"`. */
  readonly model?: string
  /** Code points per content delta. Default 4. */
  readonly chunkSize?: number
}

/**
 * A plain OpenAI-style text reply: a role chunk, one chunk per `chunkSize`
 * code points, a finish chunk (`"stop"`) and `data: [DONE]`; the whole reply
 * counts one completion token per delta.
 *
 * @since 0.2.0
 * @category constructors
 */
export const textReply: (text: string, options?: TextReplyOptions) => Fixture = internal.textReply

/**
 * For clients that run tools (openai's `runTools`, the AI SDK's `generateText`
 * with tools): answers `first` until the request's last message has role
 * `"tool"` or `"function"`, then `final` (a string is a `textReply`).
 *
 * @example
 * MirrorServer.start({ fixture: Fixtures.toolLoop(Fixtures.openaiParallelToolCalls, "Paris 18 °C, Tokyo 24 °C.") })
 *
 * @since 0.2.0
 * @category constructors
 */
export const toolLoop: (first: Fixture, final: Fixture | string) => (request: RecordedRequest) => Fixture =
  internal.toolLoop

/**
 * The parsed JSON of each `data` event of the stream, in order; comments and
 * `[DONE]` left out.
 *
 * @since 0.2.0
 * @category accessors
 */
export const chunksOf = (fixture: Fixture): ReadonlyArray<unknown> =>
  sseEventTexts(fixture.stream).flatMap((event) => {
    const data = eventData(event)
    return data === undefined || data === "[DONE]" ? [] : [JSON.parse(data) as unknown]
  })

/**
 * The whole reply, parsed.
 *
 * @since 0.2.0
 * @category accessors
 */
export const wholeOf = (fixture: Fixture): unknown => JSON.parse(fixture.whole)
