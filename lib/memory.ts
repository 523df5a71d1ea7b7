/**
 * Peak resident memory of this process, for the benchmark. `/proc` needs more
 * than `--allow-read` under Deno, so the peak is sampled from
 * `Deno.memoryUsage()` every few milliseconds (and whenever asked), which can
 * miss a spike shorter than the interval.
 *
 * @module
 */

let peak = 0;
let timer: ReturnType<typeof setInterval> | undefined;

/** Takes one sample now and returns the peak so far, in bytes. */
export function samplePeakRss(): number {
  peak = Math.max(peak, Deno.memoryUsage().rss);
  return peak;
}

/** Starts sampling in the background (the timer does not keep the process alive). */
export function trackPeakRss(intervalMs = 5): void {
  samplePeakRss();
  if (timer !== undefined) return;
  const interval = setInterval(samplePeakRss, intervalMs);
  Deno.unrefTimer(interval);
  timer = interval;
}
