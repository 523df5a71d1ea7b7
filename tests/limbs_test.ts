/**
 * Limbs: a component whose bound does not fit one field element is written
 * as several base-2^w digits. Layout, encode, a masked sum mod p and decode
 * must give the exact statistic (checked against BigInt arithmetic), the
 * one-element path must be used exactly when n·B < p, the dimension must be
 * the layout's, and what cannot be represented must be refused — by the
 * hospital before it listens, too. Ends with a real-process round whose sum
 * of squares needs limbs.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseScaled } from "../lib/decimal.ts";
import { addInto, mul, P, P_BIG, randomFieldElement, sub } from "../lib/field.ts";
import { loadIdentity } from "../lib/identity.ts";
import { runHospital } from "../lib/hospital.ts";
import {
  assertLayoutFits,
  type Component,
  decodeResult,
  decodeTotals,
  dimension,
  elementBound,
  encodeInput,
  type Layout,
  limbWidth,
  parseQuery,
  type Query,
  QueryError,
  type ScaledInput,
  vectorLayout,
} from "../lib/query.ts";
import { makePki, removeDir, runRound } from "./helpers.ts";
import { parseReceipt, verifyReceipt } from "../lib/receipt.ts";

/** Seeded so a failure can be replayed; the product itself uses Web Crypto only. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A uniform whole number in [0, limit], limit < 2^53, from 64 seeded bits. */
function uniformUpTo(random: () => number, limit: bigint): number {
  const bits = (BigInt(Math.floor(random() * 2 ** 32)) << 32n) |
    BigInt(Math.floor(random() * 2 ** 32));
  return Number(bits % (limit + 1n));
}

/** R's bit length: any from 1 to 51, but often large, so that many rounds need limbs. */
const bits = (random: () => number) =>
  random() < 0.5 ? 1 + Math.floor(random() * 51) : 40 + Math.floor(random() * 12);

const inputOf = (values: number[] | Float64Array): ScaledInput => ({
  values: Float64Array.from(values),
  where: (i) => `line ${i + 1}`,
});

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
 * Sums encoded vectors as the peers' masked inputs would be summed: each
 * vector plus a random mask, the masks cancelling mod p, added with addInto.
 */
function maskedSum(vectors: Float64Array[]): Float64Array {
  const length = vectors[0]!.length;
  const total = new Float64Array(length);
  const last = new Float64Array(length);
  for (const [i, vector] of vectors.entries()) {
    const masked = Float64Array.from(vector);
    if (i < vectors.length - 1) {
      const mask = Float64Array.from({ length }, randomFieldElement);
      addInto(masked, mask);
      addInto(last, mask);
    } else {
      for (let k = 0; k < length; k++) masked[k] = sub(masked[k]!, last[k]!);
    }
    addInto(total, masked);
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

Deno.test("the limb width is the widest w with n·2^w < p", () => {
  const random = mulberry32(11);
  const ns = [1, 2, 3, 4, 5, 10, 199, 200, 201, 1000, 4096, 65537, 2 ** 20, 2 ** 40 + 3];
  for (let i = 0; i < 200; i++) ns.push(1 + Math.floor(random() * 2 ** (1 + random() * 50)));
  ns.push((P - 1) / 2 - 1, (P - 1) / 2);
  for (const n of ns) {
    const w = limbWidth(n);
    assert.ok(w >= 1, `n = ${n}`);
    assert.ok(BigInt(n) * 2n ** BigInt(w) < P_BIG, `n = ${n}: n·2^w reaches p`);
    assert.ok(BigInt(n) * 2n ** BigInt(w + 1) >= P_BIG, `n = ${n}: w = ${w} is not the widest`);
  }
  // The values the layout comment quotes.
  assert.deepEqual([1, 2, 3, 10, 200, 1000].map(limbWidth), [51, 50, 50, 48, 44, 42]);
  assert.equal(limbWidth((P + 1) / 2), 0, "2n > p: not even one bit");
});

Deno.test("one element exactly when n·B < p, limbs otherwise, and the one-element encoding is today's", () => {
  const random = mulberry32(5);
  for (let trial = 0; trial < 300; trial++) {
    const n = 2 + Math.floor(random() * 2 ** (1 + random() * 20));
    const maxRows = 1 + Math.floor(random() * 2 ** (random() * 31));
    // Right at the edge for the sum: n·rows·R ≤ p − 1, and one more R is ≥ p.
    const edge = (P_BIG - 1n) / (BigInt(n) * BigInt(maxRows));
    for (const max of [edge, edge + 1n, BigInt(uniformUpTo(random, P_BIG - 1n))]) {
      if (max >= P_BIG) continue;
      for (const spec of ["sum", "mean", "variance", "count", "histogram:0:9:3", "vector:4"]) {
        const layout = vectorLayout(parseQuery(spec, 0), { max, maxRows, participants: n });
        for (const c of layout.components) {
          assert.equal(c.limbs === 1, BigInt(n) * c.bound < P_BIG, `${spec} n=${n} ${c.label}`);
        }
        if (spec === "sum" && max === edge) assert.equal(layout.components[0]!.limbs, 1);
        if (spec === "sum" && max === edge + 1n) assert.ok(layout.components[0]!.limbs >= 2);
        if (layout.components.every((c) => c.limbs === 1)) {
          assert.equal(layout.dimension, dimension(parseQuery(spec, 0)));
        }
      }
    }
  }
  // Byte for byte the encoding of rounds before limbs: [Σx, Σx², rows], and
  // vector:D hands back the input's own array.
  const variance = parseQuery("variance", 0);
  const layout = vectorLayout(variance, { max: 1000n, maxRows: 10, participants: 3 });
  const encoded = encodeInput(variance, inputOf([3, 1000, 0, 7]), { scale: 0, layout });
  assert.deepEqual(Array.from(encoded), [1010, 9 + 1_000_000 + 49, 4]);
  const vector = parseQuery("vector:3", 0);
  const input = inputOf([5, 0, 9]);
  const vectorLayout3 = vectorLayout(vector, { max: 9n, maxRows: 1, participants: 3 });
  assert.equal(encodeInput(vector, input, { scale: 0, layout: vectorLayout3 }), input.values);
});

Deno.test("layout, encode, masked sum and decode give the exact totals for random inputs", () => {
  const random = mulberry32(2024);
  const specs = ["sum", "count", "mean", "variance", "histogram:0:1000:7", "vector:5"];
  let withLimbs = 0;
  for (let trial = 0; trial < 400; trial++) {
    const spec = specs[trial % specs.length]!;
    const query = parseQuery(spec, 0);
    const n = 1 + Math.floor(random() * 12);
    const maxRows = 1 + Math.floor(random() * 40);
    const max = spec.startsWith("histogram")
      ? 0n
      : BigInt(uniformUpTo(random, 2n ** BigInt(bits(random)) - 1n));
    const layout = vectorLayout(query, { max, maxRows, participants: n });
    if (layout.components.some((c) => c.limbs > 1)) withLimbs++;
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
      v.forEach((x, i) => assert.ok(BigInt(x) <= elementBound(layout, i), `${spec} element ${i}`));
    }
    const summed = maskedSum(vectors);
    const expected = expectedTotals(query, peers);
    assert.deepEqual(decodeTotals(layout, summed), expected, `${spec}, n=${n}, R=${max}`);
    const result = decodeResult(query, summed, 0, layout);
    if (query.kind === "variance" && expected[2]! > 0n) {
      close(result["variance"], exactVariance(expected[0]!, expected[1]!, expected[2]!), spec);
    }
    if (query.kind === "vector") assert.deepEqual(result["vector"], expected.map(asJson));
    if (query.kind === "histogram") assert.deepEqual(result["histogram"], expected.map(asJson));
    if ("sum" in result) assert.equal(result["sum"], asJson(expected[0]!));
  }
  assert.ok(withLimbs >= 80, `only ${withLimbs} trials needed limbs`);
});

Deno.test("the extreme: every value R, every peer maxRows rows, n the largest the layout allows", () => {
  const variance = parseQuery("variance", 0);
  const max = P_BIG - 1n; // the largest R
  const maxRows = 1 << 16;
  const rows = new Array<number>(maxRows).fill(P - 1);
  const exact = (n: bigint): bigint[] => [
    n * BigInt(maxRows) * max,
    n * BigInt(maxRows) * max * max,
    n * BigInt(maxRows),
  ];
  // The largest n with even one-bit limbs: 2n < p. Every peer has the same
  // input, so the field sum of n of them is n·e mod p, element by element.
  const largest = (P - 1) / 2;
  const layout = vectorLayout(variance, { max, maxRows, participants: largest });
  assert.deepEqual(layout.components.map((c) => c.width), [1, 1, 1]);
  const encoded = encodeInput(variance, inputOf(rows), { scale: 0, layout });
  const summed = encoded.map((x) => mul(x, largest));
  assert.deepEqual(decodeTotals(layout, summed), exact(BigInt(largest)));
  assert.throws(
    () => vectorLayout(variance, { max, maxRows, participants: largest + 1 }),
    /even one-bit limbs/,
  );
  // 200 peers, the old protocol's most, summed for real with masks.
  const peers = 200;
  const layout200 = vectorLayout(variance, { max, maxRows, participants: peers });
  // 44-bit limbs: 2^16·(p − 1) has 68 bits, 2^16·(p − 1)² 120.
  assert.deepEqual(layout200.components.map((c) => c.limbs), [2, 3, 1]);
  const one = encodeInput(variance, inputOf(rows), { scale: 0, layout: layout200 });
  const sum200 = maskedSum(Array.from({ length: peers }, () => one));
  const totals = decodeTotals(layout200, sum200);
  assert.deepEqual(totals, exact(BigInt(peers)));
  const result = decodeResult(variance, sum200, 0, layout200);
  assert.equal(result["sum"], totals[0]!.toString(), "too large for a JSON number: decimal text");
  assert.equal(result["variance"], 0);
});

Deno.test("the issue's case: variance of values up to 10^6 over 10^5 rows at 10 sites decodes exactly", () => {
  const variance = parseQuery("variance", 0);
  const terms = { max: 1_000_000n, maxRows: 100_000, participants: 10 };
  const layout = vectorLayout(variance, terms);
  // Only the sum of squares (10 × 10^5 × 10^12 = 10^18 ≥ p) takes limbs.
  assert.deepEqual(
    layout.components.map((c) => [c.limbs, c.width]),
    [[1, 37], [2, 48], [1, 17]],
  );
  assert.equal(layout.dimension, 4);
  const random = mulberry32(8);
  const sites = Array.from({ length: 10 }, (_, site) =>
    Array.from({ length: 100_000 }, () =>
      // One site at the bound throughout; the rest spread over [0, 10^6].
      site === 0 ? 1_000_000 : Math.floor(random() * 1_000_001)));
  const vectors = sites.map((rows) => encodeInput(variance, inputOf(rows), { scale: 0, layout }));
  const summed = maskedSum(vectors);
  const [sum, squares, count] = expectedTotals(variance, sites) as [bigint, bigint, bigint];
  assert.ok(squares >= P_BIG, "the sum of squares is beyond p, so one element would wrap");
  assert.deepEqual(decodeTotals(layout, summed), [sum, squares, count]);
  const result = decodeResult(variance, summed, 0, layout);
  assert.equal(result["sum"], Number(sum));
  assert.equal(result["count"], 1_000_000);
  close(result["variance"], exactVariance(sum, squares, count), "variance");
});

Deno.test("rounds that need limbs have the layout's dimension, up to the vector limit", () => {
  const vector = (d: number) => parseQuery(`vector:${d}`, 0);
  // n = 10: w = 48, so R = 2^50 (51 bits) takes two limbs per element.
  const v = vectorLayout(vector(1000), { max: 2n ** 50n, maxRows: 1, participants: 10 });
  assert.deepEqual([v.components[0]!.limbs, v.components[0]!.width, v.dimension], [2, 48, 2000]);
  const encoded = encodeInput(vector(1000), inputOf(new Array(1000).fill(2 ** 50)), {
    scale: 0,
    layout: v,
  });
  assert.equal(encoded.length, 2000);
  // 2^50 = 4 × 2^48: limb 0 is 0, limb 1 is 4, element after element.
  assert.deepEqual(Array.from(encoded.subarray(0, 4)), [0, 4, 0, 4]);
  // Histogram bins take limbs too when n·rows reaches p.
  const h = vectorLayout(parseQuery("histogram:0:1:6", 0), {
    max: 0n,
    maxRows: 2 ** 31,
    participants: 2 ** 21,
  });
  assert.deepEqual([h.components[0]!.limbs, h.dimension], [2, 12]);
  // Exactly the limit is allowed, one more component is not.
  const two = { max: 2n ** 51n, maxRows: 1, participants: 2 };
  assert.equal(vectorLayout(vector(1 << 23), two).dimension, 1 << 24);
  assert.throws(() => vectorLayout(vector((1 << 23) + 1), two), /more than the limit of 16777216/);
  assert.throws(() => vectorLayout(vector(1 << 24), two), /R \(each element\) takes 2 limbs/);
});

Deno.test("vector limbs recombine exactly in doubles, and in BigInt once a total passes 2^53", () => {
  const query = parseQuery("vector:4", 2);
  const max = P_BIG - 1n;
  const layout = vectorLayout(query, { max, maxRows: 1, participants: 10 });
  const peers = Array.from({ length: 10 }, (_, i) => [P - 1, 0, 12345 + i, 2 ** 50 + i]);
  const summed = maskedSum(
    peers.map((rows) => encodeInput(query, inputOf(rows), { scale: 2, layout })),
  );
  const totals = decodeTotals(layout, summed);
  assert.deepEqual(totals, expectedTotals(query, peers));
  // Element 0 (10·(p − 1)) and 3 are past 2^53, so recombined in BigInt; whatever the
  // spelling (number or text), each reads back as the exact scaled total.
  assert.ok(totals[0]! > BigInt(Number.MAX_SAFE_INTEGER) && totals[3]! > 2n ** 53n);
  const result = decodeResult(query, summed, 2, layout)["vector"] as (number | string)[];
  assert.deepEqual(result.map((x) => parseScaled(String(x), 2)), totals);
  const plain = decodeResult(parseQuery("vector:4", 0), summed, 0, layout)["vector"];
  assert.deepEqual(plain, totals.map(asJson));
  assert.equal(typeof (plain as unknown[])[0], "string", "10·(p − 1) is not a safe JSON number");
});

Deno.test("a layout built or altered elsewhere is refused unless it represents the totals exactly", () => {
  const variance = parseQuery("variance", 0);
  const good = vectorLayout(variance, { max: 1_000_000n, maxRows: 100_000, participants: 10 });
  assertLayoutFits(variance, good);
  const squares = good.components[1]!;
  const withSquares = (change: Partial<Component>, dimension = good.dimension): Layout => ({
    ...good,
    components: [good.components[0]!, { ...squares, ...change }, good.components[2]!],
    dimension,
  });
  // A limb one bit wider: 10 × (2^49 − 1) reaches p.
  assert.throws(
    () => assertLayoutFits(variance, withSquares({ width: squares.width + 1 })),
    /10 peers × limb 0 of rows × R² \(the sum of squares\) = 5629499534213110 is not below p/,
  );
  // One element where the bound needs limbs: 10 × 10^15 reaches p.
  const sum = parseQuery("sum", 0);
  const sumLayout = vectorLayout(sum, { max: 1_000_000n, maxRows: 10 ** 9, participants: 10 });
  assert.equal(sumLayout.components[0]!.limbs, 2);
  assert.throws(
    () =>
      assertLayoutFits(sum, {
        ...sumLayout,
        components: [{ ...sumLayout.components[0]!, limbs: 1, width: 50 }],
        dimension: 1,
      }),
    /10 peers × rows × R \(the sum\) = 10000000000000000 is not below p/,
  );
  assert.throws(
    () => assertLayoutFits(variance, withSquares({ limbs: 1 }, 3)),
    /1 limbs of 48 bits cannot hold/,
  );
  assert.throws(() => assertLayoutFits(variance, withSquares({}, 5)), /claims 5 elements/);
  assert.throws(
    () => assertLayoutFits(variance, withSquares({ bound: squares.bound - 1n })),
    /not the query's/,
  );
  assert.throws(() => assertLayoutFits(variance, { ...good, max: 999_999n }), /not the query's/);
  assert.throws(
    () => assertLayoutFits(parseQuery("mean", 0), good),
    /not the query's/,
  );
  // More peers than the layout was made for: 20 × (2^48 − 1) reaches p.
  assert.throws(() => assertLayoutFits(variance, { ...good, participants: 20 }), /not below p/);
  // Encoding and decoding check the layout they are given.
  const bad = withSquares({ width: squares.width + 1 });
  assert.throws(() => encodeInput(variance, inputOf([1]), { scale: 0, layout: bad }), QueryError);
  assert.throws(() => decodeResult(variance, new Float64Array(4), 0, bad), QueryError);
  // Without a layout, only a one-element-per-component vector decodes.
  assert.throws(
    () => decodeResult(variance, new Float64Array(4), 0),
    /4 elements for 3 components; decoding limbs needs the round's layout/,
  );
  assert.deepEqual(decodeResult(variance, Float64Array.of(6, 14, 3), 0), {
    sum: 6,
    count: 3,
    mean: 2,
    variance: 2 / 3,
  });
});

Deno.test("runHospital refuses terms it cannot represent before it listens", async () => {
  const dir = await makePki(["hospital"]);
  try {
    const identity = await loadIdentity("hospital", {
      ca: join(dir, "ca.crt"),
      cert: join(dir, "hospital.crt"),
      key: join(dir, "hospital.key"),
    });
    let listened = false;
    const attempt = runHospital({
      identity,
      listen: { hostname: "127.0.0.1", port: 0 },
      peers: 3,
      // Two limbs per element would make 2^25 elements.
      query: parseQuery("vector:16777216", 0),
      scale: 0,
      max: 2n ** 51n,
      maxRows: 1,
      timeoutMs: 1000,
      log: () => {},
      onListening: () => listened = true,
    });
    await assert.rejects(attempt, (error: Error) => {
      assert.ok(error instanceof QueryError, `${error.name}: ${error.message}`);
      assert.match(error.message, /more than the limit of 16777216/);
      return true;
    });
    assert.equal(listened, false, "the hospital listened before refusing");
  } finally {
    await removeDir(dir);
  }
});

Deno.test("processes: a variance whose sum of squares needs limbs, in both modes", async () => {
  const names = ["alice", "bob", "carol"];
  const dir = await makePki(["hospital", ...names]);
  try {
    // 3 peers × 2000 rows × (10^6)² = 6·10^15 ≥ p: the squares take two 50-bit limbs,
    // and each site's own sum of squares (up to 2·10^15) already passes 2^50.
    const random = mulberry32(99);
    const sites = names.map(() =>
      Array.from({ length: 2000 }, () => 999_000 + Math.floor(random() * 1001))
    );
    const files = await Promise.all(names.map(async (name, i) => {
      const file = join(dir, `${name}.txt`);
      await Deno.writeTextFile(file, sites[i]!.join("\n") + "\n");
      return file;
    }));
    const [sum, squares, count] = expectedTotals(parseQuery("variance", 0), sites) as bigint[];
    assert.ok(squares! >= P_BIG);
    const terms = ["--query", "variance", "--max", "1000000", "--max-rows", "2000"];
    const ca = await Deno.readTextFile(join(dir, "ca.crt"));
    for (const mode of [[], ["--threshold", "2"]]) {
      const out = join(dir, `receipt-${mode.length}.json`);
      const summary = await runRound(
        dir,
        [...terms, ...mode, "--out", out],
        names.map((name, i) => [name, ["--input", files[i]!]]),
      );
      const result = summary["result"] as Record<string, unknown>;
      assert.equal(result["sum"], Number(sum), `sum, ${mode.join(" ") || "additive"}`);
      assert.equal(result["count"], Number(count));
      close(result["variance"], exactVariance(sum!, squares!, count!), "variance");
      // The receipt of a limb round verifies, and decodes to the same statistics.
      const verified = await verifyReceipt(parseReceipt(await Deno.readTextFile(out)), ca);
      assert.deepEqual(verified.result, result, "the receipt's statistics");
    }
  } finally {
    await removeDir(dir);
  }
});
