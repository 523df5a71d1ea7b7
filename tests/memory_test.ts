import assert from "node:assert/strict";
import { notePeakRss, samplePeakRss, trackPeakRss } from "../lib/memory.ts";

Deno.test("peak memory: the peak covers what is resident and never goes down", async () => {
  trackPeakRss();
  const before = samplePeakRss();
  assert.ok(before > 0);
  // 64 MiB touched: resident at once, well above any sampling noise.
  const block = new Uint8Array(64 * 2 ** 20).fill(1);
  await new Promise((resolve) => setTimeout(resolve, 2));
  notePeakRss();
  const resident = Deno.memoryUsage().rss;
  const peak = samplePeakRss();
  assert.ok(peak >= resident, `peak ${peak} below the resident ${resident}`);
  assert.ok(peak >= before + 32 * 2 ** 20, "the block did not show in the peak");
  assert.equal(block[block.length - 1], 1);
  assert.ok(samplePeakRss() >= peak);
});
