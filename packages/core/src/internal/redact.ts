/** What a secret becomes in a message, a log line or an excerpt. */
export const REDACTED = "[redacted]"

/**
 * Removes every occurrence of each secret from `text`, whatever surrounds it:
 * the longest first (a secret that holds another goes whole), again until
 * none is left (a replacement can join the text around it into a secret).
 * A text that keeps making secrets is dropped whole.
 */
export const redact = (text: string, secrets: ReadonlyArray<string>): string => {
  if (!secrets.some((s) => s.length > 0 && text.includes(s))) return text
  // Every secret, not only those present: removing one can join the text around it into another.
  const ordered = [...new Set(secrets.filter((s) => s.length > 0))].sort((a, b) => b.length - a.length)
  // A secret inside the mark itself (`[`, `red`) would come back with every replacement.
  const mark = secrets.some((s) => s.length > 0 && REDACTED.includes(s)) ? "" : REDACTED
  let out = text
  for (let round = 0; round < 8; round++) {
    for (const secret of ordered) if (out.includes(secret)) out = out.split(secret).join(mark)
    if (!ordered.some((s) => out.includes(s))) return out
  }
  return mark
}

/**
 * The forms a bearer credential may be echoed in: the header's value without
 * `Bearer `, and a NextChat access code without its `nk-` prefix.
 */
export const credentialForms = (authorization: string): ReadonlyArray<string> => {
  const token = authorization.replace(/^Bearer\s+/i, "")
  return token.startsWith("nk-") && token.length > 3 ? [token, token.slice(3)] : [token]
}
