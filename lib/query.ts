/**
 * Queries: what the hospital asks for, how every peer turns its rows into the
 * same vector of field elements, the bound each element can reach, and how the
 * hospital decodes the summed vector into statistics. A component whose bound
 * is too large for one element takes several (limbs): see {@linkcode Layout}.
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

/** The bound of component `index` of the query, when every component is one element. */
export function boundOf(query: Query, bounds: readonly ElementBound[], index: number): bigint {
  const entry = query.kind === "histogram" || query.kind === "vector" ? bounds[0] : bounds[index];
  return entry!.bound;
}

/*
 * Layout: how a round's components become field elements (limbs).
 *
 * p = 2^52 − 47 is too small for some exact totals (10 sites × 10^5 rows ×
 * (10^6)² = 10^18 for a variance's sum of squares), so a component whose
 * bound does not fit is written as several field elements, its base-2^w
 * digits ("limbs"). Each limb's sum over the peers stays below p, so it is
 * exact, and the total is recombined over the integers. The field, the
 * Float64 elements and the PRG are unchanged; only the vector gets longer.
 *
 * Inputs (the round's terms; every party computes the layout from them on its
 * own, and nothing about the layout is sent): the query, R = max (scaled
 * integer, 0 ≤ R < p), M = maxRows (1 ≤ M), and n = the number of
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
 * 2. Limb width: w(n) = bitlen(⌊(p − 1)/n⌋) − 1, the largest w with
 *    n·2^w < p (bitlen(x) = the number of binary digits of x > 0).
 *    For example w = 51 for n = 1, 50 for n = 2..3, 48 for n = 10, 44 for
 *    n = 200, 42 for n = 1000.
 * 3. Each component with bound B:
 *    - if n·B < p: L = 1 limb, the element is V itself (the encoding of
 *      rounds before limbs existed, byte for byte); its width is reported as
 *      bitlen(B) (0 when B = 0);
 *    - otherwise: w = w(n), L = ⌈bitlen(B)/w⌉ (≥ 2), and limb k, for k = 0 …
 *      L − 1, is ⌊V / 2^(w·k)⌋ mod 2^w (least significant first). The round
 *      is refused if w(n) < 1, i.e. n > (p − 1)/2: even one-bit limbs could
 *      wrap.
 * 4. The vector is the components in order, each component's L limbs
 *    consecutive, least significant first: for vector:D with L limbs, limb k
 *    of element i is at index i·L + k. dimension = Σ (count × L) over the
 *    components; a round whose dimension exceeds 2^24 is refused.
 * 5. Element bounds: a limb k < L − 1 is at most 2^w − 1, the top limb
 *    (k = L − 1) at most ⌊B / 2^(w·(L−1))⌋ (= B when L = 1). Every party
 *    checks n × each element bound < p before the round goes on, so a sum
 *    over at most n peers never reaches p and is the exact integer sum.
 * 6. Decoding: with s_k the summed vector's limb k of a component (an integer
 *    below p; it may exceed 2^w, since carries are not propagated), the
 *    component's exact total over the peers is Σ_k s_k · 2^(w·k), computed
 *    over the integers.
 */

/** One kind of component in a {@linkcode Layout}: `count` consecutive totals with the same bound. */
export interface Component {
  label: string;
  /** B: the most one peer's exact total can be. */
  bound: bigint;
  /** How many consecutive components of this kind: D for vector:D, the bins, or 1. */
  count: number;
  /** L: field elements (limbs) per component. */
  limbs: number;
  /** w: bits per limb; limb k of a total V is ⌊V / 2^(w·k)⌋ mod 2^w. */
  width: number;
}

/** How a round's components are laid out as field elements; see the comment above. */
export interface Layout {
  /** n: the most peers a sum can cover. */
  participants: number;
  /** R, scaled. */
  max: bigint;
  maxRows: number;
  components: readonly Component[];
  /** The vector's length: Σ count × limbs. */
  dimension: number;
}

/** The terms a layout depends on besides the query. */
export interface LayoutTerms {
  max: bigint;
  maxRows: number;
  /** n: the number of participants of the round. */
  participants: number;
}

/** The number of binary digits of a non-negative integer (0 for 0). */
function bitLength(x: bigint): number {
  return x === 0n ? 0 : x.toString(2).length;
}

/** w(n): the widest limb whose sum over n peers stays below p, i.e. the largest w with n·2^w < p. */
export function limbWidth(participants: number): number {
  return bitLength((P_BIG - 1n) / BigInt(participants)) - 1;
}

function assertParticipants(participants: number): void {
  if (!(Number.isSafeInteger(participants) && participants >= 1)) {
    throw new QueryError("Cannot run round: the number of peers must be a whole number from 1");
  }
}

/** Chooses each component's limbs (steps 2 and 3); refuses n so large that no limb fits. */
function planComponents(participants: number, bounds: readonly ElementBound[]): Component[] {
  assertParticipants(participants);
  const n = BigInt(participants);
  const w = limbWidth(participants);
  return bounds.map(({ label, bound, count }) => {
    if (n * bound < P_BIG) return { label, bound, count, limbs: 1, width: bitLength(bound) };
    if (w < 1) {
      throw new QueryError(
        `Cannot run round: with ${participants} peers even one-bit limbs of ${label} could wrap ` +
          `(${participants} × 2 is not below p = ${P_BIG}); lower the number of peers`,
      );
    }
    return { label, bound, count, limbs: Math.ceil(bitLength(bound) / w), width: w };
  });
}

/** The most limb `k` of a component can be (step 5). */
function limbBound(component: Component, k: number): bigint {
  const { bound, limbs, width } = component;
  return k === limbs - 1 ? bound >> BigInt(width * k) : (1n << BigInt(width)) - 1n;
}

/**
 * Checks that components represent every total exactly: the limbs cover the
 * bound, n × every element's bound is below p, and the length is within the
 * vector limit. Returns the dimension.
 */
function checkComponents(participants: number, components: readonly Component[]): number {
  assertParticipants(participants);
  const n = BigInt(participants);
  let total = 0;
  for (const component of components) {
    const { label, bound, count, limbs, width } = component;
    if (
      !(Number.isSafeInteger(count) && count >= 1 && Number.isSafeInteger(limbs) && limbs >= 1 &&
        Number.isSafeInteger(width) && width >= 0 && width <= 52)
    ) {
      throw new QueryError(`Cannot run round: the layout of ${label} is malformed`);
    }
    if (bitLength(bound) > limbs * width) {
      throw new QueryError(
        `Cannot run round: ${limbs} limbs of ${width} bits cannot hold ${label} = ${bound}`,
      );
    }
    // Limb 0 has the largest bound: B itself in one limb, else 2^w − 1, which
    // also covers the top limb (below 2^w, since the limbs cover B).
    const reach = n * limbBound(component, 0);
    if (reach >= P_BIG) {
      throw new QueryError(
        `Cannot run round: ${participants} peers × ${
          limbs === 1 ? label : `limb 0 of ${label}`
        } = ${reach} is not below p = ${P_BIG}, so the sum could wrap; ` +
          "lower --max, --max-rows or the number of peers",
      );
    }
    total += count * limbs;
  }
  if (total > MAX_DIMENSION) {
    const wide = components.filter((c) => c.limbs > 1)
      .map((c) => `${c.label} takes ${c.limbs} limbs of ${c.width} bits`).join(", ");
    throw new QueryError(
      `Cannot run round: the round needs vectors of ${total} field elements${
        wide ? ` (${wide})` : ""
      }, more than the limit of ${MAX_DIMENSION}; lower --max, --max-rows or the number of peers`,
    );
  }
  return total;
}

/** R must be below p (so it and every input are exact doubles), and rows at least 1. */
function assertTerms(max: bigint, maxRows: number): void {
  if (!(max >= 0n && max < P_BIG)) {
    throw new QueryError(`Cannot run round: R must be from 0 to below p = ${P_BIG}`);
  }
  if (!(Number.isSafeInteger(maxRows) && maxRows >= 1)) {
    throw new QueryError("Cannot run round: the most rows per peer must be a whole number from 1");
  }
}

/**
 * The layout of a round: which components it has, how many limbs each takes
 * and how wide they are, and the vector's length. Refuses terms that cannot
 * be represented exactly (R not below p, n ≥ p/2 with a component that needs
 * limbs, a vector over 2^24 elements).
 */
export function vectorLayout(query: Query, terms: LayoutTerms): Layout {
  const { max, maxRows, participants } = terms;
  assertTerms(max, maxRows);
  const components = planComponents(participants, elementBounds(query, max, maxRows));
  const layout = { participants, max, maxRows, components, dimension: 0 };
  layout.dimension = checkComponents(participants, components);
  return layout;
}

/**
 * Refuses a layout that does not represent this query's totals exactly: its
 * components must be the query's (same bounds and counts for its R and
 * maxRows), cover each bound, keep n × every element's bound below p, and fit
 * the vector limit. {@linkcode vectorLayout} only makes layouts that pass;
 * this guards one built or altered elsewhere.
 */
export function assertLayoutFits(query: Query, layout: Layout): void {
  assertTerms(layout.max, layout.maxRows);
  const expected = elementBounds(query, layout.max, layout.maxRows);
  const { components } = layout;
  if (
    components.length !== expected.length ||
    components.some((c, i) => c.bound !== expected[i]!.bound || c.count !== expected[i]!.count)
  ) {
    throw new QueryError("Cannot use the layout: its components are not the query's");
  }
  const total = checkComponents(layout.participants, components);
  if (total !== layout.dimension) {
    throw new QueryError(
      `Cannot use the layout: it claims ${layout.dimension} elements, its components need ${total}`,
    );
  }
}

/** The most one peer's element `index` of the round's vector can be (step 5). */
export function elementBound(layout: Layout, index: number): bigint {
  let offset = 0;
  for (const component of layout.components) {
    const size = component.count * component.limbs;
    if (index >= offset && index < offset + size) {
      return limbBound(component, (index - offset) % component.limbs);
    }
    offset += size;
  }
  throw new RangeError(`Element ${index} is outside the layout's ${layout.dimension} elements`);
}

/**
 * Each component's exact total over all peers (step 6), from the summed
 * vector, in component order (D of them for vector:D).
 */
export function decodeTotals(layout: Layout, summed: Float64Array): bigint[] {
  if (summed.length !== layout.dimension) {
    throw new QueryError(
      `Cannot decode: the sum has ${summed.length} elements; the layout has ${layout.dimension}`,
    );
  }
  const totals: bigint[] = [];
  let j = 0;
  for (const { count, limbs, width } of layout.components) {
    const shift = BigInt(width);
    for (let i = 0; i < count; i++, j += limbs) {
      let total = 0n;
      for (let k = limbs - 1; k >= 0; k--) total = (total << shift) + BigInt(summed[j + k]!);
      totals.push(total);
    }
  }
  return totals;
}

/** Writes total V's limbs at `offset`, least significant first (step 3). */
function writeLimbs(out: Float64Array, offset: number, total: bigint, component: Component): void {
  if (component.limbs === 1) {
    out[offset] = Number(total); // exact: total ≤ B < p/n
    return;
  }
  const shift = BigInt(component.width);
  const mask = (1n << shift) - 1n;
  let rest = total;
  for (let k = 0; k < component.limbs; k++) {
    out[offset + k] = Number(rest & mask);
    rest >>= shift;
  }
}

/**
 * Splits whole numbers below 2^53 into `limbs` limbs of `width` bits each, in
 * doubles: `v % 2^w`, `v − d` and the division by 2^w are all exact there.
 */
function splitNumbers(values: Float64Array, limbs: number, width: number): Float64Array {
  const out = new Float64Array(values.length * limbs);
  const base = 2 ** width;
  for (let i = 0, j = 0; i < values.length; i++) {
    let v = values[i]!;
    for (let k = 0; k < limbs; k++, j++) {
      const digit = v % base;
      out[j] = digit;
      v = (v - digit) / base;
    }
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
 * than `maxRows` or a vector of the wrong length. For `vector:D` in one limb
 * the input's own array becomes the vector, without a copy.
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
    }
    const { limbs, width } = components[0]!;
    return limbs === 1 ? values : splitNumbers(values, limbs, width);
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
    const { limbs, width: bits } = components[0]!;
    return limbs === 1 ? counts : splitNumbers(counts, limbs, bits);
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
  let offset = 0;
  components.forEach((component, i) => {
    writeLimbs(out, offset, totals[i]!, component);
    offset += component.limbs;
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
 * Vector totals recombined in doubles, by Horner's rule from the top limb:
 * every intermediate is at most the final total, so each step is exact while
 * the total is at most 2^53, and a result above 2^53 − 1 means it may not be;
 * such an element is recombined again as a BigInt.
 */
function vectorTotals(summed: Float64Array, component: Component, scale: number): unknown[] {
  const { count, limbs, width } = component;
  const base = 2 ** width;
  const shift = BigInt(width);
  const out = new Array<unknown>(count);
  for (let i = 0, j = 0; i < count; i++, j += limbs) {
    let t = summed[j + limbs - 1]!;
    for (let k = limbs - 2; k >= 0; k--) t = t * base + summed[j + k]!;
    if (t <= Number.MAX_SAFE_INTEGER) {
      out[i] = scale === 0 ? t : scaledToJson(BigInt(t), scale);
      continue;
    }
    let total = 0n;
    for (let k = limbs - 1; k >= 0; k--) total = (total << shift) + BigInt(summed[j + k]!);
    // A whole number past 2^53 − 1 is never exact as a JSON number: text.
    out[i] = scale === 0 ? total.toString() : scaledToJson(total, scale);
  }
  return out;
}

/**
 * The decoded statistics of a summed vector, under the keys the CLI prints.
 * Give the round's `layout`; without one the vector must have one element per
 * component (a round in which nothing needed limbs), or it is refused.
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
      } components; decoding limbs needs the round's layout`,
    );
  }
  const components = layout === undefined ? undefined : checkedComponents(query, layout);
  if (layout !== undefined && summed.length !== layout.dimension) {
    throw new QueryError(
      `Cannot decode: the sum has ${summed.length} elements; the layout has ${layout.dimension}`,
    );
  }
  if (query.kind === "vector") {
    const component = components?.[0];
    if (component !== undefined && component.limbs > 1) {
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
  const factor = 10 ** scale;
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
        mean: count === 0n ? null : Number(sum) / Number(count) / factor,
      };
    }
    case "variance": {
      const [sum, squares, count] = [at(0), at(1), at(2)];
      // Exact numerator: count·Σx² − (Σx)² ≥ 0; one division at the end.
      const numerator = count * squares - sum * sum;
      return {
        sum: scaledToJson(sum, scale),
        count: scaledToJson(count, 0),
        mean: count === 0n ? null : Number(sum) / Number(count) / factor,
        variance: count === 0n
          ? null
          : Number(numerator) / Number(count * count) / (factor * factor),
      };
    }
    case "histogram":
      return { histogram: totals.map((t) => scaledToJson(t, 0)) };
  }
}

/**
 * Refuses a round whose components cannot all be represented exactly: the
 * check behind {@linkcode vectorLayout}, for callers that have bounds but no
 * layout yet (the CLI, before the round's participants are known: n is then
 * the most peers the round may have).
 */
export function assertBoundsFit(participants: number, bounds: readonly ElementBound[]): void {
  checkComponents(participants, planComponents(participants, bounds));
}
