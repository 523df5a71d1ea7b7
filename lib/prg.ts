/**
 * A pseudorandom generator of field elements: AES-256-CTR (Web Crypto) keyed
 * by a 32-byte seed, its keystream read 8 bytes at a time and turned into
 * elements of GF(p) by rejection sampling. Both ends of a pair expand the
 * same seed to the same vector, so a seed can stand in for a whole share.
 *
 * Elements modulo another of the residue moduli (p2, p3; see field.ts) come
 * from the same stream by the same rule with that modulus: each read names
 * its modulus, and a candidate at or above it is skipped. The stream is one
 * sequence of candidates whatever the moduli, so a vector of several
 * segments is drawn segment by segment, in vector order, from one stream.
 *
 * @module
 */

import { candidate, MODULI, P } from "./field.ts";
import { releaseGarbage } from "./garbage.ts";

/** Bytes in a seed (an AES-256 key). */
export const SEED_BYTES = 32;

/** The most keystream generated per Web Crypto call: 32 768 candidates. */
const KEYSTREAM_BYTES = 256 * 1024;
/** AES-CTR of zeros is the keystream; one shared input buffer, never written. */
const ZEROS = new Uint8Array(KEYSTREAM_BYTES);
/** Spare candidates per refill, so a rare rejection seldom costs a second call. */
const SPARE_BYTES = 64;

/** A fresh random seed from Web Crypto. */
export function randomSeed(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(SEED_BYTES));
}

/**
 * Where a stream's candidates come from: each call returns the next stretch
 * of keystream, continuing the last, of about `bytes` bytes (fewer is fine)
 * as a non-empty whole number of 8-byte candidates. A seed's source is
 * AES-256-CTR; tests inject one to feed candidates that must be rejected.
 */
export type KeystreamSource = (bytes: number) => Promise<ArrayBuffer>;

/** The field elements a seed expands to, read in order. */
export class FieldStream {
  #source: KeystreamSource;
  #words = new Uint32Array(0);
  #next = 0;

  private constructor(source: KeystreamSource) {
    this.#source = source;
  }

  /** A stream for `seed`. */
  static async fromSeed(seed: Uint8Array): Promise<FieldStream> {
    if (seed.length !== SEED_BYTES) throw new RangeError(`A seed is ${SEED_BYTES} bytes`);
    const key = await crypto.subtle.importKey(
      "raw",
      seed as Uint8Array<ArrayBuffer>,
      "AES-CTR",
      false,
      ["encrypt"],
    );
    return new FieldStream(aesKeystream(key));
  }

  /** A stream from a fresh random seed: fast randomness for one process. */
  static async random(): Promise<FieldStream> {
    return await FieldStream.fromSeed(randomSeed());
  }

  /**
   * A stream over any keystream, read by the same candidate rule as a seed's.
   * For tests: a seed's stream comes from {@link FieldStream.fromSeed}.
   */
  static fromKeystream(source: KeystreamSource): FieldStream {
    return new FieldStream(source);
  }

  /**
   * Fills `out` with the stream's next elements modulo `modulus` (default p):
   * each next 52-bit candidate below the modulus, in order.
   */
  async fill(out: Float64Array, modulus: number = P): Promise<void> {
    if (!MODULI.includes(modulus)) {
      throw new RangeError("A stream draws elements modulo one of the field's moduli only");
    }
    let filled = 0;
    while (filled < out.length) {
      if (this.#next >= this.#words.length) await this.#refill(out.length - filled);
      filled = this.#fillStretch(out, filled, modulus);
    }
  }

  /**
   * acc[i] = (acc[i] + sign · e_i) mod `modulus` for the stream's next
   * acc.length elements e_i, in place: {@linkcode fill} and field.ts
   * addInto/subInto in one pass, with no buffer for the mask. Same elements,
   * same rule: a candidate at or above the modulus is skipped. `acc` holds
   * elements in [0, modulus), so a sum stays below 2^53 and one conditional
   * subtraction (or addition) reduces it exactly.
   */
  async addInto(acc: Float64Array, sign: 1 | -1, modulus: number = P): Promise<void> {
    if (!MODULI.includes(modulus)) {
      throw new RangeError("A stream draws elements modulo one of the field's moduli only");
    }
    let filled = 0;
    while (filled < acc.length) {
      if (this.#next >= this.#words.length) await this.#refill(acc.length - filled);
      filled = sign === 1
        ? this.#addStretch(acc, filled, modulus)
        : this.#subtractStretch(acc, filled, modulus);
    }
  }

  /** The next `count` elements modulo `modulus` (default p) as a new vector. */
  async take(count: number, modulus: number = P): Promise<Float64Array> {
    const out = new Float64Array(count);
    await this.fill(out, modulus);
    return out;
  }

  // The loops over a stretch are synchronous methods, not the async callers'
  // own loops: V8 ran them about twice as fast that way (measured here, 2^20
  // elements: 2.2 ms against 4.9 ms). Each goes on from `from` until `out`
  // is full or the stretch is used up, and returns where `out` stands.

  /** out[from…] = the stretch's next elements; returns the new fill level. */
  #fillStretch(out: Float64Array, from: number, m: number): number {
    const words = this.#words;
    const end = words.length;
    const n = out.length;
    let i = this.#next;
    let j = from;
    while (j < n && i < end) {
      const x = candidate(words[i]!, words[i + 1]!);
      i += 2;
      if (x < m) out[j++] = x; // rejection: keeps every element equally likely
    }
    this.#next = i;
    return j;
  }

  /** acc[from…] += the stretch's next elements, mod m; returns the new fill level. */
  #addStretch(acc: Float64Array, from: number, m: number): number {
    const words = this.#words;
    const end = words.length;
    const n = acc.length;
    let i = this.#next;
    let j = from;
    while (j < n && i < end) {
      const x = candidate(words[i]!, words[i + 1]!);
      i += 2;
      if (x < m) {
        // acc + x < 2m < 2^53, so every step is exact; branch-free (see field.ts addInto).
        const s = acc[j]! + x - m;
        acc[j++] = s + m * +(s < 0);
      }
    }
    this.#next = i;
    return j;
  }

  /** acc[from…] −= the stretch's next elements, mod m; returns the new fill level. */
  #subtractStretch(acc: Float64Array, from: number, m: number): number {
    const words = this.#words;
    const end = words.length;
    const n = acc.length;
    let i = this.#next;
    let j = from;
    while (j < n && i < end) {
      const x = candidate(words[i]!, words[i + 1]!);
      i += 2;
      if (x < m) {
        const d = acc[j]! - x; // in (−m, m): exact
        acc[j++] = d + m * +(d < 0);
      }
    }
    this.#next = i;
    return j;
  }

  /**
   * Reads the next stretch of keystream, just enough for `wanted` elements
   * (and a little spare) up to 256 KiB. Sizes vary with how the stream is
   * read, but the stretches are consecutive, so every reader of a seed sees
   * the same sequence.
   */
  async #refill(wanted: number): Promise<void> {
    const bytes = Math.min(KEYSTREAM_BYTES, Math.ceil((wanted * 8 + SPARE_BYTES) / 16) * 16);
    const keystream = await this.#source(bytes);
    if (keystream.byteLength === 0 || keystream.byteLength % 8 !== 0) {
      throw new RangeError(
        "A keystream stretch must be a non-empty whole number of 8-byte candidates",
      );
    }
    releaseGarbage(this.#words.byteLength); // the stretch this one replaces
    // Little-endian words on every platform Deno runs on; spelled out in
    // candidate(): low word first, then the high word's low 20 bits.
    this.#words = new Uint32Array(keystream);
    this.#next = 0;
  }
}

/**
 * AES-256-CTR keystream (the encryption of zeros) under `key`: a 16-byte
 * counter block of 8 zero bytes and a 64-bit big-endian block number from 0,
 * each stretch starting at the block after the last one's.
 */
function aesKeystream(key: CryptoKey): KeystreamSource {
  let block = 0n;
  return async (bytes) => {
    const blocks = Math.ceil(Math.min(bytes, KEYSTREAM_BYTES) / 16);
    const counter = new Uint8Array(16);
    new DataView(counter.buffer).setBigUint64(8, block);
    block += BigInt(blocks);
    return await crypto.subtle.encrypt(
      { name: "AES-CTR", counter, length: 64 },
      key,
      ZEROS.subarray(0, blocks * 16),
    );
  };
}
