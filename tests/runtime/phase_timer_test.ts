/**
 * The phase timeline of lib/runtime/phase_timer.ts: each new phase is noted
 * once, in order, with non-decreasing wall and CPU times; a stopped timer
 * notes nothing more; and the log line gives each phase's duration and CPU.
 *
 * @module
 */

import assert from "node:assert/strict";
import { cpuMs, formatTimeline, PhaseTimer } from "../../lib/runtime/phase_timer.ts";

Deno.test("phase timer: notes each new phase once, in order, with rising times", () => {
  const timer = new PhaseTimer(() => undefined, () => {});
  timer.update("join");
  timer.update("join");
  // Some CPU between the phases, so the CPU clock has something to count.
  let x = 0;
  for (let i = 0; i < 200_000; i++) x += Math.sqrt(i);
  assert.ok(x > 0);
  timer.update("confirm");
  timer.update("input");
  timer.stop();
  timer.update("done");
  const marks = timer.timeline;
  assert.deepEqual(marks.map((m) => m.phase), ["join", "confirm", "input"]);
  for (let i = 1; i < marks.length; i++) {
    assert.ok(marks[i]!.at >= marks[i - 1]!.at);
    assert.ok(marks[i]!.cpu >= marks[i - 1]!.cpu);
  }
  assert.ok(marks[2]!.cpu <= cpuMs());
});

Deno.test("phase timer: the timeline is a copy", () => {
  const timer = new PhaseTimer(() => undefined, () => {});
  timer.update("join");
  (timer.timeline as { phase: string; at: number; cpu: number }[]).push({
    phase: "forged",
    at: 0,
    cpu: 0,
  });
  assert.deepEqual(timer.timeline.map((m) => m.phase), ["join"]);
  timer.stop();
});

Deno.test("phase timer: the log line gives each phase's time and CPU up to the next", () => {
  const line = formatTimeline(
    [{ phase: "join", at: 10, cpu: 5 }, { phase: "confirm", at: 13.25, cpu: 7 }],
    { phase: "end", at: 20, cpu: 7.5 },
  );
  assert.equal(line, "join 3.3 ms (cpu 2.0), confirm 6.8 ms (cpu 0.5)");
  assert.equal(formatTimeline([], { phase: "end", at: 1, cpu: 1 }), "");
});

Deno.test("phase timer: deadlines still fire per phase", async () => {
  const fired: string[] = [];
  const timer = new PhaseTimer((phase) => phase === "join" ? 5 : undefined, (p) => fired.push(p));
  timer.update("join");
  await new Promise((resolve) => setTimeout(resolve, 30));
  timer.update("confirm");
  await new Promise((resolve) => setTimeout(resolve, 10));
  timer.stop();
  assert.deepEqual(fired, ["join"]);
});
