import assert from "node:assert/strict";
import { ProtocolError } from "../lib/errors.ts";
import {
  decodeFrameLength,
  decodeFrames,
  encodeFrame,
  FRAME_HEADER_BYTES,
  MAX_FRAME_BYTES,
} from "../lib/frame.ts";

Deno.test("a frame is a 4-byte big-endian length and the payload", () => {
  const frame = encodeFrame(new Uint8Array([7, 8, 9]));
  assert.deepEqual([...frame], [0, 0, 0, 3, 7, 8, 9]);
  assert.equal(decodeFrameLength(frame.subarray(0, FRAME_HEADER_BYTES)), 3);
});

Deno.test("frames round-trip, several in one buffer", () => {
  const payloads = [
    new Uint8Array([1]),
    new Uint8Array(1000).fill(2),
    new Uint8Array(MAX_FRAME_BYTES).fill(3),
  ];
  const joined = new Uint8Array(payloads.reduce((n, p) => n + p.length + 4, 0));
  let offset = 0;
  for (const p of payloads) {
    const f = encodeFrame(p);
    joined.set(f, offset);
    offset += f.length;
  }
  assert.deepEqual(decodeFrames(joined), payloads);
});

Deno.test("oversized and empty lengths are refused from the header alone", () => {
  for (const length of [0, MAX_FRAME_BYTES + 1, 0xffff_ffff]) {
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, length);
    assert.throws(() => decodeFrameLength(header), ProtocolError);
  }
  assert.throws(() => encodeFrame(new Uint8Array(MAX_FRAME_BYTES + 1)), ProtocolError);
  assert.throws(() => encodeFrame(new Uint8Array(0)), ProtocolError);
  assert.throws(() => decodeFrameLength(new Uint8Array(3)), ProtocolError);
});

Deno.test("truncated frames are errors, not partial results", () => {
  const frame = encodeFrame(new Uint8Array([1, 2, 3, 4]));
  for (let cut = 1; cut < frame.length; cut++) {
    assert.throws(() => decodeFrames(frame.subarray(0, cut)), ProtocolError, `cut at ${cut}`);
  }
});
