/**
 * `@easychat/gateway`: an OpenAI-compatible HTTP server in front of an easychat pool.
 *
 * @since 0.1.0
 */

/**
 * The gateway: its options, the `HttpApp` to mount, the Node layer and a Promise `start`.
 *
 * @since 0.1.0
 */
export * as Gateway from "./Gateway.js"
