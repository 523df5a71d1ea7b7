/**
 * The agent's heartbeat watchdog (lib/agent/liveness.ts, docs/protocol.md
 * §16.2) on a hand-driven clock, and the `idle` frame's one spelling
 * (lib/wire/messages.ts): review 3, F3.
 */

import assert from "node:assert/strict";
import {
  ConnectionSilentError,
  IDLE_INTERVAL_MS,
  Liveness,
  type LivenessClock,
} from "../../lib/agent/liveness.ts";
import { ProtocolError } from "../../lib/errors.ts";
import {
  decodePayload,
  encodeIdle,
  encodeMessage,
  isIdle,
  KIND_MESSAGE,
} from "../../lib/wire/messages.ts";

/** A clock the test moves by hand; timers fire in order as it passes them. */
class ManualClock implements LivenessClock {
  #now = 0;
  #next = 1;
  #timers = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#next++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(id: unknown): void {
    this.#timers.delete(id as number);
  }

  get pending(): number {
    return this.#timers.size;
  }

  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let first: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= end && (!first || entry[1].at < first[1].at)) first = entry;
      }
      if (!first) break;
      this.#timers.delete(first[0]);
      this.#now = first[1].at;
      first[1].callback();
    }
    this.#now = end;
  }
}

const IDLE = encodeIdle();
const DESCRIBE = encodeMessage({
  type: "describe",
  session: "0123456789abcdef0123456789abcdef",
  variable: "chol",
});

function setup(options: { busy?: () => boolean; intervalMs?: number } = {}) {
  const clock = new ManualClock();
  const stop = new AbortController();
  const lines: string[] = [];
  const liveness = new Liveness(stop, { ...options, clock, log: (line) => lines.push(line) });
  return { clock, stop, lines, liveness };
}

Deno.test("idle: one spelling, outside the message union, no existing message changed", () => {
  const text = new TextDecoder().decode(IDLE.subarray(1));
  assert.equal(IDLE[0], KIND_MESSAGE);
  assert.equal(text, '{"v":2,"type":"idle"}');
  assert.ok(isIdle(IDLE));
  // A copy each time: a caller that scribbles on one cannot change the next.
  IDLE.fill(0, 0, 1);
  assert.ok(isIdle(encodeIdle()));
  const other = new TextEncoder().encode('\x01{"type":"idle","v":2}');
  assert.ok(!isIdle(other));
  assert.ok(!isIdle(DESCRIBE));
  // Only the watchdog knows it: the message decoder still refuses it, as before.
  assert.throws(() => decodePayload(encodeIdle()), ProtocolError);
  assert.throws(() => decodePayload(other), ProtocolError);
});

Deno.test("liveness: not armed before an idle frame, so a one-shot hospital is never timed", () => {
  const { clock, stop, liveness } = setup();
  assert.equal(liveness.heard(DESCRIBE), false);
  clock.advance(10 * IDLE_INTERVAL_MS);
  assert.equal(stop.signal.aborted, false);
  assert.equal(liveness.armed, false);
});

Deno.test("liveness: fires after 3·H of silence once armed, and not before", () => {
  const { clock, stop, lines, liveness } = setup();
  assert.equal(liveness.heard(encodeIdle()), true);
  assert.equal(liveness.limitMs, 3 * IDLE_INTERVAL_MS);
  clock.advance(3 * IDLE_INTERVAL_MS - 1);
  assert.equal(stop.signal.aborted, false);
  clock.advance(1);
  assert.ok(stop.signal.aborted);
  assert.ok(stop.signal.reason instanceof ConnectionSilentError);
  assert.equal(stop.signal.reason.name, "ConnectionSilentError");
  assert.match(lines.join("\n"), /no word from the hospital in 45 s/);
  assert.equal(clock.pending, 0);
});

Deno.test("liveness: every frame feeds it, idle or not", () => {
  const { clock, stop, liveness } = setup();
  liveness.heard(encodeIdle());
  for (let i = 0; i < 10; i++) {
    clock.advance(IDLE_INTERVAL_MS * 2.5);
    assert.equal(liveness.heard(DESCRIBE), false);
  }
  assert.equal(stop.signal.aborted, false);
  clock.advance(IDLE_INTERVAL_MS * 3);
  assert.ok(stop.signal.aborted);
});

Deno.test("liveness: H is the longest gap between two idle frames with nothing between, at most 15 s", () => {
  const { clock, stop, liveness } = setup();
  liveness.heard(encodeIdle());
  clock.advance(200);
  liveness.heard(encodeIdle());
  assert.equal(liveness.limitMs, 600);
  // A beat delayed on the way makes the next gap short: that does not narrow it.
  clock.advance(30);
  liveness.heard(encodeIdle());
  assert.equal(liveness.limitMs, 600);
  // Other frames between two beats: that gap is not a beat.
  clock.advance(100);
  liveness.heard(DESCRIBE);
  clock.advance(400);
  liveness.heard(encodeIdle());
  assert.equal(liveness.limitMs, 600);
  clock.advance(599);
  assert.equal(stop.signal.aborted, false);
  clock.advance(1);
  assert.ok(stop.signal.aborted);

  const slow = setup();
  slow.liveness.heard(encodeIdle());
  slow.clock.advance(60_000);
  slow.liveness.heard(encodeIdle());
  assert.equal(slow.liveness.limitMs, 3 * IDLE_INTERVAL_MS);
});

Deno.test("liveness: silence inside a round is not counted; the count restarts after it", () => {
  let busy = true;
  const { clock, stop, liveness } = setup({ busy: () => busy, intervalMs: 100 });
  liveness.heard(encodeIdle());
  clock.advance(10_000);
  assert.equal(stop.signal.aborted, false);
  busy = false;
  // The last check saw the round; the full limit runs from then.
  clock.advance(300);
  assert.ok(stop.signal.aborted);
});

Deno.test("liveness: closed (or disposed) it never fires", () => {
  const { clock, stop, liveness } = setup();
  liveness.heard(encodeIdle());
  liveness.close();
  assert.equal(clock.pending, 0);
  assert.equal(liveness.heard(encodeIdle()), true);
  clock.advance(10 * IDLE_INTERVAL_MS);
  assert.equal(stop.signal.aborted, false);

  const other = setup();
  {
    using watch = other.liveness;
    watch.heard(encodeIdle());
  }
  other.clock.advance(10 * IDLE_INTERVAL_MS);
  assert.equal(other.stop.signal.aborted, false);
});

Deno.test("liveness: real timers end a silent connection", async () => {
  const stop = new AbortController();
  using liveness = new Liveness(stop, { intervalMs: 20 });
  liveness.heard(encodeIdle());
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error("the watchdog did not fire")), 5_000);
    stop.signal.addEventListener("abort", () => {
      clearTimeout(guard);
      resolve();
    }, { once: true });
  });
  assert.ok(performance.now() - started >= 55, "fired before 3·H");
  assert.ok(stop.signal.reason instanceof ConnectionSilentError);
});
