/**
 * The simulated peers' data and the plaintext answer over a set of them.
 *
 * Each peer's numbers come from a small seeded generator (mulberry32), so a
 * run can be replayed from its seed and the driver can recompute any peer's
 * data without it leaving the worker. The generator only picks test data and
 * dropouts; nothing cryptographic draws from it (keys, masks and shares use
 * Web Crypto inside the protocol code, as in every round).
 *
 * The plaintext totals are computed here on their own, from the query's
 * definition in exact integers, not through the product's encoder, so that a
 * wrong encoding or decoding would show as a mismatch. Only what is derived
 * from exact totals for display uses the report's own functions: a
 * variance's spread (`varianceSpread`: correctly rounded quotients, whose
 * `nearestNumber` tests/service/wide_test.ts checks against exact
 * fractions) and a histogram's bin edges, which depend on the query alone.
 *
 * @module
 */

import type { PeerData } from "../input.ts";
import type { Query } from "../query.ts";
import { binEdges, varianceSpread } from "../service/report.ts";

/** Values of sum, mean, variance and vector data are integers in [0, VALUE_LIMIT). */
export const VALUE_LIMIT = 2 ** 20;
/** Non-vector queries: each peer holds 1 to MAX_ROWS rows. */
export const MAX_ROWS = 3;

/** A seeded generator of floats in [0, 1): mulberry32. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** One generator per (seed, purpose, index), so peers' streams do not overlap. */
export function streamFor(seed: number, purpose: number, index: number): () => number {
  // A multiplicative hash of the three: distinct inputs give unrelated starting states.
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(purpose + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x27d4eb2f) ^ Math.imul(index + 1, 0x165667b1);
  return seededRandom(h ^ (h >>> 15));
}

const DATA = 1;

/**
 * Refuses a query whose data this simulator cannot generate exactly
 * (a histogram range beyond 2^32 integers or outside the safe integers).
 */
export function checkSimulatable(query: Query): void {
  if (query.kind !== "histogram") return;
  const limit = BigInt(Number.MAX_SAFE_INTEGER);
  if (query.low < -limit || query.high > limit || query.high - query.low >= 2n ** 32n) {
    throw new RangeError(
      "Cannot simulate this histogram: LOW and HIGH must be safe integers at most 2^32 apart",
    );
  }
}

/** The numbers of peer `index` for `query` (integers, scale 0). */
export function peerValues(seed: number, index: number, query: Query): Float64Array {
  const random = streamFor(seed, DATA, index);
  if (query.kind === "vector") {
    const values = new Float64Array(query.dimension);
    for (let i = 0; i < values.length; i++) values[i] = Math.floor(random() * VALUE_LIMIT);
    return values;
  }
  const rows = 1 + Math.floor(random() * MAX_ROWS);
  const values = new Float64Array(rows);
  if (query.kind === "histogram") {
    const low = Number(query.low);
    const span = Number(query.high - query.low) + 1;
    for (let i = 0; i < rows; i++) values[i] = low + Math.floor(random() * span);
  } else {
    for (let i = 0; i < rows; i++) values[i] = Math.floor(random() * VALUE_LIMIT);
  }
  return values;
}

/** A peer's numbers as the CLI's input reader gives them: with where each came from. */
export function peerData(seed: number, index: number, query: Query): PeerData {
  return { values: peerValues(seed, index, query), where: (i) => `simulated row ${i + 1}` };
}

/** The exact totals a query asks for, over some peers' data. */
export interface PlainTotals {
  sum: bigint;
  squares: bigint;
  count: bigint;
  /** Histogram bins, or vector elements. */
  elements: bigint[];
}

/** Adds up the data of the peers `indices`, exactly. */
export function plaintextTotals(
  seed: number,
  indices: readonly number[],
  query: Query,
): PlainTotals {
  const totals: PlainTotals = { sum: 0n, squares: 0n, count: 0n, elements: [] };
  const width = query.kind === "vector"
    ? query.dimension
    : query.kind === "histogram"
    ? query.bins
    : 0;
  // Element totals stay below 2^53 (values < 2^20, at most 2^24 peers' worth),
  // so a Float64Array adds them exactly; checked below all the same.
  const elements = new Float64Array(width);
  for (const index of indices) {
    const values = peerValues(seed, index, query);
    if (query.kind === "vector") {
      for (let i = 0; i < values.length; i++) elements[i]! += values[i]!;
      continue;
    }
    for (const x of values) {
      const v = BigInt(x);
      totals.count++;
      totals.sum += v;
      totals.squares += v * v;
      if (query.kind === "histogram") {
        // The bin rule of the query's definition: ⌊(v − LOW)·B / (HIGH − LOW)⌋, HIGH in the last bin.
        const bin = v === query.high
          ? query.bins - 1
          : Number(((v - query.low) * BigInt(query.bins)) / (query.high - query.low));
        elements[bin]!++;
      }
    }
  }
  totals.elements = Array.from(elements, (e) => {
    if (!Number.isSafeInteger(e)) throw new RangeError("A plaintext total is not exact");
    return BigInt(e);
  });
  return totals;
}

/** The plaintext result under the keys the hospital reports, for people to read. */
export function plaintextResult(query: Query, totals: PlainTotals): Record<string, unknown> {
  const show = (x: bigint) => x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x.toString();
  switch (query.kind) {
    case "sum":
      return { sum: show(totals.sum) };
    case "count":
      return { count: show(totals.count) };
    case "mean":
      return { sum: show(totals.sum), count: show(totals.count), mean: mean(totals) };
    case "variance":
      return {
        sum: show(totals.sum),
        count: show(totals.count),
        mean: mean(totals),
        ...varianceSpread(totals.sum, totals.squares, totals.count, 0),
      };
    case "histogram":
      return {
        histogram: totals.elements.map(show),
        binEdges: binEdges(query.low, query.high, query.bins, 0),
      };
    case "vector":
      return { vector: totals.elements.map(show) };
  }
}

function mean(t: PlainTotals): number | null {
  return t.count === 0n ? null : Number(t.sum) / Number(t.count);
}

/** An integer the hospital printed (a JSON number when exact, else a decimal string). */
function integerOf(value: unknown): bigint | undefined {
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === "string" && /^-?[0-9]+$/.test(value)) return BigInt(value);
  return undefined;
}

function sameIntegers(actual: unknown, expected: readonly bigint[]): boolean {
  return Array.isArray(actual) && actual.length === expected.length &&
    actual.every((v, i) => integerOf(v) === expected[i]);
}

/**
 * Whether the hospital's decoded `result` is exactly the plaintext answer:
 * every integer total equal, and the derived mean and variance equal to the
 * same formula over the exact totals.
 */
export function resultMatches(
  query: Query,
  result: Record<string, unknown>,
  totals: PlainTotals,
): boolean {
  const keys = Object.keys(plaintextResult(query, totals)).sort();
  if (Object.keys(result).sort().join() !== keys.join()) return false;
  switch (query.kind) {
    case "sum":
      return integerOf(result["sum"]) === totals.sum;
    case "count":
      return integerOf(result["count"]) === totals.count;
    case "mean":
      return integerOf(result["sum"]) === totals.sum &&
        integerOf(result["count"]) === totals.count && result["mean"] === mean(totals);
    case "variance": {
      const expected = plaintextResult(query, totals);
      return integerOf(result["sum"]) === totals.sum &&
        integerOf(result["count"]) === totals.count &&
        integerOf(result["sumOfSquares"]) === totals.squares &&
        ["mean", "variance", "varianceExact", "sampleVariance", "standardDeviation"]
          .concat("sampleStandardDeviation")
          .every((key) => result[key] === expected[key]);
    }
    case "histogram":
      return sameIntegers(result["histogram"], totals.elements) &&
        JSON.stringify(result["binEdges"]) ===
          JSON.stringify(binEdges(query.low, query.high, query.bins, 0));
    case "vector":
      return sameIntegers(result["vector"], totals.elements);
  }
}
