/**
 * Arithmetic in the prime field GF(p) with p = 2^61 − 1.
 *
 * Why this prime: it is a Mersenne prime, so it is easy to state and check,
 * and it is large enough that n·R < p holds for millions of peers with the
 * default range R = 2^40. Elements are `bigint`s in [0, p); every operation
 * reduces, so a sum can never silently wrap the way the course prototype's
 * did.
 *
 * @module
 */

/** The field modulus p = 2^61 − 1 (2305843009213693951), a Mersenne prime. */
export const P: bigint = (1n << 61n) - 1n;

/** The default largest input R: 2^40, so n·R < p for every n below 2^21. */
export const DEFAULT_MAX: bigint = 1n << 40n;

/** Reduces any integer into [0, p). */
export function mod(a: bigint): bigint {
  const r = a % P;
  return r < 0n ? r + P : r;
}

/** (a + b) mod p for a, b already in [0, p). */
export function add(a: bigint, b: bigint): bigint {
  const s = a + b;
  return s >= P ? s - P : s;
}

/** (a − b) mod p for a, b already in [0, p). */
export function sub(a: bigint, b: bigint): bigint {
  const d = a - b;
  return d < 0n ? d + P : d;
}

/** (a · b) mod p for a, b already in [0, p). */
export function mul(a: bigint, b: bigint): bigint {
  return (a * b) % P;
}

/** a^e mod p, by square-and-multiply. */
export function pow(a: bigint, e: bigint): bigint {
  let result = 1n;
  let base = a % P;
  for (let k = e; k > 0n; k >>= 1n) {
    if (k & 1n) result = (result * base) % P;
    base = (base * base) % P;
  }
  return result;
}

/** The multiplicative inverse of a non-zero a (Fermat: a^(p−2)). */
export function inv(a: bigint): bigint {
  if (a % P === 0n) throw new RangeError("Cannot invert zero in GF(p)");
  return pow(a, P - 2n);
}

/** Whether `a` is a canonical field element: an integer in [0, p). */
export function isFieldElement(a: bigint): boolean {
  return a >= 0n && a < P;
}

/**
 * A uniformly random element of GF(p) from Web Crypto.
 *
 * Rejection sampling: draw 61 random bits (an integer in [0, 2^61)) and retry
 * when it equals p. Taking `random mod p` would be biased; here each of the p
 * values has the same chance, and a retry happens with probability 2^-61.
 */
export function randomFieldElement(): bigint {
  const bytes = new Uint8Array(8);
  for (;;) {
    crypto.getRandomValues(bytes);
    let x = 0n;
    for (const b of bytes) x = (x << 8n) | BigInt(b);
    x &= P; // keep the low 61 bits: P is 2^61 − 1, an all-ones mask
    if (x < P) return x;
  }
}
