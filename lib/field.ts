/**
 * Arithmetic in the prime field GF(p) with p = 2^52 − 47.
 *
 * Why this prime and this representation: elements are whole numbers stored
 * in `Float64Array`s (8 bytes each, no BigInt). Because p < 2^52, the sum of
 * two elements is below 2^53 and therefore exact in a double, so additive
 * sharing, masking and summing run as plain typed-array loops, and a vector of
 * a million elements is 8 MiB on the wire and in memory. It is the largest
 * prime below 2^52 (2^52 − 47), which leaves room for big sums: n·R < p holds
 * for about a thousand peers with the default R = 2^30 and 4096 rows each.
 * Multiplication (only Shamir mode needs it) is exact too: by a small
 * evaluation point through a 26-bit split, or through BigInt.
 *
 * Every operation reduces, so a sum can never silently wrap the way the course
 * prototype's did.
 *
 * @module
 */

/** The field modulus p = 2^52 − 47 = 4503599627370449, prime. */
export const P = 2 ** 52 - 47;

/** p as a BigInt, for bound checks and full multiplication. */
export const P_BIG = BigInt(P);

/** 2^52 ≡ 47 (mod p): used to fold the high part of a product. */
const FOLD = 47;
const TWO_26 = 2 ** 26;
const TWO_32 = 2 ** 32;

/** Whether `a` is a canonical field element: a whole number in [0, p). */
export function isFieldElement(a: number): boolean {
  return Number.isInteger(a) && a >= 0 && a < P && !Object.is(a, -0);
}

/** (a + b) mod p for a, b in [0, p). Exact: a + b < 2^53. */
export function add(a: number, b: number): number {
  const s = a + b;
  return s >= P ? s - P : s;
}

/** (a − b) mod p for a, b in [0, p). */
export function sub(a: number, b: number): number {
  const d = a - b;
  return d < 0 ? d + P : d;
}

/**
 * (y · x) mod p for y in [0, p) and a small x in [0, 2^25), exactly in
 * doubles: y = yh·2^26 + yl, and yh·x·2^26 = q·2^52 + r·2^26 ≡ q·47 + r·2^26.
 * Every intermediate stays below 2^53.
 */
export function mulSmall(y: number, x: number): number {
  const yh = Math.floor(y / TWO_26);
  const yl = y - yh * TWO_26;
  const u = yh * x;
  const q = Math.floor(u / TWO_26);
  const r = u - q * TWO_26;
  let s = q * FOLD + r * TWO_26 + yl * x;
  while (s >= P) s -= P;
  return s;
}

/** (a · b) mod p for any a, b in [0, p), through BigInt. */
export function mul(a: number, b: number): number {
  return Number((BigInt(a) * BigInt(b)) % P_BIG);
}

/** The multiplicative inverse of a non-zero a (Fermat: a^(p−2)). */
export function inv(a: number): number {
  if (a % P === 0) throw new RangeError("Cannot invert zero in GF(p)");
  let result = 1n;
  let base = BigInt(a) % P_BIG;
  for (let e = P_BIG - 2n; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * base) % P_BIG;
    base = (base * base) % P_BIG;
  }
  return Number(result);
}

/** Reduces any integer (a BigInt, possibly negative) into [0, p). */
export function fromBigInt(a: bigint): number {
  const r = a % P_BIG;
  return Number(r < 0n ? r + P_BIG : r);
}

/**
 * Turns 8 random bytes (two little-endian 32-bit words) into a candidate
 * element: their low 52 bits. Callers reject candidates ≥ p.
 */
export function candidate(low: number, high: number): number {
  return (high & 0xfffff) * TWO_32 + low;
}

/**
 * Where random words come from: fills `words` in place, as
 * `crypto.getRandomValues` does. Injected only by tests, to feed candidates
 * that must be rejected.
 */
export type RandomSource = (words: Uint32Array<ArrayBuffer>) => unknown;

function webCryptoSource(words: Uint32Array<ArrayBuffer>): unknown {
  return crypto.getRandomValues(words);
}

/**
 * A uniformly random element of GF(p) from Web Crypto, by rejection sampling:
 * draw 52 random bits and retry when the value is ≥ p (probability 47/2^52).
 * Never `random mod p`, which would be biased. `source` defaults to Web
 * Crypto (and any non-function, so `Array.from({ length }, randomFieldElement)`
 * keeps working).
 */
export function randomFieldElement(source: RandomSource = webCryptoSource): number {
  const fill = typeof source === "function" ? source : webCryptoSource;
  const words = new Uint32Array(2);
  for (;;) {
    fill(words);
    const x = candidate(words[0]!, words[1]!);
    if (x < P) return x;
  }
}

/** acc[i] = (acc[i] + v[i]) mod p, in place. */
export function addInto(acc: Float64Array, v: Float64Array): void {
  for (let i = 0; i < acc.length; i++) {
    const s = acc[i]! + v[i]!;
    acc[i] = s >= P ? s - P : s;
  }
}

/** acc[i] = (acc[i] − v[i]) mod p, in place. */
export function subInto(acc: Float64Array, v: Float64Array): void {
  for (let i = 0; i < acc.length; i++) {
    const d = acc[i]! - v[i]!;
    acc[i] = d < 0 ? d + P : d;
  }
}

/** Whether every entry of `v` is a canonical field element. */
export function isFieldVector(v: Float64Array): boolean {
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    // −0 would be a second spelling of 0: refused, so every vector has one encoding.
    if (!(x >= 0 && x < P && Math.floor(x) === x) || Object.is(x, -0)) return false;
  }
  return true;
}
