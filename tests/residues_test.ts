/**
 * Residues: a component whose bound does not fit one field element is carried
 * as its residues modulo p1, p2 (and p3). Layout, encode, a sum masked
 * modulo each segment's modulus, and decode must give the exact statistic
 * (checked against BigInt arithmetic); the one-element fast path must be used
 * exactly when n·B < p1 and be today's encoding; the summed vector must be a
 * function of the totals alone (what limbs broke); and what cannot be
 * represented is refused by the hospital before it listens. Ends with
 * real-process rounds whose sum of squares needs residues, n-of-n with a
 * verified v2 receipt and threshold (which now carries residues too).
 * Residue rounds through the protocol core, and the hospital's per-segment
 * checks, are in tests/protocol/residues_test.ts and guards_test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseScaled } from "../lib/decimal.ts";
import {
  addInto,
  addSegmentsInto,
  isSegmentedFieldVector,
  MODULI,
  MODULI_BIG,
  P,
  P2,
  P3,
  P_BIG,
  randomFieldElement,
  subInto,
} from "../lib/field.ts";
import { applyMask } from "../lib/crypto/masks.ts";
import { FieldStream, randomSeed } from "../lib/prg.ts";
import {
  assertLayoutFits,
  type Component,
  decodeResult,
  decodeTotals,
  dimension,
  elementBound,
  encodeInput,
  hasResidues,
  type Layout,
  parseQuery,
  type Query,
  QueryError,
  residueCount,
  type ScaledInput,
  vectorLayout,
} from "../lib/query.ts";
import { parseReceipt, verifyStarReceipt } from "../lib/receipt.ts";
import { makePki, mulberry32, removeDir } from "./helpers.ts";
import { assertRefusedBeforeListening, hospitalOutcome, runRound } from "./scenarios.ts";

/** A uniform whole number in [0, limit], limit < 2^53, from 64 seeded bits. */
function uniformUpTo(random: () => number, limit: bigint): number {
  const bits = (BigInt(Math.floor(random() * 2 ** 32)) << 32n) |
    BigInt(Math.floor(random() * 2 ** 32));
  return Number(bits % (limit + 1n));
}

/** R's bit length: any from 1 to 51, but often large, so that many rounds need residues. */
const bits = (random: () => number) =>
  random() < 0.5 ? 1 + Math.floor(random() * 51) : 40 + Math.floor(random() * 12);

const inputOf = (values: number[] | Float64Array): ScaledInput => ({
  values: Float64Array.from(values),
  where: (i) => `line ${i + 1}`,
});

/** p1·…·pk. */
const product = (k: number) => MODULI_BIG.slice(0, k).reduce((a, b) => a * b, 1n);

/** Each component's exact total over all peers, by plain BigInt arithmetic on the rows. */
function expectedTotals(query: Query, peers: number[][]): bigint[] {
  if (query.kind === "vector") {
    return Array.from(
      { length: query.dimension },
      (_, i) => peers.reduce((a, rows) => a + BigInt(rows[i]!), 0n),
    );
  }
  if (query.kind === "histogram") {
    const counts = new Array<bigint>(query.bins).fill(0n);
    const width = query.high - query.low;
    for (const v of peers.flat().map(BigInt)) {
      const bin = v === query.high
        ? query.bins - 1
        : Number(((v - query.low) * BigInt(query.bins)) / width);
      counts[bin]! += 1n;
    }
    return counts;
  }
  const all = peers.flat().map(BigInt);
  const sum = all.reduce((a, b) => a + b, 0n);
  const squares = all.reduce((a, b) => a + b * b, 0n);
  const count = BigInt(all.length);
  switch (query.kind) {
    case "sum":
      return [sum];
    case "count":
      return [count];
    case "mean":
      return [sum, count];
    case "variance":
      return [sum, squares, count];
  }
}

/**
 * The vector the rules of the layout comment give for these totals, computed
 * here from the rules alone: per component, each total itself when k = 1,
 * else all totals mod p1, then all mod p2, then mod p3.
 */
function residuesOfTotals(layout: Layout, totals: bigint[]): Float64Array {
  const out: number[] = [];
  let t = 0;
  for (const { count, residues } of layout.components) {
    const mine = totals.slice(t, t + count);
    t += count;
    if (residues === 1) out.push(...mine.map(Number));
    else {for (let j = 0; j < residues; j++) {
        out.push(...mine.map((v) => Number(v % MODULI_BIG[j]!)));
      }}
  }
  return Float64Array.from(out);
}

/** A uniform element modulo m (one of the moduli), by rejection from a uniform element of GF(p1). */
function randomElementMod(m: number): number {
  for (;;) {
    const x = randomFieldElement();
    if (x < m) return x;
  }
}

/**
 * Sums encoded vectors as masked inputs would be summed: each vector plus a
 * random mask drawn modulo its segment's modulus, the masks cancelling
 * modulo each modulus, added segment by segment.
 */
function maskedSum(vectors: Float64Array[], layout: Layout): Float64Array {
  const total = new Float64Array(layout.dimension);
  const owed = new Float64Array(layout.dimension);
  for (const [i, vector] of vectors.entries()) {
    const masked = Float64Array.from(vector);
    for (const { start, length, modulus } of layout.segments) {
      const part = masked.subarray(start, start + length);
      const due = owed.subarray(start, start + length);
      if (i < vectors.length - 1) {
        const mask = Float64Array.from({ length }, () => randomElementMod(modulus));
        addInto(part, mask, modulus);
        addInto(due, mask, modulus);
      } else {
        subInto(part, due, modulus);
      }
    }
    addSegmentsInto(total, masked, layout.segments);
  }
  return total;
}

/** The population variance count·Σx² − (Σx)² over count², to 1 part in 10^15, by BigInt. */
function exactVariance(sum: bigint, squares: bigint, count: bigint): number {
  const numerator = count * squares - sum * sum;
  const scaled = (numerator * 10n ** 30n) / (count * count);
  return Number(scaled) / 1e30;
}

function close(actual: unknown, expected: number, what: string) {
  assert.equal(typeof actual, "number", what);
  assert.ok(
    Math.abs((actual as number) - expected) <= 1e-12 * Math.max(1, Math.abs(expected)),
    `${what}: ${actual} vs ${expected}`,
  );
}

/** An exact integer as decodeResult spells it: a number when safe, else decimal text. */
const asJson = (value: bigint) =>
  value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();

Deno.test("k is 1 exactly when n·B < p1, else the fewest residues whose product exceeds n·B", () => {
  const p12 = product(2);
  const p123 = product(3);
  const cases: [bigint, number][] = [
    [0n, 1],
    [P_BIG - 1n, 1],
    [P_BIG, 2],
    [p12 - 1n, 2],
    [p12, 3],
    [p123 - 1n, 3],
  ];
  for (const [reach, k] of cases) assert.equal(residueCount(1, reach), k, `n·B = ${reach}`);
  assert.throws(() => residueCount(1, p123), /cannot be represented/);
  // The same edges reached through n: vector:D with R = p1 − 1 (B = R) takes
  // 2 residues up to n = p2 (p2·(p1 − 1) < p1·p2) and 3 from n = p2 + 1.
  const vector = parseQuery("vector:2", 0);
  const terms = (participants: number) => ({ max: P_BIG - 1n, maxRows: 1, participants });
  assert.equal(vectorLayout(vector, terms(1)).components[0]!.residues, 1);
  assert.equal(vectorLayout(vector, terms(2)).components[0]!.residues, 2);
  assert.equal(vectorLayout(vector, terms(P2)).components[0]!.residues, 2);
  assert.equal(vectorLayout(vector, terms(P2 + 1)).components[0]!.residues, 3);

  const random = mulberry32(5);
  for (let trial = 0; trial < 300; trial++) {
    const n = 2 + Math.floor(random() * 2 ** (1 + random() * 20));
    const maxRows = 1 + Math.floor(random() * 2 ** (random() * 31));
    // Right at the edge for the sum: n·rows·R ≤ p − 1, and one more R is ≥ p.
    const edge = (P_BIG - 1n) / (BigInt(n) * BigInt(maxRows));
    for (const max of [edge, edge + 1n, BigInt(uniformUpTo(random, P_BIG - 1n))]) {
      if (max >= P_BIG) continue;
      for (const spec of ["sum", "mean", "variance", "count", "histogram:0:9:3", "vector:4"]) {
        const query = parseQuery(spec, 0);
        const layout = vectorLayout(query, { max, maxRows, participants: n });
        for (const c of layout.components) {
          const reach = BigInt(n) * c.bound;
          const k = [1, 2, 3].find((k) => reach < product(k))!;
          assert.equal(c.residues, k, `${spec} n=${n} ${c.label}`);
        }
        if (spec === "sum" && max === edge) assert.equal(layout.components[0]!.residues, 1);
        if (spec === "sum" && max === edge + 1n) assert.equal(layout.components[0]!.residues, 2);
        if (!hasResidues(layout)) {
          assert.equal(layout.dimension, dimension(query));
          assert.deepEqual(layout.segments, [{ start: 0, length: layout.dimension, modulus: P }]);
        }
      }
    }
  }
});

Deno.test("the fast path is today's encoding byte for byte", () => {
  // [Σx, Σx², rows], and vector:D hands back the input's own array.
  const variance = parseQuery("variance", 0);
  const layout = vectorLayout(variance, { max: 1000n, maxRows: 10, participants: 3 });
  const encoded = encodeInput(variance, inputOf([3, 1000, 0, 7]), { scale: 0, layout });
  assert.deepEqual(Array.from(encoded), [1010, 9 + 1_000_000 + 49, 4]);
  assert.deepEqual(layout.components.map((c) => [c.residues, c.start]), [[1, 0], [1, 1], [1, 2]]);
  const vector = parseQuery("vector:3", 0);
  const input = inputOf([5, 0, 9]);
  const vectorLayout3 = vectorLayout(vector, { max: 9n, maxRows: 1, participants: 3 });
  assert.equal(encodeInput(vector, input, { scale: 0, layout: vectorLayout3 }), input.values);
  const histogram = parseQuery("histogram:0:10:2", 0);
  const h = vectorLayout(histogram, { max: 0n, maxRows: 4096, participants: 200 });
  assert.deepEqual(
    Array.from(encodeInput(histogram, inputOf([0, 4, 5, 10, 10]), { scale: 0, layout: h })),
    [2, 3],
  );
  // Per-element bounds on the fast path are the component bounds.
  assert.deepEqual([0, 1, 2].map((i) => elementBound(layout, i)), [10_000n, 10_000_000n, 10n]);
});

Deno.test("residue layout: residues mod p1 of a component's totals, then mod p2, then mod p3, as segments", () => {
  // The issue's case: only the sum of squares (10 × 10^5 × 10^12 = 10^18 ≥ p1) takes residues.
  const variance = parseQuery("variance", 0);
  const layout = vectorLayout(variance, { max: 1_000_000n, maxRows: 100_000, participants: 10 });
  assert.deepEqual(layout.components.map((c) => [c.residues, c.start]), [[1, 0], [2, 1], [1, 3]]);
  assert.equal(layout.dimension, 4);
  assert.deepEqual(layout.segments, [
    { start: 0, length: 2, modulus: P },
    { start: 2, length: 1, modulus: P2 },
    { start: 3, length: 1, modulus: P },
  ]);
  const rows = [1_000_000, 999_999, 3];
  const squares = rows.reduce((a, x) => a + BigInt(x) ** 2n, 0n);
  assert.deepEqual(
    Array.from(encodeInput(variance, inputOf(rows), { scale: 0, layout })),
    [2_000_002, Number(squares % P_BIG), Number(squares % MODULI_BIG[1]!), 3],
  );
  assert.deepEqual(
    [0, 1, 2, 3].map((i) => elementBound(layout, i)),
    [10n ** 11n, P_BIG - 1n, MODULI_BIG[1]! - 1n, 100_000n],
  );
  // vector:3 with 3 residues: the three elements mod p1, then mod p2, then mod p3.
  const vector = parseQuery("vector:3", 0);
  const v = vectorLayout(vector, { max: P_BIG - 1n, maxRows: 1, participants: P2 + 1 });
  assert.deepEqual(v.segments, [
    { start: 0, length: 3, modulus: P },
    { start: 3, length: 3, modulus: P2 },
    { start: 6, length: 3, modulus: P3 },
  ]);
  const x = [P - 1, P2 + 5, P3 - 1];
  assert.deepEqual(
    Array.from(encodeInput(vector, inputOf(x), { scale: 0, layout: v })),
    [P - 1, P2 + 5, P3 - 1, 95, 5, P3 - 1, 125, 35, P3 - 1],
  );
  assert.deepEqual([3, 8].map((i) => elementBound(v, i)), [MODULI_BIG[1]! - 1n, BigInt(P3) - 1n]);
  assert.throws(() => elementBound(v, 9), RangeError);
  // Consecutive segments with one modulus are one: mean over 2 peers of
  // R = p1 − 1 with 2^20 rows: [Σx mod p1, Σx mod p2, rows] → p1, p2, p1.
  const mean = vectorLayout(parseQuery("mean", 0), {
    max: P_BIG - 1n,
    maxRows: 2 ** 20,
    participants: 2,
  });
  assert.deepEqual(mean.segments.map((s) => [s.start, s.length, s.modulus]), [
    [0, 1, P],
    [1, 1, P2],
    [2, 1, P],
  ]);
});

Deno.test("layout, encode, sum masked per segment and decode give the exact totals for random inputs", () => {
  const random = mulberry32(2024);
  const specs = ["sum", "count", "mean", "variance", "histogram:0:1000:7", "vector:5"];
  let withResidues = 0;
  for (let trial = 0; trial < 400; trial++) {
    const spec = specs[trial % specs.length]!;
    const query = parseQuery(spec, 0);
    const n = 1 + Math.floor(random() * 12);
    const maxRows = 1 + Math.floor(random() * 40);
    const max = spec.startsWith("histogram")
      ? 0n
      : BigInt(uniformUpTo(random, 2n ** BigInt(bits(random)) - 1n));
    const layout = vectorLayout(query, { max, maxRows, participants: n });
    if (hasResidues(layout)) withResidues++;
    const value = () => {
      if (spec.startsWith("histogram")) return Math.floor(random() * 1001);
      const r = random();
      return r < 0.2 ? Number(max) : r < 0.3 ? 0 : uniformUpTo(random, max);
    };
    const peers = Array.from({ length: n }, () =>
      Array.from(
        {
          length: query.kind === "vector" ? query.dimension : Math.floor(random() * (maxRows + 1)),
        },
        value,
      ));
    const vectors = peers.map((rows) => encodeInput(query, inputOf(rows), { scale: 0, layout }));
    for (const v of vectors) {
      assert.equal(v.length, layout.dimension);
      assert.ok(isSegmentedFieldVector(v, layout.segments), `${spec}: not canonical`);
      v.forEach((x, i) => assert.ok(BigInt(x) <= elementBound(layout, i), `${spec} element ${i}`));
    }
    const summed = maskedSum(vectors, layout);
    const expected = expectedTotals(query, peers);
    // The hospital's whole view of the sum is the residues of the totals.
    assert.deepEqual(Array.from(summed), Array.from(residuesOfTotals(layout, expected)), spec);
    assert.deepEqual(decodeTotals(layout, summed), expected, `${spec}, n=${n}, R=${max}`);
    const result = decodeResult(query, summed, 0, layout);
    if (query.kind === "variance" && expected[2]! > 0n) {
      close(result["variance"], exactVariance(expected[0]!, expected[1]!, expected[2]!), spec);
    }
    if (query.kind === "vector") assert.deepEqual(result["vector"], expected.map(asJson));
    if (query.kind === "histogram") assert.deepEqual(result["histogram"], expected.map(asJson));
    if ("sum" in result) assert.equal(result["sum"], asJson(expected[0]!));
  }
  assert.ok(withResidues >= 80, `only ${withResidues} trials needed residues`);
});

/** n copies of one encoded vector summed: n·e modulo each element's segment modulus. */
function sumOfCopies(encoded: Float64Array, n: bigint, layout: Layout): Float64Array {
  const out = new Float64Array(encoded.length);
  for (const { start, length, modulus } of layout.segments) {
    for (let i = start; i < start + length; i++) {
      out[i] = Number((BigInt(encoded[i]!) * n) % BigInt(modulus));
    }
  }
  return out;
}

Deno.test("the extremes: every value R = p1 − 1, maxRows rows, up to the largest n three residues allow", () => {
  const variance = parseQuery("variance", 0);
  const max = P_BIG - 1n; // the largest R
  const maxRows = 1 << 16;
  const rows = new Array<number>(maxRows).fill(P - 1);
  const exact = (n: bigint): bigint[] => [
    n * BigInt(maxRows) * max,
    n * BigInt(maxRows) * max * max,
    n * BigInt(maxRows),
  ];
  // 200 peers, the old protocol's most, summed for real with masks:
  // 200·2^16·(p1 − 1) needs 2 residues, 200·2^16·(p1 − 1)² (128 bits) needs 3.
  const layout200 = vectorLayout(variance, { max, maxRows, participants: 200 });
  assert.deepEqual(layout200.components.map((c) => c.residues), [2, 3, 1]);
  assert.equal(layout200.dimension, 6);
  const one = encodeInput(variance, inputOf(rows), { scale: 0, layout: layout200 });
  const sum200 = maskedSum(Array.from({ length: 200 }, () => one), layout200);
  const totals = decodeTotals(layout200, sum200);
  assert.deepEqual(totals, exact(200n));
  const result = decodeResult(variance, sum200, 0, layout200);
  assert.equal(result["sum"], totals[0]!.toString(), "too large for a JSON number: decimal text");
  assert.equal(result["variance"], 0);
  // The largest n for which n × 2^16·(p1 − 1)² is below p1·p2·p3: every
  // peer has the same input, so the sum of n of them is n·e per segment.
  const squaresBound = BigInt(maxRows) * max * max;
  const largest = (product(3) - 1n) / squaresBound;
  assert.ok(largest < BigInt(Number.MAX_SAFE_INTEGER));
  const layout = vectorLayout(variance, { max, maxRows, participants: Number(largest) });
  assert.equal(layout.components[1]!.residues, 3);
  const encoded = encodeInput(variance, inputOf(rows), { scale: 0, layout });
  assert.deepEqual(decodeTotals(layout, sumOfCopies(encoded, largest, layout)), exact(largest));
  assert.throws(
    () => vectorLayout(variance, { max, maxRows, participants: Number(largest) + 1 }),
    /rows × R² \(the sum of squares\) = \d+ cannot be represented/,
  );
  // A vector with R = p1 − 1 at n = p2 + 1: three residues, exact.
  const vector = parseQuery("vector:2", 0);
  const n = P2 + 1;
  const v = vectorLayout(vector, { max, maxRows: 1, participants: n });
  const e = encodeInput(vector, inputOf([P - 1, 1]), { scale: 0, layout: v });
  assert.deepEqual(decodeTotals(v, sumOfCopies(e, BigInt(n), v)), [
    BigInt(n) * max,
    BigInt(n),
  ]);
});

Deno.test("the issue's case: variance of values up to 10^6 over 10^5 rows at 10 sites, masked with pairwise seeds", async () => {
  const variance = parseQuery("variance", 0);
  const layout = vectorLayout(variance, { max: 1_000_000n, maxRows: 100_000, participants: 10 });
  assert.deepEqual(layout.components.map((c) => c.residues), [1, 2, 1]);
  const random = mulberry32(8);
  const sites = Array.from({ length: 10 }, (_, site) =>
    Array.from({ length: 100_000 }, () =>
      // One site at the bound throughout; the rest spread over [0, 10^6].
      site === 0 ? 1_000_000 : Math.floor(random() * 1_000_001)));
  const vectors = sites.map((rows) => encodeInput(variance, inputOf(rows), { scale: 0, layout }));
  // The real masking: for each pair i < j a seed; i adds its expansion, j
  // subtracts it, each segment drawn and reduced modulo its own modulus.
  const seeds = new Map<string, Uint8Array>();
  for (let i = 0; i < 10; i++) {
    for (let j = i + 1; j < 10; j++) seeds.set(`${i},${j}`, randomSeed());
  }
  type PairMask = { seed: Uint8Array; sign: 1 | -1 };
  const masksOf = (i: number): PairMask[] =>
    [...seeds].flatMap(([pair, seed]): PairMask[] => {
      const [a, b] = pair.split(",").map(Number);
      return a === i ? [{ seed, sign: 1 as const }] : b === i ? [{ seed, sign: -1 as const }] : [];
    });
  const masked = vectors.map((v) => Float64Array.from(v));
  for (const [i, v] of masked.entries()) {
    for (const { seed, sign } of masksOf(i)) await applyMask(v, seed, sign, layout.segments);
  }
  // Site 0's masked vector, recomputed from the rule alone: x + Σ_j PRG(s_0j)
  // with each seed's stream read segment by segment, each element the next
  // candidate below its segment's modulus, summed in BigInt mod that modulus.
  const expected0 = Array.from(vectors[0]!, BigInt);
  for (const { seed } of masksOf(0)) {
    const stream = await FieldStream.fromSeed(seed);
    for (const { start, length, modulus } of layout.segments) {
      const draw = await stream.take(length, modulus);
      for (let k = 0; k < length; k++) {
        expected0[start + k] = (expected0[start + k]! + BigInt(draw[k]!)) % BigInt(modulus);
      }
    }
  }
  assert.deepEqual(Array.from(masked[0]!, BigInt), expected0, "masks drawn mod each segment");
  for (const v of masked) assert.ok(isSegmentedFieldVector(v, layout.segments));
  const summed = new Float64Array(layout.dimension);
  for (const v of masked) addSegmentsInto(summed, v, layout.segments);
  const [sum, squares, count] = expectedTotals(variance, sites) as [bigint, bigint, bigint];
  assert.ok(squares >= P_BIG, "the sum of squares is beyond p1, so one element would wrap");
  // The masks cancel: the masked sum is the unmasked one.
  const unmasked = new Float64Array(layout.dimension);
  for (const v of vectors) addSegmentsInto(unmasked, v, layout.segments);
  assert.deepEqual(Array.from(summed), Array.from(unmasked));
  assert.deepEqual(decodeTotals(layout, summed), [sum, squares, count]);
  const result = decodeResult(variance, summed, 0, layout);
  assert.equal(result["sum"], Number(sum));
  assert.equal(result["count"], 1_000_000);
  close(result["variance"], exactVariance(sum, squares, count), "variance");
});

Deno.test("the hospital learns only the totals: inputs with equal totals but different digits sum to the same vector", () => {
  // 3 peers, a sum with R = 2^51: 3·(1000·2^51) ≥ p1, so the total takes residues.
  const sum = parseQuery("sum", 0);
  const layout = vectorLayout(sum, { max: 2n ** 51n, maxRows: 1000, participants: 3 });
  assert.equal(layout.components[0]!.residues, 2);
  // Two input sets with the same total 2^51 + 2^50 but different splits:
  // A = (2^51, 2^50, 0), B = (2^50 + 2^49, 2^50 + 2^49, 0).
  const a = [[2 ** 51], [2 ** 50], []];
  const b = [[2 ** 50 + 2 ** 49], [2 ** 50 + 2 ** 49], []];
  const encode = (sets: number[][]) =>
    sets.map((rows) => encodeInput(sum, inputOf(rows), { scale: 0, layout }));
  const [sumA, sumB] = [maskedSum(encode(a), layout), maskedSum(encode(b), layout)];
  assert.notDeepEqual(encode(a)[0], encode(b)[0], "the peers' own vectors differ");
  assert.deepEqual(Array.from(sumA), Array.from(sumB), "the summed vectors are identical");
  assert.deepEqual(decodeTotals(layout, sumA), [2n ** 51n + 2n ** 50n]);
  // Why limbs failed this: with 3 peers limbs were w = 50 bits wide, and the
  // hospital saw each limb's sum: Σ (V_i mod 2^50) is 0 for A (2^51 and 2^50
  // are multiples of 2^50) but 2·2^49 = 2^50 for B, and Σ ⌊V_i / 2^50⌋ is
  // 2 + 1 = 3 for A but 1 + 1 = 2 for B. So the limb sums told A from B,
  // whose totals are equal. Residues are the total mod p1 and mod p2: a
  // function of the total alone.
  const limbSums = (sets: number[][]) => [
    sets.flat().reduce((s, v) => s + (v % 2 ** 50), 0),
    sets.flat().reduce((s, v) => s + Math.floor(v / 2 ** 50), 0),
  ];
  assert.deepEqual([limbSums(a), limbSums(b)], [[0, 3], [2 ** 50, 2]]);

  // The same for random rows moved between peers, for every query kind:
  // the totals are unchanged, so the summed vector must be too.
  const random = mulberry32(31);
  for (const spec of ["sum", "mean", "variance", "histogram:0:1000:4", "vector:3"]) {
    const query = parseQuery(spec, 0);
    for (let trial = 0; trial < 30; trial++) {
      const max = spec.startsWith("histogram")
        ? 1000n
        : BigInt(2 ** 40 + uniformUpTo(random, 2n ** 50n));
      const l = vectorLayout(query, { max, maxRows: 8, participants: 4 });
      const draw = () => uniformUpTo(random, max);
      let first: number[][];
      let second: number[][];
      if (query.kind === "vector") {
        // Same element totals, split differently between two peers.
        first = [Array.from({ length: 3 }, draw), Array.from({ length: 3 }, draw), [0, 0, 0]];
        const shift = first[0]!.map((x) => Math.floor(x / 3));
        second = [
          first[0]!.map((x, i) => x - shift[i]!),
          first[1]!,
          shift,
        ];
      } else {
        const rows = Array.from({ length: 8 }, draw);
        const cut = 1 + Math.floor(random() * 6);
        first = [rows.slice(0, cut), rows.slice(cut), [], []];
        second = [[], rows.slice(0, 2), rows.slice(2, 6), rows.slice(6)];
      }
      const summed = (sets: number[][]) =>
        maskedSum(
          sets.map((rows) => encodeInput(query, inputOf(rows), { scale: 0, layout: l })),
          l,
        );
      const [x, y] = [summed(first), summed(second)];
      assert.deepEqual(Array.from(x), Array.from(y), `${spec}: the sums differ`);
      assert.deepEqual(
        Array.from(x),
        Array.from(residuesOfTotals(l, expectedTotals(query, first))),
        `${spec}: the sum is not just the totals' residues`,
      );
    }
  }
});

Deno.test("rounds that need residues have the layout's dimension, up to the vector limit", () => {
  const vector = (d: number) => parseQuery(`vector:${d}`, 0);
  // n = 10, R = 2^50: 10·2^50 ≥ p1, so two residues per element.
  const v = vectorLayout(vector(1000), { max: 2n ** 50n, maxRows: 1, participants: 10 });
  assert.deepEqual([v.components[0]!.residues, v.dimension], [2, 2000]);
  const encoded = encodeInput(vector(1000), inputOf(new Array(1000).fill(2 ** 50)), {
    scale: 0,
    layout: v,
  });
  assert.equal(encoded.length, 2000);
  // 2^50 is below both moduli: residue 1 of every element first, then residue 2.
  assert.deepEqual([encoded[0], encoded[999], encoded[1000], encoded[1999]], [
    2 ** 50,
    2 ** 50,
    2 ** 50,
    2 ** 50,
  ]);
  // Histogram bins take residues too when n·rows reaches p1.
  const h = vectorLayout(parseQuery("histogram:0:1:6", 0), {
    max: 0n,
    maxRows: 2 ** 31,
    participants: 2 ** 21,
  });
  assert.deepEqual([h.components[0]!.residues, h.dimension], [2, 12]);
  // Exactly the limit is allowed, one more element is not.
  const two = { max: 2n ** 51n, maxRows: 1, participants: 2 };
  assert.equal(vectorLayout(vector(1 << 23), two).dimension, 1 << 24);
  assert.throws(() => vectorLayout(vector((1 << 23) + 1), two), /more than the limit of 16777216/);
  assert.throws(() => vectorLayout(vector(1 << 24), two), /R \(each element\) takes 2 residues/);
});

Deno.test("vector residues decode exactly, past p1 and past 2^53", () => {
  const query = parseQuery("vector:4", 2);
  const max = P_BIG - 1n;
  const layout = vectorLayout(query, { max, maxRows: 1, participants: 10 });
  assert.equal(layout.components[0]!.residues, 2);
  const peers = Array.from({ length: 10 }, (_, i) => [P - 1, 0, 12345 + i, 2 ** 49 + i]);
  const summed = maskedSum(
    peers.map((rows) => encodeInput(query, inputOf(rows), { scale: 2, layout })),
    layout,
  );
  const totals = decodeTotals(layout, summed);
  assert.deepEqual(totals, expectedTotals(query, peers));
  // Element 0 (10·(p1 − 1)) is past 2^53; element 3 (10·2^49 + 45) past p1 but
  // not 2^53; whatever the spelling (number or text), each reads back exactly.
  assert.ok(totals[0]! > BigInt(Number.MAX_SAFE_INTEGER) && totals[3]! > P_BIG);
  const result = decodeResult(query, summed, 2, layout)["vector"] as (number | string)[];
  assert.deepEqual(result.map((x) => parseScaled(String(x), 2)), totals);
  const plain = decodeResult(parseQuery("vector:4", 0), summed, 0, layout)["vector"];
  assert.deepEqual(plain, totals.map(asJson));
  assert.equal(typeof (plain as unknown[])[0], "string", "10·(p1 − 1) is not a safe JSON number");
  assert.equal((plain as unknown[])[3], 10 * 2 ** 49 + 45);
  // A summed residue that is not below its modulus is refused, not reduced.
  const bad = summed.slice();
  bad[4] = P2;
  assert.throws(() => decodeResult(query, bad, 2, layout), /not below its segment's modulus/);
  assert.throws(() => decodeTotals(layout, bad), /not below its segment's modulus/);
});

Deno.test("a layout built or altered elsewhere is refused unless it is the one the terms give", () => {
  const variance = parseQuery("variance", 0);
  const good = vectorLayout(variance, { max: 1_000_000n, maxRows: 100_000, participants: 10 });
  assertLayoutFits(variance, good);
  const squares = good.components[1]!;
  const withSquares = (change: Partial<Component>, rest: Partial<Layout> = {}): Layout => ({
    ...good,
    components: [good.components[0]!, { ...squares, ...change }, good.components[2]!],
    ...rest,
  });
  // One element where the bound needs residues: 10 × 10^17 would wrap mod p1.
  assert.throws(
    () => assertLayoutFits(variance, withSquares({ residues: 1 })),
    /rows × R² \(the sum of squares\) takes 1 residues; 10 peers need 2/,
  );
  assert.throws(
    () => assertLayoutFits(variance, withSquares({ residues: 3 })),
    /takes 3 residues; 10 peers need 2/,
  );
  assert.throws(() => assertLayoutFits(variance, withSquares({ start: 2 })), /starts at element 2/);
  assert.throws(() => assertLayoutFits(variance, withSquares({}, { dimension: 5 })), /claims 5/);
  const swapped = [good.segments[0]!, { ...good.segments[1]!, modulus: P3 }, good.segments[2]!];
  assert.throws(
    () => assertLayoutFits(variance, withSquares({}, { segments: swapped })),
    /segments are not its components'/,
  );
  assert.throws(
    () => assertLayoutFits(variance, withSquares({}, { segments: good.segments.slice(0, 2) })),
    /segments are not its components'/,
  );
  assert.throws(
    () => assertLayoutFits(variance, withSquares({ bound: squares.bound - 1n })),
    /not the query's/,
  );
  assert.throws(() => assertLayoutFits(variance, { ...good, max: 999_999n }), /not the query's/);
  assert.throws(() => assertLayoutFits(parseQuery("mean", 0), good), /not the query's/);
  // Fewer peers than the layout was made for: 2 × 10^15 fits the fast path,
  // so residues are not the round's encoding (one encoding per round).
  const sum = parseQuery("sum", 0);
  const sumLayout = vectorLayout(sum, { max: 10n ** 9n, maxRows: 10 ** 6, participants: 10 });
  assert.equal(sumLayout.components[0]!.residues, 2);
  assert.throws(
    () => assertLayoutFits(sum, { ...sumLayout, participants: 2 }),
    /rows × R \(the sum\) takes 2 residues; 2 peers need 1/,
  );
  // More peers than three residues can carry: 5000 × 2^40·(p1 − 1)² ≥ p1·p2·p3.
  const wide = vectorLayout(variance, { max: P_BIG - 1n, maxRows: 2 ** 40, participants: 4000 });
  assert.equal(wide.components[1]!.residues, 3);
  assert.throws(
    () => assertLayoutFits(variance, { ...wide, participants: 5000 }),
    /5000 peers × rows × R² \(the sum of squares\) = \d+ cannot be represented/,
  );
  // Encoding and decoding check the layout they are given.
  const bad = withSquares({ residues: 1 }, { dimension: 3 });
  assert.throws(() => encodeInput(variance, inputOf([1]), { scale: 0, layout: bad }), QueryError);
  assert.throws(() => decodeResult(variance, new Float64Array(3), 0, bad), QueryError);
  // Without a layout, only a one-element-per-component vector decodes.
  assert.throws(
    () => decodeResult(variance, new Float64Array(4), 0),
    /4 elements for 3 components; decoding residues needs the round's layout/,
  );
  assert.deepEqual(decodeResult(variance, Float64Array.of(6, 14, 3), 0), {
    sum: 6,
    count: 3,
    mean: 2,
    variance: 2 / 3,
  });
});

/** `sumshare hospital` with `args`: it must refuse them (exit 2) before it listens. */
async function assertRefused(dir: string, args: string[], pattern: RegExp) {
  assertRefusedBeforeListening(
    await hospitalOutcome(dir, args, { peers: 3, json: false }),
    pattern,
  );
}

Deno.test("the hospital refuses terms it cannot represent before it listens", async () => {
  const dir = await makePki(["hospital"]);
  try {
    // Two residues per element would make 2^25 elements.
    await assertRefused(
      dir,
      ["--query", "vector:16777216", "--max", String(2n ** 51n)],
      /more than the limit of 16777216/,
    );
    await assertRefused(
      dir,
      ["--max", String(P_BIG)],
      /below p = 4503599627370449/,
    );
  } finally {
    await removeDir(dir);
  }
});

Deno.test("processes: a variance whose sum of squares needs 2 residues, n-of-n with a verified receipt, and threshold", async () => {
  const names = ["alice", "bob", "carol"];
  const dir = await makePki(["hospital", ...names]);
  try {
    // 3 peers × 2000 rows × (10^6)² = 6·10^15 ≥ p1: the squares take two
    // residues, and each site's own sum of squares (up to 2·10^15) is close to p1.
    const random = mulberry32(99);
    const sites = names.map(() =>
      Array.from({ length: 2000 }, () => 999_000 + Math.floor(random() * 1001))
    );
    const files = await Promise.all(names.map(async (name, i) => {
      const file = join(dir, `${name}.txt`);
      await Deno.writeTextFile(file, sites[i]!.join("\n") + "\n");
      return file;
    }));
    const query = parseQuery("variance", 0);
    const [sum, squares, count] = expectedTotals(query, sites) as bigint[];
    assert.ok(squares! >= P_BIG);
    const layout = vectorLayout(query, { max: 1_000_000n, maxRows: 2000, participants: 3 });
    assert.deepEqual(layout.components.map((c) => c.residues), [1, 2, 1]);
    const terms = ["--query", "variance", "--max", "1000000", "--max-rows", "2000"];
    const ca = await Deno.readTextFile(join(dir, "ca.crt"));
    const out = join(dir, "receipt.json");
    const summary = await runRound(
      dir,
      [...terms, "--out", out],
      names.map((name, i) => [name, ["--input", files[i]!]]),
    );
    const result = summary["result"] as Record<string, unknown>;
    assert.equal(result["sum"], Number(sum));
    assert.equal(result["count"], Number(count));
    close(result["variance"], exactVariance(sum!, squares!, count!), "variance");
    // The receipt of a residue round verifies, and decodes to the same statistics.
    const verified = await verifyStarReceipt(parseReceipt(await Deno.readTextFile(out)), ca);
    // The receipt holds the decoded statistics; the hospital's report adds derived ones
    // (sample variance, standard deviations) on top.
    assert.deepEqual(
      verified.result,
      Object.fromEntries(Object.keys(verified.result).map((k) => [k, result[k]])),
      "the receipt's statistics",
    );
    assert.ok(Object.keys(verified.result).length >= 4, "sum, count, mean and variance");
    assert.deepEqual(decodeTotals(layout, verified.sum), [sum, squares, count]);

    // Threshold mode carries the residues too: the same exact statistics.
    const threshold = await runRound(
      dir,
      [...terms, "--threshold", "2"],
      names.map((name, i) => [name, ["--input", files[i]!]]),
    );
    assert.equal(threshold["mode"], "threshold");
    assert.deepEqual(threshold["result"], result);

    // A vector whose 40 elements each take 2 residues (3 × 2^51 ≥ p1): every
    // p2 residue must be masked and summed mod p2 for all 40 totals to come
    // out exact.
    const values = names.map(() =>
      Array.from({ length: 40 }, () => uniformUpTo(random, 2n ** 51n))
    );
    const vectorSummary = await runRound(
      dir,
      ["--query", "vector:40", "--max", String(2n ** 51n)],
      names.map((name, i) => [name, ["--value", values[i]!.join(",")]]),
    );
    const vectorQuery = parseQuery("vector:40", 0);
    assert.equal(
      vectorLayout(vectorQuery, { max: 2n ** 51n, maxRows: 1, participants: 3 }).dimension,
      80,
    );
    assert.deepEqual(
      (vectorSummary["result"] as Record<string, unknown>)["vector"],
      expectedTotals(vectorQuery, values).map(asJson),
    );
    assert.equal(MODULI.length, 3);
  } finally {
    await removeDir(dir);
  }
});
