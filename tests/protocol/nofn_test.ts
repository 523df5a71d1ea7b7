/**
 * Whole n-of-n rounds of the sans-I/O core in memory: 3 to 100 peers give
 * exactly the plain sum; a vector longer than one chunk arrives whole; any
 * loss after START aborts every party cleanly.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  peerName,
  plainSum,
  runRound,
  sentBy,
  show,
  sumInput,
  sumTerms,
  testPki,
} from "./harness.ts";

for (const n of [3, 10]) {
  Deno.test(`n-of-n: ${n} peers sum exactly`, async () => {
    const result = await runRound({ peers: n, terms: sumTerms("nofn"), inputs: sumInput });
    assert.equal(result.hospital.kind, "done", show(result.hospital));
    if (result.hospital.kind !== "done") return;
    assert.deepEqual(result.hospital.set, result.names);
    assert.deepEqual([...result.hospital.result], [plainSum(result.names)]);
    for (const [name, outcome] of result.peers) {
      assert.equal(outcome?.kind, "done", `${name}: ${show(outcome)}`);
      if (outcome?.kind === "done") {
        assert.equal(outcome.resultDigest, result.hospital.resultDigest);
        assert.deepEqual(outcome.set, result.names);
      }
    }
    // The hospital never sees a plain input: each masked input differs from x.
    for (const [i, name] of result.names.entries()) {
      const chunk = result.trace.find((e) => e.from === name && "chunk" in e);
      assert.ok(chunk && "chunk" in chunk);
      assert.notEqual(chunk.chunk.data[0], sumInput(i)[0]);
    }
  });
}

Deno.test("n-of-n: 100 peers sum exactly", async () => {
  const result = await runRound({ peers: 100, terms: sumTerms("nofn"), inputs: sumInput });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  assert.deepEqual([...result.hospital.result], [plainSum(result.names)]);
  assert.ok([...result.peers.values()].every((o) => o?.kind === "done"));
});

Deno.test("n-of-n: a vector of two chunks and a variance sum exactly", async () => {
  const d = 65536 + 5;
  const vector = (i: number) => Float64Array.from({ length: d }, (_, k) => (k * 7 + i * 13) % 1000);
  const terms = { ...sumTerms("nofn"), query: `vector:${d}`, max: 1000n, dimension: d };
  const result = await runRound({ peers: 3, terms, inputs: vector });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const [a, b, c] = [vector(0), vector(1), vector(2)];
  const expected = Float64Array.from({ length: d }, (_, k) => a[k]! + b[k]! + c[k]!);
  assert.deepEqual(result.hospital.result, expected);
  assert.equal(sentBy(result.trace, peerName(0), "input").length, 1);
  assert.equal(result.trace.filter((e) => e.from === peerName(0) && "chunk" in e).length, 2);

  const variance = { ...sumTerms("nofn"), query: "variance", max: 100n, maxRows: 10, dimension: 3 };
  const rows = (i: number) => Float64Array.of(10 * i + 5, 100 * i * i + 25, 1);
  const v = await runRound({ peers: 4, terms: variance, inputs: rows });
  assert.equal(v.hospital.kind, "done");
  if (v.hospital.kind === "done") {
    assert.deepEqual(
      [...v.hospital.result],
      [0, 1, 2, 3].map(rows).reduce(
        (acc, r) => acc.map((a, k) => a + r[k]!),
        [0, 0, 0],
      ),
    );
  }
});

const losses: [string, string, boolean][] = [
  ["before confirm", "confirm", false],
  ["after confirm", "confirm", true],
  ["during masked input", "chunk", false],
];
for (const [label, type, delivered] of losses) {
  Deno.test(`n-of-n: a peer lost ${label} aborts every party`, async () => {
    const victim = peerName(1);
    const result = await runRound({
      peers: 4,
      terms: sumTerms("nofn"),
      inputs: sumInput,
      dies: [{
        peer: victim,
        when: (e) => ("chunk" in e ? "chunk" : e.message.type) === type,
        delivered,
      }],
    });
    assert.equal(result.hospital.kind, "aborted");
    for (const [name, outcome] of result.peers) {
      if (name === victim) continue;
      assert.equal(outcome?.kind, "aborted", name);
    }
  });
}

for (const delivered of [false, true]) {
  Deno.test(`n-of-n: a peer lost ${delivered ? "after" : "before"} join, before START, aborts the round`, async () => {
    const result = await runRound({
      peers: 4,
      terms: sumTerms("nofn"),
      inputs: sumInput,
      dies: [{
        peer: peerName(2),
        when: (e) => "message" in e && e.message.type === "join",
        delivered,
      }],
    });
    // Every invited peer's input counts in n-of-n, so a loss before START
    // aborts: a sum over fewer would not be the round that was asked for.
    assert.equal(result.hospital.kind, "aborted");
    if (result.hospital.kind !== "aborted") return;
    assert.match(
      result.hospital.reason,
      /needs every invited peer; p002 did not join/,
    );
  });
}

Deno.test("n-of-n: a round cannot be created with terms that do not fit their query", async () => {
  const { HospitalRound } = await import("../../lib/protocol/hospital/round.ts");
  const { QueryError } = await import("../../lib/query.ts");
  const pki = await testPki(3);
  assert.throws(
    () =>
      new HospitalRound({
        name: "hospital",
        certPem: pki.hospital.certPem,
        signingKey: pki.hospital.signingKey,
        terms: { ...sumTerms("nofn"), participants: 3, dimension: 2 },
        invitees: [],
        outbox: { send() {}, sendChunk() {} },
        verifyParty: pki.verifyParty,
      }),
    QueryError,
  );
});
