// The timing harness of the in-process sections: mitata's sampler, after a
// warm-up of our own (mitata skips its warm-up for functions slower than 0.5 ms).
//
// The clock is this process's CPU time, not the wall clock: on a shared
// machine other processes preempt ours, and wall time then measures them too.
// These runs never wait for I/O, so their CPU time is their cost.
import { measure } from "mitata"
import type { RunConfig } from "./report.js"

/** Process CPU time (user + system, all threads) in nanoseconds. */
const cpuNow = (): number => {
  const usage = process.cpuUsage()
  return (usage.user + usage.system) * 1000
}

export interface Timing {
  /** Median CPU time of one run, in nanoseconds. */
  readonly median: number
  readonly samples: number
}

// A run slower than this gets fewer samples: some competitors take seconds on some inputs.
const SLOW_MS = 250

export const time = async (config: RunConfig, run: () => unknown): Promise<Timing> => {
  const t0 = cpuNow()
  await run()
  const slow = (cpuNow() - t0) / 1e6 > SLOW_MS
  const warmup = config.quick || slow ? 0 : 3
  for (let i = 0; i < warmup; i++) await run()
  const samples = config.quick ? 3 : slow ? 5 : 10
  const stats = await measure(run, {
    now: cpuNow,
    min_samples: samples,
    max_samples: config.quick || slow ? samples : 100,
    // Nanoseconds of sampling after min_samples, so fast cases take more samples.
    min_cpu_time: config.quick || slow ? 0 : 1e9
  })
  return { median: stats.p50, samples: stats.samples.length }
}

/** MB/s (10^6 bytes per CPU second) from bytes and a time in nanoseconds. */
export const throughput = (bytes: number, nanos: number): number => (bytes / nanos) * 1e3
