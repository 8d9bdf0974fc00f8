// The timing harness of the in-process sections: mitata's sampler, after a
// warm-up of our own (mitata skips its warm-up for functions slower than 0.5 ms).
import { measure } from "mitata"
import type { RunConfig } from "./report.js"

export interface Timing {
  /** Median time of one run, in nanoseconds. */
  readonly median: number
  readonly samples: number
}

// A run slower than this gets fewer samples: some competitors take seconds on some inputs.
const SLOW_MS = 250

export const time = async (config: RunConfig, run: () => unknown): Promise<Timing> => {
  const t0 = performance.now()
  await run()
  const slow = performance.now() - t0 > SLOW_MS
  const warmup = config.quick || slow ? 0 : 3
  for (let i = 0; i < warmup; i++) await run()
  const samples = config.quick ? 3 : slow ? 5 : 10
  const stats = await measure(run, {
    min_samples: samples,
    max_samples: config.quick || slow ? samples : 100,
    // Nanoseconds of sampling after min_samples, so fast cases take more samples.
    min_cpu_time: config.quick || slow ? 0 : 1e9
  })
  return { median: stats.p50, samples: stats.samples.length }
}

/** MB/s (10^6 bytes per second) from bytes and a time in nanoseconds. */
export const throughput = (bytes: number, nanos: number): number => (bytes / nanos) * 1e3
