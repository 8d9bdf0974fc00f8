/** The rule a client key must follow, as errors state it. */
export const KEY_RULE =
  "must be at least 16 characters, each printable ASCII other than space (e.g. openssl rand -hex 24)"

/** Why a key would be refused, or `undefined` when it is accepted (see `Gateway.keyProblem`). */
export const keyProblem = (key: string): string | undefined =>
  typeof key === "string" && key.length >= 16 && /^[\x21-\x7e]+$/.test(key) ? undefined : KEY_RULE
