import * as http from "node:http"
import { EasyChat, Errors, ServerPool } from "@easychat/core"
import { MirrorPool } from "@easychat/testkit"
import * as NodeTransport from "@easychat/transport-node"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { expect } from "vitest"
import { Gateway } from "../src/index.js"
import {
  CurrentExchange,
  type Exchange,
  escapeLabelValue,
  formatValue,
  instrument,
  makeMetrics,
  makeRegistry
} from "../src/internal/metrics.js"
import { postJson, raw, withGateway } from "./fixtures.js"
import { list, parse as parseConfig } from "./routes.js"

/** A POST whose answer's head has come; `rest` is its whole body once it ends. */
const streaming = (url: string, body: unknown) =>
  new Promise<{ response: http.IncomingMessage; rest: Promise<string> }>((resolve, reject) => {
    const request = http.request(url, { method: "POST", headers: { "content-type": "application/json" }, agent: false })
    request.on("response", (response) => {
      const parts: Array<Buffer> = []
      response.on("data", (part: Buffer) => parts.push(part))
      resolve({
        response,
        rest: new Promise((done) => response.on("end", () => done(Buffer.concat(parts).toString("utf8"))))
      })
    })
    request.on("error", reject)
    request.end(JSON.stringify(body))
  })

// A small parser of the text exposition format 0.0.4, strict about what Prometheus requires.

interface Sample {
  readonly name: string
  readonly labels: Record<string, string>
  readonly value: number
}
interface Family {
  readonly name: string
  help: string | undefined
  type: string | undefined
  readonly samples: Array<Sample>
}

const unescapeHelp = (text: string) => text.replace(/\\(\\|n|")/g, (_, c: string) => (c === "n" ? "\n" : c))

const parseLabels = (text: string): Record<string, string> => {
  const labels: Record<string, string> = {}
  let i = 0
  while (i < text.length) {
    const eq = text.indexOf("=", i)
    const name = text.slice(i, eq)
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name)) throw new Error(`bad label name ${name}`)
    if (text[eq + 1] !== '"') throw new Error(`unquoted label value in ${text}`)
    let j = eq + 2
    let value = ""
    while (text[j] !== '"') {
      if (j >= text.length) throw new Error(`unterminated label value in ${text}`)
      if (text[j] === "\\") {
        const next = text[j + 1]
        if (next !== "\\" && next !== '"' && next !== "n") throw new Error(`bad escape \\${next}`)
        value += next === "n" ? "\n" : next
        j += 2
      } else if (text[j] === "\n") {
        throw new Error("a raw line feed in a label value")
      } else {
        value += text[j++]
      }
    }
    if (name in labels) throw new Error(`label ${name} twice`)
    labels[name] = value
    i = j + 1
    if (text[i] === ",") i++
  }
  return labels
}

const parseValue = (text: string) => {
  if (text === "+Inf") return Number.POSITIVE_INFINITY
  if (text === "-Inf") return Number.NEGATIVE_INFINITY
  if (text === "NaN") return Number.NaN
  if (!/^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(text)) throw new Error(`bad value ${text}`)
  return Number(text)
}

/** The families of an exposition; throws on anything Prometheus would refuse. */
const parse = (text: string): Map<string, Family> => {
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a line feed")
  const families = new Map<string, Family>()
  const familyOf = (name: string) => {
    let family = families.get(name)
    if (family === undefined) families.set(name, (family = { name, help: undefined, type: undefined, samples: [] }))
    return family
  }
  for (const line of text.slice(0, -1).split("\n")) {
    if (line === "") continue
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line)
    if (meta !== null) {
      const family = familyOf(meta[2]!)
      if (family.samples.length > 0) throw new Error(`${meta[1]} of ${meta[2]} after its samples`)
      if (meta[1] === "HELP") {
        if (family.help !== undefined) throw new Error(`HELP of ${meta[2]} twice`)
        family.help = unescapeHelp(meta[3]!)
      } else {
        if (family.type !== undefined) throw new Error(`TYPE of ${meta[2]} twice`)
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(meta[3]!)) throw new Error(line)
        family.type = meta[3]
      }
      continue
    }
    if (line.startsWith("#")) continue
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (sample === null) throw new Error(`not a sample: ${line}`)
    const name = sample[1]!
    // The family a sample belongs to: its own name, or a histogram's with its suffix.
    const base = /_(bucket|sum|count)$/.test(name) ? name.replace(/_(bucket|sum|count)$/, "") : undefined
    const owner =
      families.get(name)?.type !== undefined
        ? families.get(name)!
        : base !== undefined && families.get(base)?.type === "histogram"
          ? families.get(base)!
          : undefined
    if (owner === undefined) throw new Error(`sample ${name} of no declared TYPE`)
    if (owner.type === "histogram" && owner.name === name) throw new Error(`histogram sample ${name} without suffix`)
    if (owner.type === "counter" && !name.endsWith("_total")) throw new Error(`counter ${name} without _total`)
    owner.samples.push({ name, labels: parseLabels(sample[2] ?? ""), value: parseValue(sample[3]!) })
  }
  for (const family of families.values()) {
    if (family.type === undefined || family.help === undefined) throw new Error(`${family.name} lacks HELP or TYPE`)
    if (family.type === "histogram") checkHistogram(family)
  }
  return families
}

const withoutLe = (labels: Record<string, string>) => {
  const { le: _, ...rest } = labels
  return JSON.stringify(Object.entries(rest).sort())
}

/** Buckets cumulative and monotone, in increasing `le`, ending at `+Inf` equal to `_count`; a `_sum` per series. */
const checkHistogram = (family: Family) => {
  const series = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>()
  for (const s of family.samples) {
    const key = withoutLe(s.labels)
    let entry = series.get(key)
    if (entry === undefined) series.set(key, (entry = { buckets: [] }))
    if (s.name.endsWith("_bucket")) {
      if (s.labels.le === undefined) throw new Error(`${s.name} without le`)
      entry.buckets.push([parseValue(s.labels.le), s.value])
    } else if (s.name.endsWith("_sum")) entry.sum = s.value
    else entry.count = s.value
  }
  for (const [key, { buckets, sum, count }] of series) {
    if (sum === undefined || count === undefined) throw new Error(`${family.name}${key} lacks _sum or _count`)
    for (let i = 1; i < buckets.length; i++) {
      if (!(buckets[i]![0] > buckets[i - 1]![0])) throw new Error(`${family.name}${key}: le not increasing`)
      if (buckets[i]![1] < buckets[i - 1]![1]) throw new Error(`${family.name}${key}: buckets not cumulative`)
    }
    const last = buckets[buckets.length - 1]
    if (last === undefined || last[0] !== Number.POSITIVE_INFINITY) throw new Error(`${family.name}${key}: no +Inf`)
    if (last[1] !== count) throw new Error(`${family.name}${key}: +Inf ${last[1]} is not _count ${count}`)
  }
}

/** The value of the sample `name` whose labels include `labels`; 0 when there is none. */
const sampleOf = (families: Map<string, Family>, name: string, labels: Record<string, string> = {}) => {
  const base = name.replace(/_(bucket|sum|count)$/, "")
  const family = families.get(name) ?? families.get(base)
  const found = family?.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  )
  if (found !== undefined && found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} is ambiguous`)
  return found?.[0]?.value ?? 0
}

const sumOf = (families: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
  (families.get(name)?.samples ?? [])
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0)

describe("the text exposition", () => {
  it("escapes label values and help text, and formats special values", () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd')
    expect(formatValue(Number.POSITIVE_INFINITY)).toBe("+Inf")
    expect(formatValue(Number.NaN)).toBe("NaN")
    expect(formatValue(0.25)).toBe("0.25")
  })

  it.effect("writes counters, histograms and scraped gauges that parse back to what was recorded", () =>
    Effect.gen(function* () {
      const registry = makeRegistry()
      const counter = registry.counter("t_requests_total", 'Requests,\nby "path" \\ status.', ["path", "status"])
      const histogram = registry.histogram("t_duration_seconds", "Durations.", ["route"], [0.5, 0.01, 5])
      let scraped = 0
      registry.collected("t_level", "A level read when scraped.", ["server"], () =>
        Effect.sync(() => [[{ server: "a" }, ++scraped] as const])
      )
      const tricky = 'x\\y"z\nw,le="1"}'
      counter.inc({ path: tricky, status: "200" })
      counter.inc({ path: tricky, status: "200" }, 2)
      counter.inc({ path: "/b", status: "500" })
      // A counter never goes down.
      counter.inc({ path: "/b", status: "500" }, -5)
      for (const v of [0.001, 0.5, 0.3, 7, 0.01]) histogram.observe({ route: "r" }, v)
      const text = yield* registry.exposition
      const families = parse(text)
      assert.strictEqual(families.get("t_requests_total")?.help, 'Requests,\nby "path" \\ status.')
      assert.strictEqual(families.get("t_requests_total")?.type, "counter")
      assert.strictEqual(sampleOf(families, "t_requests_total", { path: tricky, status: "200" }), 3)
      assert.strictEqual(sampleOf(families, "t_requests_total", { path: "/b" }), 1)
      // `le` is inclusive: 0.01 is in the 0.01 bucket, 0.5 in the 0.5 one.
      const buckets = families
        .get("t_duration_seconds")!
        .samples.filter((s) => s.name.endsWith("_bucket"))
        .map((s) => [s.labels.le, s.value])
      assert.deepStrictEqual(buckets, [
        ["0.01", 2],
        ["0.5", 4],
        ["5", 4],
        ["+Inf", 5]
      ])
      assert.strictEqual(sampleOf(families, "t_duration_seconds_count", { route: "r" }), 5)
      assert.closeTo(sampleOf(families, "t_duration_seconds_sum", { route: "r" }), 7.811, 1e-9)
      assert.strictEqual(sampleOf(families, "t_level", { server: "a" }), 1)
      // Gauges are read at each scrape.
      assert.strictEqual(sampleOf(parse(yield* registry.exposition), "t_level", { server: "a" }), 2)
    })
  )

  it("refuses names the format cannot carry", () => {
    const registry = makeRegistry()
    expect(() => registry.counter("bad-name_total", "x", [])).toThrow(/invalid metric name/)
    expect(() => registry.counter("ok_total", "x", ["le"])).toThrow(/invalid label/)
    registry.counter("twice_total", "x", [])
    expect(() => registry.gauge("twice_total", "x", [])).toThrow(/twice/)
  })

  it("the parser of these tests refuses what Prometheus refuses", () => {
    expect(() => parse('x_total{a="1"} 1\n')).toThrow(/no declared TYPE/)
    expect(() => parse("# HELP x_total h\n# TYPE x_total counter\nx_total 1")).toThrow(/line feed/)
    expect(() =>
      parse('# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n')
    ).toThrow(/cumulative/)
    expect(() => parse('# HELP h h\n# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n')).toThrow(/\+Inf/)
    expect(() => parse('# HELP g g\n# TYPE g gauge\ng{a="x\\q"} 1\n')).toThrow(/escape/)
  })
})

describe("instrument", () => {
  const failure = (server: string, status: number) =>
    new Errors.HttpStatusError({ server, status, statusText: "", body: "" })

  it.effect(
    "counts attempts by outcome, failures by error tag, and a failure followed by another attempt as a failover",
    () =>
      Effect.gen(function* () {
        const metrics = makeMetrics()
        const pool = instrument(yield* ServerPool.make({ servers: ["http://a", "http://b"] }), metrics, "chat")
        const exchange: Exchange = { route: "chat", model: undefined, attempts: 0, failed: undefined }
        yield* Effect.gen(function* () {
          const first = Option.getOrThrow(yield* pool.choose(new Set(), "http://a"))
          yield* pool.onFailure(first, failure(first, 503))
          const second = Option.getOrThrow(yield* pool.choose(new Set([first]), undefined))
          assert.strictEqual(second, "http://b")
          yield* pool.onSuccess(second, 5, 7)
          // A request fault ends the call: never a failover.
          yield* pool.onFailure(second, failure(second, 400))
          assert.isTrue(Option.isNone(yield* pool.choose(new Set(["http://a", "http://b"]), undefined)))
        }).pipe(Effect.provideService(CurrentExchange, exchange))
        assert.strictEqual(exchange.attempts, 2)
        assert.strictEqual(metrics.attempts.get({ route: "chat", server: "http://a", outcome: "error" }), 1)
        assert.strictEqual(metrics.attempts.get({ route: "chat", server: "http://b", outcome: "ok" }), 1)
        assert.strictEqual(metrics.attempts.get({ route: "chat", server: "http://b", outcome: "error" }), 1)
        assert.strictEqual(metrics.failures.get({ route: "chat", server: "http://a", error: "HttpStatusError" }), 1)
        assert.strictEqual(metrics.failovers.get({ route: "chat", server: "http://a", error: "HttpStatusError" }), 1)
        assert.strictEqual(metrics.failovers.get({ route: "chat", server: "http://b", error: "HttpStatusError" }), 0)
        // The pool itself still learns: b's estimate, and its health in the exposition.
        const families = parse(yield* metrics.registry.exposition)
        assert.strictEqual(
          sampleOf(families, "easychat_upstream_first_delta_estimate_seconds", { route: "chat", server: "http://b" }),
          0.007
        )
        assert.strictEqual(
          sampleOf(families, "easychat_upstream_circuit_state", { route: "chat", server: "http://a", state: "closed" }),
          1
        )
      })
  )
})

const KEY = "metrics-test-key-0123456789"
const auth = { authorization: `Bearer ${KEY}` }
const chat = (stream: boolean) => ({ model: "gpt-test", messages: [{ role: "user", content: "Hi" }], stream })

describe("GET /metrics", () => {
  it.live("counts a scripted run exactly: requests, attempts, failovers, breakers and histograms", () =>
    Effect.promise(() =>
      withGateway(
        [{ fault: { kind: "status", status: 503 } }, {}],
        { keys: [KEY], chat: { strategy: "round-robin", breaker: { failures: 2, cooldown: "1 minute" } } },
        async ({ gateway, pool }) => {
          const [bad, good] = pool.urls as [string, string]
          // Round-robin: the first two requests try the failing mirror first (its second failure opens its
          // circuit) and fail over to the other; the last three go straight to the other.
          const answers = []
          for (let i = 0; i < 5; i++) {
            answers.push(await postJson(`${gateway.url}/v1/chat/completions`, chat(i % 2 === 0), auth))
          }
          expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200])
          expect(answers.map((a) => a.headers["x-easychat-server"])).toEqual([good, good, good, good, good])
          // Refused before routing: no route.
          expect((await postJson(`${gateway.url}/v1/chat/completions`, chat(false))).status).toBe(401)
          const scraped = await raw(`${gateway.url}/metrics`, { headers: auth })
          expect(scraped.status).toBe(200)
          expect(scraped.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8")
          const m = parse(scraped.text)
          const route = { route: "default" }
          expect(sampleOf(m, "easychat_gateway_requests_total", { ...route, status: "200", outcome: "ok" })).toBe(5)
          expect(sumOf(m, "easychat_gateway_requests_total", route)).toBe(5)
          expect(
            sampleOf(m, "easychat_gateway_requests_total", { route: "none", status: "401", outcome: "client_error" })
          ).toBe(1)
          const posts = (i: number) => pool.servers[i]!.requests.filter((r) => r.method === "POST").length
          expect([posts(0), posts(1)]).toEqual([2, 5])
          expect(sampleOf(m, "easychat_upstream_attempts_total", { ...route, server: bad, outcome: "error" })).toBe(2)
          expect(sampleOf(m, "easychat_upstream_attempts_total", { ...route, server: good, outcome: "ok" })).toBe(5)
          expect(sumOf(m, "easychat_upstream_attempts_total")).toBe(posts(0) + posts(1))
          expect(
            sampleOf(m, "easychat_upstream_failures_total", { ...route, server: bad, error: "HttpStatusError" })
          ).toBe(2)
          expect(sumOf(m, "easychat_upstream_failures_total")).toBe(2)
          expect(
            sampleOf(m, "easychat_upstream_failovers_total", { ...route, server: bad, error: "HttpStatusError" })
          ).toBe(2)
          expect(sumOf(m, "easychat_upstream_failovers_total")).toBe(2)
          expect(sampleOf(m, "easychat_upstream_circuit_state", { ...route, server: bad, state: "open" })).toBe(1)
          expect(sampleOf(m, "easychat_upstream_circuit_state", { ...route, server: bad, state: "closed" })).toBe(0)
          expect(sampleOf(m, "easychat_upstream_circuit_state", { ...route, server: good, state: "closed" })).toBe(1)
          expect(sampleOf(m, "easychat_upstream_consecutive_failures", { ...route, server: bad })).toBe(2)
          expect(
            sampleOf(m, "easychat_upstream_first_delta_estimate_seconds", { ...route, server: good })
          ).toBeGreaterThan(0)
          expect(sampleOf(m, "easychat_upstream_failure_rate", { ...route, server: bad })).toBeGreaterThan(0)
          // Every request of the route is in the duration histogram; the three streams in the first-delta one.
          expect(sampleOf(m, "easychat_gateway_request_duration_seconds_count", route)).toBe(5)
          expect(sampleOf(m, "easychat_gateway_request_duration_seconds_bucket", { ...route, le: "+Inf" })).toBe(5)
          expect(sampleOf(m, "easychat_gateway_request_duration_seconds_sum", route)).toBeGreaterThan(0)
          expect(sampleOf(m, "easychat_gateway_first_delta_seconds_count", route)).toBe(3)
          expect(sampleOf(m, "easychat_gateway_streams_open", route)).toBe(0)
          // The scrape itself is counted once it is answered.
          const again = parse((await raw(`${gateway.url}/metrics`, { headers: auth })).text)
          expect(
            sampleOf(again, "easychat_gateway_requests_total", { route: "none", status: "200", outcome: "ok" })
          ).toBe(1)
        }
      )
    )
  )

  it.live("counts a scripted run over routes exactly: a fallback's failovers under the route that failed", () =>
    Effect.promise(async () => {
      const mirrors = await MirrorPool.start([
        { fault: { kind: "status", status: 503 } },
        { fault: { kind: "status", status: 503 } },
        {}
      ])
      const [bad1, bad2, good] = mirrors.urls as [string, string, string]
      const gateway = await Gateway.start({
        port: 0,
        config: await parseConfig(`
routes:
  - name: primary
    models: [llama3.2]
    servers: ${list([bad1, bad2])}
    breaker: { failures: 10 }
    fallback: backup
  - name: backup
    models: [gpt-3.5-turbo]
    servers: ${list([good])}
`)
      })
      try {
        const url = `${gateway.url}/v1/chat/completions`
        const ask = (model: string, stream: boolean) =>
          postJson(url, { model, messages: [{ role: "user", content: "Hi" }], stream })
        const statuses = [
          (await ask("llama3.2", false)).status,
          (await ask("llama3.2", true)).status,
          (await ask("gpt-3.5-turbo", false)).status,
          (await ask("mistral", false)).status
        ]
        expect(statuses).toEqual([200, 200, 200, 404])
        const posts = (i: number) => mirrors.servers[i]!.requests.filter((r) => r.method === "POST").length
        expect([posts(0), posts(1), posts(2)]).toEqual([2, 2, 3])
        const m = parse((await raw(`${gateway.url}/metrics`)).text)
        const requests = (route: string, status: string, outcome: string) =>
          sampleOf(m, "easychat_gateway_requests_total", { route, status, outcome })
        expect(requests("primary", "200", "ok")).toBe(2)
        expect(requests("backup", "200", "ok")).toBe(1)
        expect(requests("none", "404", "client_error")).toBe(1)
        expect(sumOf(m, "easychat_gateway_requests_total")).toBe(4)
        for (const server of [bad1, bad2]) {
          expect(sampleOf(m, "easychat_upstream_attempts_total", { route: "primary", server, outcome: "error" })).toBe(
            2
          )
          expect(
            sampleOf(m, "easychat_upstream_failures_total", { route: "primary", server, error: "HttpStatusError" })
          ).toBe(2)
        }
        expect(sampleOf(m, "easychat_upstream_attempts_total", { route: "backup", server: good, outcome: "ok" })).toBe(
          3
        )
        expect(sumOf(m, "easychat_upstream_attempts_total")).toBe(posts(0) + posts(1) + posts(2))
        // Each request to primary: its first server failed over to its second, the second to the fallback route.
        expect(sumOf(m, "easychat_upstream_failovers_total", { route: "primary" })).toBe(4)
        expect(sumOf(m, "easychat_upstream_failovers_total", { route: "backup" })).toBe(0)
        expect(sumOf(m, "easychat_upstream_failovers_total")).toBe(4)
        expect(sampleOf(m, "easychat_gateway_request_duration_seconds_count", { route: "primary" })).toBe(2)
        expect(sampleOf(m, "easychat_gateway_request_duration_seconds_count", { route: "backup" })).toBe(1)
        expect(sampleOf(m, "easychat_gateway_first_delta_seconds_count", { route: "primary" })).toBe(1)
        expect(sampleOf(m, "easychat_upstream_circuit_state", { route: "backup", server: good, state: "closed" })).toBe(
          1
        )
      } finally {
        await gateway.close({ drainTimeout: 0 })
        await mirrors.close()
      }
    })
  )

  it.live("counts a stream open while it is sent", () =>
    Effect.promise(() =>
      withGateway([{ delayMs: 100 }], {}, async ({ gateway }) => {
        // The answer's head has come: its stream is being sent, slowly.
        const { response, rest } = await streaming(`${gateway.url}/v1/chat/completions`, chat(true))
        expect(response.statusCode).toBe(200)
        const during = parse((await raw(`${gateway.url}/metrics`)).text)
        expect(sampleOf(during, "easychat_gateway_streams_open", { route: "default" })).toBe(1)
        expect(sampleOf(during, "easychat_gateway_first_delta_seconds_count", { route: "default" })).toBe(1)
        expect(sumOf(during, "easychat_gateway_requests_total", { route: "default" })).toBe(0)
        expect(await rest).toContain("data: [DONE]")
        const after = parse((await raw(`${gateway.url}/metrics`)).text)
        expect(sampleOf(after, "easychat_gateway_streams_open", { route: "default" })).toBe(0)
        expect(
          sampleOf(after, "easychat_gateway_requests_total", { route: "default", status: "200", outcome: "ok" })
        ).toBe(1)
      })
    )
  )

  it.live("counts a stream cut after its first delta as cut, not as a failover", () =>
    Effect.promise(() =>
      withGateway([{ fault: { kind: "close-mid-stream", afterDeltas: 2 } }], {}, async ({ gateway, pool }) => {
        const answer = await postJson(`${gateway.url}/v1/chat/completions`, chat(true))
        expect(answer.status).toBe(200)
        expect(answer.text).toContain("event: error")
        const m = parse((await raw(`${gateway.url}/metrics`)).text)
        expect(
          sampleOf(m, "easychat_gateway_requests_total", { route: "default", status: "200", outcome: "cut" })
        ).toBe(1)
        expect(sumOf(m, "easychat_gateway_requests_total", { route: "default" })).toBe(1)
        expect(
          sampleOf(m, "easychat_upstream_failures_total", {
            route: "default",
            server: pool.urls[0]!,
            error: "StreamInterrupted"
          })
        ).toBe(1)
        expect(sumOf(m, "easychat_upstream_failovers_total")).toBe(0)
      })
    )
  )

  it.live("is behind the keys by default, open without one when opened, absent when off", () =>
    Effect.promise(async () => {
      await withGateway(1, { keys: [KEY] }, async ({ gateway }) => {
        const refused = await raw(`${gateway.url}/metrics`)
        expect(refused.status).toBe(401)
        expect(refused.text).not.toContain("easychat_")
        expect(
          (await raw(`${gateway.url}/metrics`, { headers: { authorization: "Bearer wrong-key-0123456789" } })).status
        ).toBe(401)
        expect((await raw(`${gateway.url}/metrics`, { headers: auth })).status).toBe(200)
      })
      await withGateway(1, { keys: [KEY], metrics: "open" }, async ({ gateway }) => {
        const open = await raw(`${gateway.url}/metrics`)
        expect(open.status).toBe(200)
        parse(open.text)
        // Only the metrics are opened.
        expect((await postJson(`${gateway.url}/v1/chat/completions`, chat(false))).status).toBe(401)
        expect((await raw(`${gateway.url}/health`)).status).toBe(401)
      })
      await withGateway(1, { metrics: "off" }, async ({ gateway }) => {
        expect((await raw(`${gateway.url}/metrics`)).status).toBe(404)
      })
      // Without keys: loopback hosts only, as every endpoint.
      await withGateway(1, { metrics: "open" }, async ({ gateway }) => {
        expect((await raw(`${gateway.url}/metrics`)).status).toBe(200)
        expect((await raw(`${gateway.url}/metrics`, { headers: { host: "evil.example" } })).status).toBe(403)
      })
    })
  )

  it.live(
    "counts the attempts of a pool from layerChat under Gateway.layer; a pool of one's own shows its health only",
    () =>
      Effect.gen(function* () {
        const mirrors = yield* Effect.promise(() => MirrorPool.start([{ fault: { kind: "status", status: 503 } }, {}]))
        yield* Effect.addFinalizer(() => Effect.promise(() => mirrors.close()))
        const [bad, good] = mirrors.urls as [string, string]
        const chatOptions = { servers: mirrors.urls, strategy: "round-robin" as const }
        const scrapeAfterOne = (chatLayer: Layer.Layer<EasyChat.EasyChat | ServerPool.ServerPool, unknown, never>) =>
          Effect.scoped(
            Effect.gen(function* () {
              let url = ""
              yield* Layer.build(
                Gateway.layer({ port: 0, onListen: (at) => (url = at) }).pipe(Layer.provide(chatLayer))
              )
              const answer = yield* Effect.promise(() => postJson(`${url}/v1/chat/completions`, chat(false)))
              assert.strictEqual(answer.status, 200)
              return parse((yield* Effect.promise(() => raw(`${url}/metrics`))).text)
            })
          )
        const counted = yield* scrapeAfterOne(
          Gateway.layerChat(chatOptions).pipe(Layer.provide(NodeTransport.layer()), Layer.orDie)
        )
        const route = { route: "default" }
        assert.strictEqual(sampleOf(counted, "easychat_upstream_failovers_total", { ...route, server: bad }), 1)
        assert.strictEqual(
          sampleOf(counted, "easychat_upstream_attempts_total", { ...route, server: good, outcome: "ok" }),
          1
        )
        assert.strictEqual(sampleOf(counted, "easychat_upstream_consecutive_failures", { ...route, server: bad }), 1)
        const own = yield* scrapeAfterOne(
          EasyChat.layer({ ...chatOptions, defaults: {} }).pipe(Layer.provide(NodeTransport.layer()), Layer.orDie)
        )
        assert.strictEqual(sumOf(own, "easychat_upstream_attempts_total"), 0)
        assert.strictEqual(sampleOf(own, "easychat_upstream_consecutive_failures", { ...route, server: bad }), 1)
        assert.strictEqual(
          sampleOf(own, "easychat_gateway_requests_total", { ...route, status: "200", outcome: "ok" }),
          1
        )
      }).pipe(Effect.scoped)
  )

  it.live("refuses a metrics option it does not know", () =>
    Effect.promise(async () => {
      const { Gateway } = await import("../src/index.js")
      await expect(Gateway.start({ port: 0, metrics: "public" as never })).rejects.toMatchObject({
        _tag: "InvalidRequest",
        field: "metrics"
      })
      await expect(Gateway.start({ port: 0, accessLog: "xml" as never })).rejects.toMatchObject({
        _tag: "InvalidRequest",
        field: "accessLog"
      })
    })
  )
})
