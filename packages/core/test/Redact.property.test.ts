// Secrets never travel in what easychat says: one redaction function,
// property-tested, and the errors of servers that echo a secret back in
// any of its forms (the access code without its `nk-` prefix included).
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import fc from "fast-check"
import { EasyChat } from "../src/index.js"
import { credentialForms, REDACTED, redact } from "../src/internal/redact.js"
import { excerpt } from "../src/internal/upstream.js"

// Keys are printable ASCII (the gateway refuses others); cookie values are ASCII too.
const secretArb = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 12
})
const noise = fc.string({
  unit: fc.constantFrom("a", " ", "\n", "\t", "[", "]", "r", "e", "d", "-", "nk", "é", "😀"),
  maxLength: 20
})

/** Text that holds the secrets, whole or split by whitespace, among noise. */
const textArb = fc
  .tuple(
    fc.array(secretArb, { minLength: 1, maxLength: 3 }),
    fc.array(fc.tuple(noise, fc.nat(2), fc.nat(3)), { maxLength: 8 })
  )
  .map(([secrets, parts]) => ({
    secrets,
    text: parts
      .map(([n, which, how]) => {
        const s = secrets[which % secrets.length]!
        return how === 0 ? n : how === 1 ? `${n}${s}` : how === 2 ? `${s}${n}${s}` : `${n}${s.split(" ").join("  \n ")}`
      })
      .join("")
  }))

describe("redaction", () => {
  it("leaves no secret in a redacted text or an excerpt, whatever surrounds it", () => {
    fc.assert(
      fc.property(textArb, ({ secrets, text }) => {
        const redacted = redact(text, secrets)
        const short = excerpt(text, secrets)
        for (const secret of secrets) {
          expect(redacted.includes(secret), JSON.stringify({ secret, redacted })).toBe(false)
          expect(short.includes(secret), JSON.stringify({ secret, short })).toBe(false)
        }
      }),
      { numRuns: 5000 }
    )
  })

  it("changes nothing where no secret is", () => {
    fc.assert(
      fc.property(noise, secretArb, (text, secret) => {
        fc.pre(!text.includes(secret))
        expect(redact(text, [secret])).toBe(text)
      })
    )
    expect(redact("key sk-1 and sk-12", ["sk-1", "sk-12"])).toBe(`key ${REDACTED} and ${REDACTED}`)
    // Removing one secret joins the text around it into another, which goes too.
    expect(redact("arb", ["r", "ab"])).toBe("")
  })

  it("knows the forms a credential is echoed in", () => {
    expect(credentialForms("Bearer nk-letmein")).toEqual(["nk-letmein", "letmein"])
    expect(credentialForms("Bearer sk-abc")).toEqual(["sk-abc"])
  })
})

describe("servers that echo a secret", () => {
  const code = "c0de-4-acc3ss-0nly"
  const key = "sk-live-0123456789abcdef"
  const echoes = (secret: string) => [
    // An error status whose body repeats it, in the server's own message field.
    () =>
      new Response(JSON.stringify({ error: { message: `bad token ${secret}` } }), {
        status: 500,
        headers: { "content-type": "application/json" }
      }),
    // An HTML page with status 200.
    () => new Response(`<html>token=${secret}</html>`, { headers: { "content-type": "text/html" } }),
    // A NextChat JSON-string error.
    () =>
      new Response(JSON.stringify(`\`\`\`json\n{"cause":{"message":"auth ${secret} refused"}}\n\`\`\``), {
        headers: { "content-type": "application/json" }
      }),
    // A chunk that is not JSON, an error chunk, and an error event.
    () => new Response(`data: {oops ${secret}\n\n`, { headers: { "content-type": "text/event-stream" } }),
    () =>
      new Response(`data: {"error":{"message":"${secret}"}}\n\n`, { headers: { "content-type": "text/event-stream" } }),
    () => new Response(`event: error\ndata: key ${secret}\n\n`, { headers: { "content-type": "text/event-stream" } })
  ]
  const failure = (options: Record<string, unknown>, answer: () => Response, stream: boolean) =>
    Effect.runPromise(
      Effect.flatMap(EasyChat.EasyChat, (chat) =>
        Effect.flip(
          stream
            ? Stream.runDrain(chat.stream({ messages: [{ role: "user", content: "x" }] }))
            : chat.complete({ messages: [{ role: "user", content: "x" }] })
        )
      ).pipe(
        Effect.provide(EasyChat.layer({ servers: ["http://echo.test"], cookieInit: "off", ...options })),
        Effect.provide(
          Layer.succeed(
            HttpClient.HttpClient,
            HttpClient.make((request) => Effect.sync(() => HttpClientResponse.fromWeb(request, answer())))
          )
        )
      )
    )

  it("never puts the access code (with or without nk-) or the key in an error, whole or streamed", async () => {
    for (const [options, forms] of [
      [{ accessCode: code }, [code, `nk-${code}`]],
      [{ apiKey: key }, [key]]
    ] as const) {
      for (const form of forms) {
        for (const answer of echoes(form)) {
          for (const stream of [false, true]) {
            const error = await failure(options, answer, stream)
            const said = `${error.message} ${JSON.stringify(error)}`
            for (const secret of forms) expect(said.includes(secret), said).toBe(false)
          }
        }
      }
    }
  })
})
