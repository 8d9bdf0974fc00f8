/**
 * The script that Bun and Deno run (`scripted.ts` bundles and spawns it): it
 * serves runs of the fetch transport over stdin and stdout, one JSON message
 * of `remote.ts` per line. With `--worker` the runs happen in a module Web
 * Worker loaded from the file next to it (`worker.mjs`), and this thread only
 * relays.
 *
 * @since 0.1.0
 */
import { about, fetchTransport, linePrefix, type Reply, type Request, serveRuns } from "./remote.js"

interface Runtime {
  readonly args: ReadonlyArray<string>
  readonly stdin: ReadableStream<Uint8Array>
  exit(code: number): never
}

const runtime = (): Runtime => {
  const { Deno, Bun, process } = globalThis as unknown as {
    Deno?: { args: Array<string>; stdin: { readable: ReadableStream<Uint8Array> }; exit(code: number): never }
    Bun?: { stdin: { stream(): ReadableStream<Uint8Array> } }
    process?: { argv: Array<string>; exit(code: number): never }
  }
  if (Deno !== undefined) return { args: Deno.args, stdin: Deno.stdin.readable, exit: Deno.exit }
  if (Bun !== undefined && process !== undefined) {
    return { args: process.argv.slice(2), stdin: Bun.stdin.stream(), exit: process.exit }
  }
  throw new Error("neither Deno nor Bun")
}

async function* lines(input: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  const reader = input.getReader()
  let buffered = ""
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    buffered += decoder.decode(value, { stream: true })
    let end = buffered.indexOf("\n")
    while (end >= 0) {
      yield buffered.slice(0, end)
      buffered = buffered.slice(end + 1)
      end = buffered.indexOf("\n")
    }
  }
}

const write = (reply: Reply) => console.log(linePrefix + JSON.stringify(reply))

const main = async () => {
  const { args, stdin, exit } = runtime()
  let handle: (request: Request) => void
  if (args.includes("--worker")) {
    const worker = new Worker(new URL("./worker.mjs", import.meta.url).href, { type: "module" })
    worker.onmessage = (event: MessageEvent<Reply>) => write(event.data)
    worker.onerror = (event: ErrorEvent) => console.error(`worker error: ${event.message}`)
    handle = (request) => worker.postMessage(request)
  } else {
    handle = serveRuns(fetchTransport, write)
    write({ type: "ready", about: about() })
  }
  for await (const line of lines(stdin)) if (line.trim() !== "") handle(JSON.parse(line) as Request)
  // stdin closed: the test is done with this process.
  exit(0)
}

void main()
