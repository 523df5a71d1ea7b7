import assert from "node:assert/strict";
import {
  add,
  addInto,
  candidate,
  inv,
  isFieldElement,
  isFieldVector,
  mul,
  mulSmall,
  P,
  P_BIG,
  randomFieldElement,
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

Deno.test("p is 2^52 − 47, the largest prime below 2^52, and passes Miller–Rabin", () => {
  assert.equal(P, 4503599627370449);
  assert.equal(P_BIG, (1n << 52n) - 47n);
  const powMod = (b: bigint, e: bigint, m: bigint) => {
    let r = 1n;
    b %= m;
    for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
    return r;
  };
  const isPrime = (n: bigint) => {
    let d = n - 1n;
    let s = 0;
    while (d % 2n === 0n) {
      d /= 2n;
      s++;
    }
    for (const a of [2n, 3n, 5n, 7n, 11n, 13n, 17n, 19n, 23n, 29n, 31n, 37n]) {
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
  };
  assert.ok(isPrime(P_BIG));
  for (let c = 1n; c < 47n; c += 2n) {
    assert.ok(!isPrime((1n << 52n) - c), `2^52 − ${c} is composite`);
  }
  // The reason for p < 2^52: a sum of two elements is exact in a double.
  assert.ok(2 * (P - 1) < Number.MAX_SAFE_INTEGER);
});

Deno.test("add, sub, mulSmall, mul and inv agree with BigInt arithmetic", () => {
  const edges = [0, 1, 2, 46, 47, P - 2, P - 1, Math.floor(P / 2), 2 ** 26, 2 ** 26 - 1, 2 ** 51];
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

/** Chi-square over 16 buckets; 37.7 is the 0.999 quantile (15 degrees of freedom). */
function chiSquare16(values: Iterable<number>): number {
  const buckets = new Array<number>(16).fill(0);
  let total = 0;
  for (const x of values) {
    buckets[Math.floor((x / P) * 16)]!++;
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
