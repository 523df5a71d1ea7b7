/**
 * The hospital's sparse graph (lib/protocol/hospital/state.ts `SparseGraph`):
 * a window bitmap, computed from the window's K + 1 positions only, is the
 * bitmap lib/protocol/graph.ts `windowBitmap` gives for the positions of
 * every member, whatever the member set holds (names outside the window,
 * names not in the roster at all, everyone, no one).
 *
 * @module
 */

import assert from "node:assert/strict";
import { window, windowBitmap } from "../../lib/protocol/graph.ts";
import { SparseGraph } from "../../lib/protocol/hospital/state.ts";
import { Rng } from "../rng.ts";

/** The bitmap as the hospital computed it before: every member mapped to its position. */
function reference(order: readonly string[], k: number, name: string, members: Set<string>) {
  const positions = window(order.indexOf(name), order.length, k);
  const memberPositions = new Set<number>();
  for (const m of members) {
    const q = order.indexOf(m);
    if (q >= 0) memberPositions.add(q);
  }
  return windowBitmap(positions, memberPositions);
}

Deno.test("a sparse window bitmap is the bitmap of every member's position", () => {
  for (let seed = 1; seed <= 60; seed++) {
    const rng = new Rng(seed);
    const n = rng.range(3, 120);
    // K even, as the graph parameters choose it, up to n - 1 and now and then past it.
    const k = 2 * rng.range(1, Math.max(1, Math.floor((n + (rng.int(5) === 0 ? 4 : 0)) / 2)));
    const order = Array.from({ length: n }, (_, i) => `p${i}`);
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const graph = new SparseGraph(order, k);
    const fraction = [0, 0.3, 0.9, 1][rng.int(4)]!;
    const members = new Set(order.filter(() => rng.float() < fraction));
    if (rng.int(2) === 0) members.add("stranger");
    for (const name of order) {
      assert.equal(
        graph.bitmap(name, members),
        reference(order, k, name, members),
        `seed ${seed}, n ${n}, k ${k}, ${name}`,
      );
    }
  }
});

Deno.test("within is the members of the window sorted by name, asked once or many times", () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rng = new Rng(seed);
    const n = rng.range(3, 120);
    const k = 2 * rng.range(1, Math.max(1, Math.floor((n - 1) / 2)));
    // Names whose order by name is not their position order.
    const order = Array.from({ length: n }, (_, i) => `p${(i * 37) % 1000}-${rng.int(100)}x${i}`);
    for (let i = n - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const graph = new SparseGraph(order, k);
    const members = new Set(order.filter(() => rng.float() < 0.7));
    for (const name of order) {
      const expected = window(order.indexOf(name), n, k).map((q) => order[q]!)
        .filter((m) => members.has(m)).sort();
      const first = graph.within(name, members);
      assert.deepEqual(first, expected, `seed ${seed}, ${name}`);
      // A caller changing what it was given does not change the next answer.
      first.reverse().push("stranger");
      assert.deepEqual(graph.within(name, members), expected, `seed ${seed}, ${name}, again`);
    }
  }
});
