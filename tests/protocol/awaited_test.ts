/**
 * The hospital's monotone scan of who a phase still awaits
 * (lib/protocol/hospital/awaited.ts): true while some party is live and
 * unanswered, false once all have answered or been dropped, whatever the
 * order; and a party it has passed is not asked about again.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Awaited } from "../../lib/protocol/hospital/awaited.ts";

Deno.test("Awaited: waits until every party has answered or been dropped, in any order", () => {
  const names = ["a", "b", "c", "d"];
  const answered = new Set<string>();
  const dropped = new Set<string>();
  const scan = new Awaited(names);
  const awaited = (n: string) => !dropped.has(n) && !answered.has(n);
  assert.equal(scan.any(awaited), true);
  answered.add("c");
  assert.equal(scan.any(awaited), true);
  answered.add("a");
  dropped.add("b");
  assert.equal(scan.any(awaited), true, "d still awaited");
  answered.add("d");
  assert.equal(scan.any(awaited), false);
  assert.equal(new Awaited([]).any(awaited), false, "nobody to wait for");
});

Deno.test("Awaited: a party passed once is not asked about again (O(n) over a phase)", () => {
  const names = Array.from({ length: 1000 }, (_, i) => `p${i}`);
  const answered = new Set<string>();
  let asked = 0;
  const scan = new Awaited(names);
  for (const n of names) {
    answered.add(n);
    scan.any((m) => (asked++, !answered.has(m)));
  }
  assert.equal(scan.any(() => true), false);
  // Each answer moves the scan one place on: about 2n questions, not n²/2.
  assert.ok(asked <= 2 * names.length, `${asked} questions`);
});
