// Checks one outcome against its case, the same way for every runtime.
import { expect } from "vitest"
import { type Case, type ErrorInfo, forRuntime, type Outcome, type Runtime } from "../src/cases.js"
import { seen, type Target } from "../src/harness.js"

/** Every `server` field of an error and its attempts. */
const serversOf = (error: ErrorInfo): Array<string> => [
  ...(error.server === undefined ? [] : [error.server]),
  ...(error.attempts ?? []).flatMap((a) => [a.server, ...serversOf(a.error)])
]

const messagesOf = (error: ErrorInfo): Array<string> => [
  error.message,
  ...(error.attempts ?? []).flatMap((a) => messagesOf(a.error))
]

const matches = (actual: unknown, expected: unknown): boolean => {
  try {
    expect(actual).toMatchObject(expected as object)
    return true
  } catch {
    return false
  }
}

export const verify = (
  c: Case,
  runtime: Runtime,
  outcome: Outcome,
  target: Target,
  page: { readonly origin: string } | undefined = undefined
): void => {
  const expected = forRuntime(c, runtime)!
  const { ok, cancelled, error, cut, ...rest } = expected.expect
  // The whole outcome in the failure message makes a mismatch readable.
  const shown = JSON.stringify(outcome).slice(0, 2000)
  expect(outcome, shown).toMatchObject(
    Object.fromEntries(
      Object.entries({ ok, cancelled: cancelled ?? false, ...rest, error }).filter(([, v]) => v !== undefined)
    )
  )
  if (error === undefined && cut === undefined) expect(outcome.error, shown).toBeUndefined()
  if (cut !== undefined) {
    expect(cut.prefixOf.slice(0, outcome.pieces.length), shown).toEqual(outcome.pieces)
    if (cut.lengths !== undefined) expect(cut.lengths, shown).toContain(outcome.pieces.length)
    expect(outcome.error, shown).toBeDefined()
    expect(
      cut.errors.some((candidate) => matches(outcome.error, candidate)),
      `${shown}\nmatches none of ${JSON.stringify(cut.errors)}`
    ).toBe(true)
  }
  // Whatever the case: a StreamInterrupted counts exactly what the caller received.
  if (outcome.error?._tag === "StreamInterrupted") {
    expect(outcome.error.deltas, shown).toBe(outcome.deltas)
    expect(outcome.error.characters, shown).toBe(outcome.text.length)
  }

  // Every server an outcome names is the one it talked to.
  for (const server of outcome.servers) expect(server).toBe(target.url)
  if (outcome.error !== undefined) {
    for (const server of serversOf(outcome.error)) expect(server).toBe(target.url)
    for (const message of messagesOf(outcome.error)) expect(message.length).toBeGreaterThan(0)
  }

  // Secrets never reach the caller: the case's own, and every cookie value the mirror handed out.
  const text = JSON.stringify(outcome.error ?? {})
  const secrets = [...(c.secrets ?? []), ...Object.values(target.mirror?.cookies ?? {})]
  for (const secret of secrets) expect(text).not.toContain(secret)

  const server = expected.server
  if (server.closed !== undefined)
    expect(outcome.probe?.chatConnectionClosed, "chat connection closed").toBe(server.closed)
  if (target.mirror === undefined) return
  const saw = seen(target.mirror)
  if (server.posts !== undefined) expect(saw.posts, "chat POSTs").toBe(server.posts)
  if (server.gets !== undefined) expect(saw.gets, "cookie GETs").toBe(server.gets)
  if (server.gzip !== undefined) expect(saw.gzip, "gzip offered").toBe(server.gzip)
  if (server.preflights !== undefined) expect(saw.preflights, "CORS preflights").toBe(server.preflights)
  if (server.cookies === true) expect(saw.cookies, "cookies on the chat POST").toEqual(saw.issued)
  if (server.cookies === false) expect(saw.cookies, "cookies on the chat POST").toEqual({})
  for (const [name, want] of Object.entries(server.headers ?? {})) {
    const got = saw.headers[name]
    if (want === null) expect(got, name).toBeUndefined()
    else if (typeof want === "string") {
      expect(got, name).toBe(want.replace("{mirror}", target.url).replace("{page}", page?.origin ?? "{no page}"))
    } else expect(got, name).toEqual(expect.stringMatching(want))
  }
}
