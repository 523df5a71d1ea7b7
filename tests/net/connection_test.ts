/**
 * The framed connection over an in-memory link (lib/net/connection.ts takes
 * its socket as an injected Link): how the bytes are split into reads must
 * not change which error a party sees. A first frame announcing more than
 * the pre-authentication limit is that error even when its header arrives in
 * one read together with more bytes than the unread cap (which a loaded
 * machine's socket can deliver), not "more than one frame". And `compact`
 * gives back the read buffer a run of chunk frames left, without losing a
 * byte of what is unread.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Connection, type Link, type LinkSink } from "../../lib/net/connection.ts";
import { TransportError } from "../../lib/net/errors.ts";
import { FRAME_HEADER_BYTES, FrameError, PRE_AUTH_FRAME_LIMIT } from "../../lib/wire/frame.ts";

/** A link whose input the test hands over in chunks of its choosing. */
class MemoryLink implements Link {
  sink: LinkSink | undefined;
  closed = false;
  start(sink: LinkSink): void {
    this.sink = sink;
  }
  pause(): void {}
  resume(): void {}
  write(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {
    this.closed = true;
  }
}

function frame(announced: number, bytes: number): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + bytes).fill(7);
  new DataView(out.buffer).setUint32(0, announced);
  return out;
}

async function firstError(chunks: Uint8Array[]): Promise<unknown> {
  const link = new MemoryLink();
  const conn = new Connection(link, { remote: "127.0.0.1:1", peer: "carol" });
  for (const chunk of chunks) link.sink!.data(chunk);
  const error = await conn.readFrame(AbortSignal.timeout(5_000)).then(() => undefined, (e) => e);
  assert.ok(link.closed, "the connection closed its link");
  return error;
}

Deno.test("an oversized first frame is refused at its header however the bytes are split", async () => {
  const announced = PRE_AUTH_FRAME_LIMIT + 1;
  const whole = frame(announced, 2 * PRE_AUTH_FRAME_LIMIT); // header + more than the unread cap
  for (
    const chunks of [[whole], [whole.subarray(0, 2), whole.subarray(2)], [whole.subarray(0, 4)]]
  ) {
    const error = await firstError(chunks);
    assert.ok(error instanceof FrameError, `${chunks.map((c) => c.length)}: ${error}`);
    assert.match(error.message, new RegExp(`a payload of ${announced} bytes exceeds the limit`));
  }
});

Deno.test("two frames within the limit before the first is accepted are an overrun, in one read or two", async () => {
  const one = frame(10_000, 10_000);
  const both = new Uint8Array([...one, ...one]);
  for (const chunks of [[both], [one, one]]) {
    const error = await firstError(chunks);
    assert.ok(error instanceof TransportError, String(error));
    assert.equal(error.reason, "overrun");
  }
});

Deno.test("compact lets go of the room a run of chunk frames kept, and reading goes on", async () => {
  const link = new MemoryLink();
  const conn = new Connection(link, { remote: "127.0.0.1:1", peer: "carol" });
  const signal = AbortSignal.timeout(5_000);
  const deliver = (bytes: Uint8Array) => {
    // As a socket delivers it: TLS records of 16 KiB.
    for (let i = 0; i < bytes.length; i += 16_384) link.sink!.data(bytes.subarray(i, i + 16_384));
  };
  deliver(frame(100, 100));
  assert.equal((await conn.readFrame(signal)).length, 100);
  conn.raiseLimit();
  const chunk = frame(524_293, 524_293);
  for (let k = 0; k < 3; k++) {
    deliver(chunk);
    assert.deepEqual(await conn.readFrame(signal), chunk.subarray(FRAME_HEADER_BYTES));
    // Kept between the chunks of one transfer: it is reused for the next.
    assert.ok(conn.capacity >= chunk.length, `${conn.capacity} bytes after chunk ${k}`);
  }
  conn.compact();
  assert.equal(conn.capacity, 4096);
  assert.equal(conn.buffered, 0);
  deliver(frame(2_000, 2_000));
  deliver(chunk);
  assert.equal((await conn.readFrame(signal)).length, 2_000);
  assert.deepEqual(await conn.readFrame(signal), chunk.subarray(FRAME_HEADER_BYTES));
  assert.equal(conn.closed, false);
  conn.close();
});
