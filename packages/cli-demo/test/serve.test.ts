import { createClient } from "@easychat/transport-node"
import { describe, expect, it } from "vitest"
import { start, stop } from "./helpers.js"

const messages = [{ role: "user", content: "Hello" }]

const collect = async (pieces: AsyncIterable<string>): Promise<Array<string>> => {
  const out: Array<string> = []
  for await (const piece of pieces) out.push(piece)
  return out
}

describe("easychat serve", () => {
  it.concurrent("answers the core client until Ctrl-C", async () => {
    const serve = start(["serve", "--port", "0", "--reply", "Hi from serve", "--chunk-size", "3", "--delay", "0"])
    try {
      const [, url] = await serve.waitFor(/Mirror listening on (http:\/\/127\.0\.0\.1:\d+)/)
      const client = createClient({ servers: [url!] })
      try {
        const whole = await client.complete({ messages })
        expect(whole).toMatchObject({ content: "Hi from serve", finishReason: "stop", server: url })
        expect(await collect(client.stream({ messages }))).toEqual(["Hi ", "fro", "m s", "erv", "e"])
      } finally {
        await client.close()
      }
      serve.child.kill("SIGINT")
      const result = await serve.ended
      expect(result.code).toBe(130)
      // Stopped means the port is closed.
      await expect(fetch(`${url}/`)).rejects.toThrow()
    } finally {
      await stop(serve)
    }
  })

  it.concurrent("injects the fault it is given", async () => {
    const serve = start(["serve", "--port", "0", "--fault", "status:502"])
    try {
      const [, url] = await serve.waitFor(/listening on (http:\/\/[\d.:]+)/)
      const client = createClient({ servers: [url!] })
      try {
        const error = await client.complete({ messages }).catch((e: unknown) => e)
        expect(error).toMatchObject({
          _tag: "AllServersFailed",
          attempts: [{ server: url, error: { _tag: "HttpStatusError", status: 502 } }]
        })
      } finally {
        await client.close()
      }
    } finally {
      await stop(serve)
    }
  })

  it.concurrent("requires its access code, as a self-hosted NextChat does", async () => {
    const serve = start(["serve", "--port", "0", "--access-code", "letmein", "--reply", "welcome"])
    try {
      const [, url] = await serve.waitFor(/listening on (http:\/\/[\d.:]+)/)
      expect(serve.stdout() + serve.stderr()).not.toContain("letmein")
      const without = createClient({ servers: [url!] })
      const withCode = createClient({ servers: [url!], accessCode: "letmein" })
      try {
        await expect(without.complete({ messages })).rejects.toMatchObject({
          attempts: [{ error: { _tag: "HttpStatusError", status: 401, body: "empty access code" } }]
        })
        await expect(withCode.complete({ messages })).resolves.toMatchObject({ content: "welcome" })
      } finally {
        await without.close()
        await withCode.close()
      }
    } finally {
      await stop(serve)
    }
  })
})
