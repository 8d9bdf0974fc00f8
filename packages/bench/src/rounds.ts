// Interleaved sampling of streaming clients against a mirror process.
import type * as Clients from "./clients.js"
import { cpuMillis, gc, settle } from "./report.js"
import type * as Services from "./services.js"

export interface Sampled {
  readonly client: Clients.StreamClient
  readonly wall: Array<number>
  readonly cpu: Array<number>
  connections: number
}

/**
 * Runs every client once per round, in turn, so that drift of the machine
 * (other load, thermal) spreads evenly; the first rounds only warm up.
 * Before each run a full GC and a 5 ms pause, so that no client pays for
 * another's garbage; `backToBack` runs them one after the other instead.
 */
export const sample = async (
  clients: ReadonlyArray<Clients.StreamClient>,
  mirror: Services.ServiceProcess,
  rounds: number,
  warmup: number,
  expectedDeltas: number,
  backToBack = false
): Promise<Array<Sampled>> => {
  const results: Array<Sampled> = clients.map((client) => ({ client, wall: [], cpu: [], connections: 0 }))
  for (let round = 0; round < warmup + rounds; round++) {
    for (const result of results) {
      if (!backToBack) {
        gc()
        await settle(5)
      }
      const before = await mirror.stats()
      const c0 = cpuMillis()
      const t0 = performance.now()
      const got = await result.client.run()
      const wall = performance.now() - t0
      const cpu = cpuMillis() - c0
      const after = await mirror.stats()
      if (got.deltas !== expectedDeltas) {
        throw new Error(`${result.client.name} received ${got.deltas} deltas, the mirror sent ${expectedDeltas}`)
      }
      if (round >= warmup) {
        result.wall.push(wall)
        result.cpu.push(cpu)
        result.connections += after.connections - before.connections
      }
    }
  }
  return results
}

/** Wraps a client to record, per run, the time from the call to its first content delta. */
export const timed = (client: Clients.StreamClient, into: Array<number>): Clients.StreamClient => ({
  ...client,
  run: async (probe) => {
    const t0 = performance.now()
    const got = await client.run(probe)
    into.push(got.first - t0)
    return got
  }
})
