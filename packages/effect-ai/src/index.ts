/**
 * @since 0.1.0
 */

/**
 * `@effect/ai`'s `LanguageModel` over an easychat pool.
 *
 * @since 0.1.0
 */
export * as EasyChatLanguageModel from "./EasyChatLanguageModel.js"
