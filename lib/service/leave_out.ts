/**
 * Which holders a served round keeps when their declared ranges cannot all
 * fit one round (docs/protocol.md §16 rule 2). The terms take the largest
 * declared scale, so one holder declaring a high scale rescales everyone's
 * `max` by its power of ten: ordering holders by width at that scale kept
 * the one absurd declaration and left out every honest holder (review 4,
 * R4-2). Instead each declared scale is tried as the common one, keeping the
 * holders at or below it that fit there, and the scale that keeps the most
 * wins: one holder's declaration can then only ever leave out itself when
 * the others fit together.
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

/** Holders kept and left out, each list sorted by name. */
export interface Choice {
  kept: string[];
  leftOut: string[];
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
 * The most holders of `declared` whose common range `fits`. For each
 * declared scale s, ascending: the holders declared at scale s or below,
 * narrowest first (`max` at s times `maxRows`, then name), each kept if the
 * range still fits with it. The s keeping the most wins; a tie goes to the
 * lower s. `fits` must be monotone (a range no smaller in any field, over no
 * fewer peers, fits only if the smaller one does), as the layout's bounds
 * are. Every holder is left out when none fits even alone.
 */
export function chooseHolders(
  declared: ReadonlyMap<string, Declaration>,
  fits: (range: CommonRange) => boolean,
): Choice {
  const scales = [...new Set([...declared.values()].map((d) => d.scale))].sort((a, b) => a - b);
  let best: string[] = [];
  for (const s of scales) {
    const kept = keptAt(s, declared, fits);
    if (kept.length > best.length) best = kept;
  }
  const kept = new Set(best);
  return {
    kept: [...kept].sort(byName),
    leftOut: [...declared.keys()].filter((name) => !kept.has(name)).sort(byName),
  };
}

/** The holders kept with `s` as the highest scale allowed (see {@linkcode chooseHolders}). */
function keptAt(
  s: number,
  declared: ReadonlyMap<string, Declaration>,
  fits: (range: CommonRange) => boolean,
): string[] {
  const candidates = [...declared]
    .filter(([, d]) => d.scale <= s)
    .map(([name, d]) => {
      const max = d.max * 10n ** BigInt(s - d.scale);
      return { name, scale: d.scale, max, maxRows: d.maxRows, width: max * BigInt(d.maxRows) };
    })
    .sort((a, b) => a.width < b.width ? -1 : a.width > b.width ? 1 : byName(a.name, b.name));
  const kept: string[] = [];
  // The running range, with `max` held at s: exact at any kept scale below
  // it, since every kept holder's `max` at s is a multiple of 10^(s − its scale).
  let scale = 0;
  let max = 0n;
  let maxRows = 0;
  for (const c of candidates) {
    const next = {
      scale: Math.max(scale, c.scale),
      max: c.max > max ? c.max : max,
      maxRows: Math.max(maxRows, c.maxRows),
    };
    const range: CommonRange = {
      scale: next.scale,
      max: next.max / 10n ** BigInt(s - next.scale),
      maxRows: next.maxRows,
      peers: kept.length + 1,
    };
    if (!fits(range)) continue;
    kept.push(c.name);
    ({ scale, max, maxRows } = next);
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
