/**
 * Arithmetic in the prime field GF(p) with p = 2^52 − 47, and in the two
 * further prime fields that residues use (see the layout in query.ts).
 *
 * Why this prime and this representation: elements are whole numbers stored
 * in `Float64Array`s (8 bytes each, no BigInt). Because p < 2^52, the sum of
 * two elements is below 2^53 and therefore exact in a double, so additive
 * sharing, masking and summing run as plain typed-array loops, and a vector of
 * a million elements is 8 MiB on the wire and in memory. It is the largest
 * prime below 2^52 (2^52 − 47), which leaves room for big sums: n·R < p holds
 * for about a thousand peers with the default R = 2^30 and 4096 rows each.
 * Multiplication (only Shamir mode needs it) is exact too: by a small
 * evaluation point through a 26-bit split, and in general by 26-bit halves.
 *
 * Every operation reduces, so a sum can never silently wrap the way the course
 * prototype's did.
 *
 * Totals too large for p are carried as residues modulo p1 = p, p2 and p3,
 * the three largest primes below 2^52: every modulus is below 2^52, so the
 * same Float64 loops are exact for each, and the vector operations take the
 * modulus as an optional last argument (default p, so callers that know only
 * one field are unchanged). {@linkcode fromResidues} recombines them.
 *
 * @module
 */

/** The field modulus p = 2^52 − 47 = 4503599627370449, prime. */
export const P = 2 ** 52 - 47;

/** p as a BigInt, for bound checks and full multiplication. */
export const P_BIG = BigInt(P);

/** The second modulus of a residue, p2 = 2^52 − 143 = 4503599627370353, prime. */
export const P2 = 2 ** 52 - 143;

/** The third modulus of a residue, p3 = 2^52 − 173 = 4503599627370323, prime. */
export const P3 = 2 ** 52 - 173;

/**
 * The moduli of a residue number system, in the order residues are laid out:
 * p1 = p, p2, p3 (the three largest primes below 2^52). Pairwise coprime, so
 * residues modulo the first k determine any integer below their product.
 */
export const MODULI: readonly number[] = Object.freeze([P, P2, P3]);

/** {@linkcode MODULI} as BigInts. */
export const MODULI_BIG: readonly bigint[] = Object.freeze(MODULI.map(BigInt));

/** A stretch of a vector whose elements all live modulo `modulus` (one of {@linkcode MODULI}). */
export interface Segment {
  /** Index of the first element. */
  start: number;
  /** Number of elements. */
  length: number;
  modulus: number;
}

/** 2^52 ≡ 47 (mod p): used to fold the high part of a product. */
const FOLD = 47;
const TWO_26 = 2 ** 26;
const TWO_32 = 2 ** 32;

/** Whether `a` is a canonical field element: a whole number in [0, p). */
export function isFieldElement(a: number): boolean {
  return isElementOf(a, P);
}

/**
 * Whether `a` is a canonical element modulo `modulus`: a whole number in
 * [0, modulus). A separate function, not an optional argument of
 * {@linkcode isFieldElement}, which is passed to `every` and `filter`.
 */
export function isElementOf(a: number, modulus: number): boolean {
  return Number.isInteger(a) && a >= 0 && a < modulus && !Object.is(a, -0);
}

/**
 * Refuses a modulus that is not one of {@linkcode MODULI}: a vector operation
 * passed as a callback would otherwise take an array index as its modulus.
 */
function assertModulus(modulus: number): void {
  if (!MODULI.includes(modulus)) {
    throw new RangeError("The modulus must be one of the field's moduli p1, p2, p3");
  }
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

/**
 * (a · b) mod p for field elements a, b (whole numbers in [0, p): callers
 * pass only reduced values, not checked here, in the hot path of Shamir
 * rebuilding), exactly in doubles: with a and b cut into 26-bit halves,
 * a · b = hi · 2^52 + mid · 2^26 + lo, where every part and each sum below
 * stays under 2^53, and 2^52 ≡ 47 folds the high parts.
 * Through BigInt this was 1 s of the hospital's CPU in a sparse round of
 * 1,000 peers (Shamir rebuilding, ~9 M products).
 */
export function mul(a: number, b: number): number {
  const a1 = Math.floor(a / TWO_26);
  const a0 = a - a1 * TWO_26;
  const b1 = Math.floor(b / TWO_26);
  const b0 = b - b1 * TWO_26;
  // At most (2^26 − 1)^2 < p: already reduced.
  const hi = a1 * b1;
  // Two products below 2^52 each: below 2^53, exact.
  const mid = a1 * b0 + a0 * b1;
  const m1 = Math.floor(mid / TWO_26);
  const m0 = mid - m1 * TWO_26;
  // mid · 2^26 = m1 · 2^52 + m0 · 2^26 ≡ 47 · m1 + m0 · 2^26; with lo, below 2p.
  let s = m0 * TWO_26 + a0 * b0;
  if (s >= P) s -= P;
  // m1 < 2^27, so this adds less than 2^33.
  s += m1 * FOLD;
  if (s >= P) s -= P;
  return add(s, mulSmall(hi, FOLD));
}

/** The multiplicative inverse of a non-zero a (Fermat: a^(p−2), by {@linkcode mul}). */
export function inv(a: number): number {
  if (a % P === 0) throw new RangeError("Cannot invert zero in GF(p)");
  let result = 1;
  let base = a % P;
  // p − 2 in binary, lowest bit first: 52 bits, below 2^53, so a double holds it exactly.
  for (let e = P - 2; e > 0; e = Math.floor(e / 2)) {
    if (e % 2 === 1) result = mul(result, base);
    base = mul(base, base);
  }
  return result;
}

/** Reduces any integer (a BigInt, possibly negative) into [0, modulus), modulus default p. */
export function fromBigInt(a: bigint, modulus: bigint = P_BIG): number {
  if (!MODULI_BIG.includes(modulus)) {
    throw new RangeError("The modulus must be one of the field's moduli p1, p2, p3");
  }
  const r = a % modulus;
  return Number(r < 0n ? r + modulus : r);
}

/** x^e mod m for e ≥ 0, by square and multiply. */
function powMod(x: bigint, e: bigint, m: bigint): bigint {
  let result = 1n;
  let base = x % m;
  for (; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * base) % m;
    base = (base * base) % m;
  }
  return result;
}

/**
 * Garner's constants: GARNER[j][i] = p_i^(−1) mod p_j for i < j (Fermat, each
 * p_j prime), computed once.
 */
const GARNER: readonly (readonly bigint[])[] = MODULI_BIG.map((pj, j) =>
  MODULI_BIG.slice(0, j).map((pi) => powMod(pi % pj, pj - 2n, pj))
);

/**
 * The integer S in [0, p1·…·pk) with S ≡ residues[j] (mod p_(j+1)) for every
 * j, k = residues.length (1 to 3): the Chinese remainder theorem, by Garner's
 * mixed-radix form S = x1 + p1·x2 + p1·p2·x3 with x1 = r1 and
 * x_j = (r_j − (x1 + p1·x2 + …)) · (p1·…·p_(j−1))^(−1) mod p_j, all in BigInt.
 * Each residue must be a whole number below its modulus.
 */
export function fromResidues(residues: readonly number[]): bigint {
  if (!(residues.length >= 1 && residues.length <= MODULI.length)) {
    throw new RangeError(`Cannot recombine ${residues.length} residues: 1 to ${MODULI.length}`);
  }
  let total = 0n;
  let radix = 1n;
  for (let j = 0; j < residues.length; j++) {
    const r = residues[j]!;
    const pj = MODULI_BIG[j]!;
    if (!isElementOf(r, MODULI[j]!)) {
      throw new RangeError(`Cannot recombine: residue ${j + 1} is not below its modulus`);
    }
    // x_j = (r_j − total) · radix^(−1) mod p_j, radix = p1·…·p_(j−1).
    let x = ((BigInt(r) - total) % pj + pj) % pj;
    for (const inverse of GARNER[j]!) x = (x * inverse) % pj;
    total += radix * x;
    radix *= pj;
  }
  return total;
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

/**
 * acc[i] = (acc[i] + v[i]) mod m, in place, for elements in [0, m) and m
 * (default p) below 2^52: exact, since the sum stays below 2^53.
 *
 * The reduction is branch-free: s = a + b − m, then s + m·[s < 0]. Whether a
 * sum of random elements wraps is a coin toss, so a conditional subtraction
 * mispredicts half the time; this form ran 3–4× faster here (2^20 elements:
 * 3 ms against 10–13 ms). Every step is an integer below 2^53 in magnitude,
 * so it is exact, and it never yields −0 (x − x is +0, and −0 + 0 is +0).
 */
export function addInto(acc: Float64Array, v: Float64Array, modulus: number = P): void {
  assertModulus(modulus);
  const m = modulus;
  for (let i = 0; i < acc.length; i++) {
    const s = acc[i]! + v[i]! - m;
    acc[i] = s + m * +(s < 0);
  }
}

/** acc[i] = (acc[i] − v[i]) mod m, in place, for elements in [0, m); m defaults to p. Branch-free as {@linkcode addInto}. */
export function subInto(acc: Float64Array, v: Float64Array, modulus: number = P): void {
  assertModulus(modulus);
  const m = modulus;
  for (let i = 0; i < acc.length; i++) {
    const d = acc[i]! - v[i]!;
    acc[i] = d + m * +(d < 0);
  }
}

/** Whether every entry of `v` is a canonical element modulo `modulus` (default p). */
export function isFieldVector(v: Float64Array, modulus: number = P): boolean {
  assertModulus(modulus);
  const m = modulus;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    // −0 would be a second spelling of 0: refused, so every vector has one encoding.
    if (!(x >= 0 && x < m && Math.floor(x) === x) || Object.is(x, -0)) return false;
  }
  return true;
}

/** Whether `segments` cover [0, length) in order, without gaps, each with one of the moduli. */
function tiles(segments: readonly Segment[], length: number): boolean {
  let next = 0;
  for (const { start, length: size, modulus } of segments) {
    if (start !== next || !(Number.isSafeInteger(size) && size >= 1)) return false;
    if (!MODULI.includes(modulus)) return false;
    next += size;
  }
  return next === length;
}

/** Refuses segments that do not cover [0, length) in order, each with one of the moduli. */
export function assertSegmentsCover(segments: readonly Segment[], length: number): void {
  if (!tiles(segments, length)) {
    throw new RangeError(`The segments do not cover a vector of ${length} elements in order`);
  }
}

/** acc = acc + v, each segment modulo its own modulus, in place. */
export function addSegmentsInto(
  acc: Float64Array,
  v: Float64Array,
  segments: readonly Segment[],
): void {
  assertSegmentsCover(segments, acc.length);
  if (v.length !== acc.length) throw new RangeError("Cannot add vectors of different lengths");
  for (const { start, length, modulus } of segments) {
    addInto(acc.subarray(start, start + length), v.subarray(start, start + length), modulus);
  }
}

/**
 * Whether every element of `v` is canonical for its segment: a whole number
 * below that segment's modulus. False also when the segments do not cover v.
 */
export function isSegmentedFieldVector(v: Float64Array, segments: readonly Segment[]): boolean {
  return tiles(segments, v.length) &&
    segments.every(({ start, length, modulus }) =>
      isFieldVector(v.subarray(start, start + length), modulus)
    );
}
