import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import { Config } from "../src/index.js"

const env = { VLLM_KEY: "sk-vllm-secret-value", GATEWAY_KEYS: "0123456789abcdef0123,fedcba9876543210fedc" }

/** The issues a text is refused with. */
const issues = (text: string, format: Config.Format = "yaml", options: Config.ParseOptions = { env }) =>
  Effect.runPromise(Effect.flip(Config.parse(text, format, options))).then((error) => {
    expect(error._tag).toBe("InvalidConfig")
    return error.issues
  })

const smallest = `routes: [{ models: [llama3.2], servers: ["http://127.0.0.1:11434"], path: /v1/chat/completions }]`

describe("Config.parse", () => {
  it("reads the smallest file, in YAML and as JSON with the same keys", async () => {
    const yaml = await Effect.runPromise(Config.parse(smallest, "yaml"))
    const json = await Effect.runPromise(
      Config.parse(
        JSON.stringify({
          routes: [{ models: ["llama3.2"], servers: ["http://127.0.0.1:11434"], path: "/v1/chat/completions" }]
        }),
        "json"
      )
    )
    for (const config of [yaml, json]) {
      expect(config.routes).toHaveLength(1)
      expect(config.routes[0]).toMatchObject({
        name: "llama3.2",
        models: ["llama3.2"],
        fallback: undefined,
        pool: {
          servers: ["http://127.0.0.1:11434"],
          path: "/v1/chat/completions",
          model: "llama3.2",
          cookieInit: "off",
          defaults: {}
        }
      })
      expect(config.gateway.keys).toEqual([])
    }
  })

  it("reads every option: servers with weights and priorities, durations, keys from the environment", async () => {
    const config = await Effect.runPromise(
      Config.parse(
        `
port: 9000
keysEnv: GATEWAY_KEYS
cors: ["https://app.example.com"]
drainTimeout: 0
bodyTimeout: 5s
routes:
  - name: vllm
    models: [qwen*, llama3.1-70b]
    servers:
      - http://10.0.0.5:8000;weight=3
      - { url: "http://10.0.0.6:8000", weight: 1, priority: 1 }
    apiKeyEnv: VLLM_KEY
    strategy: latency
    timeouts: { headers: 10s, firstToken: "2 minutes", idle: 30000 }
    hedge: { after: auto }
    continueAfterCut: true
    fallback: mirrors
  - name: mirrors
    models: ["*"]
    preset: easychat
`,
        "yaml",
        { env }
      )
    )
    expect(config.gateway).toMatchObject({
      port: 9000,
      cors: ["https://app.example.com"],
      drainTimeout: 0,
      bodyTimeout: 5000
    })
    expect(config.gateway.keys.map(Redacted.value)).toEqual(env.GATEWAY_KEYS.split(","))
    const [vllm, mirrors] = config.routes
    expect(vllm).toMatchObject({
      name: "vllm",
      fallback: "mirrors",
      pool: {
        model: "llama3.1-70b",
        strategy: "latency",
        timeouts: { headers: 10_000, firstToken: 120_000, idle: 30_000 },
        hedge: { after: "auto" },
        continueAfterCut: true
      }
    })
    expect(Redacted.value(vllm!.apiKey!)).toBe(env.VLLM_KEY)
    // A key never prints.
    expect(JSON.stringify(config)).not.toContain(env.VLLM_KEY)
    expect(String(vllm!.apiKey)).not.toContain(env.VLLM_KEY)
    expect(mirrors!.pool.servers).toHaveLength(7)
    expect(mirrors!.pool.path).toBe("/api/openai/v1/chat/completions")
  })

  it("refuses a file without routes", async () => {
    expect(await issues("port: 8080")).toEqual([{ path: "routes", rule: "is required" }])
    expect(await issues("routes: []")).toEqual([{ path: "routes", rule: "must hold at least one route" }])
    expect(await issues("")).toEqual([{ path: "", rule: "is empty: it needs routes" }])
  })

  it("refuses a value of the wrong type, naming where it is", async () => {
    expect(await issues(`port: eighty\n${smallest}`)).toEqual([{ path: "port", rule: "must be a number" }])
    expect(await issues(`routes: [{ models: llama3.2, servers: ["http://a:1"] }]`)).toEqual([
      { path: "routes[0].models", rule: "must be a list" }
    ])
    expect(await issues(`routes: [{ models: [m], servers: ["http://a:1"], strategy: fastest }]`)).toEqual([
      { path: "routes[0].strategy", rule: "must be random, round-robin or latency" }
    ])
    expect(await issues(`routes: [{ models: [m], servers: ["http://a:1"], timeouts: { idle: soon } }]`)).toEqual([
      {
        path: "routes[0].timeouts.idle",
        rule: "must be a duration such as 500ms, 30s or 2m, or a number of milliseconds above 0"
      }
    ])
  })

  it("refuses a URL that is not http or https", async () => {
    expect(await issues(`routes: [{ models: [m], servers: ["http://a:1", "ftp://b"] }]`)).toEqual([
      { path: "routes[0].servers[1]", rule: "must be an http or https URL" }
    ])
    expect(await issues(`routes: [{ models: [m], servers: [{ url: "not a url" }] }]`)).toEqual([
      { path: "routes[0].servers[0].url", rule: "must be an http or https URL" }
    ])
  })

  it("refuses an unknown key, naming it and the key it likely means", async () => {
    const found = await issues(`routes: [{ models: [m], severs: ["http://a:1"] }]`)
    expect(found).toHaveLength(1)
    expect(found[0]!.path).toBe("routes[0].severs")
    expect(found[0]!.rule).toMatch(/^is not a known key \(did you mean servers\?\); known keys: name, models, /)
    expect(await issues(`routes: [{ models: [m] }]`)).toEqual([
      { path: "routes[0].servers", rule: "is required (only the easychat preset has servers of its own)" }
    ])
    expect((await issues(`prot: 80\n${smallest}`))[0]).toMatchObject({ path: "prot", rule: /did you mean port\?/ })
  })

  it("refuses a weight or priority out of range, in either form of a server", async () => {
    expect(
      await issues(`
routes:
  - models: [a]
    servers: ["http://a:1"]
  - models: [b]
    servers: [{ url: "http://b:1", weight: 0 }, "http://c:1;priority=-1"]
`)
    ).toEqual([{ path: "routes[1].servers[0].weight", rule: "must be a positive number" }])
    expect(await issues(`routes: [{ models: [b], servers: ["http://c:1;weight=x"] }]`)).toEqual([
      { path: "routes[0].servers[0].weight", rule: "must be a positive finite number" }
    ])
  })

  it("refuses a model served by two routes, and two routes with one name", async () => {
    expect(
      await issues(`
routes:
  - { models: [a, b], servers: ["http://a:1"] }
  - { models: [c, b], servers: ["http://b:1"] }
`)
    ).toEqual([{ path: "routes[1].models[1]", rule: "b is already served by routes[0]" }])
    const named = await issues(`
routes:
  - { name: x, models: [a], servers: ["http://a:1"] }
  - { name: x, models: [b], servers: ["http://b:1"] }
`)
    expect(named).toHaveLength(1)
    expect(named[0]!.path).toBe("routes[1].name")
    expect(named[0]!.rule).toMatch(/^names the route "x" as routes\[0\] does/)
  })

  it("refuses a fallback that names no route", async () => {
    expect(
      await issues(
        `routes: [{ models: [a], servers: ["http://a:1"], fallback: mirors }, { name: mirrors, models: ["*"], preset: easychat }]`
      )
    ).toEqual([{ path: "routes[0].fallback", rule: 'names no route: "mirors" (routes: a, mirrors)' }])
  })

  it("refuses fallbacks that make a cycle", async () => {
    expect(
      await issues(`
routes:
  - { name: one, models: [a], servers: ["http://a:1"], fallback: two }
  - { name: two, models: [b], servers: ["http://b:1"], fallback: three }
  - { name: three, models: [c], servers: ["http://c:1"], fallback: one }
  - { name: four, models: [d], servers: ["http://d:1"], fallback: four }
`)
    ).toEqual([
      { path: "routes[0].fallback", rule: "makes a cycle: one → two → three → one" },
      { path: "routes[1].fallback", rule: "makes a cycle: two → three → one → two" },
      { path: "routes[2].fallback", rule: "makes a cycle: three → one → two → three" },
      { path: "routes[3].fallback", rule: "makes a cycle: four → four" }
    ])
  })

  it("refuses a key variable that is not set, naming the variable and never a value", async () => {
    const found = await issues(
      `keysEnv: MISSING_KEYS\nroutes: [{ models: [a], servers: ["http://a:1"], apiKeyEnv: NO_SUCH_KEY }]`
    )
    expect(found).toEqual([
      { path: "routes[0].apiKeyEnv", rule: "names NO_SUCH_KEY, which is not set in the environment" },
      { path: "keysEnv", rule: "names MISSING_KEYS, which is not set in the environment" }
    ])
    const short = await issues(`keysEnv: SHORT\n${smallest}`, "yaml", { env: { SHORT: "short-secret" } })
    expect(short[0]!.path).toBe("keysEnv")
    expect(short[0]!.rule).toMatch(/^SHORT: key 1 must be at least 16 characters/)
    expect(JSON.stringify(short)).not.toContain("short-secret")
  })

  it("refuses YAML and JSON that do not parse, with the line", async () => {
    const yaml = await issues("routes:\n  - models: [a\n    servers: []\n")
    expect(yaml).toHaveLength(1)
    expect(yaml[0]!.path).toBe("")
    expect(yaml[0]!.rule).toMatch(/^line 3, column \d+: not valid YAML \(Flow sequence/)
    const json = await issues('{\n  "routes": [\n    { "models": ["a"], }\n  ]\n}', "json")
    expect(json[0]!.rule).toMatch(/^line 3, column \d+: not valid JSON/)
  })

  it("reports every issue at once, and the message lists each with its path", async () => {
    const error = await Effect.runPromise(
      Effect.flip(
        Config.parse(`port: -1\nroutes: [{ models: [a], servers: ["http://a:1"], maxAttempts: 0 }]`, "yaml", {
          file: "easychat.yaml"
        })
      )
    )
    expect(error.issues.map((i) => i.path)).toEqual(["routes[0].maxAttempts", "port"])
    expect(error.message).toBe(
      "easychat.yaml is invalid:\n  routes[0].maxAttempts: must be a positive whole number\n  port: must be a whole number from 0 to 65535"
    )
  })
})

describe("secrets in errors", () => {
  // `openssl rand -hex 24`: what a key pasted where a variable's name belongs looks like.
  const HEX = "a3f9c2e4b1d07f6e5a8c9b2d4e6f8a0b1c3d5e7f9a2b4c6d"

  /** Every issue's text, for checks that no secret is in any of them. */
  const textOf = (found: ReadonlyArray<Config.Issue>) => JSON.stringify(found)

  it("never prints a key pasted as a variable's name; a conventional name is still named", async () => {
    const found = await issues(
      `keysEnv: ${HEX}\nroutes: [{ models: [a], servers: ["http://a:1"], apiKeyEnv: ${HEX}, accessCodeEnv: sk_live_0123456789abcdef }]`
    )
    expect(found.map((i) => i.path)).toEqual(["routes[0].apiKeyEnv", "routes[0].accessCodeEnv", "keysEnv"])
    for (const issue of found) {
      expect(issue.rule).toMatch(/^does not look like a variable name \(not shown: it may be a key\)/)
    }
    expect(textOf(found)).not.toContain(HEX)
    expect(textOf(found)).not.toContain("0123456789abcdef")
    // A lowercase name that is set is read as before.
    const config = await Effect.runPromise(
      Config.parse(`routes: [{ models: [a], servers: ["http://a:1"], apiKeyEnv: my_key }]`, "yaml", {
        env: { my_key: "sk-value-of-my-key" }
      })
    )
    expect(Redacted.value(config.routes[0]!.apiKey!)).toBe("sk-value-of-my-key")
  })

  it("reports JSON and YAML syntax errors by line and column, never quoting the file", async () => {
    const json = await issues('{\n  "routes": [{ "models": ["a"], "apiKey": sk-secret-0123456789abcdef }]\n}', "json")
    expect(json).toEqual([
      {
        path: "",
        rule: "line 2, column 43: not valid JSON (unexpected character: a value is a string, number, object, array, true, false or null)"
      }
    ])
    for (const [text, rule] of [
      [
        '{"a": "sk-secret-0123456789abcdef',
        "line 1, column 34: not valid JSON (a string is not closed with a double quote)"
      ],
      [
        '{"a": 1} sk-secret-0123456789abcdef',
        "line 1, column 10: not valid JSON (unexpected text after the end of the value)"
      ],
      [
        '{"a": 1 "sk-secret-0123456789abcdef": 2}',
        "line 1, column 9: not valid JSON (expected , or } after a property's value)"
      ],
      ["", "line 1, column 1: not valid JSON (the text ends before the value does)"]
    ] as const) {
      expect(await issues(text, "json")).toEqual([{ path: "", rule }])
    }
    for (const text of [
      "routes: |sk-secret-0123456789abcdef\n  x\n",
      "routes: [a, b] sk-secret-0123456789abcdef\n",
      'routes: "sk-secret-0123456789abcdef\\q"\n',
      "routes: @sk-secret-0123456789abcdef\n",
      "apiKey: sk-secret-0123456789abcdef\n  x: y\n",
      "a: &x 1\nroutes: *sk-secret-0123456789abcdef\n"
    ]) {
      const found = await issues(text)
      expect(found).toHaveLength(1)
      expect(found[0]!.rule).toMatch(/^(line \d+, column \d+: )?not valid YAML \(/)
      expect(found[0]!.rule).not.toContain("\n")
      expect(textOf(found)).not.toContain("sk-secret")
    }
  })

  it("never echoes a value under headers or of a secret's field, and caps other echoes", async () => {
    const secretValues = await issues(
      `routes: [{ models: [a], servers: ["http://a:1"], headers: ["Authorization: Bearer sk-secret-0123456789abcdef"], timeouts: "sk-secret-0123456789abcdef" }]`
    )
    expect(secretValues.map((i) => i.path)).toEqual(["routes[0].headers", "routes[0].timeouts"])
    expect(textOf(secretValues)).not.toContain("sk-secret")
    const pasted = await issues(`routes: [{ models: [a], servers: ["http://a:1"], breaker: "${HEX}" }]`)
    expect(pasted[0]!.path).toBe("routes[0].breaker")
    expect(textOf(pasted)).not.toContain(HEX)
    const long = await issues(`routes: [{ models: [a], servers: ["http://a:1"], breaker: "${"word ".repeat(30)}" }]`)
    expect(long[0]!.rule).toMatch(/\(got "word word word [^)]{0,30}…\)$/)
    // A key pasted as a server's attribute, a fallback or a model served twice: never in the error.
    const elsewhere = await issues(`
routes:
  - { models: ["${HEX}"], servers: ["http://a:1;${HEX}"], fallback: "sk-secret-0123456789abcdef" }
  - { models: ["${HEX}"], servers: ["http://b:1"] }
`)
    expect(elsewhere.map((i) => i.path)).toEqual([
      "routes[0].servers[0]",
      "routes[1].models[0]",
      "routes[1].models[0]",
      "routes[0].fallback"
    ])
    expect(textOf(elsewhere)).not.toContain(HEX)
    expect(textOf(elsewhere)).not.toContain("sk-secret")
  })

  it("refuses credentials in a server URL, naming the path and never the URL", async () => {
    const found = await issues(`
routes:
  - models: [a]
    servers:
      - "http://10.0.0.5:8000"
      - "https://admin:s3cret-pass@10.0.0.6:8000;weight=2"
      - { url: "http://only-user@10.0.0.7:8000" }
`)
    const rule = "credentials in a server URL are not allowed: use apiKeyEnv or headers"
    expect(found).toEqual([
      { path: "routes[0].servers[1]", rule },
      { path: "routes[0].servers[2].url", rule }
    ])
    expect(textOf(found)).not.toMatch(/admin|s3cret|only-user/)
  })
})

describe("Config.load", () => {
  it("reads YAML or JSON by the file's extension, and keysFile relative to it; a missing file is refused", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "easychat-config-"))
    fs.writeFileSync(path.join(dir, "keys.txt"), "# clients\n0123456789abcdef0123\n")
    fs.writeFileSync(path.join(dir, "gateway.yml"), `keysFile: keys.txt\n${smallest}\n`)
    fs.writeFileSync(
      path.join(dir, "gateway.json"),
      JSON.stringify({ routes: [{ models: ["m"], servers: ["http://127.0.0.1:1"] }] })
    )
    const yaml = await Effect.runPromise(Config.load(path.join(dir, "gateway.yml")))
    expect(yaml.gateway.keys.map(Redacted.value)).toEqual(["0123456789abcdef0123"])
    expect(yaml.file).toBe(path.join(dir, "gateway.yml"))
    const json = await Effect.runPromise(Config.load(path.join(dir, "gateway.json")))
    expect(json.routes[0]!.name).toBe("m")
    const missing = await Effect.runPromise(Effect.flip(Config.load(path.join(dir, "nope.yaml"))))
    expect(missing.issues).toEqual([{ path: "", rule: "cannot be read (ENOENT)" }])
    fs.rmSync(dir, { recursive: true })
  })
})

describe("matches", () => {
  it("matches names exactly and * as any text", () => {
    expect(Config.matches("qwen*", "qwen2.5-7b")).toBe(true)
    expect(Config.matches("qwen*", "Qwen2.5")).toBe(false)
    expect(Config.matches("*-instruct", "llama-instruct")).toBe(true)
    expect(Config.matches("llama3.2", "llama3.2")).toBe(true)
    expect(Config.matches("llama3.2", "llama3x2")).toBe(false)
  })
})

describe("the README", () => {
  it("has an example that parses", async () => {
    const readme = fs.readFileSync(new URL("../README.md", import.meta.url), "utf8")
    const section = readme.slice(readme.indexOf("## Config file"))
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!
    const config = await Effect.runPromise(
      Config.parse(yaml, "yaml", { env: { VLLM_KEY: "vllm-key", EASYCHAT_GATEWAY_KEYS: "0123456789abcdef0123" } })
    )
    expect(config.routes.map((r) => [r.name, r.models, r.fallback])).toEqual([
      ["local", ["llama3.2"], "vllm"],
      ["vllm", ["qwen2.5*"], "mirrors"],
      ["mirrors", ["gpt-3.5-turbo"], undefined]
    ])
    expect(config.routes[1]!.pool.servers).toEqual([
      "http://10.0.0.5:8000;weight=3",
      { url: "http://10.0.0.6:8000", priority: 1 }
    ])
  })
})
