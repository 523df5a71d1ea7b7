/**
 * Whole threshold rounds of the sans-I/O core in memory, with a dropout at
 * every phase: the result is exactly the plain sum over the survivors set
 * the hospital reports (and every survivor agrees on it), or every party
 * aborts cleanly.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  type NetEvent,
  peerName,
  plainSum,
  runRound,
  show,
  sumInput,
  sumTerms,
} from "./harness.ts";

const kind = (e: NetEvent) => ("chunk" in e ? "chunk" : e.message.type);

/** [label, message type the victim is about to send, whether it still goes out, in S?] */
const DROPOUTS: [string, string, boolean, boolean][] = [
  ["before join", "join", false, false],
  ["after join", "join", true, false],
  ["after confirm", "confirm", true, false],
  ["before sharing", "sealed", false, false],
  ["after sharing", "sealed", true, false],
  ["during masked input", "chunk", false, false],
  ["after masked input", "chunk", true, true],
  ["after consistency", "consistency", true, true],
  ["during unmasking", "reveal", false, true],
  ["after unmasking", "reveal", true, true],
];

for (const [label, type, delivered, survives] of DROPOUTS) {
  Deno.test(`threshold: a dropout ${label} leaves the exact sum over the survivors`, async () => {
    const n = 7;
    const victim = peerName(3);
    const result = await runRound({
      peers: n,
      terms: sumTerms("threshold", 4, 3),
      inputs: sumInput,
      dies: [{ peer: victim, when: (e) => kind(e) === type, delivered }],
    });
    assert.equal(result.hospital.kind, "done", show(result.hospital));
    if (result.hospital.kind !== "done") return;
    const expected = result.names.filter((name) => survives || name !== victim);
    assert.deepEqual(result.hospital.set, expected);
    assert.deepEqual([...result.hospital.result], [plainSum(expected)]);
    for (const [name, outcome] of result.peers) {
      if (name === victim) continue;
      assert.equal(outcome?.kind, "done", `${name}: ${show(outcome)}`);
      if (outcome?.kind === "done") {
        assert.deepEqual(outcome.set, expected);
        assert.equal(outcome.resultDigest, result.hospital.resultDigest);
      }
    }
  });
}

Deno.test("threshold: dropouts below T abort every party cleanly", async () => {
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    dies: [1, 2, 3].map((i) => ({
      peer: peerName(i),
      when: (e: NetEvent) => kind(e) === "chunk",
      delivered: false,
    })),
  });
  assert.equal(result.hospital.kind, "aborted");
  assert.equal(result.peers.get(peerName(0))?.kind, "aborted");
  assert.equal(result.peers.get(peerName(4))?.kind, "aborted");
});

Deno.test("threshold: a peer whose input is refused drops out; the others finish", async () => {
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: (i) => {
      if (i === 2) throw new Error("data.csv line 4: outside [0, R]");
      return sumInput(i);
    },
  });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  const expected = [0, 1, 3, 4].map(peerName);
  if (result.hospital.kind === "done") {
    assert.deepEqual(result.hospital.set, expected);
    assert.deepEqual([...result.hospital.result], [plainSum(expected)]);
  }
  const refused = result.peers.get(peerName(2));
  assert.equal(refused?.kind, "aborted");
});

Deno.test("threshold: 40 peers, dropouts after sharing, in input and in unmasking", async () => {
  const n = 40;
  const dies = [
    { peer: peerName(5), when: (e: NetEvent) => kind(e) === "sealed", delivered: true },
    { peer: peerName(17), when: (e: NetEvent) => kind(e) === "chunk", delivered: false },
    { peer: peerName(30), when: (e: NetEvent) => kind(e) === "reveal", delivered: false },
  ];
  const result = await runRound({
    peers: n,
    terms: sumTerms("threshold", 21, 20),
    inputs: sumInput,
    dies,
  });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const expected = result.names.filter((name) => name !== peerName(5) && name !== peerName(17));
  assert.deepEqual(result.hospital.set, expected);
  assert.deepEqual([...result.hospital.result], [plainSum(expected)]);
});
