import { type AttemptError, isRequestFault } from "../Errors.js"

export { isRequestFault }

/** What a failed attempt means for its call. */
export type Verdict = "failover" | "fail"

/**
 * The one rule of failover: another server is tried unless the reply has
 * begun (a second server would start it again), the request is at fault (it
 * would fail anywhere), or the call's total time is spent.
 */
export const verdictOf = (error: AttemptError, deltasDelivered: number): Verdict =>
  deltasDelivered > 0 || isRequestFault(error) || (error._tag === "Timeout" && error.phase === "total")
    ? "fail"
    : "failover"
