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
  assert.deepEqual(diff, a);
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

Deno.test("rejection sampling: candidates at or above p are rejected, not reduced", () => {
  // The 52 low bits of (high, low) words; values ≥ p exist and must be skipped.
  assert.equal(candidate(0xffffffff, 0xfffff), 2 ** 52 - 1);
  assert.ok(candidate(0xffffffff, 0xfffff) >= P);
  assert.equal(candidate(5, 0xfff00001), 2 ** 32 + 5, "bits above 52 are dropped");
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
  assert.deepEqual(a, b);
  assert.ok(isFieldVector(a));
  assert.ok(chiSquare16(a) < 37.7);
  const other = await (await FieldStream.fromSeed(randomSeed())).take(100);
  assert.notDeepEqual(other, a.subarray(0, 100));
});
