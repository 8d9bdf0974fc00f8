/**
 * `@easychat/gateway`: an OpenAI-compatible HTTP server in front of an easychat pool.
 *
 * @since 0.1.0
 */

/**
 * The gateway's configuration file: routes from models to pools, fallbacks, and the gateway's settings.
 *
 * @since 0.5.0
 */
export * as Config from "./Config.js"

/**
 * The gateway: its options, the `HttpApp` to mount, the Node layer and a Promise `start`.
 *
 * @since 0.1.0
 */
export * as Gateway from "./Gateway.js"
