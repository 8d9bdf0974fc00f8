/**
 * The low-level handle of one streamed chat call: pull the next batch of
 * deltas (opening the call and failing over as needed), or, between reads,
 * take what has arrived (`poll`) and be woken when more has (`wait`) without
 * running an Effect. `EasyChat.stream` and the Promise facade are built on it,
 * and so is anything that forwards a reply batch by batch (the gateway).
 *
 * @since 0.3.0
 */
import * as Channel from "effect/Channel"
import type * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type { ChatDelta } from "./Chat.js"
import type { EasyChatError } from "./Errors.js"

/** @since 0.3.0 @category models */
export interface ChatCall {
  /**
   * The deltas decoded since the last pull, waiting for the next network read
   * when there are none; fails with `None` at the end of the reply and with
   * the call's error otherwise. The first pull opens the call.
   */
  readonly pull: Effect.Effect<Chunk.Chunk<ChatDelta>, Option.Option<EasyChatError>>
  /**
   * Opens the call as `pull` does, and succeeds with an empty batch once a
   * server's body is being read: the first deltas then come through `poll`
   * and `wait` as every later batch does.
   */
  readonly start: Effect.Effect<Chunk.Chunk<ChatDelta>, Option.Option<EasyChatError>>
  /** The deltas decoded since the last take, or `undefined` when none are (then `wait`, or `pull`). */
  readonly poll: () => Chunk.Chunk<ChatDelta> | undefined
  /**
   * Calls `wake` once when `poll` or `pull` has something. `false` when the
   * caller must `pull` instead: something is ready already, the attempt has
   * ended (it may fail over), or nothing guards the wait's time limit yet.
   */
  readonly wait: (wake: () => void) => boolean
  /** Forgets a `wait` (the caller gave up). */
  readonly unwait: () => void
}

/**
 * A call as a `Stream` of deltas: one channel step per batch (`Stream.fromPull`
 * adds an `unwrap`, an `Option` and a tuple to each step, and costs more to
 * start).
 * @since 0.3.0 @category conversions
 */
export const toStream = <R>(
  open: Effect.Effect<ChatCall, never, R>
): Stream.Stream<ChatDelta, EasyChatError, Exclude<R, Scope.Scope>> =>
  Stream.fromChannel(
    Channel.unwrapScoped(
      Effect.map(open, ({ pull }) => {
        const loop: Channel.Channel<
          Chunk.Chunk<ChatDelta>,
          unknown,
          Option.Option<EasyChatError>,
          unknown
        > = Channel.flatMap(Channel.fromEffect(pull), (batch) => Channel.zipRight(Channel.write(batch), loop))
        return Channel.catchAll(loop, (end) => (Option.isNone(end) ? Channel.void : Channel.fail(end.value)))
      })
    )
  )
