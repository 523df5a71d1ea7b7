/**
 * Queries: what the hospital asks for, how every peer turns its rows into the
 * same vector of field elements, the bound each element can reach, and how the
 * hospital decodes the summed vector into statistics.
 *
 *   sum                   [Σx]
 *   count                 [rows]
 *   mean                  [Σx, rows]
 *   variance              [Σx, Σx², rows]   (population variance)
 *   histogram:LOW:HIGH:B  B bin counts; bins [a, b) of equal width, the last
 *                         also holding HIGH
 *   vector:D              the peer's D-long vector, element by element
 *
 * Values are fixed-point with `scale` decimal places: x is stored as x·10^S.
 * The range check (0 ≤ x ≤ R, or LOW ≤ x ≤ HIGH) is on these scaled values.
 *
 * @module
 */

import { formatScaled, parseScaled } from "./decimal.ts";
import { P_BIG } from "./field.ts";

/** Raised for a query that cannot be run. */
export class QueryError extends Error {
  override name = "QueryError";
}

/** Raised when a peer's input does not fit the round; the message names the line. */
export class InputError extends Error {
  override name = "InputError";
}

/** A parsed query. Histogram bounds are scaled integers. */
export type Query =
  | { kind: "sum" | "count" | "mean" | "variance" }
  | { kind: "histogram"; low: bigint; high: bigint; bins: number }
  | { kind: "vector"; dimension: number };

/** The default largest input R: 2^30. */
export const DEFAULT_MAX = 1n << 30n;
/** The default most rows per peer: 2^12, so N·rows·R < p for about a thousand peers. */
export const DEFAULT_MAX_ROWS = 4096;

/** The longest vector a round may carry: 2^24 elements (128 MiB). */
export const MAX_DIMENSION = 1 << 24;
/** The most histogram bins. */
export const MAX_BINS = 100_000;

/** Parses a query spec such as `histogram:0:100:10`. */
export function parseQuery(text: string, scale: number): Query {
  const parts = text.split(":");
  const kind = parts[0];
  if (
    (kind === "sum" || kind === "count" || kind === "mean" || kind === "variance") &&
    parts.length === 1
  ) {
    return { kind };
  }
  if (kind === "histogram" && parts.length === 4) {
    let low: bigint;
    let high: bigint;
    try {
      low = parseScaled(parts[1]!, scale);
      high = parseScaled(parts[2]!, scale);
    } catch (cause) {
      throw new QueryError(
        `Invalid query ${JSON.stringify(text)}: LOW and HIGH ${(cause as Error).message}`,
      );
    }
    const bins = /^[1-9][0-9]*$/.test(parts[3]!) ? Number(parts[3]) : NaN;
    if (!(low < high)) {
      throw new QueryError(`Invalid query ${JSON.stringify(text)}: LOW must be below HIGH`);
    }
    if (!(bins >= 1 && bins <= MAX_BINS)) {
      throw new QueryError(
        `Invalid query ${JSON.stringify(text)}: BINS must be from 1 to ${MAX_BINS}`,
      );
    }
    return { kind, low, high, bins };
  }
  if (kind === "vector" && parts.length === 2) {
    const dimension = /^[1-9][0-9]*$/.test(parts[1]!) ? Number(parts[1]) : NaN;
    if (!(dimension >= 1 && dimension <= MAX_DIMENSION)) {
      throw new QueryError(
        `Invalid query ${JSON.stringify(text)}: D must be from 1 to ${MAX_DIMENSION}`,
      );
    }
    return { kind, dimension };
  }
  throw new QueryError(
    `Invalid query ${JSON.stringify(text)}: expected sum, count, mean, variance, ` +
      "histogram:LOW:HIGH:BINS or vector:D",
  );
}

/** The canonical spelling of a query, as sent in START. */
export function formatQuery(query: Query, scale: number): string {
  switch (query.kind) {
    case "histogram":
      return `histogram:${formatScaled(query.low, scale)}:${
        formatScaled(query.high, scale)
      }:${query.bins}`;
    case "vector":
      return `vector:${query.dimension}`;
    default:
      return query.kind;
  }
}

/** How many field elements each peer contributes. */
export function dimension(query: Query): number {
  switch (query.kind) {
    case "sum":
    case "count":
      return 1;
    case "mean":
      return 2;
    case "variance":
      return 3;
    case "histogram":
      return query.bins;
    case "vector":
      return query.dimension;
  }
}

/** One bound on what a peer's element can reach, with a name for messages. */
export interface ElementBound {
  label: string;
  bound: bigint;
}

/**
 * The largest value each kind of element can take for one peer, given the
 * scaled maximum R and the most rows a peer may hold. n times each must stay
 * below p.
 */
export function elementBounds(query: Query, max: bigint, maxRows: number): ElementBound[] {
  const rows = BigInt(maxRows);
  switch (query.kind) {
    case "sum":
      return [{ label: "rows × R (the sum)", bound: rows * max }];
    case "count":
    case "histogram":
      return [{ label: "rows (a count)", bound: rows }];
    case "mean":
      return [{ label: "rows × R (the sum)", bound: rows * max }, {
        label: "rows (the count)",
        bound: rows,
      }];
    case "variance":
      return [
        { label: "rows × R (the sum)", bound: rows * max },
        { label: "rows × R² (the sum of squares)", bound: rows * max * max },
        { label: "rows (the count)", bound: rows },
      ];
    case "vector":
      return [{ label: "R (each element)", bound: max }];
  }
}

/** The bound of element `index` of the query's vector. */
export function boundOf(query: Query, bounds: readonly ElementBound[], index: number): bigint {
  const entry = query.kind === "histogram" || query.kind === "vector" ? bounds[0] : bounds[index];
  return entry!.bound;
}

/** A peer's numbers (scaled integers) and where each came from; see input.ts. */
export interface ScaledInput {
  values: Float64Array;
  where(index: number): string;
}

/**
 * Turns a peer's scaled numbers into the query's vector, refusing (naming the
 * line) any that is out of range, and a table longer than `maxRows` or a
 * vector of the wrong length. For `vector:D` the input's own array becomes
 * the vector, without a copy.
 */
export function encodeInput(
  query: Query,
  input: ScaledInput,
  options: { scale: number; max: bigint; maxRows: number },
): Float64Array {
  const { scale, max, maxRows } = options;
  const values = input.values;
  const maxNumber = Number(max); // exact: max < p < 2^52
  const outside = (i: number, what: string) => new InputError(`${input.where(i)}: outside ${what}`);
  const range = `[0, R = ${formatScaled(max, scale)}]`;
  if (query.kind === "vector") {
    if (values.length !== query.dimension) {
      throw new InputError(
        `the input has ${values.length} numbers; the query needs a vector of ${query.dimension}`,
      );
    }
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (!(v >= 0 && v <= maxNumber)) throw outside(i, range);
    }
    return values;
  }
  if (values.length > maxRows) {
    throw new InputError(
      `the input has ${values.length} rows, more than the round's limit of ${maxRows}`,
    );
  }
  if (query.kind === "histogram") {
    const counts = new Float64Array(query.bins);
    const width = query.high - query.low;
    const bins = BigInt(query.bins);
    const span = `[${formatScaled(query.low, scale)}, ${formatScaled(query.high, scale)}]`;
    values.forEach((x, i) => {
      const v = BigInt(x);
      if (v < query.low || v > query.high) throw outside(i, span);
      // Exact bin arithmetic on scaled integers: ⌊(v − LOW)·B / (HIGH − LOW)⌋,
      // with HIGH itself in the last bin.
      const bin = v === query.high ? query.bins - 1 : Number(((v - query.low) * bins) / width);
      counts[bin]!++;
    });
    return counts;
  }
  let sum = 0n;
  let squares = 0n;
  values.forEach((x, i) => {
    if (!(x >= 0 && x <= maxNumber)) throw outside(i, range);
    const v = BigInt(x);
    sum += v;
    squares += v * v;
  });
  const count = values.length;
  switch (query.kind) {
    case "sum":
      return Float64Array.of(Number(sum));
    case "count":
      return Float64Array.of(count);
    case "mean":
      return Float64Array.of(Number(sum), count);
    case "variance":
      return Float64Array.of(Number(sum), Number(squares), count);
  }
}

/** A JSON number when it represents the scaled value exactly, else a decimal string. */
function scaledToJson(value: bigint, scale: number): number | string {
  const text = formatScaled(value, scale);
  const n = Number(text);
  try {
    if (Math.abs(n) <= Number.MAX_SAFE_INTEGER && parseScaled(String(n), scale) === value) return n;
  } catch {
    // Not exact as a number: fall through to the string.
  }
  return text;
}

/** The decoded statistics of a summed vector, under the keys the CLI prints. */
export function decodeResult(
  query: Query,
  summed: Float64Array,
  scale: number,
): Record<string, unknown> {
  const at = (i: number) => BigInt(summed[i]!);
  const factor = 10 ** scale;
  switch (query.kind) {
    case "sum":
      return { sum: scaledToJson(at(0), scale) };
    case "count":
      return { count: Number(at(0)) };
    case "mean": {
      const [sum, count] = [at(0), at(1)];
      return {
        sum: scaledToJson(sum, scale),
        count: Number(count),
        mean: count === 0n ? null : Number(sum) / Number(count) / factor,
      };
    }
    case "variance": {
      const [sum, squares, count] = [at(0), at(1), at(2)];
      // Exact numerator: count·Σx² − (Σx)² ≥ 0; one division at the end.
      const numerator = count * squares - sum * sum;
      return {
        sum: scaledToJson(sum, scale),
        count: Number(count),
        mean: count === 0n ? null : Number(sum) / Number(count) / factor,
        variance: count === 0n
          ? null
          : Number(numerator) / Number(count * count) / (factor * factor),
      };
    }
    case "histogram":
      return { histogram: Array.from(summed) };
    case "vector":
      return {
        vector: scale === 0
          ? Array.from(summed)
          : Array.from(summed, (x) => scaledToJson(BigInt(x), scale)),
      };
  }
}

/** Refuses a round in which any element could reach p. */
export function assertBoundsFit(participants: number, bounds: readonly ElementBound[]): void {
  for (const { label, bound } of bounds) {
    if (BigInt(participants) * bound >= P_BIG) {
      throw new QueryError(
        `Cannot run round: ${participants} peers × ${label} = ${
          BigInt(participants) * bound
        } is not below p = ${P_BIG}, so the sum could wrap; lower --max, --max-rows or the number of peers`,
      );
    }
  }
}
