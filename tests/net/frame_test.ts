/**
 * The frame codec alone (lib/wire/frame.ts): u32 big-endian length, then
 * the payload; an incremental decoder whose limit can be raised; a length
 * over the limit in force refused as soon as its four bytes are in.
 *
 * Then a seeded fuzz of 120,000 random and mutated inputs, each cut into
 * random chunks and decoded with random limits (some raised mid-stream).
 * For every input:
 * - the decoder throws nothing but FrameError, and after one keeps throwing it;
 * - every payload is 1..limit bytes, and the payloads re-encoded are exactly
 *   the input bytes consumed (nothing dropped, reordered or invented);
 * - an error is justified: the header it stopped at announces 0 or more than
 *   a limit, or (at end of input) the rest is an incomplete frame;
 * - it never allocates past the limit: the decoder holds only bytes it was
 *   given, and its buffer never exceeds twice the most it held (at most one
 *   frame under the limit plus the chunk being pushed);
 * - without a raise, the result equals a whole-buffer reference decoder's,
 *   whatever the chunking, and whether or not the decoder is compacted
 *   after every push (every third input), which leaves it at most twice
 *   what it holds.
 *
 * Inputs come from mulberry32, a tiny seeded PRNG written here: the same
 * seed gives the same inputs, so a failure can be replayed exactly (the
 * product itself draws every random value from Web Crypto). Change SEED to
 * explore; a failure names the seed and the input's index.
 */
import assert from "node:assert/strict";
import {
  encodeFrame,
  encodeFrameHeader,
  FRAME_HEADER_BYTES,
  FRAME_LIMIT,
  FrameDecoder,
  FrameError,
  PRE_AUTH_FRAME_LIMIT,
} from "../../lib/wire/frame.ts";
import { Rng } from "../rng.ts";

const SEED = 0x5eed_0201;
const INPUTS = 120_000;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function isPrefix(prefix: Uint8Array, bytes: Uint8Array): boolean {
  if (prefix.length > bytes.length) return false;
  for (let i = 0; i < prefix.length; i++) if (prefix[i] !== bytes[i]) return false;
  return true;
}

function u32At(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getUint32(0);
}

/** Pushes `chunks` into `decoder`, taking every whole frame as soon as it is in. */
function drain(decoder: FrameDecoder, chunks: Uint8Array[]): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let f = decoder.next(); f; f = decoder.next()) frames.push(f);
  }
  decoder.end();
  return frames;
}

// ------------------------------------------------------------- the codec

Deno.test("a header is the payload length as u32 big-endian", () => {
  assert.deepEqual(encodeFrameHeader(1), new Uint8Array([0, 0, 0, 1]));
  assert.deepEqual(encodeFrameHeader(0x0102_0304, 0xffff_ffff), new Uint8Array([1, 2, 3, 4]));
  assert.deepEqual(encodeFrameHeader(FRAME_LIMIT), new Uint8Array([0, 0x10, 0, 0x40]));
  assert.deepEqual(encodeFrame(new Uint8Array([9, 8])), new Uint8Array([0, 0, 0, 2, 9, 8]));
  assert.equal(PRE_AUTH_FRAME_LIMIT, 16 * 1024);
  assert.equal(FRAME_LIMIT, 1024 * 1024 + 64);
});

Deno.test("the encoder refuses an empty payload and one over the limit", () => {
  assert.throws(() => encodeFrameHeader(0), FrameError);
  assert.throws(() => encodeFrameHeader(FRAME_LIMIT + 1), FrameError);
  assert.throws(() => encodeFrame(new Uint8Array(17), 16), {
    name: "FrameError",
    message: "Cannot send frame: a payload of 17 bytes exceeds the limit of 16 bytes",
  });
  assert.throws(() => encodeFrameHeader(-1), RangeError);
  assert.throws(() => encodeFrameHeader(1.5), RangeError);
  assert.throws(() => encodeFrameHeader(1, 0), RangeError);
  assert.throws(() => encodeFrameHeader(1, 2 ** 32), RangeError);
});

Deno.test("the decoder returns frames across every split point and many per chunk", () => {
  const payloads = [new Uint8Array([1]), new Uint8Array(300).fill(2), new Uint8Array([3, 3])];
  const stream = concat(payloads.map((p) => encodeFrame(p)));
  for (let cut = 0; cut <= stream.length; cut++) {
    const frames = drain(new FrameDecoder(), [stream.subarray(0, cut), stream.subarray(cut)]);
    assert.deepEqual(frames, payloads, `cut at ${cut}`);
  }
  // One byte at a time.
  const decoder = new FrameDecoder();
  const bytes = Array.from(stream, (b) => new Uint8Array([b]));
  assert.deepEqual(drain(decoder, bytes), payloads);
  assert.ok(decoder.atBoundary);
  assert.equal(decoder.buffered, 0);
  assert.ok(decoder.capacity <= 4096, "one-byte chunks cost bytes, not buffers");
});

Deno.test("payloads are the decoder's own: reusing a pushed buffer does not change them", () => {
  const decoder = new FrameDecoder();
  const chunk = encodeFrame(new Uint8Array([5, 6, 7]));
  decoder.push(chunk);
  chunk.fill(0);
  assert.deepEqual(decoder.next(), new Uint8Array([5, 6, 7]));
  assert.equal(decoder.next(), undefined);
});

Deno.test("a length over the limit is refused at the fourth header byte, before any payload", () => {
  for (const announced of [PRE_AUTH_FRAME_LIMIT + 1, FRAME_LIMIT, 0xffff_ffff]) {
    const decoder = new FrameDecoder();
    const header = encodeFrameHeader(announced, 0xffff_ffff);
    decoder.push(header.subarray(0, 3));
    assert.throws(() => decoder.push(header.subarray(3)), {
      name: "FrameError",
      message:
        `Cannot read frame: a payload of ${announced} bytes exceeds the limit of ${PRE_AUTH_FRAME_LIMIT} bytes`,
    });
    assert.equal(decoder.buffered, 0, "nothing kept");
    assert.ok(decoder.capacity <= 4096, "nothing allocated for it");
  }
  const empty = new FrameDecoder();
  assert.throws(() => empty.push(new Uint8Array(4)), {
    name: "FrameError",
    message: "Cannot read frame: the payload is empty",
  });
});

Deno.test("a header behind whole frames is checked when it reaches the front; those frames come first", () => {
  const decoder = new FrameDecoder({ limit: 100 });
  const good = encodeFrame(new Uint8Array([1, 2]));
  decoder.push(concat([good, encodeFrameHeader(101, 1000)]));
  assert.deepEqual(decoder.next(), new Uint8Array([1, 2]));
  assert.throws(() => decoder.next(), {
    name: "FrameError",
    message: "Cannot read frame: a payload of 101 bytes exceeds the limit of 100 bytes",
  });
});

Deno.test("after the first error the decoder stays failed with the same error", () => {
  const decoder = new FrameDecoder({ limit: 10 });
  let first: unknown;
  try {
    decoder.push(encodeFrameHeader(11, 100));
  } catch (error) {
    first = error;
  }
  assert.ok(first instanceof FrameError);
  for (
    const call of [
      () => decoder.push(new Uint8Array([1])),
      () => decoder.next(),
      () => decoder.end(),
    ]
  ) {
    assert.throws(call, (e) => e === first);
  }
});

Deno.test("the limit can be raised (after authentication), never lowered", () => {
  const decoder = new FrameDecoder();
  assert.equal(decoder.limit, PRE_AUTH_FRAME_LIMIT);
  decoder.push(encodeFrame(new Uint8Array(10)));
  assert.equal(decoder.next()?.length, 10);
  decoder.raiseLimit(FRAME_LIMIT);
  assert.equal(decoder.limit, FRAME_LIMIT);
  const big = new Uint8Array(FRAME_LIMIT).fill(1);
  decoder.push(encodeFrame(big));
  assert.equal(decoder.next()?.length, FRAME_LIMIT);
  assert.throws(() => decoder.raiseLimit(100), RangeError);
  assert.throws(() => new FrameDecoder({ limit: 0 }), RangeError);
  assert.throws(() => decoder.push(encodeFrameHeader(FRAME_LIMIT + 1, 2 ** 32 - 1)), FrameError);
});

Deno.test("a burst of frames held at once does not leave a big buffer behind once drained", () => {
  const decoder = new FrameDecoder({ limit: 1000 });
  const burst = concat(Array.from({ length: 64 }, () => encodeFrame(new Uint8Array(1000))));
  decoder.push(burst);
  assert.ok(decoder.capacity >= burst.length);
  while (decoder.next()) { /* drain */ }
  assert.ok(decoder.capacity <= 4096, `kept ${decoder.capacity} bytes after draining`);
  // One frame's worth is kept: a vector transfer reuses it for every chunk.
  const one = new FrameDecoder({ limit: 4000 });
  one.push(encodeFrame(new Uint8Array(3000)).subarray(0, 2000));
  one.push(encodeFrame(new Uint8Array(3000)).subarray(2000));
  const kept = one.capacity;
  one.next();
  assert.equal(one.capacity, kept);
});

Deno.test("compact gives back the room a chunk frame left, and frames decode across it", () => {
  const decoder = new FrameDecoder({ limit: FRAME_LIMIT });
  const chunk = new Uint8Array(524_293).map((_, i) => i * 7);
  const frame = encodeFrame(chunk);
  // As a socket delivers it: in pieces, so the buffer grows to fit the frame.
  for (let i = 0; i < frame.length; i += 16_384) decoder.push(frame.subarray(i, i + 16_384));
  assert.deepEqual(decoder.next(), chunk);
  assert.ok(decoder.capacity >= frame.length, `kept ${decoder.capacity} bytes for the next chunk`);
  decoder.compact();
  assert.equal(decoder.buffered, 0);
  assert.equal(decoder.capacity, 4096);
  decoder.compact();
  assert.equal(decoder.capacity, 4096);
  // Still decodes: a small frame, then a large one again (the buffer grows back).
  decoder.push(encodeFrame(new Uint8Array([1, 2, 3])));
  assert.deepEqual(decoder.next(), new Uint8Array([1, 2, 3]));
  decoder.push(frame);
  assert.deepEqual(decoder.next(), chunk);
  assert.equal(decoder.next(), undefined);
  decoder.end();
});

Deno.test("compact with bytes held keeps them and shrinks to fit them", () => {
  const decoder = new FrameDecoder({ limit: FRAME_LIMIT });
  const big = new Uint8Array(300_000).fill(9);
  const next = new Uint8Array(20_000).map((_, i) => i);
  const nextFrame = encodeFrame(next);
  decoder.push(concat([encodeFrame(big), nextFrame.subarray(0, 10_001)]));
  assert.deepEqual(decoder.next(), big);
  assert.equal(decoder.buffered, 10_001);
  assert.ok(decoder.capacity >= 300_000);
  decoder.compact();
  // The smallest of 4 KiB doubled that holds the 10,001 bytes: 16 KiB.
  assert.equal(decoder.capacity, 16_384);
  assert.equal(decoder.buffered, 10_001);
  assert.equal(decoder.next(), undefined);
  decoder.push(nextFrame.subarray(10_001));
  assert.deepEqual(decoder.next(), next);
  decoder.end();
  // A header announcing too much, held across a compact, is still refused.
  const bad = new FrameDecoder({ limit: 1000 });
  bad.push(new Uint8Array(2));
  bad.compact();
  assert.throws(() => bad.push(new Uint8Array([0x10, 0])), FrameError);
  bad.compact();
  assert.throws(() => bad.next(), FrameError);
});

Deno.test("end of input: clean between frames, an error inside one (a short read)", () => {
  const between = new FrameDecoder();
  between.push(encodeFrame(new Uint8Array([1])));
  between.next();
  between.end();
  const inHeader = new FrameDecoder();
  inHeader.push(new Uint8Array([0, 0]));
  assert.throws(() => inHeader.end(), {
    name: "FrameError",
    message: "Input ended inside a frame: 2 of 4 header bytes arrived",
  });
  const inPayload = new FrameDecoder();
  inPayload.push(encodeFrame(new Uint8Array(1000)).subarray(0, 14));
  assert.throws(() => inPayload.end(), {
    name: "FrameError",
    message: "Input ended inside a frame: 10 of 1000 payload bytes arrived",
  });
});

// ------------------------------------------------------------- the fuzz

/** A whole-buffer reference: frames under a fixed `limit`, and how it ends. */
function reference(
  bytes: Uint8Array,
  limit: number,
): { frames: Uint8Array[]; end: "clean" | "bad-header" | "truncated" } {
  const frames: Uint8Array[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < FRAME_HEADER_BYTES) return { frames, end: "truncated" };
    const length = u32At(bytes, offset);
    if (length === 0 || length > limit) return { frames, end: "bad-header" };
    if (bytes.length - offset - FRAME_HEADER_BYTES < length) return { frames, end: "truncated" };
    frames.push(bytes.slice(offset + FRAME_HEADER_BYTES, offset + FRAME_HEADER_BYTES + length));
    offset += FRAME_HEADER_BYTES + length;
  }
  return { frames, end: "clean" };
}

const LIMITS = [1, 16, 255, 1000, PRE_AUTH_FRAME_LIMIT, FRAME_LIMIT] as const;

function payloadLength(rng: Rng, limit: number): number {
  const r = rng.int(100);
  if (r < 60) return rng.range(1, Math.min(limit, 64));
  if (r < 85) return rng.range(1, Math.min(limit, 2000));
  if (r < 92) return Math.min(limit, rng.pick([limit, limit - 1, 1]));
  if (r < 97) return limit + 1; // over: must be refused
  return rng.range(1, Math.min(limit, 40_000));
}

/** Frames that would be valid under `limit`, then 0–3 mutations. */
function mutatedStream(rng: Rng, limit: number): Uint8Array {
  const parts: Uint8Array[] = [];
  const count = rng.range(1, 5);
  for (let i = 0; i < count; i++) {
    const n = Math.max(1, payloadLength(rng, limit));
    const payload = rng.blockBytes(n);
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, n);
    parts.push(header, payload);
  }
  const bytes = concat(parts);
  let out = bytes;
  for (let m = rng.int(4); m > 0; m--) {
    const kind = rng.int(6);
    if (out.length === 0) break;
    const at = rng.int(out.length);
    if (kind === 0) out[at] = out[at]! ^ (1 << rng.int(8));
    else if (kind === 1) out[at] = rng.u32() & 0xff;
    else if (kind === 2) out = out.slice(0, at);
    else if (kind === 3) {
      out = concat([out.subarray(0, at), rng.blockBytes(rng.range(1, 8)), out.subarray(at)]);
    } else if (kind === 4) out = concat([out.subarray(0, at), out.subarray(at + rng.range(1, 8))]);
    else {
      // A header-sized window set to a boundary length.
      const value = rng.pick([0, 1, limit, limit + 1, 0xffff_ffff, rng.u32()]);
      if (at + 4 <= out.length) {
        new DataView(out.buffer, out.byteOffset + at, 4).setUint32(0, value >>> 0);
      }
    }
  }
  return out;
}

function input(rng: Rng, limit: number): Uint8Array {
  const r = rng.int(10);
  if (r < 3) return rng.blockBytes(rng.int(65));
  if (r < 4) {
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(
      0,
      rng.pick([0, 1, limit, limit + 1, 2 ** 32 - 1, rng.u32()]) >>> 0,
    );
    return concat([header, rng.blockBytes(rng.int(16))]);
  }
  return mutatedStream(rng, limit);
}

function chunked(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  if (rng.chance(0.2)) return [bytes];
  // Long inputs in at most a few hundred chunks, so the run stays quick.
  const max = Math.max(rng.pick([1, 3, 16, 700, 20_000]), Math.ceil(bytes.length / 200));
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length;) {
    const n = rng.range(1, max);
    chunks.push(bytes.slice(i, i + n));
    i += n;
  }
  return chunks;
}

interface Outcome {
  frames: Uint8Array[];
  error: FrameError | undefined;
  /** Where it failed: "push", "next" or "end". */
  at: string;
  raisedAfter: number | undefined;
}

/** Decodes `chunks` as a connection would, checking the invariants at every step. */
function run(
  chunks: Uint8Array[],
  limit: number,
  raise: { after: number; to: number } | undefined,
  compact: boolean,
  fail: (why: string) => never,
): Outcome {
  const decoder = new FrameDecoder({ limit });
  const frames: Uint8Array[] = [];
  let pushed = 0;
  let consumed = 0;
  let maxChunk = 0;
  let raisedAfter: number | undefined;
  const step = (at: string, action: () => void): FrameError | undefined => {
    try {
      action();
      return undefined;
    } catch (error) {
      if (!(error instanceof FrameError)) fail(`threw ${error} at ${at}, not a FrameError`);
      // Sticky: the same error again, from every call.
      for (const call of [() => decoder.next(), () => decoder.push(new Uint8Array(1))]) {
        let again: unknown = "returned";
        try {
          call();
        } catch (e) {
          again = e;
        }
        if (again !== error) fail(`a failed decoder then gave ${again}, not the same error`);
      }
      return error;
    }
  };
  const take = () => {
    for (let f = decoder.next(); f; f = decoder.next()) {
      if (f.length < 1 || f.length > decoder.limit) {
        fail(`payload of ${f.length} bytes under limit ${decoder.limit}`);
      }
      frames.push(f);
      consumed += FRAME_HEADER_BYTES + f.length;
      if (raise && raisedAfter === undefined && frames.length === raise.after) {
        decoder.raiseLimit(raise.to);
        raisedAfter = frames.length;
      }
    }
  };
  for (const chunk of chunks) {
    maxChunk = Math.max(maxChunk, chunk.length);
    let error = step("push", () => decoder.push(chunk));
    if (error) return { frames, error, at: "push", raisedAfter };
    pushed += chunk.length;
    if (decoder.buffered !== pushed - consumed) fail("the decoder holds bytes it was not given");
    error = step("next", take);
    if (error) return { frames, error, at: "next", raisedAfter };
    // Drained after every push: it holds less than one frame under the limit in force.
    if (decoder.buffered >= FRAME_HEADER_BYTES + decoder.limit) {
      fail(`holds ${decoder.buffered} bytes with a whole frame taken out`);
    }
    const bound = Math.max(4096, 2 * (FRAME_HEADER_BYTES + decoder.limit + maxChunk));
    if (decoder.capacity > bound) fail(`buffer of ${decoder.capacity} bytes over ${bound}`);
    if (compact) {
      decoder.compact();
      if (decoder.buffered !== pushed - consumed) fail("compact changed the bytes held");
      const fit = Math.max(4096, 2 * decoder.buffered);
      if (decoder.capacity > fit) fail(`compacted to ${decoder.capacity} bytes, over ${fit}`);
    }
  }
  const error = step("end", () => decoder.end());
  return { frames, error, at: "end", raisedAfter };
}

Deno.test(`fuzz: ${INPUTS} seeded random and mutated inputs (seed 0x${SEED.toString(16)})`, () => {
  console.log(`frame fuzz seed 0x${SEED.toString(16)}, ${INPUTS} inputs`);
  const rng = new Rng(SEED);
  const seen = { frames: 0, badHeader: 0, truncated: 0, clean: 0, raised: 0 };
  for (let i = 0; i < INPUTS; i++) {
    // Mostly small limits (fast); the real ones too, rarely with megabyte frames.
    const limit = rng.chance(0.995) ? rng.pick(LIMITS.slice(0, 5)) : FRAME_LIMIT;
    const bytes = input(rng, limit);
    const chunks = chunked(rng, bytes);
    const raise = rng.chance(0.3)
      ? { after: rng.range(1, 3), to: Math.min(2 ** 32 - 1, limit * rng.pick([1, 2, 64])) }
      : undefined;
    const fail = (why: string): never => {
      throw new Error(
        `seed 0x${SEED.toString(16)} input ${i} (limit ${limit}, raise ${
          JSON.stringify(raise)
        }): ${why}`,
      );
    };
    // Every third input is compacted after every push: frames decode across it all the same.
    const out = run(chunks, limit, raise, i % 3 === 0, fail);
    if (out.raisedAfter !== undefined) seen.raised++;
    // Payloads re-encoded are exactly the input consumed.
    const consumed = concat(out.frames.map((f) => encodeFrame(f, 2 ** 32 - 1)));
    if (!isPrefix(consumed, bytes)) fail("the payloads are not the input's frames");
    const rest = bytes.subarray(consumed.length);
    seen.frames += out.frames.length;
    if (out.error) {
      // Justified: a bad header at the front of the rest, or (at end) an incomplete frame.
      const announced = rest.length >= 4 ? u32At(rest, 0) : undefined;
      const maxLimit = out.raisedAfter !== undefined ? raise!.to : limit;
      const badHeader = announced !== undefined && (announced === 0 || announced > limit);
      if (out.at === "end") {
        const incomplete = rest.length > 0 &&
          (announced === undefined || rest.length < FRAME_HEADER_BYTES + announced);
        if (!incomplete) fail(`end() threw with ${rest.length} bytes left: ${out.error.message}`);
        seen.truncated++;
      } else {
        if (!badHeader || announced === undefined) {
          return fail(`refused a header announcing ${announced}: ${out.error.message}`);
        }
        if (announced !== 0 && out.raisedAfter !== undefined && announced <= maxLimit) {
          // Refused under the pre-raise limit: only if it was at the front before the raise.
          if (out.frames.length !== out.raisedAfter) {
            fail("refused a length the raised limit allows");
          }
        }
        seen.badHeader++;
      }
    } else {
      if (rest.length !== 0) fail("ended cleanly with bytes left over");
      seen.clean++;
    }
    // Without a raise the result is chunking-independent: the reference's.
    if (raise === undefined) {
      const expected = reference(bytes, limit);
      if (expected.frames.length !== out.frames.length) {
        fail(`${out.frames.length} frames, the reference ${expected.frames.length}`);
      }
      const end = out.error ? (out.at === "end" ? "truncated" : "bad-header") : "clean";
      if (end !== expected.end) fail(`ended ${end}, the reference ${expected.end}`);
    }
  }
  console.log(
    `frames ${seen.frames}; inputs ending clean ${seen.clean}, bad header ${seen.badHeader}, ` +
      `truncated ${seen.truncated}; with a raise ${seen.raised}`,
  );
  // The generator reaches every outcome, often.
  for (const [what, n] of Object.entries(seen)) assert.ok(n > 1000, `${what}: ${n}`);
});
