import assert from "node:assert/strict";
import { add, DEFAULT_MAX, isFieldElement, mod, P, randomFieldElement, sub } from "../lib/field.ts";

Deno.test("p is 2^61 − 1 and passes a Miller–Rabin test", () => {
  assert.equal(P, 2305843009213693951n);
  const powMod = (b: bigint, e: bigint, m: bigint) => {
    let r = 1n;
    b %= m;
    for (; e > 0n; e >>= 1n, b = (b * b) % m) if (e & 1n) r = (r * b) % m;
    return r;
  };
  let d = P - 1n;
  let s = 0;
  while (d % 2n === 0n) {
    d /= 2n;
    s++;
  }
  for (const a of [2n, 3n, 5n, 7n, 11n, 13n, 17n, 19n, 23n, 29n, 31n, 37n]) {
    let x = powMod(a, d, P);
    if (x === 1n || x === P - 1n) continue;
    let composite = true;
    for (let i = 1; i < s && composite; i++) {
      x = (x * x) % P;
      if (x === P - 1n) composite = false;
    }
    assert.equal(composite, false, `witness ${a} says p is composite`);
  }
});

Deno.test("add, sub and mod agree with exact arithmetic at the edges", () => {
  const edges = [0n, 1n, 2n, P - 2n, P - 1n, P / 2n, DEFAULT_MAX];
  for (const a of edges) {
    for (const b of edges) {
      assert.equal(add(a, b), (a + b) % P);
      assert.equal(sub(a, b), (((a - b) % P) + P) % P);
      assert.ok(isFieldElement(add(a, b)) && isFieldElement(sub(a, b)));
    }
  }
  assert.equal(mod(-1n), P - 1n);
  assert.equal(mod(P), 0n);
  assert.equal(isFieldElement(P), false);
  assert.equal(isFieldElement(-1n), false);
});

Deno.test("randomFieldElement stays in [0, p) and is spread evenly", () => {
  const draws = 20_000;
  const buckets = new Array<number>(16).fill(0);
  for (let i = 0; i < draws; i++) {
    const x = randomFieldElement();
    assert.ok(isFieldElement(x));
    buckets[Number((x * 16n) / P)]!++;
  }
  // Chi-square with 15 degrees of freedom: 37.7 is the 0.999 quantile, so an
  // honest generator fails this about once in a thousand runs.
  const expected = draws / 16;
  const chi2 = buckets.reduce((acc, n) => acc + (n - expected) ** 2 / expected, 0);
  assert.ok(chi2 < 37.7, `chi-square ${chi2.toFixed(1)} over ${buckets.join(",")}`);
});
