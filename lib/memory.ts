/**
 * Peak resident memory of this process, for the benchmark and `--json`
 * reports, sampled from `Deno.memoryUsage()`.
 *
 * Why sampled where the work happens, not on a timer: an interval wakes the
 * event loop, and each wake-up costs 0.1–0.2 ms of CPU; the 5 ms sampler this
 * replaced spent 35 ms a second in every process, which with 50 benchmark
 * peers on 2 cores was most of a core spent measuring. Memory only grows
 * while a process handles frames, so the runtimes call
 * {@linkcode notePeakRss} for each frame in and each chunk out, and it
 * samples at most once a millisecond. Why not the kernel's own high-water
 * mark (`getrusage`): a child spawned by Deno inherits its parent's, so a
 * benchmark's peers would report the benchmark's memory. And `/proc` needs
 * `--allow-all` under Deno.
 *
 * @module
 */

let peak = 0;
let tracking = false;
let lastSample = -Infinity;

/** Takes one sample now and returns the peak so far, in bytes. */
export function samplePeakRss(): number {
  peak = Math.max(peak, Deno.memoryUsage().rss);
  lastSample = performance.now();
  return peak;
}

/** From now on, {@linkcode notePeakRss} samples; until then it costs nothing. */
export function trackPeakRss(): void {
  tracking = true;
  samplePeakRss();
}

/** Samples if tracking and the last sample is at least a millisecond old. */
export function notePeakRss(): void {
  if (tracking && performance.now() - lastSample >= 1) samplePeakRss();
}
