/**
 * Queries in memory: every query's decoded statistics equal a plain
 * computation over the union of all peers' data, for random data, decimals
 * and histogram edges; inputs are refused with the line that is wrong.
 */
import { mulberry32 } from "./helpers.ts";
import assert from "node:assert/strict";
import { formatScaled, parseScaled } from "../lib/decimal.ts";
import { addSegmentsInto, MODULI_BIG, P, P_BIG } from "../lib/field.ts";
import { dataFromBytes, dataFromValue, type PeerData } from "../lib/input.ts";
import {
  assertBoundsFit,
  decodeResult,
  elementBounds,
  encodeInput,
  formatQuery,
  InputError,
  parseQuery,
  QueryError,
  vectorLayout,
} from "../lib/query.ts";

const text = new TextEncoder();
const linesOf = (values: string[]) =>
  dataFromBytes(text.encode(values.join("\n") + "\n"), { scale: 0 });

/** Runs a query over peers' data as a round would: encode, sum segment by segment, decode. */
function runQuery(spec: string, peers: string[][], scale: number, max: bigint, maxRows = 4096) {
  const query = parseQuery(spec, scale);
  const layout = vectorLayout(query, { max, maxRows, participants: peers.length });
  let total: Float64Array | undefined;
  for (const rows of peers) {
    const data = dataFromBytes(text.encode(rows.join("\n")), { scale });
    const vector = encodeInput(query, data, { scale, layout });
    if (!total) total = new Float64Array(vector.length);
    addSegmentsInto(total, vector, layout.segments);
  }
  return decodeResult(query, total!, scale, layout);
}

function close(actual: unknown, expected: number, what: string) {
  assert.equal(typeof actual, "number", what);
  assert.ok(
    Math.abs((actual as number) - expected) <= 1e-9 * Math.max(1, Math.abs(expected)),
    `${what}: ${actual} vs ${expected}`,
  );
}

Deno.test("sum, count, mean and variance equal a plain computation, with and without decimals", () => {
  const random = mulberry32(42);
  for (let trial = 0; trial < 40; trial++) {
    const scale = trial % 3; // 0, 1 or 2 decimal places
    const peers = Array.from(
      { length: 2 + (trial % 5) },
      () =>
        Array.from(
          { length: 1 + Math.floor(random() * 60) },
          () => (Math.floor(random() * 100000) / 10 ** scale).toFixed(scale),
        ),
    );
    const all = peers.flat().map(Number);
    const n = all.length;
    const sum = all.reduce((a, b) => a + b, 0);
    const mean = sum / n;
    const variance = all.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    // R covers the data (100000 in scaled units); 60 rows a peer at most.
    const max = 100000n;
    close(runQuery("sum", peers, scale, max, 60)["sum"], sum, "sum");
    assert.equal(runQuery("count", peers, scale, max, 60)["count"], n);
    const m = runQuery("mean", peers, scale, max, 60);
    close(m["mean"], mean, "mean");
    assert.equal(m["count"], n);
    const v = runQuery("variance", peers, scale, max, 60);
    close(v["variance"], variance, "variance");
    close(v["mean"], mean, "mean from variance");
  }
});

Deno.test("an exact sum stays exact: decimals are fixed-point, not floating point", () => {
  const r = runQuery("sum", [["0.1", "0.2"], ["0.3"]], 1, 1000n);
  assert.equal(r["sum"], 0.6);
  const big = runQuery(
    "sum",
    [["123456789012.34"], ["0.01"]],
    2,
    parseScaled("200000000000", 2),
    1,
  );
  assert.equal(big["sum"], 123456789012.35);
});

Deno.test("histogram bins are half-open, the last holds HIGH, edges land where they should", () => {
  // [0,10) [10,20) … [90,100]
  const peers = [["0", "9.99", "10", "49.5", "50"], ["89.9", "90", "99.99", "100"], ["100", "0"]];
  const r = runQuery("histogram:0:100:10", peers, 2, 0n);
  assert.deepEqual(r["histogram"], [3, 1, 0, 0, 1, 1, 0, 0, 1, 4]);
  // A negative LOW, uneven width: bins of 2.5 over [-5, 5].
  const neg = runQuery(
    "histogram:-5:5:4",
    [["-5", "-2.5", "-2.6"], ["0", "2.49", "5", "4.99"]],
    2,
    0n,
  );
  assert.deepEqual(neg["histogram"], [2, 1, 2, 2]);
  // Random data against a plain bin computation.
  const random = mulberry32(7);
  const values = Array.from({ length: 500 }, () => Math.floor(random() * 1001)); // 0..1000 incl.
  const peers2 = [values.slice(0, 200), values.slice(200)].map((vs) => vs.map(String));
  const expected = new Array<number>(7).fill(0);
  for (const v of values) expected[v === 1000 ? 6 : Math.floor((v * 7) / 1000)]!++;
  assert.deepEqual(runQuery("histogram:0:1000:7", peers2, 0, 0n)["histogram"], expected);
});

Deno.test("vector:D adds element-wise", () => {
  const random = mulberry32(3);
  const peers = Array.from(
    { length: 4 },
    () => Array.from({ length: 50 }, () => String(Math.floor(random() * 1e6))),
  );
  const expected = Array.from(
    { length: 50 },
    (_, i) => peers.reduce((a, p) => a + Number(p[i]), 0),
  );
  assert.deepEqual(runQuery("vector:50", peers, 0, 1_000_000n)["vector"], expected);
  const scaled = runQuery("vector:2", [["1.5", "0"], ["2.25", "1"]], 2, 1000n);
  assert.deepEqual(scaled["vector"], [3.75, 1]);
});

Deno.test("inputs out of range, with too many decimals, too long or of the wrong length are refused with the line", () => {
  const q = parseQuery("sum", 0);
  const terms = { max: 100n, maxRows: 3, participants: 2 };
  const opts = { scale: 0, layout: vectorLayout(q, terms) };
  const optsFor = (spec: string) => ({
    scale: 0,
    layout: vectorLayout(parseQuery(spec, 0), terms),
  });
  assert.throws(
    () => encodeInput(q, linesOf(["5", "101"]), opts),
    /line 2: outside \[0, R = 100\]/,
  );
  assert.throws(() => encodeInput(q, linesOf(["5", "-1"]), opts), /line 2: outside/);
  assert.throws(
    () => encodeInput(q, linesOf(["1", "2", "3", "4"]), opts),
    /4 rows, more than the round's limit of 3/,
  );
  assert.throws(
    () => encodeInput(parseQuery("vector:3", 0), linesOf(["1", "2"]), optsFor("vector:3")),
    /needs a vector of 3/,
  );
  assert.throws(
    () =>
      encodeInput(
        parseQuery("histogram:0:10:2", 0),
        linesOf(["3", "11"]),
        optsFor("histogram:0:10:2"),
      ),
    /line 2: outside \[0, 10\]/,
  );
  assert.throws(
    () => dataFromBytes(text.encode("1\n2\nabc\n"), { scale: 0 }),
    /line 3: not a number/,
  );
  assert.throws(
    () => dataFromBytes(text.encode("1\n2.5\n"), { scale: 0 }),
    /line 2: has more than 0 decimal places/,
  );
  assert.throws(
    () => dataFromBytes(text.encode('[1, 2, "x"]'), { scale: 0 }),
    /item 3: not a number/,
  );
  assert.throws(() => dataFromBytes(text.encode("[1, 2,"), { scale: 0 }), /not valid JSON$/);
  assert.throws(
    () => dataFromBytes(text.encode("a,b\n1,2\n3\n"), { scale: 0, column: "b" }),
    /line 3: 1 fields/,
  );
  assert.throws(
    () => dataFromBytes(text.encode("a,b\n1,2\n"), { scale: 0, column: "c" }),
    /no column named "c"/,
  );
  assert.throws(() => dataFromValue("1,2,x", 0), InputError);
});

Deno.test("blank lines are skipped, and refusals still name the file's own line", () => {
  const sum = parseQuery("sum", 0);
  const opts = { scale: 0, layout: vectorLayout(sum, { max: 100n, maxRows: 10, participants: 2 }) };
  // Without blank lines entry k is line k + 1; after one, lines are recorded.
  const plain = dataFromBytes(text.encode("1\n2\n300\n"), { scale: 0 });
  assert.throws(() => encodeInput(sum, plain, opts), /line 3: outside/);
  const gaps = dataFromBytes(text.encode("1\r\n\n2\n  \n\n300\n4\n"), { scale: 0 });
  assert.deepEqual([...gaps.values], [1, 2, 300, 4]);
  assert.equal(gaps.where(0), "line 1");
  assert.equal(gaps.where(3), "line 7");
  assert.throws(() => encodeInput(sum, gaps, opts), /line 6: outside/);
  // A blank line first, and a last line without a newline.
  const leading = dataFromBytes(text.encode("\n7\n8"), { scale: 0 });
  assert.deepEqual([...leading.values], [7, 8]);
  assert.equal(leading.where(1), "line 3");
});

Deno.test("every format reads the same numbers: lines, JSON, CSV with quotes, --value", () => {
  const expect = (data: PeerData, values: number[]) =>
    assert.deepEqual(Array.from(data.values), values);
  expect(dataFromBytes(text.encode("\uFEFF1\r\n\r\n22\n  3 \n"), { scale: 0 }), [1, 22, 3]);
  expect(dataFromBytes(text.encode(' [1.5, 2, "3.25"] '), { scale: 2 }), [150, 200, 325]);
  expect(
    dataFromBytes(text.encode('id,"age, years",x\n"a,1",41,z\n"b ""q""",7,z\n'), {
      scale: 0,
      column: "age, years",
    }),
    [41, 7],
  );
  expect(dataFromValue("4, 5,6", 0), [4, 5, 6]);
  expect(dataFromValue("1e3", 0), [1000]);
});

Deno.test("queries parse strictly and print canonically", () => {
  assert.equal(formatQuery(parseQuery("histogram:0:100:10", 1), 1), "histogram:0.0:100.0:10");
  assert.equal(formatQuery(parseQuery("vector:1048576", 0), 0), "vector:1048576");
  for (
    const bad of [
      "avg",
      "histogram:5:5:3",
      "histogram:0:10:0",
      "histogram:0:10",
      "vector:0",
      "vector:x",
      "sum:1",
      "",
    ]
  ) {
    assert.throws(() => parseQuery(bad, 0), QueryError, bad);
  }
  assert.throws(() => parseQuery("histogram:0:1.25:2", 1), /decimal places/);
});

Deno.test("every element is checked: a bound that does not fit one element takes residues, what cannot be represented is refused", () => {
  // The variance's squares (4096 × 2^60 for 3 peers) no longer fit one element: two residues.
  const variance = parseQuery("variance", 0);
  assertBoundsFit(3, elementBounds(variance, 2n ** 30n, 4096));
  const layout = vectorLayout(variance, { max: 2n ** 30n, maxRows: 4096, participants: 3 });
  assert.deepEqual(layout.components.map((c) => c.residues), [1, 2, 1]);
  assert.equal(layout.dimension, 4);
  assert.equal(vectorLayout(variance, { max: 1000n, maxRows: 4096, participants: 3 }).dimension, 3);
  // R must be below p, whatever the residues.
  assert.throws(
    () => vectorLayout(parseQuery("vector:9", 0), { max: BigInt(P), maxRows: 1, participants: 2 }),
    /R must be from 0 to below p/,
  );
  // Two residues per element would take vector:2^24 over the vector limit.
  assert.throws(
    () => assertBoundsFit(2, elementBounds(parseQuery("vector:16777216", 0), 2n ** 51n, 1)),
    /33554432 field elements .*more than the limit of 16777216/,
  );
  // A total that even three residues cannot carry: 5000 × 2^40·(p − 1)² ≥ p1·p2·p3.
  assert.throws(
    () => assertBoundsFit(5000, elementBounds(variance, P_BIG - 1n, 2 ** 40)),
    /cannot be represented/,
  );
  assertBoundsFit(4000, elementBounds(variance, P_BIG - 1n, 2 ** 40));
  assert.equal(formatScaled(-1234n, 2), "-12.34");
  assert.equal(formatScaled(5n, 3), "0.005");
});

/** x (finite, ≥ 0) as an exact fraction [numerator, 2^k]. */
function exactOf(x: number): [bigint, bigint] {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const exponent = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & ((1n << 52n) - 1n);
  const mantissa = exponent === 0 ? fraction : fraction | (1n << 52n);
  const power = (exponent === 0 ? 1 : exponent) - 1075;
  return power >= 0 ? [mantissa << BigInt(power), 1n] : [mantissa, 1n << BigInt(-power)];
}

/** Whether x's last mantissa bit is 1. */
function oddMantissa(x: number): boolean {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  return (view.getBigUint64(0) & 1n) === 1n;
}

/** The binary64 next to x (≥ 0) upwards or downwards. */
function neighbour(x: number, step: 1n | -1n): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  view.setBigUint64(0, view.getBigUint64(0) + step);
  return view.getFloat64(0);
}

/**
 * Whether x is the binary64 nearest to n/d (ties to an even mantissa),
 * decided in exact BigInt rationals: |x − n/d| against both neighbours'.
 */
function isNearest(x: number, n: bigint, d: bigint): boolean {
  const distance = (y: number): [bigint, bigint] => {
    const [a, b] = exactOf(y);
    const top = a * d - n * b;
    return [top < 0n ? -top : top, b * d];
  };
  const compare = ([a, b]: [bigint, bigint], [c, e]: [bigint, bigint]) => {
    const left = a * e;
    const right = c * b;
    return left < right ? -1 : left > right ? 1 : 0;
  };
  const own = distance(x);
  const others = x === 0 ? [neighbour(x, 1n)] : [neighbour(x, 1n), neighbour(x, -1n)];
  for (const other of others) {
    const order = compare(own, distance(other));
    if (order > 0) return false;
    if (order === 0 && oddMantissa(x)) return false; // a tie: the even one wins
  }
  return true;
}

Deno.test("the mean and variance are the binary64 nearest the exact fraction, small and past 2^53 (review 3, F12)", () => {
  const mean = parseQuery("mean", 0);
  const variance = parseQuery("variance", 0);
  let checked = 0;
  for (let scale = 0; scale <= 3; scale++) {
    const factor = 10n ** BigInt(scale);
    for (let count = 1; count <= 40; count++) {
      for (let sum = 0; sum <= 300; sum++) {
        const result = decodeResult(mean, Float64Array.of(sum, count), scale);
        const m = result["mean"] as number;
        assert.ok(
          isNearest(m, BigInt(sum), BigInt(count) * factor),
          `${sum}/${count} at ${scale}: ${m}`,
        );
        checked++;
      }
      // Variance: count·Σx² − (Σx)² over count²·10^(2·scale), for some sums of squares.
      for (let sum = 0; sum <= 60; sum += 7) {
        const c = BigInt(count);
        const s = BigInt(sum);
        for (const squares of [s * s, s * s + 1n, s * s * 3n + 11n]) {
          if (c * squares < s * s) continue;
          const result = decodeResult(
            variance,
            Float64Array.of(sum, Number(squares), count),
            scale,
          );
          const n = c * squares - s * s;
          const v = result["variance"] as number;
          assert.ok(isNearest(v, n, c * c * factor * factor), `variance ${n} at ${scale}: ${v}`);
        }
      }
    }
  }
  assert.equal(checked, 4 * 40 * 301);
  // 1/3 exactly: 0.5 + 0.5 + 0 at scale 1.
  assert.equal(decodeResult(mean, Float64Array.of(10, 3), 1)["mean"], 0.3333333333333333);

  // Totals past 2^53, carried as residues: Number(sum) would already round.
  const layout = vectorLayout(mean, { max: 1n << 40n, maxRows: 1 << 20, participants: 2 });
  const sumComponent = layout.components[0]!;
  assert.ok(sumComponent.residues > 1, "the sum takes residues");
  for (let k = 0n; k < 40n; k++) {
    for (const count of [1n, 3n, 7n, 1000n]) {
      const total = (1n << 53n) + k * 1_000_003n + 1n;
      const summed = new Float64Array(layout.dimension);
      for (
        const [component, value] of [[layout.components[0]!, total], [
          layout.components[1]!,
          count,
        ]] as const
      ) {
        for (let j = 0; j < component.residues; j++) {
          summed[component.start + j] = Number(value % MODULI_BIG[j]!);
        }
      }
      const result = decodeResult(mean, summed, 0, layout);
      assert.equal(result["sum"], total.toString());
      const m = result["mean"] as number;
      assert.ok(isNearest(m, total, count), `${total}/${count}: ${m}`);
    }
  }
});
