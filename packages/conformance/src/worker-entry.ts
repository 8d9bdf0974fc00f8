/**
 * A Web Worker that runs cases on the fetch transport, for whoever started
 * it: the Bun and Deno scripts (`script-entry.ts`) and the Chromium page
 * (`browser-entry.ts`). Speaks `remote.ts`'s messages.
 *
 * @since 0.1.0
 */
import { about, fetchTransport, type Reply, type Request, serveRuns } from "./remote.js"

const scope = globalThis as unknown as {
  postMessage(reply: Reply): void
  onmessage: ((event: { readonly data: Request }) => void) | null
}

const serve = serveRuns(fetchTransport, (reply) => scope.postMessage(reply))
scope.onmessage = (event) => serve(event.data)
scope.postMessage({ type: "ready", about: about() })
