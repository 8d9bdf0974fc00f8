// SOAK (about 45 s): issue 20's hostile-client soak of the gateway. A gateway in a child process (its own
// event loop and heap, measured there) in front of a local mirror; normal clients alone for a baseline run,
// then for 30 s next to hostile ones: slow bodies (a byte every half second, or a Content-Length larger
// than what is sent), clients that never read a long stream, JSON nested 5,000 deep, and 15 kB
// Authorization headers built to make a naive parser quadratic. Every normal request must succeed with
// about its usual latency, the gateway's heap must come back to its baseline, and its server must hold no
// connection once every client has gone.
import { type ChildProcess, spawn } from "node:child_process"
import * as http from "node:http"
import * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { type Fixtures, Mirror, MirrorServer } from "@easychat/testkit"
import { afterAll, describe, expect, it } from "vitest"

const SOAK_MS = 30_000
const BASELINE_MS = 8000
const NORMAL_CLIENTS = 4
const KEY = "soak-key-0123456789abcdef"
// Short deadlines, so that the soak goes through each of them many times (the defaults: 30 s and 60 s).
const BODY_TIMEOUT_MS = 2000
const SEND_TIMEOUT_MS = 2000

const e2e = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** The gateway's own process: started with Gateway.start; answers "stats" (after two GCs) and "close". */
const childScript = `
import http from "node:http"
import { syncBuiltinESMExports } from "node:module"
// The gateway's http.Server, to count its connections.
const servers = []
const createServer = http.createServer
http.createServer = (...args) => {
  const server = createServer(...args)
  servers.push(server)
  return server
}
syncBuiltinESMExports()
const { Gateway } = await import("@easychat/gateway")
const options = JSON.parse(process.env.SOAK_GATEWAY)
const gateway = await Gateway.start(options)
const connections = () =>
  Promise.all(servers.map((s) => new Promise((resolve) => s.getConnections((_, n) => resolve(n ?? 0)))))
    .then((counts) => counts.reduce((a, b) => a + b, 0))
process.on("message", async (message) => {
  if (message === "stats") {
    for (let i = 0; i < 3; i++) {
      globalThis.gc()
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const memory = process.memoryUsage()
    process.send({ heapUsed: memory.heapUsed, rss: memory.rss, connections: await connections() })
  } else if (message === "close") {
    await gateway.close({ drainTimeout: 0 })
    process.exit(0)
  }
})
process.send({ url: gateway.url })
`

interface Stats {
  readonly heapUsed: number
  readonly rss: number
  readonly connections: number
}

const startGateway = (mirror: string): Promise<{ child: ChildProcess; url: string; stats: () => Promise<Stats> }> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", "--input-type=module", "-e", childScript], {
      cwd: e2e,
      env: {
        ...process.env,
        SOAK_GATEWAY: JSON.stringify({
          port: 0,
          keys: [KEY],
          bodyTimeout: BODY_TIMEOUT_MS,
          sendTimeout: SEND_TIMEOUT_MS,
          chat: { servers: [mirror], cookieInit: "off" }
        })
      },
      stdio: ["ignore", "inherit", "inherit", "ipc"]
    })
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`the gateway process exited with ${code}`)))
    child.once("message", (message: { url: string }) => {
      const stats = () =>
        new Promise<Stats>((done) => {
          child.once("message", (m) => done(m as Stats))
          child.send("stats")
        })
      resolve({ child, url: message.url, stats })
    })
  })

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN
const quantile = (xs: ReadonlyArray<number>, q: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * q))] ?? Number.NaN

const messages = [{ role: "user", content: "Hello" }]
const expected = `Echo: Hello\n${Mirror.defaultSentence}`

/** Normal clients: a streamed then a whole chat request, in a loop, each checked; returns their latencies. */
const normalClients = async (url: string, ms: number) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: NORMAL_CLIENTS })
  const latencies: Array<number> = []
  const failures: Array<string> = []
  const one = (stream: boolean) =>
    new Promise<void>((resolve) => {
      const started = performance.now()
      const request = http.request(
        `${url}/v1/chat/completions`,
        {
          method: "POST",
          agent,
          headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` }
        },
        (response) => {
          const parts: Array<Buffer> = []
          response.on("data", (part: Buffer) => parts.push(part))
          response.on("end", () => {
            const text = Buffer.concat(parts).toString("utf8")
            let content = ""
            try {
              content = stream
                ? text
                    .split("\n\n")
                    .filter((e) => e.startsWith("data: {"))
                    .map((e) => JSON.parse(e.slice(6)).choices[0]?.delta?.content ?? "")
                    .join("")
                : JSON.parse(text).choices[0].message.content
            } catch {}
            const ok =
              response.statusCode === 200 && content === expected && (!stream || text.trimEnd().endsWith("[DONE]"))
            if (ok) latencies.push(performance.now() - started)
            else failures.push(`${response.statusCode} ${text.slice(0, 200)}`)
            resolve()
          })
          response.on("error", (error) => {
            failures.push(String(error))
            resolve()
          })
        }
      )
      request.on("error", (error) => {
        failures.push(String(error))
        resolve()
      })
      request.end(JSON.stringify({ model: "m", messages, stream }))
    })
  const until = Date.now() + ms
  await Promise.all(
    Array.from({ length: NORMAL_CLIENTS }, async (_, i) => {
      for (let n = i; Date.now() < until; n++) await one(n % 2 === 0)
    })
  )
  agent.destroy()
  return { latencies, failures }
}

/** Hostile clients of one kind: `count` at a time, each replaced when its connection ends. */
const hostile = (count: number, open: (done: (status: string) => void) => net.Socket | undefined) => {
  const statuses = new Map<string, number>()
  const sockets = new Set<net.Socket>()
  let running = true
  const launch = () => {
    if (!running) return
    let counted = false
    const socket = open((status) => {
      // Sockets this test closes at the end are not news.
      if (counted || !running) return
      counted = true
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
    })
    if (socket === undefined) return
    sockets.add(socket)
    socket.on("error", () => {})
    socket.on("close", () => {
      sockets.delete(socket)
      setTimeout(launch, 20)
    })
  }
  for (let i = 0; i < count; i++) launch()
  return {
    statuses,
    stop: () => {
      running = false
      for (const socket of sockets) socket.destroy()
    }
  }
}

/** The status of the first response line a raw socket receives ("cut" when it closes without one). */
const statusOf = (socket: net.Socket, done: (status: string) => void, destroyOnAnswer: boolean) => {
  socket.once("data", (data: Buffer) => {
    done(/^HTTP\/1\.1 (\d{3})/.exec(data.toString("latin1"))?.[1] ?? "garbage")
    if (destroyOnAnswer) socket.destroy()
  })
  socket.once("close", () => done("cut"))
}

const report: Array<string> = []
afterAll(() => console.log(report.join("\n")))

describe("gateway soak (30 s, hostile clients next to normal ones)", () => {
  it("serves every normal request at its usual latency; memory and connections come back", {
    timeout: 120_000
  }, async () => {
    // Normal replies: about 18 deltas 5 ms apart. "flood": 256 chunks of 64 kB, for the clients that never read.
    const piece = JSON.stringify({
      id: "chatcmpl-flood",
      object: "chat.completion.chunk",
      created: 0,
      model: "m",
      choices: [{ index: 0, delta: { content: "f".repeat(65_536) }, finish_reason: null }]
    })
    const flood: Fixtures.Fixture = {
      name: "flood",
      description: "16 MiB of deltas",
      stream: `${`data: ${piece}\n\n`.repeat(256)}data: [DONE]\n\n`,
      whole: "{}",
      includeUsage: false
    }
    const mirror = await MirrorServer.start({
      delayMs: 5,
      // No fixture (undefined, which the mirror takes though its type does not say so): the normal reply.
      fixture: (request) => (JSON.stringify(request.body).includes("flood") ? flood : (undefined as never))
    })
    const gateway = await startGateway(mirror.url)
    const { port } = new URL(gateway.url)
    const head = (lines: ReadonlyArray<string>) =>
      `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${KEY}\r\n` +
      `Content-Type: application/json\r\n${lines.map((l) => `${l}\r\n`).join("")}\r\n`
    const connect = () => net.connect(Number(port), "127.0.0.1")
    try {
      // Warm-up, then the baseline: normal clients alone.
      await normalClients(gateway.url, 1000)
      const baseline = await normalClients(gateway.url, BASELINE_MS)
      const before = await gateway.stats()

      const attacks = {
        // A byte every half second of a 100 kB body.
        "slow body": hostile(24, (done) => {
          const socket = connect()
          socket.write(`${head(["Content-Length: 100000"])}{"messages":`)
          const drip = setInterval(() => socket.write(" "), 500)
          socket.on("close", () => clearInterval(drip))
          statusOf(socket, done, true)
          return socket
        }),
        // A Content-Length of 5,000 and 40 bytes sent.
        "lying Content-Length": hostile(24, (done) => {
          const socket = connect()
          socket.write(`${head(["Content-Length: 5000"])}{"messages":[{"role":"user","content":"`)
          statusOf(socket, done, true)
          return socket
        }),
        // A 16 MiB stream asked for, never read. Its socket cannot see the gateway close the connection (the
        // end waits behind the unread bytes): it gives up after three deadlines, and the mirror tells whether
        // the gateway had cut the stream before.
        "non-reader": hostile(4, (done) => {
          const socket = connect()
          const body = JSON.stringify({ model: "m", messages: [{ role: "user", content: "flood" }], stream: true })
          socket.write(`${head([`Content-Length: ${Buffer.byteLength(body)}`])}${body}`)
          socket.pause()
          const giveUp = setTimeout(() => socket.destroy(), 3 * SEND_TIMEOUT_MS)
          socket.once("close", () => {
            clearTimeout(giveUp)
            done("gave up")
          })
          return socket
        }),
        // 5,000 levels of arrays: 10 kB. Paced: the load is the gateway's, not this process's.
        "deep JSON": hostile(4, (done) => {
          const socket = connect()
          const body = `{"messages":${"[".repeat(5000)}${"]".repeat(5000)}}`
          setTimeout(() => socket.write(`${head([`Content-Length: ${body.length}`])}${body}`), 20)
          statusOf(socket, done, true)
          return socket
        }),
        // "Bearer a", 15,000 spaces, "b": quadratic in a backtracking parser.
        "15 kB Authorization": hostile(4, (done) => {
          const socket = connect()
          const request =
            `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
            `Authorization: Bearer a${" ".repeat(15_000)}b\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`
          setTimeout(() => socket.write(request), 20)
          statusOf(socket, done, true)
          return socket
        })
      }
      const soak = await normalClients(gateway.url, SOAK_MS)
      for (const attack of Object.values(attacks)) attack.stop()
      // The floods the gateway cut (closed unfinished well before their client gave up).
      const floods = mirror.requests.filter((r) => JSON.stringify(r.body).includes("flood"))
      const ends = await Promise.all(
        floods.map((r) => Promise.race([r.closed, sleep(1000).then(() => undefined)]).then((c) => ({ r, c })))
      )
      const cutByGateway = ends.filter(
        ({ r, c }) => c !== undefined && !c.finished && c.at - r.time < 2.5 * SEND_TIMEOUT_MS
      ).length
      attacks["non-reader"].statuses.set(`cut by the gateway (of ${floods.length} streams)`, cutByGateway)
      await mirror.reset()

      // Every client gone: the server's connections drop to none, then the heap is measured.
      let after = await gateway.stats()
      const deadline = Date.now() + 10_000
      while (after.connections > 0 && Date.now() < deadline) {
        await sleep(250)
        after = await gateway.stats()
      }

      const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`
      const ms = (x: number) => `${x.toFixed(1)} ms`
      report.push(
        "### Gateway soak",
        `normal clients: ${NORMAL_CLIENTS}; baseline ${BASELINE_MS / 1000} s, soak ${SOAK_MS / 1000} s; bodyTimeout ${BODY_TIMEOUT_MS} ms, sendTimeout ${SEND_TIMEOUT_MS} ms`,
        "",
        "| run | requests | failures | median | p95 |",
        "| --- | --- | --- | --- | --- |",
        `| alone | ${baseline.latencies.length} | ${baseline.failures.length} | ${ms(median(baseline.latencies))} | ${ms(quantile(baseline.latencies, 0.95))} |`,
        `| with hostile clients | ${soak.latencies.length} | ${soak.failures.length} | ${ms(median(soak.latencies))} | ${ms(quantile(soak.latencies, 0.95))} |`,
        "",
        "| hostile client | answers |",
        "| --- | --- |",
        ...Object.entries(attacks).map(
          ([name, attack]) =>
            `| ${name} | ${[...attack.statuses].map(([status, n]) => `${n} × ${status}`).join(", ")} |`
        ),
        "",
        `gateway heap after GC: ${mb(before.heapUsed)} before, ${mb(after.heapUsed)} after (rss ${mb(before.rss)} → ${mb(after.rss)}); connections after: ${after.connections}`
      )

      expect(soak.failures.slice(0, 5)).toEqual([])
      expect(baseline.failures).toEqual([])
      expect(soak.latencies.length).toBeGreaterThan(SOAK_MS / 1000)
      expect(median(soak.latencies) / median(baseline.latencies)).toBeLessThan(3)
      // Each attack was answered as the gateway should: 408 for bodies too slow, 400 for deep JSON, a cut
      // connection for a client that does not read, 401 (a wrong key, parsed in linear time) for the header.
      expect(attacks["slow body"].statuses.get("408")).toBeGreaterThan(0)
      expect(attacks["lying Content-Length"].statuses.get("408")).toBeGreaterThan(0)
      expect(cutByGateway).toBeGreaterThan(floods.length / 2)
      expect(attacks["deep JSON"].statuses.get("400")).toBeGreaterThan(0)
      expect(attacks["15 kB Authorization"].statuses.get("401")).toBeGreaterThan(0)
      expect(after.connections).toBe(0)
      // About 1 MiB of warm-up; each stream cut while the gateway had deltas in hand must not stay behind
      // (about 300 kB each here, so the 20 or so cut streams would show).
      expect(after.heapUsed).toBeLessThan(before.heapUsed + 4 * 1024 * 1024)
    } finally {
      gateway.child.removeAllListeners("exit")
      gateway.child.send("close")
      await new Promise((resolve) => gateway.child.once("exit", resolve))
      await mirror.close()
    }
  })
})
