import { type AttemptError, isRequestFault } from "../Errors.js"

export { isRequestFault }

/**
 * What a failed attempt means for its call: try another server with the
 * same request (`failover`), send the reply so far to another server to be
 * continued (`continue`, only for a call that allows it), or end the call.
 */
export type Verdict = "failover" | "continue" | "fail"

/**
 * The one rule of failover: another server is tried unless the reply has
 * begun (a second server would start it again), the request is at fault (it
 * would fail anywhere), or the call's total time is spent. Once the reply has
 * begun, any other failure is a cut (the connection lost, the idle limit, an
 * end without `[DONE]` or finish reason, an error event, a garbled chunk):
 * a call whose reply can be continued (`continuable`: `continueAfterCut`, one
 * choice, no tool call begun, not finished) continues it elsewhere.
 */
export const verdictOf = (error: AttemptError, deltasDelivered: number, continuable = false): Verdict =>
  isRequestFault(error) || (error._tag === "Timeout" && error.phase === "total")
    ? "fail"
    : deltasDelivered === 0
      ? "failover"
      : continuable
        ? "continue"
        : "fail"
