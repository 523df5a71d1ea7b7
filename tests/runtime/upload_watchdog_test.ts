/**
 * The hospital's watchdog over admitted uploads (lib/runtime/upload_watchdog.ts),
 * on real timers with an injected byte count: a peer that has sent INPUT and
 * been sent PROCEED (either first) and then moves fewer than
 * MIN_PROGRESS_BYTES in a window is reported once; a peer still computing
 * (PROCEED but no INPUT) is not timed; bytes, not frames, keep it alive;
 * completion and `stop` end the watch.
 *
 * @module
 */

import assert from "node:assert/strict";
import { MIN_PROGRESS_BYTES, stallMs, UploadWatchdog } from "../../lib/runtime/upload_watchdog.ts";

/** A watchdog over fake byte counts, and its first reported stall (or a failure after 10 s). */
function watched(windowMs: number) {
  const bytes = new Map<string, number>();
  const { promise, resolve, reject } = Promise.withResolvers<{ name: string; at: number }>();
  const safety = setTimeout(() => reject(new Error("no stall within 10 s")), 10_000);
  const dog = new UploadWatchdog({
    stallMs: windowMs,
    received: (name) => bytes.get(name) ?? 0,
    onStall: (name) => resolve({ name, at: performance.now() }),
  });
  return {
    dog,
    bytes,
    stalled: promise,
    dispose() {
      dog.stop();
      clearTimeout(safety);
    },
  };
}

Deno.test("upload watchdog: an admitted peer that sends nothing is reported after the window", async () => {
  const w = watched(30);
  try {
    // PROCEED first (every upload fits): no clock until INPUT.
    w.dog.proceedSent("alice");
    assert.equal(w.dog.watching, 0, "a peer still computing its masked input is not timed");
    const since = performance.now();
    w.dog.inputReceived("alice");
    assert.equal(w.dog.watching, 1);
    const { name, at } = await w.stalled;
    assert.equal(name, "alice");
    assert.ok(at - since >= 29, `reported after ${at - since} ms`);
  } finally {
    w.dispose();
  }
});

Deno.test("upload watchdog: enough bytes in a window keep an upload alive; too few do not", async () => {
  // Each look at bob's count finds MIN_PROGRESS_BYTES more, three times,
  // then a trickle one byte short: the first two checks must re-arm, the
  // third report. No timing between the test and the timers is involved.
  let looks = 0;
  const count = () => {
    looks++;
    return looks <= 3 ? looks * MIN_PROGRESS_BYTES : 4 * MIN_PROGRESS_BYTES - 1;
  };
  const { promise, resolve } = Promise.withResolvers<number>();
  const dog = new UploadWatchdog({
    stallMs: 40,
    received: count,
    onStall: () => resolve(performance.now()),
  });
  const safety = setTimeout(() => resolve(NaN), 10_000);
  try {
    const since = performance.now();
    dog.inputReceived("bob");
    dog.proceedSent("bob");
    const at = await promise;
    assert.equal(looks, 4, "armed once, then checked three times");
    assert.ok(at - since >= 3 * 40 - 1, `reported after ${at - since} ms, before three windows`);
  } finally {
    dog.stop();
    clearTimeout(safety);
  }
});

Deno.test("upload watchdog: completion and stop end the watch; nothing is timed once stopped", () => {
  const w = watched(60_000);
  try {
    for (const name of ["alice", "bob", "carol"]) {
      w.dog.inputReceived(name);
      w.dog.proceedSent(name);
    }
    w.dog.proceedSent("alice");
    assert.equal(w.dog.watching, 3, "admitted twice is watched once");
    w.dog.complete("alice");
    assert.equal(w.dog.watching, 2);
    w.dog.stop();
    w.dog.stop();
    assert.equal(w.dog.watching, 0);
    w.dog.inputReceived("dave");
    w.dog.proceedSent("dave");
    assert.equal(w.dog.watching, 0, "nothing is watched once stopped");
  } finally {
    w.dispose();
  }
});

Deno.test("upload watchdog: the window is 10 s, or the input deadline if shorter", () => {
  assert.equal(stallMs(30_000), 10_000);
  assert.equal(stallMs(4_000), 4_000);
});
