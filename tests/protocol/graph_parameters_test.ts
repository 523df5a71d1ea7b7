/**
 * The sparse-graph parameter finder (lib/protocol/graph_parameters.ts)
 * against fcp/secagg's graph_parameter_finder_test.cc rows for its
 * SEMI_MALICIOUS_SERVER class (the consistency-checked setting): the degree
 * and threshold for each (n, colluder fraction, dropout fraction).
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
  [10, 0.33, 0.05, 4, 4],
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
  });
}

Deno.test("graph parameters: infeasible fractions and tiny rosters are refused", () => {
  assert.throws(
    () => graphParameters(1000, { colluders: 0.3, dropouts: 0.31 }),
    GraphParameterError,
  );
  assert.throws(() => graphParameters(3, { colluders: 0.05, dropouts: 0.05 }), GraphParameterError);
  assert.throws(() => graphParameters(100, { colluders: -0.1, dropouts: 0 }), GraphParameterError);
});
