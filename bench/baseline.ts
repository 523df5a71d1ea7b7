/**
 * The runtime's own memory baseline for the benchmark: Deno with sumshare's
 * modules loaded and nothing else, reporting its peak resident memory.
 */
import "../lib/cli.ts";
import { samplePeakRss } from "../lib/memory.ts";

console.log(JSON.stringify({ peakRssBytes: samplePeakRss() }));
