/**
 * Hospital-core guards a mutation audit (2026-12-02) found no test for in
 * the core suite: each test below turned red with the named check deleted
 * and is green with it. (The A numbers are the audit's own; the header of
 * guards_test.ts lists these guards as H33–H37 and the halves of H5 and H10.)
 *
 *   A2 advertise_keys.ts: the joined roster must be able to run the terms → "a sparse roster
 *      (rosterProblem) before START is sent; in a sparse round, fewer       smaller than a
 *      than K + 1 joined cannot fill one window, so no START goes out     neighbourhood"
 *   A3 confirm.ts: n-of-n goes on only if every participant confirmed  → "n-of-n: a participant
 *      (else abort; a silent one is not left out of a sum)                 that never confirms"
 *   A5 confirm.ts: a threshold round goes on only with ≥ max(T, min    → "threshold: fewer than
 *      contributors) confirmed; no CONFIRMATIONS below it                 T confirmations"
 *   A7 share_keys.ts: a threshold round goes on only with ≥ max(T,     → "threshold: fewer than
 *      min contributors) holders; no SHARES below it                      T holders"
 *   A8 share_keys.ts H5, its length half: a SEALED missing its LAST    → "a sealed missing its
 *      recipient drops its sender (guard H5's test drops the first,       last recipient"
 *      which the name-by-name comparison catches alone)
 *   A10 unmasking.ts H10, its length and name halves: a REVEAL missing → "a reveal missing its
 *      its last owner, or naming a non-holder in its place, drops its      last owner", "a reveal
 *      sender (guard H10's test is caught by the kind check alone)         naming a non-holder"
 *   A13 consistency.ts: UNMASK only with ≥ T consistency signatures    → "threshold: fewer than
 *                                                                       T consistency signatures"
 *   A15 unmasking.ts: masks are removed only with ≥ T reveals         → "threshold: fewer than
 *                                                                       T reveals"
 *   A17 state.ts: a round is not created with an invitee listed twice → "an invitee listed twice"
 *   A19 masked_input.ts: n-of-n gives a result only with every       → "n-of-n: a participant
 *      participant's vector; a silent one (connected, no INPUT) makes      whose masked input never
 *      the round abort at the deadline, never a DONE over the rest         arrives"
 *      (whose pairwise masks with it would not cancel: a wrong sum)
 *   A4 one JOIN / CONFIRM / SEALED / CONSISTENCY per sender: a second   → "a second join", …
 *      one drops it (advertise_keys.ts, confirm.ts, share_keys.ts,         (one test each)
 *      consistency.ts)
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  completeTerms,
  HOSPITAL,
  isMessageFrom,
  peerName,
  plainSum,
  runRound,
  sentBy,
  show,
  sumInput,
  sumTerms,
  testPki,
} from "./harness.ts";
import type { MessageOf } from "../../lib/wire/messages.ts";
import { HospitalRound } from "../../lib/protocol/hospital/round.ts";

const p1 = peerName(1);

type RevealShare = MessageOf<"reveal">["shares"][number];

function hospitalLog(result: Awaited<ReturnType<typeof runRound>>): string {
  return (result.logs.get(HOSPITAL) ?? []).join("\n");
}

Deno.test("a sparse roster smaller than a neighbourhood is refused by the hospital before START", async () => {
  // K = 4 needs 5 distinct positions; only 4 of the 8 invitees join.
  const gone = [4, 5, 6, 7].map(peerName);
  const result = await runRound({
    peers: 8,
    terms: { ...sumTerms("threshold", 3, 2), neighbors: 4 },
    inputs: (i) => sumInput(i),
    dies: gone.map((peer) => ({
      peer,
      when: (e) => "message" in e && e.message.type === "join",
      delivered: false,
    })),
  });
  assert.equal(result.hospital.kind, "aborted", show(result.hospital));
  if (result.hospital.kind === "aborted") {
    assert.match(
      result.hospital.reason,
      /^Cannot start round: 4 participants, fewer than a neighbourhood of 5$/,
    );
  }
  assert.equal(sentBy(result.net.sent, HOSPITAL, "start").length, 0, "no START is sent");
});

Deno.test("n-of-n: a participant that never confirms the roster aborts the round at the deadline", async () => {
  // p001's CONFIRM never arrives; it stays connected, so only the deadline ends the phase.
  const result = await runRound({
    peers: 4,
    terms: sumTerms("nofn"),
    inputs: (i) => sumInput(i),
    tamper: (e) => (isMessageFrom(e, p1, "confirm") ? [] : [e]),
  });
  assert.equal(result.hospital.kind, "aborted", show(result.hospital));
  if (result.hospital.kind === "aborted") {
    assert.equal(result.hospital.reason, "not every participant confirmed the roster");
  }
  assert.equal(sentBy(result.net.sent, HOSPITAL, "confirmations").length, 0);
  assert.equal(sentBy(result.net.sent, HOSPITAL, "proceed").length, 0);
});

// Each threshold phase's "at least T" check (confirm.ts, share_keys.ts,
// consistency.ts, unmasking.ts): three of five peers stay silent in it, and
// the round aborts naming the count before the phase's next message goes out.
for (
  const [label, silenced, reason, next] of [
    [
      "confirmations abort the round before CONFIRMATIONS",
      "confirm",
      "2 participants confirmed; 3 are needed",
      "confirmations",
    ],
    [
      "holders abort the round before SHARES",
      "sealed",
      "2 participants shared keys; 3 are needed",
      "shares",
    ],
    [
      "consistency signatures abort the round before UNMASK",
      "consistency",
      "2 survivors signed the set; 3 are needed",
      "unmask",
    ],
    [
      "reveals abort the round, naming the count",
      "reveal",
      "2 survivors revealed shares; 3 are needed",
      "done",
    ],
  ] as const
) {
  Deno.test(`threshold: fewer than T ${label}`, async () => {
    const silent = [2, 3, 4].map(peerName);
    const result = await runRound({
      peers: 5,
      terms: sumTerms("threshold", 3, 2),
      inputs: (i) => sumInput(i),
      tamper: (e) => (silent.some((n) => isMessageFrom(e, n, silenced)) ? [] : [e]),
    });
    assert.equal(result.hospital.kind, "aborted", show(result.hospital));
    if (result.hospital.kind === "aborted") assert.equal(result.hospital.reason, reason);
    assert.equal(sentBy(result.net.sent, HOSPITAL, next).length, 0);
  });
}

Deno.test("a sealed missing its last recipient drops its sender; the sum stays exact", async () => {
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: (i) => sumInput(i),
    tamper: (e) => {
      if (!isMessageFrom(e, p1, "sealed")) return [e];
      return [{ ...e, message: { ...e.message, shares: e.message.shares.slice(0, -1) } }];
    },
  });
  assert.match(
    hospitalLog(result),
    new RegExp(`dropped ${p1}: its shares are not addressed to exactly the confirmed set`),
  );
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const expected = result.names.filter((n) => n !== p1);
  assert.deepEqual(result.hospital.set, expected);
  assert.deepEqual([...result.hospital.result], [plainSum(expected)]);
});

for (
  const [label, edit] of [
    ["missing its last owner", (shares: RevealShare[]) => shares.slice(0, -1)],
    [
      "naming a non-holder in its last owner's place",
      (shares: RevealShare[]) => [
        ...shares.slice(0, -1),
        { ...shares.at(-1)!, of: peerName(9), kind: "mask" as const },
      ],
    ],
  ] as const
) {
  Deno.test(`a reveal ${label} drops its sender; the sum stays exact`, async () => {
    const result = await runRound({
      peers: 5,
      terms: sumTerms("threshold", 3, 2),
      inputs: (i) => sumInput(i),
      tamper: (e) => {
        if (!("message" in e) || e.from !== p1 || e.message.type !== "reveal") return [e];
        return [{ ...e, message: { ...e.message, shares: edit(e.message.shares) } }];
      },
    });
    assert.match(
      hospitalLog(result),
      new RegExp(`dropped ${p1}: its reveal does not match the survivors set`),
    );
    assert.equal(result.hospital.kind, "done", show(result.hospital));
    if (result.hospital.kind !== "done") return;
    // Its masked input was in before it revealed: it stays in the set.
    assert.deepEqual(result.hospital.set, result.names);
    assert.deepEqual([...result.hospital.result], [plainSum(result.names)]);
  });
}

Deno.test("a round is not created with an invitee listed twice", async () => {
  const pki = await testPki(3);
  const [a, b] = pki.peers;
  const options = {
    name: HOSPITAL,
    certPem: pki.hospital.certPem,
    signingKey: pki.hospital.signingKey,
    terms: completeTerms(sumTerms("nofn"), 3),
    outbox: { send: () => {}, sendChunk: () => {} },
    verifyParty: pki.verifyParty,
  };
  const invitee = (p: typeof a) => ({ name: p!.name, certPem: p!.certPem });
  // Three entries, two parties: the round would be laid out for a peer that is not there.
  assert.throws(
    () => new HospitalRound({ ...options, invitees: [invitee(a), invitee(b), invitee(a)] }),
    (error: unknown) =>
      error instanceof RangeError &&
      error.message === "Cannot create round: an invitee is listed twice",
  );
  new HospitalRound({ ...options, invitees: [invitee(a), invitee(b)] });
});

Deno.test("n-of-n: a participant whose masked input never arrives aborts the round, no DONE", async () => {
  const result = await runRound({
    peers: 4,
    terms: sumTerms("nofn"),
    inputs: (i) => sumInput(i),
    // p001 stays connected but its INPUT and chunks never arrive.
    tamper: (
      e,
    ) => (e.from === p1 && e.to === HOSPITAL && (isMessageFrom(e, p1, "input") || "chunk" in e)
      ? []
      : [e]),
  });
  assert.equal(result.hospital.kind, "aborted", show(result.hospital));
  if (result.hospital.kind === "aborted") {
    assert.equal(result.hospital.reason, "not every participant's masked input arrived");
  }
  assert.equal(sentBy(result.net.sent, HOSPITAL, "done").length, 0);
});

// Which phase each message is collected in, and whether its sender's input is in the set.
const SECONDS = [
  { type: "join", inSet: false },
  { type: "confirm", inSet: false },
  { type: "sealed", inSet: false },
  { type: "consistency", inSet: true },
] as const;

for (const { type, inSet } of SECONDS) {
  Deno.test(`a second ${type} drops its sender; the sum stays exact`, async () => {
    const result = await runRound({
      peers: 5,
      terms: sumTerms("threshold", 3, 2),
      inputs: (i) => sumInput(i),
      tamper: (e) => (isMessageFrom(e, p1, type) ? [e, structuredClone(e)] : [e]),
    });
    assert.match(hospitalLog(result), new RegExp(`dropped ${p1}: second ${type}$`, "m"));
    assert.equal(result.hospital.kind, "done", show(result.hospital));
    if (result.hospital.kind !== "done") return;
    const expected = result.names.filter((n) => inSet || n !== p1);
    assert.deepEqual(result.hospital.set, expected);
    assert.deepEqual([...result.hospital.result], [plainSum(expected)]);
  });
}
