// The timing harness of the in-process sections: mitata's sampler, after a
// warm-up of our own (mitata skips its warm-up for functions slower than 0.5 ms).
//
// The clock is this process's CPU time, not the wall clock: on a shared
// machine other processes preempt ours, and wall time then measures them too.
// These runs never wait for I/O, so their CPU time is their cost.
import { measure } from "mitata"
import { median, type RunConfig } from "./report.js"

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

/**
 * Times several runs that are compared with each other: after a warm-up of
 * each, `ROUNDS` rounds sample each run in turn (about 0.2 s of CPU, or one
 * run when a run is slow), and each run's median is the median of its rounds'
 * medians. A burst of load on the machine then lands in one round of every
 * run instead of in all the samples of one (sampled one after the other, a
 * competitor once came out 1.6× faster on CRLF than on LF input).
 */
export const timeEach = async (config: RunConfig, runs: ReadonlyArray<() => unknown>): Promise<Array<Timing>> => {
  const slow: Array<boolean> = []
  for (const run of runs) {
    const t0 = cpuNow()
    await run()
    slow.push((cpuNow() - t0) / 1e6 > SLOW_MS)
  }
  if (!config.quick) for (const [i, run] of runs.entries()) if (!slow[i]) for (let k = 0; k < 3; k++) await run()
  const rounds = config.quick ? 1 : ROUNDS
  const medians: Array<Array<number>> = runs.map(() => [])
  const counts = runs.map(() => 0)
  for (let round = 0; round < rounds; round++) {
    for (const [i, run] of runs.entries()) {
      const few = config.quick || slow[i]!
      const stats = await measure(run, {
        now: cpuNow,
        min_samples: few ? 1 : 5,
        max_samples: few ? 1 : 100,
        min_cpu_time: few ? 0 : 2e8
      })
      medians[i]!.push(stats.p50)
      counts[i]! += stats.samples.length
    }
  }
  return medians.map((m, i) => ({ median: median(m), samples: counts[i]! }))
}

const ROUNDS = 5

/** MB/s (10^6 bytes per CPU second) from bytes and a time in nanoseconds. */
export const throughput = (bytes: number, nanos: number): number => (bytes / nanos) * 1e3
