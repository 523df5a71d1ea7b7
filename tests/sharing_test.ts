import assert from "node:assert/strict";
import { DEFAULT_MAX, P, randomFieldElement } from "../lib/field.ts";
import { addShares, assertSumFits, RangeCheckError, splitIntoShares } from "../lib/sharing.ts";

/** A uniform integer in [0, bound] from Web Crypto, by rejection. */
function randomUpTo(bound: bigint): bigint {
  if (bound === 0n) return 0n;
  const bits = bound.toString(2).length;
  const mask = (1n << BigInt(bits)) - 1n;
  for (;;) {
    const x = randomFieldElement() & mask;
    if (x <= bound) return x;
  }
}

/** Runs one round exactly as the peers and hospital do, in memory. */
function simulateRound(values: bigint[]): bigint {
  const n = values.length;
  const held: bigint[][] = Array.from({ length: n }, () => []);
  for (const value of values) {
    splitIntoShares(value, n).forEach((share, j) => held[j]!.push(share));
  }
  const partials = held.map((shares) => addShares(shares));
  return addShares(partials);
}

Deno.test("10,000 random rounds with n from 2 to 20 reconstruct the exact sum", () => {
  for (let round = 0; round < 10_000; round++) {
    const n = 2 + (round % 19);
    // Alternate between the default range and the largest R the check allows
    // for this n, so sums come right up to p − 1.
    const max = round % 2 === 0 ? DEFAULT_MAX : (P - 1n) / BigInt(n);
    assertSumFits(n, max);
    const values = Array.from({ length: n }, (_, i) => {
      const pick = (round + i) % 7;
      return pick === 0 ? 0n : pick === 1 ? max : randomUpTo(max);
    });
    const expected = values.reduce((a, b) => a + b, 0n);
    assert.ok(expected < P);
    assert.equal(simulateRound(values), expected, `round ${round}, n = ${n}`);
  }
});

Deno.test("edge values 0, R and p − 1 survive sharing", () => {
  for (const n of [2, 3, 20]) {
    for (const value of [0n, DEFAULT_MAX, P - 1n]) {
      assert.equal(addShares(splitIntoShares(value, n)), value);
    }
  }
  // All inputs at the largest R the check allows: the sum is p − 1 or just below.
  const n = 7;
  const max = (P - 1n) / BigInt(n);
  assert.equal(simulateRound(new Array(n).fill(max)), max * BigInt(n));
});

Deno.test("shares other than the last are uniform and independent of the value", () => {
  // The first share of 0 and the first share of p − 1 are both uniform draws:
  // their top 4 bits should be spread alike. A biased split would show here.
  const counts = [new Array<number>(16).fill(0), new Array<number>(16).fill(0)];
  [0n, P - 1n].forEach((value, k) => {
    for (let i = 0; i < 8000; i++) counts[k]![Number((splitIntoShares(value, 3)[0]! * 16n) / P)]!++;
  });
  for (const c of counts) {
    const chi2 = c.reduce((acc, x) => acc + (x - 500) ** 2 / 500, 0);
    assert.ok(chi2 < 37.7, `chi-square ${chi2.toFixed(1)}`);
  }
});

Deno.test("a round whose n·R reaches p is refused", () => {
  assert.throws(() => assertSumFits(3, P / 3n + 1n), RangeCheckError);
  assert.throws(() => assertSumFits(2, P - 1n), /could wrap/);
  assert.throws(() => assertSumFits(1, 10n), /at least 2 participants/);
  assertSumFits(3, (P - 1n) / 3n);
  assertSumFits(200, DEFAULT_MAX);
});

Deno.test("splitIntoShares refuses values outside the field", () => {
  assert.throws(() => splitIntoShares(P, 3), RangeError);
  assert.throws(() => splitIntoShares(-1n, 3), RangeError);
  assert.throws(() => addShares([P]), RangeError);
});
