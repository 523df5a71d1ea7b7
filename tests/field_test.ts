import assert from "node:assert/strict";
import {
  add,
  addInto,
  addSegmentsInto,
  candidate,
  fromBigInt,
  fromResidues,
  inv,
  isElementOf,
  isFieldElement,
  isFieldVector,
  isSegmentedFieldVector,
  MODULI,
  MODULI_BIG,
  mul,
  mulSmall,
  P,
  P2,
  P3,
  P_BIG,
  randomFieldElement,
  type Segment,
  sub,
  subInto,
} from "../lib/field.ts";
import { FieldStream, randomSeed } from "../lib/prg.ts";

const exact = (x: bigint) => Number(((x % P_BIG) + P_BIG) % P_BIG);

/**
 * Long vectors are equal, else the first difference is reported. Not
 * deepEqual: its diff of two long unrelated vectors takes gigabytes.
 */
function assertSameElements(actual: Float64Array, expected: Float64Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const at = actual.findIndex((x, i) => !Object.is(x, expected[i]));
  assert.equal(at, -1, `${what}: element ${at} is ${actual[at]}, expected ${expected[at]}`);
}

const PRIME_BASES = [2n, 3n, 5n, 7n, 11n, 13n, 17n, 19n, 23n, 29n, 31n, 37n];

/**
 * Miller–Rabin in BigInt with the fixed bases 2, 3, …, 37 (the first 12
 * primes). With these bases the test is deterministic for every n below
 * 3.18·10^23 (Sorenson and Webster 2015; the first 13 primes, to 41, reach
 * 3.3·10^24), so for numbers below 2^52 ≈ 4.5·10^15 "passes" means "prime".
 */
function isPrime(n: bigint, bases: readonly bigint[] = PRIME_BASES): boolean {
  const powMod = (b: bigint, e: bigint, m: bigint) => {
    let r = 1n;
    b %= m;
    for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
    return r;
  };
  if (n < 2n) return false;
  for (const a of bases) if (n % a === 0n) return n === a;
  let d = n - 1n;
  let s = 0;
  while (d % 2n === 0n) {
    d /= 2n;
    s++;
  }
  for (const a of bases) {
    let x = powMod(a, d, n);
    if (x === 1n || x === n - 1n) continue;
    let composite = true;
    for (let i = 1; i < s && composite; i++) {
      x = (x * x) % n;
      if (x === n - 1n) composite = false;
    }
    if (composite) return false;
  }
  return true;
}

Deno.test("Miller–Rabin with fixed bases tells primes from composites, strong pseudoprimes included", () => {
  const small = Array.from({ length: 2000 }, (_, i) => i);
  const sieve = small.map((n) => n >= 2 && small.slice(2, n).every((d) => d * d > n || n % d));
  for (const n of small) assert.equal(isPrime(BigInt(n)), sieve[n], String(n));
  // The smallest strong pseudoprimes to the first 1, 2, … 7 prime bases:
  // each passes that many bases and is caught by the next.
  const pseudoprimes = [2047n, 1373653n, 25326001n, 3215031751n, 2152302898747n, 3474749660383n];
  pseudoprimes.push(341550071728321n);
  pseudoprimes.forEach((n, i) => {
    assert.ok(isPrime(n, PRIME_BASES.slice(0, i + 1)), `${n} fools ${i + 1} bases`);
    assert.ok(!isPrime(n), `${n} is composite`);
  });
  // Passes every prime base up to 31: only the twelfth base, 37, catches it.
  assert.ok(isPrime(3825123056546413051n, PRIME_BASES.slice(0, 11)));
  assert.ok(!isPrime(3825123056546413051n));
  assert.ok(isPrime((1n << 61n) - 1n), "the Mersenne prime 2^61 − 1");
});

Deno.test("the residue moduli are 2^52 − 47, 2^52 − 143 and 2^52 − 173: the three largest primes below 2^52", () => {
  assert.deepEqual(MODULI, [P, P2, P3]);
  assert.deepEqual(MODULI_BIG, [P_BIG, (1n << 52n) - 143n, (1n << 52n) - 173n]);
  assert.deepEqual([P2, P3], [4503599627370353, 4503599627370323]);
  for (const m of MODULI_BIG) assert.ok(isPrime(m), `${m} is prime`);
  for (let c = 1n; c < 173n; c += 2n) {
    if (c === 47n || c === 143n) continue;
    assert.ok(!isPrime((1n << 52n) - c), `2^52 − ${c} is composite`);
  }
  // Decreasing, and each below 2^52: a sum of two elements is exact in a double.
  assert.ok(P > P2 && P2 > P3 && 2 * (P - 1) < Number.MAX_SAFE_INTEGER);
});

Deno.test("p is 2^52 − 47, the largest prime below 2^52, and passes Miller–Rabin", () => {
  assert.equal(P, 4503599627370449);
  assert.equal(P_BIG, (1n << 52n) - 47n);
  assert.ok(isPrime(P_BIG));
  for (let c = 1n; c < 47n; c += 2n) {
    assert.ok(!isPrime((1n << 52n) - c), `2^52 − ${c} is composite`);
  }
  // The reason for p < 2^52: a sum of two elements is exact in a double.
  assert.ok(2 * (P - 1) < Number.MAX_SAFE_INTEGER);
});

Deno.test("add, sub, mulSmall, mul and inv agree with BigInt arithmetic", () => {
  const edges = [0, 1, 2, 46, 47, P - 2, P - 1, Math.floor(P / 2), 2 ** 26, 2 ** 26 - 1, 2 ** 51];
  // Where mul's 26-bit halves and their folds are largest or roll over.
  edges.push(
    2 ** 27 - 1,
    2 ** 27,
    2 ** 52 - 2 ** 26,
    2 ** 52 - 2 ** 26 - 1,
    2 ** 26 * (2 ** 26 - 48),
  );
  const randoms = Array.from({ length: 300 }, randomFieldElement);
  for (const a of [...edges, ...randoms.slice(0, 40)]) {
    for (const b of [...edges, ...randoms.slice(40, 80)]) {
      assert.equal(add(a, b), exact(BigInt(a) + BigInt(b)));
      assert.equal(sub(a, b), exact(BigInt(a) - BigInt(b)));
      assert.equal(mul(a, b), exact(BigInt(a) * BigInt(b)));
    }
    for (const x of [0, 1, 2, 3, 200, 2 ** 24, 2 ** 25 - 1]) {
      assert.equal(mulSmall(a, x), exact(BigInt(a) * BigInt(x)), `${a} × ${x}`);
    }
  }
  for (const a of randoms.slice(0, 20)) if (a !== 0) assert.equal(mul(a, inv(a)), 1);
  assert.throws(() => inv(0), RangeError);
});

Deno.test("mul agrees with BigInt on many random products and on the largest elements", () => {
  const big = Array.from({ length: 64 }, (_, i) => P - 1 - i);
  // High and low 26-bit halves each near the top, the bottom or the middle: where mul's
  // partial sums are largest (a missing reduction shows here, not in random products).
  const halves = [];
  for (let h = 0; h < 8; h++) {
    for (let l = 0; l < 8; l++) {
      for (const high of [2 ** 26 - 1 - h, h, 2 ** 25 + h]) {
        halves.push(high * 2 ** 26 + (2 ** 26 - 1 - (l * 1000003) % 2 ** 26));
      }
    }
  }
  const mixed = [...big, ...halves.filter((x) => x < P)];
  // Products where the 47 · m1 fold carries past p, the second also with a
  // high part that then carries the sum past 2p (found by search: about one
  // product in 2^20, and one in 2^40, even among halves chosen near the top).
  for (
    const [a, b] of [[3006857681552477, 2564211238486129], [4463990163840857, 3480174150494604]]
  ) {
    assert.equal(mul(a!, b!), exact(BigInt(a!) * BigInt(b!)), `${a} × ${b}`);
  }
  for (const a of mixed) {
    for (const b of mixed) {
      assert.equal(mul(a, b), exact(BigInt(a) * BigInt(b)), `${a} × ${b}`);
    }
  }
  for (let i = 0; i < 20_000; i++) {
    const a = randomFieldElement();
    const b = randomFieldElement();
    assert.equal(mul(a, b), exact(BigInt(a) * BigInt(b)), `${a} × ${b}`);
  }
});

Deno.test("element checks accept exactly the whole numbers in [0, p)", () => {
  for (const good of [0, 1, P - 1]) assert.ok(isFieldElement(good));
  for (const bad of [-1, P, P + 1, 0.5, NaN, Infinity, -0.5, -0]) {
    assert.ok(!isFieldElement(bad), String(bad));
  }
  assert.ok(isFieldVector(Float64Array.of(0, 1, P - 1)));
  assert.ok(!isFieldVector(Float64Array.of(0, P)));
  assert.ok(!isFieldVector(Float64Array.of(NaN)));
  assert.ok(!isFieldVector(Float64Array.of(0, -0)), "-0 is a second spelling of 0");
  assert.ok(!isFieldVector(Float64Array.of(1.5)));
});

Deno.test("vector add and subtract match scalar arithmetic", () => {
  const a = Float64Array.from({ length: 1000 }, randomFieldElement);
  const b = Float64Array.from({ length: 1000 }, randomFieldElement);
  const sum = a.slice();
  addInto(sum, b);
  const diff = sum.slice();
  subInto(diff, b);
  assertSameElements(diff, a, "(a + b) − b");
  sum.forEach((x, i) => assert.equal(x, add(a[i]!, b[i]!)));
});

Deno.test("vector operations modulo p2 and p3 agree with BigInt, and the default modulus is p", () => {
  for (const [m, mBig] of MODULI.map((m, j) => [m, MODULI_BIG[j]!] as const)) {
    const edges = [0, 1, m - 2, m - 1, Math.floor(m / 2)];
    const a = Float64Array.from([...edges, ...Array.from({ length: 500 }, () => randomBelow(m))]);
    const b = Float64Array.from([
      ...edges.reverse(),
      ...Array.from({ length: 500 }, () => randomBelow(m)),
    ]);
    const sum = a.slice();
    addInto(sum, b, m);
    const diff = a.slice();
    subInto(diff, b, m);
    for (let i = 0; i < a.length; i++) {
      assert.equal(sum[i], Number((BigInt(a[i]!) + BigInt(b[i]!)) % mBig), `mod ${m}`);
      assert.equal(diff[i], Number(((BigInt(a[i]!) - BigInt(b[i]!)) % mBig + mBig) % mBig));
    }
    assert.ok(isFieldVector(sum, m) && isFieldVector(diff, m));
    assert.ok(!isFieldVector(Float64Array.of(m), m), `${m} is not below itself`);
    assert.ok(isElementOf(m - 1, m) && !isElementOf(m, m));
  }
  // (p2 − 1) + 50 is below p (p − p2 = 96), so it stays as it is mod p and
  // is reduced only mod p2.
  const x = Float64Array.of(P2 - 1);
  const y = Float64Array.of(50);
  const modP = x.slice();
  addInto(modP, y);
  assert.equal(modP[0], P2 + 49);
  addInto(x, y, P2);
  assert.equal(x[0], 49);
  assert.ok(isFieldVector(Float64Array.of(P2)) && !isFieldVector(Float64Array.of(P2), P2));
  assert.ok(isFieldElement(P3) && !isElementOf(P3, P3));
  // A modulus that is not one of the three is refused, not used: an index
  // passed by every() or forEach() must not become a modulus.
  assert.throws(() => isFieldVector(Float64Array.of(1), 0), RangeError);
  assert.throws(() => addInto(new Float64Array(1), new Float64Array(1), 7), RangeError);
  assert.throws(() => subInto(new Float64Array(1), new Float64Array(1), P - 2), RangeError);
  assert.equal(fromBigInt(-1n, MODULI_BIG[1]), P2 - 1);
  assert.throws(() => fromBigInt(5n, 7n), RangeError);
});

Deno.test("segments: each stretch of a vector is added and checked modulo its own modulus", () => {
  const segments: Segment[] = [
    { start: 0, length: 2, modulus: P },
    { start: 2, length: 1, modulus: P2 },
    { start: 3, length: 2, modulus: P3 },
  ];
  const acc = Float64Array.of(P - 1, 5, P2 - 1, P3 - 1, 0);
  addSegmentsInto(acc, Float64Array.of(1, P - 5, 1, 1, P3 - 1), segments);
  assert.deepEqual([...acc], [0, 0, 0, 0, P3 - 1]);
  assert.ok(isSegmentedFieldVector(Float64Array.of(P - 1, 0, P2 - 1, P3 - 1, 0), segments));
  // Valid mod p, but not in its p2 or p3 segment.
  assert.ok(!isSegmentedFieldVector(Float64Array.of(0, 0, P2, 0, 0), segments));
  assert.ok(!isSegmentedFieldVector(Float64Array.of(0, 0, 0, 0, P3), segments));
  assert.ok(!isSegmentedFieldVector(new Float64Array(6), segments), "segments must cover v");
  const gap = [segments[0]!, { ...segments[2]!, start: 3 }];
  assert.ok(!isSegmentedFieldVector(new Float64Array(5), gap));
  assert.ok(!isSegmentedFieldVector(Float64Array.of(1), [{ start: 0, length: 1, modulus: 7 }]));
  assert.throws(() => addSegmentsInto(new Float64Array(5), new Float64Array(5), gap), RangeError);
});

Deno.test("fromResidues is the Chinese remainder theorem: the unique total below the moduli's product", () => {
  const products = [P_BIG, P_BIG * MODULI_BIG[1]!, P_BIG * MODULI_BIG[1]! * MODULI_BIG[2]!];
  // Test data only (a slight bias does not matter here): 192 random bits mod the limit.
  const randomBig = (limit: bigint) =>
    crypto.getRandomValues(new Uint32Array(6)).reduce((x, w) => (x << 32n) | BigInt(w), 0n) %
    limit;
  for (let k = 1; k <= 3; k++) {
    const limit = products[k - 1]!;
    const totals = [0n, 1n, limit - 1n, P_BIG - 1n, P_BIG, P_BIG * MODULI_BIG[1]! - 1n]
      .filter((t) => t < limit);
    for (let i = 0; i < 300; i++) totals.push(randomBig(limit));
    for (const total of totals) {
      const residues = MODULI_BIG.slice(0, k).map((m) => Number(total % m));
      assert.equal(fromResidues(residues), total, `k = ${k}, total ${total}`);
    }
  }
  assert.throws(() => fromResidues([]), RangeError);
  assert.throws(() => fromResidues([1, 2, 3, 4]), RangeError);
  assert.throws(() => fromResidues([0, P2]), /residue 2 is not below its modulus/);
  assert.throws(() => fromResidues([0.5]), RangeError);
});

/** A uniform whole number below `limit` ≤ p, from Web Crypto, by rejection. */
function randomBelow(limit: number): number {
  const whole = Math.floor(P / limit) * limit; // exact: below 2^52
  for (;;) {
    const x = randomFieldElement();
    if (x < whole) return x % limit;
  }
}

/** Chi-square over 16 buckets; 37.7 is the 0.999 quantile (15 degrees of freedom). */
function chiSquare16(values: Iterable<number>, modulus = P): number {
  const buckets = new Array<number>(16).fill(0);
  let total = 0;
  for (const x of values) {
    buckets[Math.floor((x / modulus) * 16)]!++;
    total++;
  }
  return buckets.reduce((acc, n) => acc + (n - total / 16) ** 2 / (total / 16), 0);
}

Deno.test("randomFieldElement stays in [0, p) and is spread evenly", () => {
  const draws = Array.from({ length: 20_000 }, randomFieldElement);
  assert.ok(draws.every(isFieldElement));
  assert.ok(chiSquare16(draws) < 37.7);
});

Deno.test("a candidate is the low 52 bits: the low word, then the high word's low 20 bits", () => {
  assert.equal(candidate(0xffffffff, 0xfffff), 2 ** 52 - 1);
  assert.equal(candidate(0xffffffd1, 0xfffff), P);
  assert.equal(candidate(5, 0xfff00001), 2 ** 32 + 5, "bits above 52 are dropped");
  assert.equal(candidate(7, 0), 7);
});

/** (low, high) word pairs whose candidates are ≥ p: p, p + 1, 2^52 − 1, and p with bits above 52. */
const TOO_LARGE: [number, number][] = [
  [0xffffffd1, 0xfffff],
  [0xffffffd2, 0xfffff],
  [0xffffffff, 0xfffff],
  [0xffffffd1, 0xffffffff],
];
/** Valid candidates, chosen so that "x mod p" of the rejected ones (0, 1, 46, 0) would differ. */
const VALID: [number, number][] = [
  [0xffffffd0, 0xfffff], // p − 1
  [12345, 0],
  [0, 0x80000],
];
const valueOf = ([low, high]: [number, number]) => (high % 2 ** 20) * 2 ** 32 + low;

/** Keystream stretches made of the given word pairs. */
function stretch(...pairs: [number, number][]): ArrayBuffer {
  return Uint32Array.from(pairs.flat()).buffer;
}

/** A keystream source that hands out `stretches` in order, then fails the test. */
function scriptedKeystream(stretches: ArrayBuffer[]): () => Promise<ArrayBuffer> {
  let next = 0;
  return () => {
    const s = stretches[next++];
    return s ? Promise.resolve(s) : Promise.reject(new Error("the keystream ran out"));
  };
}

Deno.test("rejection sampling: randomFieldElement rejects candidates at or above p, not reduced", () => {
  const script = [...TOO_LARGE, VALID[1]!, VALID[0]!];
  let calls = 0;
  const source = (words: Uint32Array) => {
    const pair = script[calls++];
    if (!pair) throw new Error("drew more than the script");
    words[0] = pair[0];
    words[1] = pair[1];
  };
  assert.equal(randomFieldElement(source), valueOf(VALID[1]!));
  assert.equal(calls, TOO_LARGE.length + 1, "one draw per rejected candidate, then the valid one");
  assert.equal(randomFieldElement(source), P - 1);
  // Without a source, Web Crypto (Array.from passes undefined for the source).
  assert.ok(Array.from({ length: 10 }, randomFieldElement).every(isFieldElement));
});

Deno.test("rejection sampling: FieldStream.fill and take reject candidates at or above p, not reduced", async () => {
  const expected = VALID.map(valueOf);
  // Rejected candidates first, between valid ones, at the end of a stretch, and
  // as a whole stretch, so fill must refill mid-vector.
  const stretches = () => [
    stretch(...TOO_LARGE, VALID[0]!),
    stretch(VALID[1]!, ...TOO_LARGE),
    stretch(...TOO_LARGE),
    stretch(TOO_LARGE[0]!, VALID[2]!, TOO_LARGE[2]!),
  ];
  const taken = await FieldStream.fromKeystream(scriptedKeystream(stretches())).take(3);
  assert.deepEqual([...taken], expected);

  const filled = new Float64Array(3);
  await FieldStream.fromKeystream(scriptedKeystream(stretches())).fill(filled);
  assert.deepEqual([...filled], expected);

  // One element at a time reads the same sequence.
  const stream = FieldStream.fromKeystream(scriptedKeystream(stretches()));
  const one = new Float64Array(1);
  for (const value of expected) {
    await stream.fill(one);
    assert.equal(one[0], value);
  }
  // Nothing valid is left: the next read needs a stretch the script does not have.
  await assert.rejects(stream.take(1), /ran out/);
});

/** Candidates in [p2, p): valid mod p, rejected mod p2 and p3: p2, p2 + 1 and p − 1. */
const ABOVE_P2: [number, number][] = [
  [0xffffff71, 0xfffff],
  [0xffffff72, 0xfffff],
  [0xffffffd0, 0xfffff],
];
/** Candidates in [p3, p2): valid mod p and p2, rejected mod p3: p3 and p2 − 1. */
const ABOVE_P3: [number, number][] = [[0xffffff53, 0xfffff], [0xffffff70, 0xfffff]];

Deno.test("rejection sampling modulo p2 and p3: a candidate at or above the segment's modulus is skipped", async () => {
  assert.deepEqual(ABOVE_P2.map(valueOf), [P2, P2 + 1, P - 1]);
  assert.deepEqual(ABOVE_P3.map(valueOf), [P3, P2 - 1]);
  const script = () => [
    stretch(ABOVE_P2[0]!, VALID[1]!, ...ABOVE_P2.slice(1)),
    stretch(...TOO_LARGE, ...ABOVE_P3, VALID[2]!),
  ];
  // Mod p2 every candidate in [p2, p) is rejected, like those ≥ p; not reduced
  // (p2 mod p2 would be 0, p − 1 mod p2 would be 95).
  const p2 = await FieldStream.fromKeystream(scriptedKeystream(script())).take(4, P2);
  assert.deepEqual([...p2], [12345, P3, P2 - 1, 2 ** 51]);
  // Mod p3 the candidates in [p3, p2) go too.
  const p3 = await FieldStream.fromKeystream(scriptedKeystream(script())).take(2, P3);
  assert.deepEqual([...p3], [12345, 2 ** 51]);
  // Mod p (the default) the same stream keeps them.
  const p1 = await FieldStream.fromKeystream(scriptedKeystream(script())).take(7);
  assert.deepEqual([...p1], [P2, 12345, P2 + 1, P - 1, P3, P2 - 1, 2 ** 51]);
  // One continuous stream across segments: p2 is kept in a p segment; then
  // a p2 segment skips p2 + 1, p − 1 and the four candidates ≥ p and keeps
  // p3; then a p3 segment skips p2 − 1 and keeps 2^51.
  const stream = FieldStream.fromKeystream(scriptedKeystream(script()));
  const vector = new Float64Array(4);
  await stream.fill(vector.subarray(0, 2), P);
  await stream.fill(vector.subarray(2, 3), P2);
  await stream.fill(vector.subarray(3, 4), P3);
  assert.deepEqual([...vector], [P2, 12345, P3, 2 ** 51]);
  await assert.rejects(
    FieldStream.fromKeystream(scriptedKeystream(script())).take(1, 1000),
    RangeError,
    "only the three moduli",
  );
});

Deno.test("FieldStream refuses a keystream stretch that is empty or not whole candidates", async () => {
  for (const bad of [new ArrayBuffer(0), new ArrayBuffer(12)]) {
    const stream = FieldStream.fromKeystream(scriptedKeystream([bad, stretch(VALID[1]!)]));
    await assert.rejects(stream.take(1), RangeError);
  }
});

/** The AES-256-CTR keystream of `seed` from Web Crypto in one call: counter block 0, 64-bit counter. */
async function aesKeystream(seed: Uint8Array<ArrayBuffer>, bytes: number): Promise<DataView> {
  const key = await crypto.subtle.importKey("raw", seed, "AES-CTR", false, ["encrypt"]);
  const counter = new Uint8Array(16);
  const zeros = new Uint8Array(bytes);
  return new DataView(
    await crypto.subtle.encrypt({ name: "AES-CTR", counter, length: 64 }, key, zeros),
  );
}

Deno.test("FieldStream known answer: a fixed seed's AES-256-CTR keystream, 8 bytes a candidate", async () => {
  const seed = Uint8Array.from({ length: 32 }, (_, i) => i);
  // The documented rule, in BigInt: each 8 keystream bytes, little-endian, low
  // 52 bits; kept when below p. 40 000 elements cross the 256 KiB refill.
  const count = 40_000;
  const keystream = await aesKeystream(seed, (count + 64) * 8);
  const expected = new Float64Array(count);
  for (let offset = 0, n = 0; n < count; offset += 8) {
    const x = keystream.getBigUint64(offset, true) & ((1n << 52n) - 1n);
    if (x < P_BIG) expected[n++] = Number(x);
  }
  // The first elements, computed outside this code with OpenSSL (aes-256-ctr,
  // key 00 01 … 1f, IV 0) and the same rule: the layout stays pinned even if
  // the computation above were changed along with the stream.
  assert.deepEqual([...expected.subarray(0, 4)], [
    4302572441604338,
    2021853348164521,
    4425855056371184,
    1902465186002598,
  ]);
  assertSameElements(await (await FieldStream.fromSeed(seed)).take(count), expected, "take");
  const stream = await FieldStream.fromSeed(seed);
  const pieces = new Float64Array(count);
  for (let at = 0; at < count; at += 9_999) {
    await stream.fill(pieces.subarray(at, Math.min(count, at + 9_999)));
  }
  assertSameElements(pieces, expected, "fill in pieces");
  // Segments: the same keystream, each candidate kept when below the modulus
  // of the segment being drawn; one stream in vector order.
  const segments: Segment[] = [
    { start: 0, length: 10_000, modulus: P },
    { start: 10_000, length: 20_000, modulus: P2 },
    { start: 30_000, length: 10_000, modulus: P3 },
  ];
  const bySegment = new Float64Array(count);
  let offset = 0;
  for (const { start, length, modulus } of segments) {
    for (let n = 0; n < length; offset += 8) {
      const x = keystream.getBigUint64(offset, true) & ((1n << 52n) - 1n);
      if (x < BigInt(modulus)) bySegment[start + n++] = Number(x);
    }
  }
  const segmented = await FieldStream.fromSeed(seed);
  const drawn = new Float64Array(count);
  for (const { start, length, modulus } of segments) {
    await segmented.fill(drawn.subarray(start, start + length), modulus);
  }
  assertSameElements(drawn, bySegment, "segment by segment");
  assert.ok(isSegmentedFieldVector(drawn, segments));
});

Deno.test("a seed expands to the same uniform elements on both sides", async () => {
  const seed = randomSeed();
  const a = await (await FieldStream.fromSeed(seed)).take(100_000);
  // Reading in uneven pieces yields the same sequence.
  const stream = await FieldStream.fromSeed(seed);
  const b = new Float64Array(100_000);
  for (let offset = 0; offset < b.length;) {
    const n = Math.min(7919, b.length - offset);
    await stream.fill(b.subarray(offset, offset + n));
    offset += n;
  }
  assertSameElements(b, a, "uneven pieces");
  assert.ok(isFieldVector(a));
  assert.ok(chiSquare16(a) < 37.7);
  const other = await (await FieldStream.fromSeed(randomSeed())).take(100);
  assert.notDeepEqual(other, a.subarray(0, 100));
});

Deno.test("addInto and subInto reduce exactly at the wrap points and never yield −0", () => {
  for (const m of MODULI) {
    // Pairs around the wrap: a + b = m − 1, m, m + 1, 2m − 2; and a − b = 0, −1, −(m − 1).
    const a = Float64Array.of(m - 1, m - 1, m - 1, m - 1, 0, 0, 5, 1, m - 1);
    const b = Float64Array.of(0, 1, 2, m - 1, 0, 1, 5, 0, m - 1);
    const sum = a.slice();
    addInto(sum, b, m);
    const diff = a.slice();
    subInto(diff, b, m);
    for (let i = 0; i < a.length; i++) {
      const [x, y] = [BigInt(a[i]!), BigInt(b[i]!)];
      const mBig = BigInt(m);
      assert.equal(sum[i], Number((x + y) % mBig), `(${a[i]} + ${b[i]}) mod ${m}`);
      assert.equal(diff[i], Number(((x - y) % mBig + mBig) % mBig), `(${a[i]} − ${b[i]}) mod ${m}`);
    }
    // strictEqual is Object.is: +0 and −0 differ.
    assert.equal(sum[1], 0);
    assert.equal(diff[4], 0);
    assert.equal(diff[6], 0);
    assert.ok(isFieldVector(sum, m) && isFieldVector(diff, m));
  }
});

/** A keystream of `pairs` in stretches of `size` candidates: refills fall mid-vector. */
function stretchesOf(pairs: [number, number][], size: number): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (let i = 0; i < pairs.length; i += size) out.push(stretch(...pairs.slice(i, i + size)));
  return out;
}

Deno.test("FieldStream.addInto adds (and subtracts) exactly the elements fill draws, skipping the same candidates", async () => {
  // Rejected candidates (≥ p, and in [p3, p) for the smaller moduli) between
  // valid ones, in stretches of 3 candidates, so a refill falls mid-vector.
  const pairs: [number, number][] = [
    ...TOO_LARGE.slice(0, 2),
    VALID[0]!,
    ...ABOVE_P2,
    VALID[1]!,
    ...ABOVE_P3,
    TOO_LARGE[3]!,
    VALID[2]!,
    [7, 0],
    [0xffffff70, 0xfffff], // p2 − 1: valid mod p and p2
    [0xffffff52, 0xfffff], // p3 − 1: valid everywhere
    [3, 0x12345],
  ];
  for (const m of MODULI) {
    const count = pairs.map(valueOf).filter((x) => x < m).length;
    const drawn = await FieldStream.fromKeystream(scriptedKeystream(stretchesOf(pairs, 3)))
      .take(count, m);
    const start = Float64Array.from({ length: count }, (_, i) => i % 2 ? m - 1 : randomBelow(m));
    for (const sign of [1, -1] as const) {
      const acc = start.slice();
      await FieldStream.fromKeystream(scriptedKeystream(stretchesOf(pairs, 3)))
        .addInto(acc, sign, m);
      const mBig = BigInt(m);
      for (let i = 0; i < count; i++) {
        const want = ((BigInt(start[i]!) + BigInt(sign) * BigInt(drawn[i]!)) % mBig + mBig) % mBig;
        assert.equal(acc[i], Number(want), `element ${i}, sign ${sign}, mod ${m}`);
      }
    }
  }
  // Nothing valid left after the script: the next element needs a stretch it does not have.
  const stream = FieldStream.fromKeystream(scriptedKeystream(stretchesOf(pairs, 3)));
  await stream.addInto(new Float64Array(pairs.map(valueOf).filter((x) => x < P).length), 1);
  await assert.rejects(stream.addInto(new Float64Array(1), 1), /ran out/);
  await assert.rejects(
    FieldStream.fromKeystream(scriptedKeystream([])).addInto(new Float64Array(1), 1, 1000),
    RangeError,
  );
});

Deno.test("FieldStream.addInto over a seed: the same stream as fill, across stretches and moduli", async () => {
  const seed = randomSeed();
  // 70,000 elements: more than one 256 KiB keystream stretch; three segments.
  const lengths = [30_000, 25_000, 15_000];
  const reader = await FieldStream.fromSeed(seed);
  const adder = await FieldStream.fromSeed(seed);
  const subtracter = await FieldStream.fromSeed(seed);
  for (const [k, length] of lengths.entries()) {
    const m = MODULI[k]!;
    const start = Float64Array.from({ length }, () => randomBelow(m));
    const mask = await reader.take(length, m);
    const plus = start.slice();
    await adder.addInto(plus, 1, m);
    const minus = start.slice();
    await subtracter.addInto(minus, -1, m);
    const wantPlus = start.slice();
    addInto(wantPlus, mask, m);
    const wantMinus = start.slice();
    subInto(wantMinus, mask, m);
    assertSameElements(plus, wantPlus, `+mask mod ${m}`);
    assertSameElements(minus, wantMinus, `−mask mod ${m}`);
    // And against BigInt, so a shared mistake in addInto would show.
    for (let i = 0; i < length; i += 997) {
      assert.equal(plus[i], Number((BigInt(start[i]!) + BigInt(mask[i]!)) % BigInt(m)));
    }
  }
});
