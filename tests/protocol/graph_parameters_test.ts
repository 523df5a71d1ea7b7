/**
 * The sparse-graph parameter finder (lib/protocol/graph_parameters.ts)
 * against fcp/secagg's graph_parameter_finder_test.cc rows for its
 * SEMI_MALICIOUS_SERVER class (the consistency-checked setting): the degree
 * and threshold for each (n, colluder fraction, dropout fraction), one row
 * raised where a peer's share of its own secrets needs it (see the row).
 *
 * @module
 */

import assert from "node:assert/strict";
import { GraphParameterError, graphParameters } from "../../lib/protocol/graph_parameters.ts";

/** [n, colluders, dropouts, K, T] */
const ROWS: [number, number, number, number, number][] = [
  // The rows issue 10 quotes: 5 % colluders, 5 % dropouts.
  [100, 0.05, 0.05, 16, 11],
  [1000, 0.05, 0.05, 52, 37],
  [10000, 0.05, 0.05, 62, 44],
  [100, 0.3, 0.3, 92, 62],
  [1000, 0.3, 0.3, 872, 584],
  [10000, 0.3, 0.3, 4822, 3230],
  [10, 0.05, 0.33, 8, 5],
  [100, 0.05, 0.33, 72, 39],
  [1000, 0.05, 0.33, 398, 223],
  [10000, 0.05, 0.33, 746, 420],
  // fcp: K = 4, T = 4. Here a peer holds a share of its own secrets, so T − 1
  // colluders among its neighbours must be as unlikely as fcp's T (3 of
  // them are 3 of its 4 neighbours with probability 1/21): K = 6, T = 5.
  [10, 0.33, 0.05, 6, 5],
  [100, 0.33, 0.05, 42, 37],
  [1000, 0.33, 0.05, 132, 109],
  [10000, 0.33, 0.05, 178, 146],
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
