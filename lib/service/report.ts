/**
 * A round's result as the hospital reports it: the decoded statistics under
 * `result`, and the round's terms and parties. Shared by the one-shot
 * `hospital` and the serving hospital's answers to `ask`. Beyond what
 * decodeResult gives, a variance carries the sample variance and both
 * standard deviations, and a histogram its bin edges; `max` is the declared
 * largest value as written (unscaled), `maxScaled` the field integer.
 *
 * @module
 */

import { formatScaled } from "../decimal.ts";
import { P_BIG } from "../field.ts";
import { decodeResult, decodeTotals, type Query, vectorLayout } from "../query.ts";
import type { StarHospitalResult } from "../runtime/hospital.ts";
import type { Terms } from "../wire/messages.ts";

/** A round's report: the statistics under `result`, then the terms and parties. */
export type Report = Record<string, unknown> & { result: Record<string, unknown> };

/**
 * The hospital's result as JSON: the decoded statistics under `result` (and,
 * for a `sum` query, `sum` at the top as well), and the round's terms.
 */
export function starReport(round: StarHospitalResult, terms: Terms, query: Query): Report {
  const layout = vectorLayout(query, {
    max: terms.max,
    maxRows: terms.maxRows,
    participants: terms.participants,
  });
  const result = decodeResult(query, round.outcome.result, terms.scale, layout);
  if (query.kind === "variance") {
    const [sum, squares, count] = decodeTotals(layout, round.outcome.result) as [
      bigint,
      bigint,
      bigint,
    ];
    Object.assign(result, spread(sum, squares, count, terms.scale));
  }
  if (query.kind === "histogram") {
    result["binEdges"] = binEdges(query.low, query.high, query.bins, terms.scale);
  }
  return {
    ...(query.kind === "sum" ? { sum: result["sum"] } : {}),
    result,
    query: terms.query,
    session: round.session,
    participants: round.participants,
    contributors: round.outcome.set,
    mode: terms.mode === "nofn" ? "additive" : "threshold",
    threshold: terms.mode === "nofn" ? round.participants.length : terms.threshold,
    scale: terms.scale,
    p: P_BIG.toString(),
    max: trimDecimal(formatScaled(terms.max, terms.scale)),
    maxScaled: terms.max.toString(),
    maxRows: terms.maxRows,
    startToResultMs: Math.round(round.startToResultMs * 10) / 10,
    bytesReceived: round.bytesIn,
    bytesSent: round.bytesOut,
  };
}

/**
 * `variance` (decodeResult's, the population variance: divided by n) gets
 * its company: the sample variance (divided by n − 1, null below two rows)
 * and the square root of each. One division from the exact numerator.
 */
function spread(sum: bigint, squares: bigint, count: bigint, scale: number) {
  const numerator = Number(count * squares - sum * sum);
  const factor = 10 ** (2 * scale);
  const population = count === 0n ? null : numerator / Number(count * count) / factor;
  const sample = count < 2n ? null : numerator / Number(count * (count - 1n)) / factor;
  return {
    sampleVariance: sample,
    standardDeviation: population === null ? null : Math.sqrt(population),
    sampleStandardDeviation: sample === null ? null : Math.sqrt(sample),
  };
}

/**
 * The BINS + 1 edges LOW + i·(HIGH − LOW)/BINS, unscaled: a value v is in bin
 * i when edge i ≤ v < edge i+1, and HIGH is in the last bin. An edge with a
 * terminating decimal is exact (a number, or a string past 2^53); one
 * without (0:10:3) is the nearest binary64, which no value at the round's
 * scale can fall between.
 */
export function binEdges(low: bigint, high: bigint, bins: number, scale: number): unknown[] {
  const edges: unknown[] = [];
  const width = high - low;
  for (let i = 0; i <= bins; i++) {
    edges.push(rationalJson(low * BigInt(bins) + BigInt(i) * width, BigInt(bins), scale));
  }
  return edges;
}

function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

/** numerator / (denominator · 10^scale) as JSON: exact when its decimal terminates. */
function rationalJson(numerator: bigint, denominator: bigint, scale: number): unknown {
  const g = gcd(numerator, denominator) || 1n;
  let n = numerator / g;
  let d = denominator / g;
  let places = scale;
  // d = 2^a·5^b terminates: scale n up to a power of ten over d.
  while (d % 10n === 0n) [d, places] = [d / 10n, places + 1];
  while (d % 2n === 0n) [n, d, places] = [n * 5n, d / 2n, places + 1];
  while (d % 5n === 0n) [n, d, places] = [n * 2n, d / 5n, places + 1];
  if (d !== 1n) return Number(numerator) / Number(denominator) / 10 ** scale;
  const text = trimDecimal(formatScaled(n, places));
  const number = Number(text);
  return Number.isSafeInteger(Number(text.replace(/[.-]/g, ""))) && String(number) === text
    ? number
    : text;
}

/** "400.50" → "400.5", "400.0" → "400". */
function trimDecimal(text: string): string {
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}
