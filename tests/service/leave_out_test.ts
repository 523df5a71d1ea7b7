/**
 * The leave-out of a served round (lib/service/leave_out.ts; docs/protocol.md
 * §16 rule 2), alone: which holders are kept when their declarations cannot
 * all fit one round, with the real layout as the fit (lib/runtime/terms.ts
 * roundTerms over the query), so the bounds are the ones the service uses.
 *
 * - Review 4, R4-2 ("wide"): a holder declaring scale 15, max 1 (at its
 *   scale), max_rows 2^31 is the one left out, not the honest holders.
 * - A tie between scales goes to the lower one; names break ties in width.
 * - The most holders that fit together are kept, whatever the order of the
 *   declarations; every holder is left out when none fits alone.
 * - A vector takes the length most holders declared; a tie has none.
 */

import assert from "node:assert/strict";
import { P_BIG } from "../../lib/field.ts";
import { parseQuery } from "../../lib/query.ts";
import { roundTerms } from "../../lib/runtime/terms.ts";
import {
  chooseHolders,
  commonDimension,
  type CommonRange,
  commonRange,
  type Declaration,
} from "../../lib/service/leave_out.ts";
import { mulberry32 } from "../helpers.ts";

/** Whether a `spec` round over `range` has a layout, as the service builds it. */
function fitsFor(spec: string): (range: CommonRange) => boolean {
  return (range) => {
    try {
      roundTerms({
        query: parseQuery(spec, range.scale),
        ...range,
        minContributors: 2,
        phaseTimeoutMs: 1_000,
      });
      return true;
    } catch {
      return false;
    }
  };
}

function declared(entries: Record<string, Partial<Declaration>>): Map<string, Declaration> {
  return new Map(
    Object.entries(entries).map((
      [name, d],
    ) => [name, { scale: 1, max: 4000n, maxRows: 4096, dimension: 0, ...d }]),
  );
}

Deno.test("leave-out: the review's wide holder (scale 15, max 1, max_rows 2^31) is the one left out", () => {
  const holders = declared({
    north: { scale: 1, max: 4000n },
    south: { scale: 1, max: 4000n },
    eve: { scale: 15, max: 1n, maxRows: 2 ** 31 },
  });
  const fits = fitsFor("mean");
  // The three together cannot fit: at scale 15, north's 400.0 is 4 · 10^17, past p.
  assert.equal(fits(commonRange([...holders.values()])), false);
  assert.deepEqual(chooseHolders(holders, fits), { kept: ["north", "south"], leftOut: ["eve"] });
  // Whatever the order the answers came in.
  const reversed = new Map([...holders].reverse());
  assert.deepEqual(chooseHolders(reversed, fits), { kept: ["north", "south"], leftOut: ["eve"] });
  // And the stock-agent form of it (max 1.0 at scale 15: R = 10^15) the same.
  holders.set("eve", { scale: 15, max: 10n ** 15n, maxRows: 2 ** 31, dimension: 0 });
  assert.deepEqual(chooseHolders(holders, fits), { kept: ["north", "south"], leftOut: ["eve"] });
});

Deno.test("leave-out: honest holders at different scales are kept together at the higher one", () => {
  const holders = declared({
    north: { scale: 1, max: 4000n },
    south: { scale: 2, max: 40000n },
    eve: { scale: 15, max: 1n, maxRows: 2 ** 31 },
  });
  const fits = fitsFor("sum");
  const choice = chooseHolders(holders, fits);
  assert.deepEqual(choice, { kept: ["north", "south"], leftOut: ["eve"] });
  const range = commonRange(choice.kept.map((name) => holders.get(name)!));
  assert.deepEqual(range, { scale: 2, max: 40000n, maxRows: 4096, peers: 2 });
});

Deno.test("leave-out: a tie in holders kept goes to the lower scale, then narrowest and by name", () => {
  // One holder per scale, each unable to fit with the other: scale 0 wins.
  const holders = declared({
    high: { scale: 3, max: P_BIG / 10n },
    low: { scale: 0, max: P_BIG / 2n },
  });
  const fits = fitsFor("sum");
  assert.deepEqual(chooseHolders(holders, fits), { kept: ["low"], leftOut: ["high"] });
  // At one scale, two holders that cannot sit together: the narrower stays.
  const pair = declared({
    a: { scale: 0, max: 10n, maxRows: 2 },
    b: { scale: 0, max: 10n, maxRows: 1 },
  });
  const never2 = (range: CommonRange) => range.peers < 2;
  assert.deepEqual(chooseHolders(pair, never2), { kept: ["b"], leftOut: ["a"] });
  // Equal widths: the name decides, not the order of the map.
  const same = declared({ z: { scale: 0 }, y: { scale: 0 } });
  assert.deepEqual(chooseHolders(same, never2), { kept: ["y"], leftOut: ["z"] });
});

Deno.test("leave-out: no holder that fits alone: all are left out", () => {
  const holders = declared({ a: { scale: 15, max: 1n }, b: { scale: 0, max: 1n } });
  assert.deepEqual(chooseHolders(holders, () => false), { kept: [], leftOut: ["a", "b"] });
});

Deno.test("leave-out: random declarations: the kept set fits, and no larger kept set fits at any declared scale", () => {
  const random = mulberry32(44);
  const fits = fitsFor("variance");
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(random() * 6);
    const holders = new Map<string, Declaration>();
    for (let i = 0; i < n; i++) {
      const scale = [0, 1, 2, 6, 12, 15][Math.floor(random() * 6)]!;
      const digits = 1 + Math.floor(random() * 6);
      holders.set(`h${i}`, {
        scale,
        max: BigInt(Math.floor(random() * 10 ** digits) + 1),
        maxRows: 1 + Math.floor(random() * 2 ** 31),
        dimension: 0,
      });
    }
    const choice = chooseHolders(holders, fits);
    assert.deepEqual([...choice.kept, ...choice.leftOut].sort(), [...holders.keys()].sort());
    if (choice.kept.length > 0) {
      assert.ok(fits(commonRange(choice.kept.map((name) => holders.get(name)!))));
    }
    // Here R is the only bound that can fail (rows and peers are small), so at a scale s every
    // holder at or below s whose max fits there can be kept: the best is the most such holders.
    const best = Math.max(
      0,
      ...[...holders.values()].map(({ scale: s }) =>
        [...holders.values()].filter((d) =>
          d.scale <= s && d.max * 10n ** BigInt(s - d.scale) < P_BIG
        ).length
      ),
    );
    assert.equal(choice.kept.length, best, JSON.stringify([...holders], (_, v) => String(v)));
  }
});

Deno.test("leave-out: a vector takes the length most holders declared; a tie, or no vector, none", () => {
  const holders = declared({
    north: { dimension: 8 },
    south: { dimension: 8 },
    east: { dimension: 8 },
    eve: { dimension: 9 },
    west: { dimension: 0 },
  });
  assert.deepEqual(commonDimension(holders), {
    dimension: 8,
    kept: ["east", "north", "south"],
    leftOut: ["eve", "west"],
  });
  assert.equal(commonDimension(declared({ a: { dimension: 8 }, b: { dimension: 9 } })), undefined);
  assert.equal(commonDimension(declared({ a: { dimension: 0 }, b: { dimension: 0 } })), undefined);
});
