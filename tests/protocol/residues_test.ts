/**
 * Whole rounds of the sans-I/O core whose totals need residues (lib/query.ts
 * layout): masks, sums and unmasking are taken per segment, each modulo its
 * own prime, and the decoded totals are exact against BigInt even where the
 * total is far past p1: a variance (Σx² in 2 residues) n-of-n and threshold
 * with a dropout whose pairwise masks must come off per segment, and a
 * vector whose every element passes p1, both ways.
 *
 * @module
 */

import assert from "node:assert/strict";
import { P, P2 } from "../../lib/field.ts";
import {
  decodeResult,
  decodeTotals,
  encodeInput,
  type Layout,
  parseQuery,
  vectorLayout,
} from "../../lib/query.ts";
import {
  type NetEvent,
  peerName,
  residueInput,
  residueTerms,
  residueTotals,
  runRound,
  show,
} from "./harness.ts";

const variance = parseQuery("variance", 0);
/** The layout every party must compute for residueTerms over 5 peers. */
const layout5 = vectorLayout(variance, { max: 1_000_000n, maxRows: 10_000, participants: 5 });

Deno.test("residues: the test layout has a p2 segment between p1 segments", () => {
  assert.equal(layout5.dimension, 4);
  assert.deepEqual(layout5.segments, [
    { start: 0, length: 2, modulus: P },
    { start: 2, length: 1, modulus: P2 },
    { start: 3, length: 1, modulus: P },
  ]);
  // The inputs are chosen so Σx² passes p1: only the residues carry it.
  assert.ok(residueTotals([0, 1, 2, 3, 4].map(peerName))[1]! > BigInt(P));
});

Deno.test("residues: an n-of-n variance round over 5 peers is exact against BigInt", async () => {
  const result = await runRound({ peers: 5, terms: residueTerms("nofn"), inputs: residueInput });
  assert.equal(result.terms.dimension, 4);
  assert.equal(result.terms.participants, 5);
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const { layout, result: sum } = result.hospital;
  assert.deepEqual(layout, layout5);
  const expected = residueTotals(result.names);
  assert.deepEqual(decodeTotals(layout, sum), expected);
  const decoded = decodeResult(variance, sum, 0, layout);
  assert.equal(decoded["sum"], Number(expected[0]));
  assert.equal(decoded["count"], Number(expected[2]));
  for (const outcome of result.peers.values()) assert.equal(outcome?.kind, "done");
  // What the hospital received is canonical for each segment, and masked.
  for (const e of result.trace) {
    if (!("chunk" in e)) continue;
    assert.ok(e.chunk.data[2]! < P2, `${e.from}'s p2 element`);
    const own = residueInput(Number(e.from.slice(1)), layout5);
    assert.notDeepEqual([...e.chunk.data], [...own]);
  }
});

Deno.test("residues: a threshold variance round with a dropout in masked input is exact", async () => {
  // p003 shared keys but its vector never arrives: its pairwise masks, in
  // every segment, must be rebuilt and removed modulo that segment's prime.
  const victim = peerName(3);
  const result = await runRound({
    peers: 5,
    terms: residueTerms("threshold", 3, 3),
    inputs: residueInput,
    dies: [{ peer: victim, when: (e: NetEvent) => "chunk" in e, delivered: false }],
  });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const survivors = result.names.filter((n) => n !== victim);
  assert.deepEqual(result.hospital.set, survivors);
  assert.deepEqual(result.hospital.layout, layout5);
  assert.deepEqual(
    decodeTotals(result.hospital.layout, result.hospital.result),
    residueTotals(survivors),
  );
  for (const name of survivors) assert.equal(result.peers.get(name)?.kind, "done", name);
});

/**
 * vector:64 with R = ⌈p1/3⌉: every element takes 2 residues (64 elements mod
 * p1, then 64 mod p2) and every total passes p1. Masks drawn or removed
 * modulo the wrong prime leave an error only when the wraps of a total's
 * masks do not cancel, so one element can come out right by chance; 64
 * independent elements cannot.
 */
const D = 64;
const wideMax = BigInt(Math.ceil(P / 3));
const wideQuery = parseQuery(`vector:${D}`, 0);
const wideValues = (i: number) =>
  Float64Array.from({ length: D }, (_, k) => Number(wideMax) - ((k * 31 + i * 17) % 1000));
const wideTerms = (mode: "nofn" | "threshold", threshold = 0, minContributors = 2) => ({
  query: `vector:${D}`,
  scale: 0,
  max: wideMax,
  maxRows: 1,
  mode,
  threshold,
  minContributors,
});
const wideInput = (i: number, layout: Layout) =>
  encodeInput(wideQuery, { values: wideValues(i), where: (k) => `element ${k + 1}` }, {
    scale: 0,
    layout,
  });
const wideTotals = (names: readonly string[]) =>
  Array.from(
    { length: D },
    (_, k) => names.reduce((s, n) => s + BigInt(wideValues(Number(n.slice(1)))[k]!), 0n),
  );

Deno.test("residues: a vector whose every total passes p1 is exact (n-of-n, 4 peers)", async () => {
  const result = await runRound({ peers: 4, terms: wideTerms("nofn"), inputs: wideInput });
  assert.equal(result.terms.dimension, 2 * D);
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const { layout, result: sum } = result.hospital;
  assert.deepEqual(layout.segments, [
    { start: 0, length: D, modulus: P },
    { start: D, length: D, modulus: P2 },
  ]);
  const expected = wideTotals(result.names);
  assert.ok(expected.every((t) => t > BigInt(P)));
  assert.deepEqual(decodeTotals(layout, sum), expected);
  assert.deepEqual(decodeResult(wideQuery, sum, 0, layout)["vector"], expected.map(Number));
});

Deno.test("residues: a vector whose every total passes p1 is exact (threshold, a dropout)", async () => {
  const victim = peerName(1);
  const result = await runRound({
    peers: 5,
    terms: wideTerms("threshold", 3, 3),
    inputs: wideInput,
    dies: [{ peer: victim, when: (e: NetEvent) => "chunk" in e, delivered: false }],
  });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const survivors = result.names.filter((n) => n !== victim);
  assert.deepEqual(result.hospital.set, survivors);
  assert.deepEqual(
    decodeTotals(result.hospital.layout, result.hospital.result),
    wideTotals(survivors),
  );
});
