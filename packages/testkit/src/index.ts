/**
 * `@easychat/testkit`: a local NextChat-style mirror with fault injection.
 * The msw handlers live in `@easychat/testkit/msw`, so that this entry does not load msw.
 *
 * @since 0.1.0
 */

/**
 * The faults a mirror can inject.
 *
 * @since 0.1.0
 */
export * as Fault from "./Fault.js"

/**
 * Byte-exact replies of real servers (tool calls, reasoning, refusals, logprobs), to serve from a mirror.
 *
 * @since 0.2.0
 */
export * as Fixtures from "./Fixtures.js"

/**
 * What a mirror does: options, recorded requests, default reply, SSE builders.
 *
 * @since 0.1.0
 */
export * as Mirror from "./Mirror.js"

/**
 * Several mirror servers at once.
 *
 * @since 0.1.0
 */
export * as MirrorPool from "./MirrorPool.js"

/**
 * A real mirror on node:http.
 *
 * @since 0.1.0
 */
export * as MirrorServer from "./MirrorServer.js"
