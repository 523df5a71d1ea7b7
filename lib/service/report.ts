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
import { decodeResult, decodeTotals, nearestNumber, type Query, vectorLayout } from "../query.ts";
import type { StarHospitalResult } from "../runtime/hospital.ts";
import type { Terms } from "../wire/messages.ts";

export { nearestNumber };

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
    Object.assign(result, varianceSpread(sum, squares, count, terms.scale));
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
    // How the totals were carried: a total past p1 takes 2 or 3 residues (lib/query.ts).
    elements: layout.dimension,
    residues: layout.components.map((c) => c.residues),
    startToResultMs: Math.round(round.startToResultMs * 10) / 10,
    bytesReceived: round.bytesIn,
    bytesSent: round.bytesOut,
  };
}

/**
 * The population variance (divided by n) and its company: the sample
 * variance (divided by n − 1, null below two rows) and the square root of
 * each. Each variance is the binary64 nearest the exact fraction (one
 * rounding: past 2^53 the numerator alone would round, and dividing by n²
 * and then by 10^(2·scale) would round twice more). Since a binary64 cannot
 * hold most variances, the exact ones go with them: the sum of squares and
 * the population variance as a fraction in lowest terms.
 */
export function varianceSpread(sum: bigint, squares: bigint, count: bigint, scale: number) {
  const exact = count * squares - sum * sum;
  const factor = 10n ** BigInt(2 * scale);
  const population = count === 0n ? null : nearestNumber(exact, count * count * factor);
  const sample = count < 2n ? null : nearestNumber(exact, count * (count - 1n) * factor);
  return {
    variance: population,
    sumOfSquares: rationalJson(squares, 1n, 2 * scale),
    varianceExact: count === 0n ? null : fraction(exact, count * count * factor),
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

/** numerator/denominator in lowest terms, as "N/D" (or "N" when D is 1). */
function fraction(numerator: bigint, denominator: bigint): string {
  const g = gcd(numerator, denominator) || 1n;
  const d = denominator / g;
  return d === 1n ? `${numerator / g}` : `${numerator / g}/${d}`;
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
  if (d !== 1n) return nearestNumber(numerator, denominator * 10n ** BigInt(scale));
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
