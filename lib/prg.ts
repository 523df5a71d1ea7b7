/**
 * A pseudorandom generator of field elements: AES-256-CTR (Web Crypto) keyed
 * by a 32-byte seed, its keystream read 8 bytes at a time and turned into
 * elements of GF(p) by rejection sampling. Both ends of a pair expand the
 * same seed to the same vector, so a seed can stand in for a whole share.
 *
 * @module
 */

import { candidate, P } from "./field.ts";
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

/** The field elements a seed expands to, read in order. */
export class FieldStream {
  #key: CryptoKey;
  /** The next AES block of the keystream: refills continue one unbroken sequence. */
  #block = 0n;
  #words = new Uint32Array(0);
  #next = 0;

  private constructor(key: CryptoKey) {
    this.#key = key;
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
    return new FieldStream(key);
  }

  /** A stream from a fresh random seed: fast randomness for one process. */
  static async random(): Promise<FieldStream> {
    return await FieldStream.fromSeed(randomSeed());
  }

  /** Fills `out` with the stream's next elements. */
  async fill(out: Float64Array): Promise<void> {
    let filled = 0;
    while (filled < out.length) {
      if (this.#next >= this.#words.length) await this.#refill(out.length - filled);
      const words = this.#words;
      let i = this.#next;
      while (filled < out.length && i < words.length) {
        const x = candidate(words[i]!, words[i + 1]!);
        i += 2;
        if (x < P) out[filled++] = x; // rejection: keeps every element equally likely
      }
      this.#next = i;
    }
  }

  /** The next `count` elements as a new vector. */
  async take(count: number): Promise<Float64Array> {
    const out = new Float64Array(count);
    await this.fill(out);
    return out;
  }

  /**
   * Generates the next stretch of keystream, just enough for `wanted`
   * elements (and a little spare) up to 256 KiB. Sizes vary with how the
   * stream is read, but the blocks are consecutive, so every reader of a
   * seed sees the same sequence.
   */
  async #refill(wanted: number): Promise<void> {
    const bytes = Math.min(KEYSTREAM_BYTES, Math.ceil((wanted * 8 + SPARE_BYTES) / 16) * 16);
    const counter = new Uint8Array(16);
    new DataView(counter.buffer).setBigUint64(8, this.#block);
    this.#block += BigInt(bytes / 16);
    const keystream = await crypto.subtle.encrypt(
      { name: "AES-CTR", counter, length: 64 },
      this.#key,
      ZEROS.subarray(0, bytes),
    );
    releaseGarbage(this.#words.byteLength); // the stretch this one replaces
    // Little-endian words on every platform Deno runs on; spelled out in
    // candidate(): low word first, then the high word's low 20 bits.
    this.#words = new Uint32Array(keystream);
    this.#next = 0;
  }
}
