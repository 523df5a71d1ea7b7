/**
 * The sparse-graph parameter finder (lib/protocol/graph_parameters.ts)
 * against fcp/secagg's graph_parameter_finder_test.cc rows for its
 * SEMI_MALICIOUS_SERVER class (the consistency-checked setting): the degree
 * and threshold for each (n, colluder fraction, dropout fraction), raised
 * where a peer's share of its own secrets needs it (see the rows).
 *
 * @module
 */

import assert from "node:assert/strict";
import { GraphParameterError, graphParameters } from "../../lib/protocol/graph_parameters.ts";

/** [n, colluders, dropouts, K, T] */
const ROWS: [number, number, number, number, number][] = [
  // The rows issue 10 quotes: 5 % colluders, 5 % dropouts. fcp: 16, 11 at
  // 100. Here a peer holds a share of its own secrets, so two conflicting
  // views of a window need 2T > K + 1 + colluders (fcp counts K), and T − 1
  // colluders must be as unlikely as fcp's T: rows where either binds are
  // raised over fcp's (lib/protocol/graph_parameters.ts, step 2).
  [100, 0.05, 0.05, 18, 13],
  [1000, 0.05, 0.05, 52, 37],
  [10000, 0.05, 0.05, 62, 44],
  [100, 0.3, 0.3, 92, 62],
  [1000, 0.3, 0.3, 876, 587], // fcp: 872, 584
  [10000, 0.3, 0.3, 4832, 3237], // fcp: 4822, 3230
  [10, 0.05, 0.33, 8, 5],
  [100, 0.05, 0.33, 74, 41], // fcp: 72, 39
  [1000, 0.05, 0.33, 398, 223],
  [10000, 0.05, 0.33, 746, 420],
  // fcp: 4, 4 (3 colluders are 3 of a victim's 4 neighbours with probability 1/21).
  [10, 0.33, 0.05, 6, 6],
  [100, 0.33, 0.05, 44, 39], // fcp: 42, 37
  [1000, 0.33, 0.05, 138, 114], // fcp: 132, 109
  [10000, 0.33, 0.05, 180, 148], // fcp: 178, 146
];

for (const [n, colluders, dropouts, k, t] of ROWS) {
  Deno.test(`graph parameters: n = ${n}, ${colluders} colluders, ${dropouts} dropouts → K = ${k}, T = ${t}`, () => {
    const found = graphParameters(n, { colluders, dropouts });
    assert.deepEqual(found, { neighbors: k, threshold: t });
    // Every found pair meets the per-window rule a sparse round enforces.
    assert.ok(2 * found.threshold > found.neighbors + 1 && found.threshold <= found.neighbors + 1);
    // And, computed exactly and independently of the finder's floating point:
    // a peer's K neighbours, drawn from the n − 1 others of which ⌊αn⌋
    // collude, hold T − 1 colluders or more with probability below 2^-41 / n.
    const c = Math.floor(colluders * n + 1e-9);
    const [hits, draws] = colludersAtLeast(found.threshold - 1, n - 1, c, found.neighbors);
    assert.ok(hits * BigInt(n) * 2n ** 41n < draws, `P(≥ T − 1 colluders) = ${hits}/${draws}`);
    // Nor 2T − K − 1: enough for two conflicting views of a window, each
    // gathering T shares of its kind (the owner's own among them).
    const views = 2 * found.threshold - found.neighbors - 1;
    const [both, all] = colludersAtLeast(views, n - 1, c, found.neighbors);
    assert.ok(both * BigInt(n) * 2n ** 41n < all, `P(≥ 2T − K − 1 colluders) = ${both}/${all}`);
  });
}

/** C(n, k) exactly. */
function binomial(n: number, k: number): bigint {
  if (k < 0 || k > n) return 0n;
  let r = 1n;
  for (let i = 1; i <= Math.min(k, n - k); i++) r = r * BigInt(n - i + 1) / BigInt(i);
  return r;
}

/**
 * Of the C(total, drawn) ways to draw `drawn` from `total` with `marked`
 * marked, how many hold at least `least` marked: [that count, C(total, drawn)].
 */
function colludersAtLeast(least: number, total: number, marked: number, drawn: number) {
  let hits = 0n;
  for (let x = Math.max(least, 0); x <= Math.min(marked, drawn); x++) {
    hits += binomial(marked, x) * binomial(total - marked, drawn - x);
  }
  return [hits, binomial(total, drawn)] as const;
}

Deno.test("graph parameters: the exact tail check above catches fcp's own row for 10 peers at 33 %", () => {
  // K = 4, T = 4 with 3 colluders among the 9 others: 3 of the 4 neighbours
  // collude in 6 of the C(9, 4) = 126 draws.
  assert.deepEqual(colludersAtLeast(3, 9, 3, 4), [6n, 126n]);
});

Deno.test("graph parameters: infeasible fractions and tiny rosters are refused", () => {
  assert.throws(
    () => graphParameters(1000, { colluders: 0.3, dropouts: 0.31 }),
    GraphParameterError,
  );
  assert.throws(() => graphParameters(3, { colluders: 0.05, dropouts: 0.05 }), GraphParameterError);
  assert.throws(() => graphParameters(100, { colluders: -0.1, dropouts: 0 }), GraphParameterError);
});
