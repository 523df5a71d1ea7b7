/**
 * A seeded generator for test inputs (mulberry32), so that a failing random
 * scenario can be replayed from its seed. Never for the protocol: the
 * product's randomness comes from Web Crypto only.
 *
 * @module
 */

/** mulberry32 with the draws the tests make of it. */
export class Rng {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform number in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor(this.float() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One of `items`, uniformly. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /**
   * `n` bytes of which the first 4 KiB are random and then repeat: fast for
   * megabyte frames, and as good where only the framing is under test.
   */
  blockBytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    const fresh = Math.min(n, 4096);
    for (let i = 0; i < fresh; i++) out[i] = this.u32() & 0xff;
    for (let i = fresh; i < n; i += fresh) out.copyWithin(i, 0, Math.min(fresh, n - i));
    return out;
  }

  /** A string of `min` to `max` characters from `alphabet`. */
  string(alphabet: string, min: number, max: number): string {
    let s = "";
    const n = this.range(min, max);
    for (let i = 0; i < n; i++) s += alphabet[this.int(alphabet.length)];
    return s;
  }
}
