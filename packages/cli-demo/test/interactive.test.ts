// The interactive session, driven through a real terminal: tmux runs the
// command in a pane, the test sends keys and reads the screen.
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Fixtures, MirrorServer } from "@easychat/testkit"
import { afterAll, describe, expect, it } from "vitest"
import { bin, chatRequests } from "./helpers.js"

const hasTmux = spawnSync("tmux", ["-V"]).status === 0
// A private tmux server, so that the tests never touch a user's sessions.
const socket = `easychat-test-${process.pid}`
let sessions = 0

const tmux = (...args: Array<string>): string => execFileSync("tmux", ["-L", socket, ...args], { encoding: "utf8" })

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`

interface Pane {
  screen(escapes?: boolean): string
  type(text: string): void
  keys(...keys: Array<string>): void
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>
}

/** `easychat args...` in a 100×40 terminal; the pane prints EXIT=<code> when it ends. */
const open = (args: ReadonlyArray<string>, env: Record<string, string>): Pane => {
  const name = `s${++sessions}`
  const vars = Object.entries({ PATH: process.env.PATH ?? "", HOME: os.tmpdir(), TERM: "xterm-256color", ...env })
    .map(([k, v]) => `${k}=${quote(v)}`)
    .join(" ")
  const command = `env -i ${vars} ${quote(process.execPath)} ${quote(bin)} ${args.map(quote).join(" ")}; echo EXIT=$?; sleep 600`
  tmux("new-session", "-d", "-s", name, "-x", "100", "-y", "40", command)
  const screen = (escapes = false) => tmux("capture-pane", "-p", ...(escapes ? ["-e"] : []), "-t", name)
  return {
    screen,
    type: (text) => tmux("send-keys", "-t", name, "-l", text),
    keys: (...keys) => tmux("send-keys", "-t", name, ...keys),
    waitFor: async (pattern, timeoutMs = 45_000) => {
      const deadline = Date.now() + timeoutMs
      while (true) {
        const text = screen()
        if (pattern.test(text)) return text
        if (Date.now() > deadline) throw new Error(`no ${pattern} on the screen:\n${text}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    }
  }
}

const echo = (text: string) => `Echo: ${text}\nThis reply comes from the easychat test mirror.`

describe(`interactive session${hasTmux ? "" : " [skipped: tmux is not installed]"}`, () => {
  afterAll(() => {
    if (hasTmux) spawnSync("tmux", ["-L", socket, "kill-server"])
  })

  it.skipIf(!hasTmux)("keeps the conversation, /reset, line history, /exit; no colour with NO_COLOR", async () => {
    const mirror = await MirrorServer.start()
    const history = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "easychat-")), "history")
    try {
      const pane = open(["chat", "--server", mirror.url, "--system", "Be brief."], {
        EASYCHAT_HISTORY: history,
        NO_COLOR: "1"
      })
      await pane.waitFor(/^›$/m)
      pane.type("first question")
      pane.keys("Enter")
      await pane.waitFor(/This reply comes from the easychat test mirror\.\n\n›$/m)
      pane.type("second question")
      pane.keys("Enter")
      await pane.waitFor(/Echo: second question/)
      pane.type("/reset")
      pane.keys("Enter")
      await pane.waitFor(/\(new conversation\)\n›$/m)
      pane.type("third question")
      pane.keys("Enter")
      await pane.waitFor(/Echo: third question\nThis reply comes from the easychat test mirror\.\n\n›$/m)
      // Up twice: the line before the last.
      pane.keys("Up", "Up")
      await pane.waitFor(/^› \/reset$/m)
      pane.keys("C-u")
      pane.type("/exit")
      pane.keys("Enter")
      const screen = await pane.waitFor(/EXIT=0/)
      expect(screen).toContain(`› first question\n${echo("first question")}\n`)
      expect(pane.screen(true)).not.toContain("\x1b[")

      const bodies = chatRequests(mirror.requests).map((r) => (r.body as { messages: unknown }).messages)
      const system = { role: "system", content: "Be brief." }
      expect(bodies).toEqual([
        [system, { role: "user", content: "first question" }],
        [
          system,
          { role: "user", content: "first question" },
          { role: "assistant", content: echo("first question") },
          { role: "user", content: "second question" }
        ],
        [system, { role: "user", content: "third question" }]
      ])
      expect(fs.readFileSync(history, "utf8")).toBe("first question\nsecond question\n/reset\nthird question\n/exit\n")
      expect(fs.statSync(history).mode & 0o777).toBe(0o600)
    } finally {
      await mirror.close()
    }
  })

  it.skipIf(!hasTmux)("Ctrl-C cancels the reply and closes its connection; a second Ctrl-C exits 130", async () => {
    const mirror = await MirrorServer.start({ headersDelayMs: 1500, delayMs: 150, reply: "word ".repeat(300) })
    try {
      const pane = open(["chat", "--server", mirror.url], { EASYCHAT_HISTORY: "" })
      await pane.waitFor(/›$/m)
      // Colours on a terminal: the prompt is styled.
      expect(pane.screen(true)).toContain("\x1b[")
      pane.type("tell me everything")
      pane.keys("Enter")
      await pane.waitFor(/waiting for a reply/)
      await pane.waitFor(/word word word/)
      pane.keys("C-c")
      await pane.waitFor(/\(reply cancelled; press Ctrl-C again to leave\)\n›$/m)
      const [request] = chatRequests(mirror.requests)
      await expect(request!.closed).resolves.toMatchObject({ finished: false })
      // The session goes on.
      pane.type("/help")
      pane.keys("Enter")
      await pane.waitFor(/\/reset\s+start a new conversation/)
      pane.keys("C-c")
      await pane.waitFor(/press Ctrl-C again or type \/exit to leave/)
      pane.keys("C-c")
      const screen = await pane.waitFor(/EXIT=\d+/)
      expect(screen).toMatch(/EXIT=130/)
      expect(chatRequests(mirror.requests)).toHaveLength(1)
    } finally {
      await mirror.close()
    }
  })

  it.skipIf(!hasTmux)(
    "a one-shot reply on a terminal dims the reasoning; NO_COLOR gives [reasoning] lines",
    async () => {
      const mirror = await MirrorServer.start({ fixture: Fixtures.deepseekReasoning })
      try {
        const styled = open(["chat", "--server", mirror.url, "1+1?"], {})
        await styled.waitFor(/EXIT=0/)
        const screen = styled.screen(true)
        expect(screen).toMatch(/\x1b\[2m嗯，用户问"1\+1"等于几。/)
        expect(screen).not.toContain("[reasoning]")
        expect(styled.screen()).toMatch(/这很简单：答案是2。\n\n\*\*答案：2\*\*\n\n1 \+ 1 = 2 🙂\n/)
        const plain = open(["chat", "--server", mirror.url, "1+1?"], { NO_COLOR: "1" })
        await plain.waitFor(/EXIT=0/)
        expect(plain.screen(true)).not.toContain("\x1b[")
        expect(plain.screen()).toContain(
          '[reasoning] 嗯，用户问"1+1"等于几。\n[reasoning] 这很简单：答案是2。\n**答案：2**'
        )
      } finally {
        await mirror.close()
      }
    }
  )
})
