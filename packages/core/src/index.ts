/**
 * easychat: chat with OpenAI-compatible mirrors and servers, with failover,
 * typed errors and byte-exact streaming.
 *
 * @since 0.1.0
 */

/** How a response body reaches the decoder: the transport's fast reader, or `response.stream`. */
export * as BodyReader from "./BodyReader.js"
export type { ChatCompletion, ChatDelta, ChatRequest, ChatRequestInput, Message, Usage } from "./Chat.js"
/** Schemas of a chat: messages, request, reply, deltas, and request validation. */
export * as Chat from "./Chat.js"
/** The low-level handle of one streamed call: pull, or poll and wait between reads. */
export * as ChatCall from "./ChatCall.js"
/** The Promise and async-iterator facade over any transport layer. */
export * as Client from "./Client.js"
/** The EasyChat service: complete, stream, createCompletion, layers and config. */
export * as EasyChat from "./EasyChat.js"
/** The typed errors of easychat. */
export * as Errors from "./Errors.js"
export {
  AllServersFailed,
  DecodeError,
  type EasyChatError,
  HttpStatusError,
  InvalidRequest,
  NoResponse,
  StreamInterrupted,
  Timeout,
  TransportError,
  UnexpectedContentType,
  UpstreamError
} from "./Errors.js"
export type { Options } from "./Presets.js"
/** The options every entry point takes, and the presets. */
export * as Presets from "./Presets.js"
/** The server pool: selection, circuit breakers, health. */
export * as ServerPool from "./ServerPool.js"
/** An incremental WHATWG server-sent events decoder. */
export * as Sse from "./Sse.js"
/** How a pool chooses the next server: `random`, `roundRobin`, or your own. */
export * as Strategy from "./Strategy.js"

// Keeps the decode path's hidden classes alive (see internal/resident.ts).
import "./internal/resident.js"
