/**
 * The threshold `--neighbors K` takes by default (lib/runtime/terms.ts):
 * K/2 + 2, so that a peer goes on only with confirmed neighbours on both
 * sides of it (tests/protocol/sparse_place_test.ts); the least the rule
 * allows, K/2 + 1, stays available when asked for.
 *
 * @module
 */

import assert from "node:assert/strict";
import { sparseGraphOption, TermsError } from "../../lib/runtime/terms.ts";

Deno.test("--neighbors K without --threshold takes T = K/2 + 2, at most K + 1", () => {
  for (const [k, t] of [[2, 3], [4, 4], [8, 6], [16, 10], [52, 28]] as const) {
    assert.deepEqual(sparseGraphOption(String(k), { peers: 100 }), { neighbors: k, threshold: t });
  }
});

Deno.test("--neighbors K with a threshold keeps it, down to K/2 + 1 and not below", () => {
  assert.deepEqual(sparseGraphOption("8", { peers: 30, threshold: 5 }), {
    neighbors: 8,
    threshold: 5,
  });
  assert.throws(
    () => sparseGraphOption("8", { peers: 30, threshold: 4 }),
    (e) => e instanceof TermsError && /5 to 9\), got 4/.test(e.message),
  );
});

Deno.test("--neighbors auto takes its own T: K/2 + 1 below 20 peers, above it from 20 on", () => {
  // docs/threat-model.md (sparse item 4) states this boundary.
  assert.deepEqual(sparseGraphOption("auto", { peers: 19 }), { neighbors: 2, threshold: 2 });
  assert.deepEqual(sparseGraphOption("auto", { peers: 20 }), { neighbors: 6, threshold: 5 });
  assert.deepEqual(sparseGraphOption("auto", { peers: 100 }), { neighbors: 18, threshold: 13 });
});
