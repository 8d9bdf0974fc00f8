/**
 * The evidence behind the Bun and Deno differences: the runtime's own `fetch`,
 * no easychat code, against a mirror's fault. Bundled and run on Node, Bun and
 * Deno by `test/raw-fetch.test.ts`; prints one JSON line of `RawTally`.
 *
 * Arguments: the mirror's URL, the trial (`cut`: read a streamed body that is
 * cut after three deltas; `reset-reused`: `GET /`, then a POST whose
 * connection is reset before any answer; `reset-fresh`: the POST alone), and
 * how many calls.
 *
 * @since 0.1.0
 */

/**
 * How many calls ended each way: `events N` (the body errored after N events),
 * `complete` (the body ended cleanly), `rejected` (`fetch()` itself rejected),
 * `answered` (a POST got an answer).
 * @since 0.1.0 @category models
 */
export type RawTally = Readonly<Record<string, number>>

const { Deno, process } = globalThis as unknown as {
  Deno?: { args: Array<string> }
  process?: { argv: Array<string> }
}
const [url, trial, calls] = Deno?.args ?? process?.argv.slice(2) ?? []

const chat = `${url}/api/openai/v1/chat/completions`
const post = () =>
  fetch(chat, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ messages: [{ role: "user", content: "Conformance check" }], stream: true })
  })

const tally: Record<string, number> = {}
const count = (outcome: string) => {
  tally[outcome] = (tally[outcome] ?? 0) + 1
}

for (let call = 0; call < Number(calls); call++) {
  if (trial === "reset-reused") await (await fetch(`${url}/`)).arrayBuffer()
  let response: Response
  try {
    response = await post()
  } catch {
    count("rejected")
    continue
  }
  if (trial !== "cut") {
    count("answered")
    continue
  }
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  let text = ""
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      text += decoder.decode(value, { stream: true })
    }
    count("complete")
  } catch {
    count(`events ${text.match(/^data: /gm)?.length ?? 0}`)
  }
}
console.log(JSON.stringify(tally))
