/**
 * Which holders a served round keeps when their declared ranges cannot all
 * fit one round (docs/protocol.md §16 rule 2). The terms take the largest
 * declared scale, so one holder declaring a high scale rescales everyone's
 * `max` by its power of ten: ordering holders by width at that scale kept
 * the one absurd declaration and left out every honest holder (review 4,
 * R4-2). Instead each declared scale is tried as the round's scale, keeping
 * the holders at or below it that fit there, and the scale that keeps the
 * most wins; a tie between different sets keeps only what they share. This
 * is a greedy choice, not a search of every subset, and it bounds rather
 * than removes a declaration's influence: holders outnumbering the others
 * can still be the ones kept, and a holder can make a round fail.
 *
 * @module
 */

/** One holder's declared range, as its `description` said. */
export interface Declaration {
  /** 0–15: the variable's own scale. */
  scale: number;
  /** The declared largest value × 10^scale. */
  max: bigint;
  maxRows: number;
  /** The vector length; 0: not a vector variable. */
  dimension: number;
}

/** The range a round over some holders needs: what its terms are built from. */
export interface CommonRange {
  /** The largest declared scale. */
  scale: number;
  /** The largest declared `max`, at `scale`. */
  max: bigint;
  /** The largest declared `maxRows`. */
  maxRows: number;
  /** How many holders. */
  peers: number;
}

/** Holders kept and left out, each list sorted by name, and the range to build the round at. */
export interface Choice {
  kept: string[];
  leftOut: string[];
  /**
   * The left-out holders that a set of the most holders at some scale kept,
   * where another scale's set of as many did not (see {@linkcode chooseHolders}).
   */
  contested: string[];
  /** The kept holders' range at the scale chosen (absent when none is kept). */
  range?: CommonRange;
}

/** The range a round over `declarations` (at least one) needs. */
export function commonRange(declarations: readonly Declaration[]): CommonRange {
  if (declarations.length === 0) throw new RangeError("Cannot take a range: no declarations");
  const scale = Math.max(...declarations.map((d) => d.scale));
  let max = 0n;
  let maxRows = 0;
  for (const d of declarations) {
    const scaled = d.max * 10n ** BigInt(scale - d.scale);
    if (scaled > max) max = scaled;
    if (d.maxRows > maxRows) maxRows = d.maxRows;
  }
  return { scale, max, maxRows, peers: declarations.length };
}

/**
 * The most holders of `declared` whose common range `fits`, and that range.
 * For each declared scale s, ascending: the holders declared at scale s or
 * below, smallest `max` at s first (then `maxRows`, then name), each kept if
 * the range at scale s still fits with it. In every layout tried the bound
 * moved with `max` and the number of peers, not with `maxRows` (rows change
 * how many residues a sum takes), so ordering by `max` × `maxRows` let a
 * vector holder declaring one row and a huge `max` go first and keep honest
 * holders out (review 5, R5-1). Ranges are tested at s, never at the largest scale kept so far: a
 * query can fit at a higher scale and not at a lower one (a histogram's
 * edge 9.5 at scale 0; review 5, R5-3), and the round then runs at s. The
 * most holders win. When several scales keep as many, only the holders
 * all of those sets keep stay, at the lowest such s: a tie between
 * different sets is a declaration choosing who goes (review 6, R6-1). `fits` must be monotone in
 * `max`, `maxRows` and `peers` at a given scale, as the layout's bounds
 * are. Every holder is left out when none fits even alone. Where no tie
 * arose, on 1,500 random sets of up to 6 holders over five kinds of query,
 * this kept as many holders as the best subset at any declared scale
 * (tests/service/leave_out_test.ts checks 300 by brute force). Which of
 * equally good holders stay is not a free choice of theirs only up to a
 * point: where the number of peers is the bound (a vector near 2^24
 * elements), the smallest declared `max` stay first, so a holder declaring
 * 0 displaces one that declares more (review 6, R6-2).
 */
export function chooseHolders(
  declared: ReadonlyMap<string, Declaration>,
  fits: (range: CommonRange) => boolean,
): Choice {
  const scales = [...new Set([...declared.values()].map((d) => d.scale))].sort((a, b) => a - b);
  let best: { s: number; kept: string[] }[] = [];
  for (const s of scales) {
    const kept = keptAt(s, declared, fits);
    if (kept.length === 0 || (best.length > 0 && kept.length < best[0]!.kept.length)) continue;
    if (best.length > 0 && kept.length > best[0]!.kept.length) best = [];
    best.push({ s, kept });
  }
  // Several scales keep as many holders, but not the same ones: taking one
  // would let a declaration choose which honest holder goes (review 6,
  // R6-1: eve at scale 0 with a max that overflows at scale 2 made a tie
  // with the honest set there, and the lower scale's set, eve's, won). Only
  // the holders every such set keeps stay; a subset of a set that fits at
  // the lowest of those scales fits there too.
  const kept = new Set(best[0]?.kept ?? []);
  for (const { kept: other } of best.slice(1)) {
    for (const name of kept) if (!other.includes(name)) kept.delete(name);
  }
  const leftOut = [...declared.keys()].filter((name) => !kept.has(name)).sort(byName);
  const contested = [...new Set(best.flatMap((b) => b.kept))].filter((name) => !kept.has(name))
    .sort(byName);
  if (kept.size === 0) return { kept: [], leftOut, contested };
  const s = best[0]!.s;
  const range: CommonRange = { scale: s, max: 0n, maxRows: 0, peers: kept.size };
  for (const name of kept) {
    const d = declared.get(name)!;
    const max = d.max * 10n ** BigInt(s - d.scale);
    if (max > range.max) range.max = max;
    range.maxRows = Math.max(range.maxRows, d.maxRows);
  }
  return { kept: [...kept].sort(byName), leftOut, contested, range };
}

/** A holder as {@linkcode keptAt} weighs it: its `max` at the scale tried. */
interface Candidate {
  name: string;
  max: bigint;
  maxRows: number;
}

/** Smallest `max` first, then fewest rows, then by name. */
function byMax(a: Candidate, b: Candidate): number {
  return (a.max < b.max ? -1 : a.max > b.max ? 1 : 0) || a.maxRows - b.maxRows ||
    byName(a.name, b.name);
}

/** The holders kept with `s` as the round's scale. */
function keptAt(
  s: number,
  declared: ReadonlyMap<string, Declaration>,
  fits: (range: CommonRange) => boolean,
): string[] {
  const candidates: Candidate[] = [...declared]
    .filter(([, d]) => d.scale <= s)
    .map(([name, d]) => ({ name, max: d.max * 10n ** BigInt(s - d.scale), maxRows: d.maxRows }))
    .sort(byMax);
  const kept: string[] = [];
  let range: CommonRange | undefined;
  for (const c of candidates) {
    const next: CommonRange = {
      scale: s,
      max: range === undefined || c.max > range.max ? c.max : range.max,
      maxRows: Math.max(range?.maxRows ?? 0, c.maxRows),
      peers: kept.length + 1,
    };
    if (!fits(next)) continue;
    kept.push(c.name);
    range = next;
  }
  return kept;
}

/**
 * The vector length a round takes and the holders declaring another: the
 * length most holders declared (holders of no vector never count), or
 * undefined when no length has more holders than every other.
 */
export function commonDimension(
  declared: ReadonlyMap<string, Declaration>,
): { dimension: number; kept: string[]; leftOut: string[] } | undefined {
  const counts = new Map<number, number>();
  for (const { dimension } of declared.values()) {
    if (dimension > 0) counts.set(dimension, (counts.get(dimension) ?? 0) + 1);
  }
  const ranked = [...counts].sort((a, b) => b[1] - a[1]);
  const [top, second] = ranked;
  if (top === undefined || (second !== undefined && second[1] === top[1])) return undefined;
  const [dimension] = top;
  const names = [...declared.keys()].sort(byName);
  return {
    dimension,
    kept: names.filter((name) => declared.get(name)!.dimension === dimension),
    leftOut: names.filter((name) => declared.get(name)!.dimension !== dimension),
  };
}

function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
