import { MirrorServer } from "@easychat/testkit"
import { describe, expect, it } from "vitest"
import { chatRequests, run, start, stop } from "./helpers.js"

const withMirror = async <A>(
  options: MirrorServer.MirrorServerOptions,
  f: (mirror: MirrorServer.MirrorServer) => Promise<A>
): Promise<A> => {
  const mirror = await MirrorServer.start(options)
  try {
    return await f(mirror)
  } finally {
    await mirror.close()
  }
}

const noStackTrace = (text: string) => expect(text).not.toMatch(/\n\s+at /)

describe("exit codes", () => {
  it.concurrent("--help lists every exit code, without ANSI escapes when not on a terminal", async () => {
    const result = await run(["--help"])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain("EXIT CODES")
    for (const [code, meaning] of [
      [0, "success"],
      [1, "any other error"],
      [2, "invalid usage"],
      [3, "all servers failed"],
      [4, "timed out"],
      [5, "the reply stream was cut"],
      [130, "interrupted by Ctrl-C"]
    ] as const) {
      expect(result.stdout).toMatch(new RegExp(`^\\s*${code}  ${meaning}`, "m"))
    }
    expect(result.stdout).not.toContain("\x1b[")
  })

  it.concurrent("1: an error that fails over nowhere (HTTP 400)", async () => {
    await withMirror(
      { fault: { kind: "status", status: 400, body: { error: { message: "bad things in the request" } } } },
      async (mirror) => {
        const result = await run(["chat", "--server", mirror.url, "hi"])
        expect(result.code).toBe(1)
        expect(result.stdout).toBe("")
        expect(result.stderr).toBe(`error: HTTP 400 Bad Request from ${mirror.url}: bad things in the request\n`)
      }
    )
  })

  it.concurrent("2: invalid usage, before any request", async () => {
    await withMirror({}, async (mirror) => {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string | RegExp]> = [
        [["chat", "--server", mirror.url, "--sever", "typo"], "unknown option --sever"],
        [["chat", "--server", mirror.url, "--timeout", "idle=10"], "--timeout idle=10: the duration needs"],
        [["chat", "--server", mirror.url, "--temperature", "3", "hi"], "temperature must be a number between 0 and 2"],
        [["chat", "--local", "--server", mirror.url, "hi"], "--local and --server cannot be used together"],
        [
          ["chat", "--server", mirror.url, "--transport", "fetch", "--proxy", "env", "hi"],
          "--proxy needs --transport node"
        ],
        [
          ["chat", "--server", mirror.url, "--strategy", "fastest", "hi"],
          "one of the following cases: random, round-robin"
        ],
        [["chat", "--server", mirror.url], "no prompt"],
        [["serve", "--fault", "meltdown"], "--fault meltdown: unknown fault"],
        [["frobnicate"], "Invalid subcommand for easychat"]
      ]
      const results = await Promise.all(cases.map(([args]) => run(args, { input: "" })))
      results.forEach((result, i) => {
        expect(result.code, cases[i]![0].join(" ")).toBe(2)
        expect(result.stderr + result.stdout).toMatch(cases[i]![1])
        noStackTrace(result.stderr)
      })
      expect(chatRequests(mirror.requests)).toHaveLength(0)
    })
  })

  it.concurrent("3: all servers failed, with one line per attempt", async () => {
    const down = await MirrorServer.refusingUrl()
    await withMirror({ fault: { kind: "status", status: 503 } }, async (mirror) => {
      const result = await run(["chat", "--server", mirror.url, "--server", down, "--strategy", "round-robin", "hi"])
      expect(result.code).toBe(3)
      expect(result.stdout).toBe("")
      const lines = result.stderr.trimEnd().split("\n")
      expect(lines[0]).toBe("error: All 2 attempts failed:")
      expect(lines[1]).toMatch(`1. ${mirror.url}: HttpStatusError: HTTP 503 Service Unavailable`)
      expect(lines[2]).toMatch(`2. ${down}: TransportError: Cannot reach ${down}`)
      expect(lines).toHaveLength(3)
    })
  })

  it.concurrent("3 with --json: an error object on stdout", async () => {
    await withMirror({ fault: { kind: "html-200" } }, async (mirror) => {
      const result = await run(["chat", "--server", mirror.url, "--json", "hi"])
      expect(result.code).toBe(3)
      const error = JSON.parse(result.stdout.trim())
      expect(error).toMatchObject({
        type: "error",
        exitCode: 3,
        error: {
          _tag: "AllServersFailed",
          attempts: [
            {
              server: mirror.url,
              error: {
                _tag: "UnexpectedContentType",
                server: mirror.url,
                contentType: expect.stringMatching(/text\/html/)
              }
            }
          ]
        }
      })
      expect(result.stderr).toMatch(/^error: All 1 attempts failed:/)
    })
  })

  it.concurrent("4: the total time limit", async () => {
    await withMirror({ fault: { kind: "stall-before-headers" } }, async (mirror) => {
      const result = await run(["chat", "--server", mirror.url, "--timeout", "total=3s", "hi"])
      expect(result.code).toBe(4)
      expect(result.stderr).toBe(`error: Timed out after 3000 ms for the whole request from ${mirror.url}\n`)
      // The stalled request's connection was closed, not left hanging.
      await expect(chatRequests(mirror.requests)[0]!.closed).resolves.toMatchObject({ finished: false })
    })
  })

  it.concurrent("4: the idle limit once the reply has begun, after what arrived", async () => {
    await withMirror({ fault: { kind: "stall-mid-stream", afterDeltas: 2 } }, async (mirror) => {
      const result = await run(["chat", "--server", mirror.url, "--timeout", "idle=800ms", "hi"])
      expect(result.code).toBe(4)
      expect(result.stdout).toBe("Echo: hi\n")
      expect(result.stderr).toBe(`error: Timed out after 800 ms waiting for the next chunk from ${mirror.url}\n`)
    })
  })

  it.concurrent("5: a stream cut after it began keeps what arrived", async () => {
    await withMirror({ fault: { kind: "close-mid-stream", afterDeltas: 3 } }, async (mirror) => {
      const result = await run(["chat", "--server", mirror.url, "hi"])
      expect(result.code).toBe(5)
      expect(result.stdout).toBe("Echo: hi\nThi\n")
      expect(result.stderr).toMatch(
        new RegExp(`^error: The stream from ${mirror.url} was interrupted after 3 deltas \\(12 characters\\)`)
      )
      noStackTrace(result.stderr)
    })
  })

  it.concurrent("130: Ctrl-C mid-reply closes the connection", async () => {
    await withMirror({ delayMs: 200, reply: "word ".repeat(200) }, async (mirror) => {
      const chat = start(["chat", "--server", mirror.url, "tell me everything"])
      try {
        await chat.waitFor(/word word/)
        chat.child.kill("SIGINT")
        const result = await chat.ended
        expect(result.code).toBe(130)
        // Part of the reply, then a line end so that the shell prompt starts on its own line.
        expect(result.stdout.endsWith("\n")).toBe(true)
        expect(result.stdout.length).toBeGreaterThan(8)
        expect(result.stdout.length).toBeLessThan(200 * 5)
        expect("word ".repeat(200).startsWith(result.stdout.slice(0, -1))).toBe(true)
        expect(result.stderr).toBe("")
        const [request] = chatRequests(mirror.requests)
        await expect(request!.closed).resolves.toMatchObject({ finished: false })
        await mirror.waitForConnectionsClosed(5000)
      } finally {
        await stop(chat)
      }
    })
  })
})
