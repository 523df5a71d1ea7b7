/**
 * Connection.writeLazily: a payload is made only when its frame's turn in
 * the write queue comes, so a run of large frames (a masked vector's
 * chunks) never waits in the queue all at once, and the frames leave in
 * order, whole, framed as Connection.write frames them.
 */

import assert from "node:assert/strict";
import { Connection, type Link, type LinkSink } from "../../lib/net/connection.ts";
import { FRAME_HEADER_BYTES, FRAME_LIMIT, FrameDecoder, FrameError } from "../../lib/wire/frame.ts";

/** A link whose writes complete only when the test releases them. */
class SlowLink implements Link {
  written: Uint8Array[] = [];
  #waiting: (() => void)[] = [];
  start(_sink: LinkSink): void {}
  pause(): void {}
  resume(): void {}
  write(header: Uint8Array, payload: Uint8Array): Promise<void> {
    this.written.push(header.slice(), payload.slice());
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
  /** Completes the oldest pending write. */
  release(): void {
    this.#waiting.shift()?.();
  }
  get pending(): number {
    return this.#waiting.length;
  }
  close(): void {}
}

function connection(link: Link): Connection {
  return new Connection(link, { remote: "127.0.0.1:1", peer: "the hospital" });
}

/** Lets queued promise callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

Deno.test("writeLazily makes each payload only after the previous frame was handed on", async () => {
  const link = new SlowLink();
  const conn = connection(link);
  const signal = new AbortController().signal;
  const made: number[] = [];
  const writes = [0, 1, 2, 3].map((k) =>
    conn.writeLazily(() => {
      made.push(k);
      return new Uint8Array(1000 + k).fill(k + 1);
    }, signal)
  );
  await settle();
  // One payload exists while the first write is in flight, not four.
  assert.deepStrictEqual(made, [0]);
  assert.deepStrictEqual(link.pending, 1);
  for (let k = 1; k < 4; k++) {
    link.release();
    await settle();
    assert.deepStrictEqual(made, [0, 1, 2, 3].slice(0, k + 1));
  }
  link.release();
  await Promise.all(writes);
  // The bytes on the wire are four whole frames, in order.
  const decoder = new FrameDecoder({ limit: FRAME_LIMIT });
  for (const part of link.written) decoder.push(part);
  for (let k = 0; k < 4; k++) {
    const payload = decoder.next();
    assert.ok(payload !== undefined);
    assert.deepStrictEqual(payload, new Uint8Array(1000 + k).fill(k + 1));
  }
  assert.deepStrictEqual(decoder.next(), undefined);
  assert.deepStrictEqual(conn.stats.framesOut, 4);
  assert.deepStrictEqual(conn.stats.bytesOut, 4 * FRAME_HEADER_BYTES + 1000 + 1001 + 1002 + 1003);
  conn.close();
});

Deno.test("writeLazily keeps its place behind plain writes", async () => {
  const link = new SlowLink();
  const conn = connection(link);
  const signal = new AbortController().signal;
  let made = false;
  const first = conn.write(new Uint8Array(10).fill(9), signal);
  const second = conn.writeLazily(() => {
    made = true;
    return new Uint8Array(20).fill(8);
  }, signal);
  await settle();
  assert.deepStrictEqual(made, false);
  link.release();
  await first;
  await settle();
  assert.deepStrictEqual(made, true);
  link.release();
  await second;
  assert.deepStrictEqual(link.written[1]!.length, 10);
  assert.deepStrictEqual(link.written[3]!.length, 20);
  conn.close();
});

Deno.test("writeLazily never makes a payload whose write was aborted before its turn", async () => {
  const link = new SlowLink();
  const conn = connection(link);
  const keep = new AbortController();
  const stop = new AbortController();
  const first = conn.write(new Uint8Array(10), keep.signal);
  let made = false;
  const second = conn.writeLazily(() => {
    made = true;
    return new Uint8Array(10);
  }, stop.signal);
  stop.abort(new Error("stopped"));
  await assert.rejects(second, /stopped/);
  link.release();
  await first;
  await settle();
  assert.deepStrictEqual(made, false);
  assert.deepStrictEqual(link.written.length, 2); // the first frame's header and payload only
  conn.close();
});

Deno.test("an encoder's error rejects that write and leaves the connection usable", async () => {
  const link = new SlowLink();
  const conn = connection(link);
  const signal = new AbortController().signal;
  const failing = conn.writeLazily(() => new Uint8Array(FRAME_LIMIT + 1), signal);
  await assert.rejects(failing, FrameError);
  const next = conn.writeLazily(() => new Uint8Array(5).fill(1), signal);
  await settle();
  link.release();
  await next;
  assert.deepStrictEqual(conn.closed, false);
  assert.deepStrictEqual(conn.stats.framesOut, 1);
  conn.close();
});
