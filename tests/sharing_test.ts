import assert from "node:assert/strict";
import { addInto, P, P_BIG, randomFieldElement } from "../lib/field.ts";
import { randomSeed } from "../lib/prg.ts";
import { reconstructShamirVector, splitShamir, splitShamirVector } from "../lib/shamir.ts";
import {
  addShares,
  applyMasks,
  assertSumFits,
  type PairMask,
  RangeCheckError,
  splitIntoShares,
} from "../lib/sharing.ts";

const DEFAULT_MAX = 2 ** 30;

/** A uniform integer in [0, bound] from Web Crypto, by rejection. */
function randomUpTo(bound: number): number {
  if (bound === 0) return 0;
  const bits = Math.ceil(Math.log2(bound + 1));
  for (;;) {
    const x = randomFieldElement() % 2 ** bits;
    if (x <= bound) return x;
  }
}

/** Runs one round of plain additive sharing, in memory. */
function simulateRound(values: number[]): number {
  const n = values.length;
  const held: number[][] = Array.from({ length: n }, () => []);
  for (const value of values) splitIntoShares(value, n).forEach((share, j) => held[j]!.push(share));
  return addShares(held.map((shares) => addShares(shares)));
}

Deno.test("10,000 random rounds with n from 2 to 20 reconstruct the exact sum", () => {
  for (let round = 0; round < 10_000; round++) {
    const n = 2 + (round % 19);
    // Alternate the default range and the largest R the check allows, so
    // sums come right up to p − 1.
    const max = round % 2 === 0 ? DEFAULT_MAX : Math.floor((P - 1) / n);
    assertSumFits(n, BigInt(max));
    const values = Array.from({ length: n }, (_, i) => {
      const pick = (round + i) % 7;
      return pick === 0 ? 0 : pick === 1 ? max : randomUpTo(max);
    });
    const expected = values.reduce((a, b) => a + BigInt(b), 0n);
    assert.ok(expected < P_BIG);
    assert.equal(BigInt(simulateRound(values)), expected, `round ${round}, n = ${n}`);
  }
});

Deno.test("edge values 0, R and p − 1 survive sharing", async () => {
  for (const n of [2, 3, 20]) {
    for (const value of [0, DEFAULT_MAX, P - 1]) {
      assert.equal(addShares(splitIntoShares(value, n)), value);
      const t = Math.floor(n / 2) + 1;
      const shares = await splitShamir(value, n, t);
      const points = shares.map((y, i) => ({ x: i + 1, y: Float64Array.of(y) }));
      assert.equal(reconstructShamirVector(points.slice(n - t), t)[0], value);
    }
  }
  const n = 7;
  const max = Math.floor((P - 1) / n);
  assert.equal(BigInt(simulateRound(new Array(n).fill(max))), BigInt(max) * BigInt(n));
});

Deno.test("pairwise seeded masks cancel in the total, for vectors", async () => {
  for (const n of [2, 3, 7]) {
    const length = 5000;
    const inputs = Array.from(
      { length: n },
      () => Float64Array.from({ length }, () => randomUpTo(DEFAULT_MAX)),
    );
    const masks: PairMask[][] = Array.from({ length: n }, () => []);
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const seed = randomSeed();
        masks[i]!.push({ seed, sign: 1 });
        masks[j]!.push({ seed, sign: -1 });
      }
    }
    const total = new Float64Array(length);
    for (let i = 0; i < n; i++) {
      const partial = inputs[i]!.slice();
      await applyMasks(partial, masks[i]!);
      // A partial sum is masked: it is not its input.
      assert.notDeepEqual(partial, inputs[i]);
      addInto(total, partial);
    }
    const expected = new Float64Array(length);
    for (const v of inputs) addInto(expected, v);
    assert.deepEqual(total, expected);
  }
});

Deno.test("Shamir vectors: any T of n shares reconstruct; a corrupted extra share is caught", async () => {
  const values = Float64Array.from({ length: 3000 }, randomFieldElement);
  for (const [n, t] of [[3, 2], [5, 3], [10, 6], [10, 10]] as const) {
    const shares = await splitShamirVector(values, n, t);
    const points = shares.map((y, i) => ({ x: i + 1, y }));
    const shuffled = [...points].sort(() => Math.random() - 0.5);
    assert.deepEqual(reconstructShamirVector(shuffled.slice(0, t), t), values);
    assert.deepEqual(reconstructShamirVector(points, t), values, "all points agree");
    if (n > t) {
      const bad = points.map((p) => ({ x: p.x, y: p.y.slice() }));
      bad[n - 1]!.y[17] = (bad[n - 1]!.y[17]! + 1) % P;
      assert.throws(() => reconstructShamirVector(bad, t), /inconsistent/);
    }
    assert.throws(() => reconstructShamirVector(points.slice(0, t - 1), t), RangeError);
  }
});

Deno.test("shares other than the last are uniform and independent of the value", () => {
  const bucketsOf = (value: number) => {
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 8000; i++) counts[Math.floor((splitIntoShares(value, 3)[0]! / P) * 16)]!++;
    return counts;
  };
  for (const counts of [bucketsOf(0), bucketsOf(P - 1)]) {
    const chi2 = counts.reduce((acc, x) => acc + (x - 500) ** 2 / 500, 0);
    assert.ok(chi2 < 37.7, `chi-square ${chi2.toFixed(1)}`);
  }
});

Deno.test("a round whose n·R reaches p is refused", () => {
  assert.throws(() => assertSumFits(3, P_BIG / 3n + 1n), RangeCheckError);
  assert.throws(() => assertSumFits(2, P_BIG - 1n), /could wrap/);
  assert.throws(() => assertSumFits(1, 10n), /at least 2 participants/);
  assertSumFits(3, (P_BIG - 1n) / 3n);
  assertSumFits(200, BigInt(DEFAULT_MAX));
});

Deno.test("splitIntoShares refuses values outside the field", () => {
  assert.throws(() => splitIntoShares(P, 3), RangeError);
  assert.throws(() => splitIntoShares(-1, 3), RangeError);
  assert.throws(() => splitIntoShares(0.5, 3), RangeError);
  assert.throws(() => addShares([P]), RangeError);
});
