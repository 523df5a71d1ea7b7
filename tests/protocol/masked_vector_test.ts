/**
 * Masked vectors longer than one chunk, through the in-memory core: the
 * peer masks the array its input callback handed over in place (lib/
 * protocol/peer/masked_input.ts: the session owns it, so one vector lives,
 * not two); every chunk it sends is masked; and the sums are exact with
 * elements at the top of the field, where every addition of a mask wraps
 * or not at random — n-of-n, and threshold with a dropout, whose pairwise
 * masks the hospital subtracts again (lib/protocol/hospital/unmasking.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { CHUNK_ELEMENTS } from "../../lib/wire/messages.ts";
import { type NetEvent, peerName, runRound, show, sumTerms } from "./harness.ts";

const D = CHUNK_ELEMENTS + 5;
const MAX = 1000;

/** Peer i's vector: the top and bottom of the allowed range, and values between. */
function vector(i: number): Float64Array {
  return Float64Array.from({ length: D }, (_, k) => k % 3 === 0 ? MAX : (k * 7 + i * 13) % MAX);
}

/**
 * Long vectors are equal, else the first difference is reported. Not
 * deepEqual: its diff of two long vectors takes minutes and gigabytes.
 */
function assertSameElements(actual: Float64Array, expected: Float64Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const at = actual.findIndex((x, i) => !Object.is(x, expected[i]));
  assert.equal(at, -1, `${what}: element ${at} is ${actual[at]}, expected ${expected[at]}`);
}

function terms(mode: "nofn" | "threshold", threshold = 0) {
  return { ...sumTerms(mode, threshold, 2), query: `vector:${D}`, max: BigInt(MAX), dimension: D };
}

Deno.test("masked vectors: the array handed over is masked in place, and every chunk sent is masked", async () => {
  const handed = new Map<number, Float64Array>();
  const result = await runRound({
    peers: 3,
    terms: terms("nofn"),
    inputs: (i) => {
      const x = vector(i);
      handed.set(i, x);
      return x;
    },
  });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const [a, b, c] = [vector(0), vector(1), vector(2)];
  const expected = Float64Array.from({ length: D }, (_, k) => a[k]! + b[k]! + c[k]!);
  assertSameElements(result.hospital.result, expected, "the sum");
  for (const [i, name] of result.names.entries()) {
    const chunks = result.trace.flatMap((e) => e.from === name && "chunk" in e ? [e.chunk] : []);
    assert.deepEqual(chunks.map((c) => c.index), [0, 1]);
    const sent = new Float64Array(D);
    chunks.forEach((c) => sent.set(c.data, c.index * CHUNK_ELEMENTS));
    // A mask leaves an element as it was with probability 1/p; a few in a row never.
    const x = vector(i);
    const same = sent.filter((y, k) => y === x[k]).length;
    assert.ok(same < 4, `${name}: ${same} elements went out unmasked`);
    // The array the callback handed over is the one masked: no second vector.
    assertSameElements(handed.get(i)!, sent, `peer ${i}'s input array, masked in place`);
  }
});

Deno.test("masked vectors: a threshold round with a dropout is exact after the hospital removes its masks", async () => {
  const victim = peerName(3);
  const result = await runRound({
    peers: 4,
    terms: terms("threshold", 3),
    inputs: vector,
    // Gone before its masked input: the hospital rebuilds its mask key and
    // subtracts its pairwise masks from the survivors' sum.
    dies: [{
      peer: victim,
      when: (e: NetEvent) => "message" in e && e.message.type === "input",
      delivered: false,
    }],
  });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  assert.deepEqual(result.hospital.set, result.names.slice(0, 3));
  const [a, b, c] = [vector(0), vector(1), vector(2)];
  const expected = Float64Array.from({ length: D }, (_, k) => a[k]! + b[k]! + c[k]!);
  assertSameElements(result.hospital.result, expected, "the sum over the survivors");
});
