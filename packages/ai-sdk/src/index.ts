/**
 * `@easychat/ai-sdk`: an AI SDK provider over an easychat pool.
 *
 * @since 0.1.0
 */

/** The provider: `createEasyChat(options)`, its options and models. */
export * as EasyChatProvider from "./EasyChatProvider.js"
export { createEasyChat, type EasyChatProvider as Provider, type Options } from "./EasyChatProvider.js"
