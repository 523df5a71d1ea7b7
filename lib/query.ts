/**
 * Queries: what the hospital asks for, how every peer turns its rows into the
 * same vector of field elements, the bound each element can reach, and how the
 * hospital decodes the summed vector into statistics. A component whose bound
 * is too large for one element is carried as residues modulo two or three
 * primes: see {@linkcode Layout}.
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
import {
  fromResidues,
  isSegmentedFieldVector,
  MODULI,
  MODULI_BIG,
  P_BIG,
  type Segment,
} from "./field.ts";

export type { Segment };

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

/**
 * How many components (exact totals) each peer contributes. This is the
 * vector's length when every component fits one field element; a round's
 * actual length is its {@linkcode Layout}'s `dimension`.
 */
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

/** One bound on what a peer's component can reach, with a name for messages. */
export interface ElementBound {
  label: string;
  bound: bigint;
  /** How many consecutive components share this bound: the bins, D, or 1. */
  count: number;
}

/**
 * The largest value each kind of component can take for one peer, given the
 * scaled maximum R and the most rows a peer may hold, in the order the
 * components appear in the vector.
 */
export function elementBounds(query: Query, max: bigint, maxRows: number): ElementBound[] {
  const rows = BigInt(maxRows);
  switch (query.kind) {
    case "sum":
      return [{ label: "rows × R (the sum)", bound: rows * max, count: 1 }];
    case "count":
      return [{ label: "rows (a count)", bound: rows, count: 1 }];
    case "histogram":
      return [{ label: "rows (a count)", bound: rows, count: query.bins }];
    case "mean":
      return [
        { label: "rows × R (the sum)", bound: rows * max, count: 1 },
        { label: "rows (the count)", bound: rows, count: 1 },
      ];
    case "variance":
      return [
        { label: "rows × R (the sum)", bound: rows * max, count: 1 },
        { label: "rows × R² (the sum of squares)", bound: rows * max * max, count: 1 },
        { label: "rows (the count)", bound: rows, count: 1 },
      ];
    case "vector":
      return [{ label: "R (each element)", bound: max, count: query.dimension }];
  }
}

/** The bound of total `index` of the query (the element's bound when nothing needs residues). */
export function boundOf(query: Query, bounds: readonly ElementBound[], index: number): bigint {
  const entry = query.kind === "histogram" || query.kind === "vector" ? bounds[0] : bounds[index];
  return entry!.bound;
}

/*
 * Layout: how a round's components become field elements (residues).
 *
 * p1 = 2^52 − 47 is too small for some exact totals (10 sites × 10^5 rows ×
 * (10^6)² = 10^18 for a variance's sum of squares), so a component whose
 * bound does not fit one element is carried in a residue number system: as
 * its residues modulo two or three primes, each summed over the peers modulo
 * its own prime. The summed residues are S mod p1, S mod p2, …, which by the
 * Chinese remainder theorem determine the exact total S, because S is below
 * the product of the moduli. They are a function of S alone, so the hospital
 * learns S and nothing more: masks are uniform modulo each prime
 * independently, and two inputs with the same total give the same residues.
 * (Base-2^w digits would not: the sum of the low digits tells apart inputs
 * with equal totals.) Every modulus is below 2^52, so each residue is a
 * Float64 element like any other; only the vector gets longer.
 *
 * Moduli, in this order (the three largest primes below 2^52):
 *   p1 = 2^52 − 47  = 4503599627370449   (p, the field of every other element)
 *   p2 = 2^52 − 143 = 4503599627370353
 *   p3 = 2^52 − 173 = 4503599627370323
 *
 * Inputs (the round's terms; every party computes the layout from them on its
 * own, and nothing about the layout is sent): the query, R = max (scaled
 * integer, 0 ≤ R < p1), M = maxRows (1 ≤ M), and n = the number of
 * participants (1 ≤ n), the most peers whose inputs a sum can contain.
 *
 * 1. Components, in this order, and their bounds B (the most one peer's exact
 *    total V of the component can be; 0 ≤ V ≤ B is enforced when encoding):
 *      sum                 Σx: B = M·R
 *      count               rows: B = M
 *      mean                Σx: M·R, then rows: M
 *      variance            Σx: M·R, then Σx²: M·R², then rows: M
 *      histogram:LOW:HIGH:K  K bin counts, each B = M
 *      vector:D            D elements, each B = R
 *    A component has c totals (c = K bins, D elements, or 1) sharing B.
 * 2. Residues per total, k: k = 1 if n·B < p1 (the fast path); otherwise the
 *    smallest k in {2, 3} with n·B < p1·…·pk. The round is refused if
 *    n·B ≥ p1·p2·p3 (about 2^156): it cannot be represented.
 * 3. Elements. Fast path (k = 1): one element per total, V itself, modulo p1
 *    (the encoding of rounds before residues existed, byte for byte).
 *    Otherwise residue j (j = 1 … k) of a total is V mod pj. A component
 *    takes c·k consecutive elements: residue 1 of each of its c totals in
 *    order, then residue 2 of each, then residue 3; residue j of total t
 *    (t = 0 … c − 1) is at index start + (j − 1)·c + t. Components follow
 *    one another in order: a component's start is the sum of c·k over the
 *    components before it, and dimension = Σ c·k; a round whose dimension
 *    exceeds 2^24 is refused.
 * 4. Segments: the vector read as maximal runs of consecutive elements with
 *    the same modulus (a fast-path element's is p1, residue j's is pj),
 *    listed in vector order as {start, length, modulus}. A round without
 *    residues has one segment, {0, dimension, p1}.
 * 5. Arithmetic: an element of a segment with modulus m is a whole number in
 *    [0, m); masks, sums and differences of it are taken modulo m. A seed's
 *    PRG stream draws a vector's masks segment by segment in vector order,
 *    one continuous stream: each element is the next 52-bit candidate below
 *    its segment's modulus (candidates at or above it are skipped).
 * 6. Element bounds: one peer's fast-path element is at most B, and n·B < p1,
 *    so the field sum over at most n peers never wraps: it is the exact
 *    integer sum. A residue element can be any value below its modulus.
 * 7. Decoding: a fast-path total is its summed element. A residue total is
 *    the unique S in [0, p1·…·pk) with S ≡ s_j (mod pj) for the summed
 *    residues s_1 … s_k, computed in BigInt by Garner's rule: x1 = s_1,
 *    x_j = (s_j − (x1 + p1·x2 + … )) · (p1·…·p(j−1))^(−1) mod pj, and
 *    S = x1 + p1·x2 + p1·p2·x3. Since n·B < p1·…·pk, S is the exact total.
 */

/** One kind of component in a {@linkcode Layout}: `count` consecutive totals with the same bound. */
export interface Component {
  label: string;
  /** B: the most one peer's exact total can be. */
  bound: bigint;
  /** How many consecutive totals of this kind: D for vector:D, the bins, or 1. */
  count: number;
  /** k: elements per total; 1 is the fast path, 2 or 3 are residues mod p1, p2 (and p3). */
  residues: number;
  /** Index of the component's first element in the vector. */
  start: number;
}

/** How a round's components are laid out as field elements; see the comment above. */
export interface Layout {
  /** n: the most peers a sum can cover. */
  participants: number;
  /** R, scaled. */
  max: bigint;
  maxRows: number;
  components: readonly Component[];
  /** The vector as runs of elements with one modulus, in order (step 4). */
  segments: readonly Segment[];
  /** The vector's length: Σ count × residues. */
  dimension: number;
}

/** The terms a layout depends on besides the query. */
export interface LayoutTerms {
  max: bigint;
  maxRows: number;
  /** n: the number of participants of the round. */
  participants: number;
}

/** p1·…·pk for k = 1, 2, 3: the totals k residues can carry are those below it. */
const PRODUCTS: readonly bigint[] = MODULI_BIG.map((_, k) =>
  MODULI_BIG.slice(0, k + 1).reduce((a, b) => a * b, 1n)
);

function assertParticipants(participants: number): void {
  if (!(Number.isSafeInteger(participants) && participants >= 1)) {
    throw new QueryError("Cannot run round: the number of peers must be a whole number from 1");
  }
}

/**
 * k for a component of bound B summed over n peers (step 2): 1 when
 * n·B < p1, else the fewest residues whose moduli's product exceeds n·B.
 * Refuses a total that even three residues cannot carry.
 */
export function residueCount(participants: number, bound: bigint, label = "a total"): number {
  assertParticipants(participants);
  const reach = BigInt(participants) * bound;
  const k = PRODUCTS.findIndex((product) => reach < product);
  if (k === -1) {
    throw new QueryError(
      `Cannot run round: ${participants} peers × ${label} = ${reach} cannot be represented ` +
        `(it is not below p1·p2·p3 = ${
          PRODUCTS.at(-1)
        }); lower --max, --max-rows or the number of peers`,
    );
  }
  return k + 1;
}

/** Chooses each component's residues and place (steps 2 and 3). */
function planComponents(participants: number, bounds: readonly ElementBound[]): Component[] {
  let start = 0;
  return bounds.map(({ label, bound, count }) => {
    const residues = residueCount(participants, bound, label);
    const component = { label, bound, count, residues, start };
    start += count * residues;
    return component;
  });
}

/** The vector's length, refused above the vector limit (step 3). */
function checkedDimension(components: readonly Component[]): number {
  const total = components.reduce((sum, c) => sum + c.count * c.residues, 0);
  if (total > MAX_DIMENSION) {
    const wide = components.filter((c) => c.residues > 1)
      .map((c) => `${c.label} takes ${c.residues} residues`).join(", ");
    throw new QueryError(
      `Cannot run round: the round needs vectors of ${total} field elements${
        wide ? ` (${wide})` : ""
      }, more than the limit of ${MAX_DIMENSION}; lower --max, --max-rows or the number of peers`,
    );
  }
  return total;
}

/** The maximal runs of one modulus, in vector order (step 4). */
function segmentsOf(components: readonly Component[]): Segment[] {
  const segments: Segment[] = [];
  for (const { count, residues, start } of components) {
    for (let j = 0; j < residues; j++) {
      const modulus = MODULI[j]!;
      const last = segments.at(-1);
      if (last && last.modulus === modulus) last.length += count;
      else segments.push({ start: start + j * count, length: count, modulus });
    }
  }
  return segments;
}

/** R must be below p1 (so it and every input are exact doubles), and rows at least 1. */
function assertTerms(max: bigint, maxRows: number): void {
  if (!(max >= 0n && max < P_BIG)) {
    throw new QueryError(`Cannot run round: R must be from 0 to below p = ${P_BIG}`);
  }
  if (!(Number.isSafeInteger(maxRows) && maxRows >= 1)) {
    throw new QueryError("Cannot run round: the most rows per peer must be a whole number from 1");
  }
}

/**
 * The layout of a round: which components it has, how many residues each
 * takes and where, the segments of one modulus, and the vector's length.
 * Refuses terms that cannot be represented exactly (R not below p1, a total
 * that three residues cannot carry, a vector over 2^24 elements).
 */
export function vectorLayout(query: Query, terms: LayoutTerms): Layout {
  const { max, maxRows, participants } = terms;
  assertTerms(max, maxRows);
  assertParticipants(participants);
  const components = planComponents(participants, elementBounds(query, max, maxRows));
  const dimension = checkedDimension(components);
  return { participants, max, maxRows, components, segments: segmentsOf(components), dimension };
}

/** Whether a round's layout needs more than one field: some total takes residues. */
export function hasResidues(layout: Layout): boolean {
  return layout.components.some((c) => c.residues > 1);
}

/**
 * Refuses a layout that is not exactly the one this query's terms give: its
 * components must be the query's (same bounds and counts for its R and
 * maxRows), each with the residues, place and segments the rules above give
 * for its n, and its dimension theirs. {@linkcode vectorLayout} only makes
 * layouts that pass; this guards one built or altered elsewhere (fewer
 * residues than a bound needs would let a total wrap).
 */
export function assertLayoutFits(query: Query, layout: Layout): void {
  assertTerms(layout.max, layout.maxRows);
  assertParticipants(layout.participants);
  const expected = elementBounds(query, layout.max, layout.maxRows);
  const { components } = layout;
  if (
    components.length !== expected.length ||
    components.some((c, i) => c.bound !== expected[i]!.bound || c.count !== expected[i]!.count)
  ) {
    throw new QueryError("Cannot use the layout: its components are not the query's");
  }
  const planned = planComponents(layout.participants, expected);
  components.forEach((c, i) => {
    const want = planned[i]!;
    if (c.residues !== want.residues) {
      throw new QueryError(
        `Cannot use the layout: ${c.label} takes ${c.residues} residues; ` +
          `${layout.participants} peers need ${want.residues}`,
      );
    }
    if (c.start !== want.start) {
      throw new QueryError(`Cannot use the layout: ${c.label} starts at element ${c.start}`);
    }
  });
  const dimension = checkedDimension(planned);
  if (layout.dimension !== dimension) {
    throw new QueryError(
      `Cannot use the layout: it claims ${layout.dimension} elements, its components need ${dimension}`,
    );
  }
  const segments = segmentsOf(planned);
  if (
    layout.segments.length !== segments.length ||
    layout.segments.some((s, i) =>
      s.start !== segments[i]!.start || s.length !== segments[i]!.length ||
      s.modulus !== segments[i]!.modulus
    )
  ) {
    throw new QueryError("Cannot use the layout: its segments are not its components'");
  }
}

/** The component that element `index` of the round's vector belongs to. */
function componentAt(layout: Layout, index: number): Component {
  const component = layout.components.find((c) =>
    index >= c.start && index < c.start + c.count * c.residues
  );
  if (!component || !Number.isInteger(index)) {
    throw new RangeError(`Element ${index} is outside the layout's ${layout.dimension} elements`);
  }
  return component;
}

/**
 * The most one peer's element `index` of the round's vector can be (step 6):
 * B for a fast-path element, the modulus less one for a residue.
 */
export function elementBound(layout: Layout, index: number): bigint {
  const { bound, count, residues, start } = componentAt(layout, index);
  return residues === 1 ? bound : MODULI_BIG[Math.floor((index - start) / count)]! - 1n;
}

/** Refuses a summed vector that is not the layout's length or not canonical in every segment. */
function assertDecodable(layout: Layout, summed: Float64Array): void {
  if (summed.length !== layout.dimension) {
    throw new QueryError(
      `Cannot decode: the sum has ${summed.length} elements; the layout has ${layout.dimension}`,
    );
  }
  if (!isSegmentedFieldVector(summed, layout.segments)) {
    throw new QueryError("Cannot decode: an element of the sum is not below its segment's modulus");
  }
}

/** Total `t` of a component, from its residues in `summed` (step 7). */
function totalOf(summed: Float64Array, component: Component, t: number): bigint {
  const { count, residues, start } = component;
  if (residues === 1) return BigInt(summed[start + t]!);
  const r = new Array<number>(residues);
  for (let j = 0; j < residues; j++) r[j] = summed[start + j * count + t]!;
  return fromResidues(r);
}

/**
 * Each component's exact total over all peers (step 7), from the summed
 * vector, in component order (D of them for vector:D).
 */
export function decodeTotals(layout: Layout, summed: Float64Array): bigint[] {
  assertDecodable(layout, summed);
  const totals: bigint[] = [];
  for (const component of layout.components) {
    for (let t = 0; t < component.count; t++) totals.push(totalOf(summed, component, t));
  }
  return totals;
}

/**
 * Whether every exact total of `summed` is at most `members` times its
 * component's bound. Honest inputs keep each total there, so one past it
 * means some input broke the terms (or a mask did not cancel): the hospital
 * publishes no such result and a receipt with one is not valid
 * (docs/protocol.md §10.9, §17). For a fast-path element the total is the
 * element; a residue alone can be anything below its modulus, so the
 * recombined total is what is checked.
 */
export function totalsWithinBounds(layout: Layout, summed: Float64Array, members: number): boolean {
  assertDecodable(layout, summed);
  const limit = BigInt(members);
  for (const component of layout.components) {
    const { bound, count, residues, start } = component;
    const most = limit * bound;
    if (residues === 1) {
      // Compared as doubles: a BigInt per element cost 125 ms and 67 MB at
      // 2^20 elements (review 16). Exact: every element is a whole number
      // below p1 < 2^52, and Number(most) rounds only above 2^53, past them all.
      const limitNumber = Number(most);
      for (let i = start; i < start + count; i++) if (summed[i]! > limitNumber) return false;
    } else {
      for (let t = 0; t < count; t++) if (totalOf(summed, component, t) > most) return false;
    }
  }
  return true;
}

/**
 * Whole numbers below 2^53 as `residues` residues each (step 3): all the
 * first residues, then all the second, …; `v % m` is exact in doubles.
 */
function residuesOfNumbers(values: Float64Array, residues: number): Float64Array {
  const c = values.length;
  const out = new Float64Array(c * residues);
  for (let j = 0; j < residues; j++) {
    const m = MODULI[j]!;
    for (let t = 0; t < c; t++) out[j * c + t] = values[t]! % m;
  }
  return out;
}

/** A peer's numbers (scaled integers) and where each came from; see input.ts. */
export interface ScaledInput {
  values: Float64Array;
  where(index: number): string;
}

/** Refuses a layout that is not this query's, before it is used to encode or decode. */
function checkedComponents(query: Query, layout: Layout): readonly Component[] {
  assertLayoutFits(query, layout);
  return layout.components;
}

/**
 * Turns a peer's scaled numbers into the round's vector as its layout says,
 * refusing (naming the line) any that is out of range, and a table longer
 * than `maxRows` or a vector of the wrong length. For `vector:D` on the fast
 * path the input's own array becomes the vector, without a copy.
 */
export function encodeInput(
  query: Query,
  input: ScaledInput,
  options: { scale: number; layout: Layout },
): Float64Array {
  const { scale, layout } = options;
  const { max, maxRows } = layout;
  const components = checkedComponents(query, layout);
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
      // −0 (a JSON input's `-0`) is the element 0: one spelling per vector.
      // Normalized here, not in the reader, so that an agent's data version
      // (its hash of the numbers as read) stays what it was (review 16).
      if (v === 0) values[i] = 0;
    }
    const { residues } = components[0]!;
    return residues === 1 ? values : residuesOfNumbers(values, residues);
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
    const { residues } = components[0]!;
    return residues === 1 ? counts : residuesOfNumbers(counts, residues);
  }
  let sum = 0n;
  let squares = 0n;
  values.forEach((x, i) => {
    if (!(x >= 0 && x <= maxNumber)) throw outside(i, range);
    const v = BigInt(x);
    sum += v;
    squares += v * v;
  });
  const count = BigInt(values.length);
  const totals = query.kind === "sum"
    ? [sum]
    : query.kind === "count"
    ? [count]
    : query.kind === "mean"
    ? [sum, count]
    : [sum, squares, count];
  const out = new Float64Array(layout.dimension);
  components.forEach(({ residues, start }, i) => {
    const total = totals[i]!;
    // One total per component here, so residue j sits at start + j. On the
    // fast path the element is the total itself (exact: total ≤ B < p1/n).
    for (let j = 0; j < residues; j++) {
      out[start + j] = residues === 1 ? Number(total) : Number(total % MODULI_BIG[j]!);
    }
  });
  return out;
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

/**
 * Vector totals from residues (the summed vector already checked canonical).
 * When every residue of an element is the same r, the total is r itself: r
 * is below each modulus (each residue is), so it is congruent to every
 * residue and below their product, the CRT's unique answer; no BigInt is
 * needed, as for every total below p3. Otherwise Garner's rule in BigInt. A
 * whole number past 2^53 − 1 is never exact as a JSON number: text.
 */
function vectorTotals(summed: Float64Array, component: Component, scale: number): unknown[] {
  const { count, residues, start } = component;
  const out = new Array<unknown>(count);
  for (let t = 0; t < count; t++) {
    const r = summed[start + t]!;
    let same = true;
    for (let j = 1; j < residues && same; j++) same = summed[start + j * count + t] === r;
    if (same) {
      out[t] = scale === 0 ? r : scaledToJson(BigInt(r), scale);
      continue;
    }
    const total = totalOf(summed, component, t);
    out[t] = scale === 0
      ? (total <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(total) : total.toString())
      : scaledToJson(total, scale);
  }
  return out;
}

/**
 * The decoded statistics of a summed vector, under the keys the CLI prints.
 * Give the round's `layout`; without one the vector must have one element per
 * component (a round in which nothing needed residues), or it is refused.
 * Totals too large to be exact as JSON numbers are decimal strings.
 */
export function decodeResult(
  query: Query,
  summed: Float64Array,
  scale: number,
  layout?: Layout,
): Record<string, unknown> {
  if (layout === undefined && summed.length !== dimension(query)) {
    throw new QueryError(
      `Cannot decode: the sum has ${summed.length} elements for ${
        dimension(query)
      } components; decoding residues needs the round's layout`,
    );
  }
  const components = layout === undefined ? undefined : checkedComponents(query, layout);
  if (layout !== undefined) assertDecodable(layout, summed);
  if (query.kind === "vector") {
    const component = components?.[0];
    if (component !== undefined && component.residues > 1) {
      return { vector: vectorTotals(summed, component, scale) };
    }
    return {
      vector: scale === 0
        ? Array.from(summed)
        : Array.from(summed, (x) => scaledToJson(BigInt(x), scale)),
    };
  }
  const totals = layout === undefined
    ? Array.from(summed, (x) => BigInt(x))
    : decodeTotals(layout, summed);
  const at = (i: number) => totals[i]!;
  // Exact rationals, each rounded once to the nearest binary64.
  const factor = 10n ** BigInt(scale);
  switch (query.kind) {
    case "sum":
      return { sum: scaledToJson(at(0), scale) };
    case "count":
      return { count: scaledToJson(at(0), 0) };
    case "mean": {
      const [sum, count] = [at(0), at(1)];
      return {
        sum: scaledToJson(sum, scale),
        count: scaledToJson(count, 0),
        mean: count === 0n ? null : nearestNumber(sum, count * factor),
      };
    }
    case "variance": {
      const [sum, squares, count] = [at(0), at(1), at(2)];
      // Exact numerator: count·Σx² − (Σx)² ≥ 0; one division at the end.
      const numerator = count * squares - sum * sum;
      return {
        sum: scaledToJson(sum, scale),
        count: scaledToJson(count, 0),
        mean: count === 0n ? null : nearestNumber(sum, count * factor),
        variance: count === 0n ? null : nearestNumber(numerator, count * count * factor * factor),
      };
    }
    case "histogram":
      return { histogram: totals.map((t) => scaledToJson(t, 0)) };
  }
}

function bitLength(n: bigint): number {
  return n.toString(2).length;
}

/**
 * The binary64 nearest to n/d (d > 0; ties to even): a 54-bit quotient of
 * |n|/d, then one rounding with the remainder as the sticky bit. Dividing
 * Number(n) by Number(d) would round up to three times (each operand past
 * 2^53, then the quotient) and can miss the nearest value.
 */
export function nearestNumber(n: bigint, d: bigint): number {
  if (n < 0n) return -nearestNumber(-n, d);
  if (n === 0n) return 0;
  const shift = 55 - (bitLength(n) - bitLength(d));
  const [top, bottom] = shift >= 0 ? [n << BigInt(shift), d] : [n, d << BigInt(-shift)];
  let q = top / bottom;
  let sticky = top % bottom !== 0n;
  const extra = bitLength(q) - 54;
  if (extra > 0) {
    sticky ||= (q & ((1n << BigInt(extra)) - 1n)) !== 0n;
    q >>= BigInt(extra);
  }
  // n/d ≈ q · 2^(extra − shift), q of 54 bits: 53 kept and the rounding bit.
  let m = q >> 1n;
  if ((q & 1n) === 1n && (sticky || (m & 1n) === 1n)) m += 1n;
  const exponent = extra - shift + 1;
  // Two steps, so that 2^exponent alone cannot overflow or underflow first.
  const half = Math.trunc(exponent / 2);
  return Number(m) * 2 ** half * 2 ** (exponent - half);
}

/**
 * Refuses a round whose components cannot all be represented exactly: the
 * check behind {@linkcode vectorLayout}, for callers that have bounds but no
 * layout yet (n is then the most peers the round may have).
 */
export function assertBoundsFit(participants: number, bounds: readonly ElementBound[]): void {
  assertParticipants(participants);
  checkedDimension(planComponents(participants, bounds));
}
