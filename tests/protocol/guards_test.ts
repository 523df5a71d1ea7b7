/**
 * One test per guard of privacy, authentication or exactness in the v2 core
 * (lib/protocol/, lib/crypto/, lib/wire/). Each listed guard was deleted or
 * neutered by hand and the named test seen to fail, then restored.
 *
 * Peer guards (lib/protocol/peer/):
 *   P1  INVITE certificate checked for the expected hospital name → "guard P1"
 *   P2  INVITE signature over session and terms                   → "guard P2"
 *   P3  session id seen before is refused                         → attacks_test "a replayed session id"
 *   P4  threshold T ≥ 2, and ≥ the peer's own minimum T           → both "guard P4" tests
 *   P5  own input fits the layout: its length, each element a     → both "guard P5" tests
 *       whole number below its segment's modulus, each at most
 *       its per-element bound (elementBound: no wrap)
 *   P6  START roster ≤ N = terms.participants (the layout's N)    → "guard P6"
 *       (and T > n/2, floors: rosterProblem)
 *   P7  START lists this peer with exactly its own keys           → "guard P7"
 *   P8  each participant's certificate (consortium CA, name)      → "guard P8"
 *   P9  each join signature over this session (replayed keys)     → attacks_test "keys replayed"
 *   P10 confirmations verify over this START hash, ≥ T / all      → attacks_test "different rosters",
 *                                                                   "guard P10"
 *   P11 a sealed share that does not open aborts                  → "guard P11"
 *   P12 holders ≥ max(T, floor)                                   → "guard P12"
 *   P13 survivors ⊆ holders                                       → "guard P13"
 *   P14 this peer ∈ survivors                                     → "guard P14"
 *   P15 |survivors| ≥ T                                           → attacks_test "attack (a)"
 *   P16 |survivors| ≥ the peer's floor                            → "guard P16"
 *   P17 UNMASK names exactly the set this peer signed             → "guard P17"
 *   P18 ≥ T valid consistency signatures from members of the set  → attacks_test "attack (b)",
 *                                                                   "different set for every peer",
 *                                                                   "guard P18"
 *   P19 per holder exactly one share: self iff in the set         → "guard P19"
 *   P20 one reveal per session (a later UNMASK is ignored)        → "guard P20"
 *   P21 DONE signature over (session, START hash, set, digest)    → "guard P21"
 *   P22 terms.dimension = the layout the peer computes from the   → "guard P22"
 *       terms (query, max, maxRows, participants); terms no
 *       layout can represent are refused; the query in canonical
 *       form
 *   P24 n-of-n: the START roster holds exactly the N of the      → "guard P24"
 *       signed terms (never a subset the hospital chose)
 *   P23 masks added per segment, each modulo its own modulus,     → residues_test "vector whose
 *       one stream per seed in vector order                         every total" (both), crypto_test
 *                                                                   "one stream"
 *   P25 SURVIVORS carries exactly one signed INPUT statement per  → "guard P25" (both halves)
 *       member of S, each verifying under that member's key
 *   P26 every member's signed partner set holds all of S          → attacks_test "attack (c)"
 * Hospital guards (lib/protocol/hospital/):
 *   H1  join signature                                            → "guard H1"
 *   H2  join keys are P-256 points                                → "guard H2"
 *   H3  terms.dimension = the layout's, the layout representable, → "guard H3"
 *       invitees ≤ N (at construction)
 *   H4  confirm signature                                         → "guard H4"
 *   H5  sealed addressed to exactly the confirmed set             → "guard H5"
 *   H6  input signature and length                                → "guard H6"
 *   H7  chunks in order with the right lengths                    → "guard H7"
 *   H8  vector matches its signed digest                          → "guard H8"
 *   H9  consistency signature                                     → "guard H9"
 *   H10 reveal covers exactly the holders, kind by the set        → "guard H10"
 *   H11 rebuilt words < 2^32 and extra shares consistent          → "guard H11", crypto_test
 *                                                                   "inconsistent shares"
 *   H12 rebuilt mask key equals the advertised maskKey            → "guard H12"
 *   H13 a survivor lost after its input stays in the set          → threshold_test "after masked input"
 *   H14 every received vector canonical per segment (an element   → "guard H14"
 *       in [p2, p1) in a p2 segment is a violation)
 *   H15 sums added per segment, each modulo its own modulus;      → residues_test (every round);
 *       self and pairwise masks removed per segment                 unmasking: its two threshold rounds
 *   H16 n-of-n: every invitee must join, else the round aborts    → nofn_test "before START, aborts"
 *                                                                   (both), "guard H1", "guard H2"
 *   H17 a rebuilt self seed matches its owner's signed seedCommit → "guard H17"
 *       (else abort naming the owner; exactly T revealers)
 *   H18 n-of-n: seedCommit is all zeros                           → "guard H18"
 *   H19 a sender's signed partner set is the holders (n-of-n:     → "guard H19"
 *       everyone), so every dropped holder's mask is in every
 *       survivor's input
 *   H20 an attestation is kept only if its signature verifies;   → "guard H20"
 *       nothing is sent after DONE (no abort)
 *   H21 an attestation has two values (challenges) per segment,  → "guard H21"
 *       each below its segment's modulus
 *   H22 only the first attestation of a live member of the set    → "guard H22" (deleting the
 *       counts                                                      member test alone stays green:
 *                                                                   after DONE every non-member is
 *                                                                   also dropped, which the base
 *                                                                   class ignores)
 *   H27 chunks only from a sender sent PROCEED; at most `uploads` → uploads_test "guard H27",
 *       admitted at once, a lost one's slot passed on               "at most U", "lost mid-upload"
 *   P33 chunks only after PROCEED; no SURVIVORS or DONE taken     → uploads_test "guard P33"
 *       before it
 * Found untested by the peer-side mutation audit of 2026-12-02 (105 deletions,
 * 15 real gaps), each now red when deleted, in tests/protocol/audit_peer_test.ts:
 *   P6  (its T > n/2 half) at START                              → "audit: … T is not more than half"
 *   P34 n-of-n: the roster meets the peer's own floor             → "audit: an n-of-n peer whose own floor"
 *   P35 sparse: size ≤ N and size ≥ the peer's own floor          → "audit: a sparse START whose size",
 *                                                                   "audit: a sparse peer whose own floor"
 *   P36 sparse: exactly as many entries as window positions       → "audit: … one entry more than the window"
 *   P37 SHARES only from confirmed participants other than self   → "audit: SHARES holding a share"
 *   P38 threshold: DONE only after SURVIVORS                      → "audit: … DONE that comes before SURVIVORS"
 *   P39 complete graph: a signature with a view is not counted    → "audit: … dressed as a view"
 *       (a member's signature on another set cannot pass as one
 *       on this set)
 *   H21 (its below-the-modulus half)                              → "audit: an attestation value at its
 *                                                                   segment's modulus"
 *   C13 public keys: prefix 0x04, coordinates below p; Shamir     → the audit's isPublicKey, splitSecret,
 *       threshold 1..n at distinct non-zero points; masks cover     applyMask and fromSeed tests
 *       the whole vector; a seed is 32 bytes
 *   (P7's own-key comparisons are not separately testable: the peer's own JOIN signature,
 *   checked with the others, covers its keys.)
 * Found untested by the hospital and boundary audit of the same day (about 140
 * deletions, 24 real gaps), in tests/protocol/audit_hospital_test.ts (core) and
 * tests/audit_boundary_test.ts:
 *   H33 n-of-n: every participant's masked input arrived, else   → "n-of-n: a participant whose masked
 *       abort (without it a silent peer's masks never cancel:        input never arrives"
 *       a wrong sum)
 *   H34 n-of-n: every participant confirmed; threshold: ≥ T       → "n-of-n: a participant that never
 *       confirmations, ≥ T holders and the floor, ≥ T             confirms", "threshold: fewer than T
 *       consistency signatures, ≥ T revealers                      confirmations / holders / …"
 *   H35 a sparse roster of at least a neighbourhood before START → "a sparse roster smaller than a
 *                                                                   neighbourhood"
 *   H36 a second CONFIRM, SEALED or CONSISTENCY drops its sender  → "a second join / confirm / sealed /
 *       (a second JOIN was covered only by star_hostile_test's      consistency drops its sender"
 *       processes; now in the core too)
 *   H37 invitees without repeats                                  → "a round is not created with an
 *                                                                   invitee listed twice"
 *   H5, H10 (their length and name halves)                        → "a sealed missing its last
 *                                                                   recipient", "a reveal missing its
 *                                                                   last owner", "… naming a non-holder"
 *   C7  (entry lists, not only name lists, sorted and unique)     → audit_boundary "entry lists must be
 *                                                                   sorted"
 *   C14 codec bounds: terms.max below p, a query of at most 200   → audit_boundary "terms bounds",
 *       characters, at most 500 entries, a certificate of at        "entry lists are bounded" and the
 *       most 8192 characters, 1–32 attested values, bitmaps of      certificate, attest, bitmap and idle
 *       even length, idle only as its exact bytes                  tests
 *   I1  a name-only revocation, a revocation list's CA            → audit_boundary "a name-only
 *       fingerprint and signature (the last two were covered        revocation", the revocation-list
 *       only by a process test); a connection's unread cap only     and unread-cap tests (its UTCTime
 *       after raiseLimit and at least one frame                     test adds cases x509_der_test's
 *                                                                   "31 February" already catches)
 * Sparse-pairing guards (docs/protocol.md §18), in tests/protocol/sparse_test.ts:
 *   P27 a sparse START has rosterHash and size; a complete-graph  → both "sparse guard P27" tests
 *       START has neither (nor positions)
 *   P28 START's entries are exactly the K + 1 positions of the    → "sparse guard P28"
 *       window around the peer's own
 *   P29 position keys (from the claimed START hash) rise along    → both "sparse guard P29"
 *       the window, one wrap at n − 1 → 0 at most, and across         tests
 *       the wrap the window's last key is below its first
 *   P30 every member of S in the peer's window masked with every  → "sparse guard P30"
 *       member of S in both windows (signed partner bitmap)
 *   P31 each counted consistency signature is on the signer's     → "sparse guard P31"
 *       view, which agrees with this peer's S on both windows;
 *       a contradicting one stops the reveal
 *   P32 DONE carries setDigest iff the round is sparse, and its   → both "sparse guard P32" tests
 *       signature is over it
 *   H23 sealed addressed to exactly the confirmed in the window   → "sparse guard H23"
 *   H24 input partner bitmap = H in the sender's window           → "sparse guard H24"
 *   H25 reveal covers exactly the holders in the window, kind by S → "sparse guard H25"
 *   H26 each owner's secret is rebuilt only from ≥ T neighbours'  → "sparse guard H26"
 *       reveals, else abort (a victim short of T is never opened)
 *   C12 participants above 500 only with neighbors; K even,       → sparse_test "terms refuse"
 *       2T > K + 1, threshold mode
 * The sparse CONFIRM's signed place (§18.3; review 9's F2 and F3), in
 * tests/protocol/sparse_place_test.ts:
 *   P40 a neighbour counts only if it signed this peer's n        → "P40, H38: a victim told a larger n",
 *                                                                   "P40, P41: in the partition"
 *   P41 … and the position this peer's START gives it             → "P41: a neighbour shown one place",
 *                                                                   "P40, P41: in the partition"
 *   H38 the hospital verifies each CONFIRM over the n and the     → "P40, H38: a victim told a larger n",
 *       position its own START gave the sender                      "H38: the honest hospital drops
 *                                                                   review 9's nine"
 * Found by the spec-only implementation of 2026-12-02 (its hospital published a
 * sum its own receipt verifier refused):
 *   H39 every total at most |set| × its bound, else abort, never  → "guard H39"
 *       DONE (the check a receipt's verifier makes, R-side)
 * Receipt guards (lib/receipt.ts), in tests/receipt_verify_test.ts:
 *   R1  each attestation's signature, from a member of the set,   → "attestations, self seeds and
 *       one value per segment below its modulus                     mask secrets are each checked",
 *                                                                   "every single-field change"
 *   R2  each self seed matches its owner's seedCommit; one per    → "... each checked"
 *       member (threshold), none in n-of-n
 *   R3  each dropped holder's mask secret gives its maskKey; one  → "... each checked"
 *       per holder in some partner set outside the set
 *   R4  ⟨r, result + masks⟩ ≡ Σ a_m per segment                   → "a result off by one in one
 *                                                                   element fails the linear check"
 *   R4b the same for the second, independent challenge r'         → "the second challenge is checked
 *                                                                   too"
 *   R5  "proven" only when every member attested                  → "leaves right after DONE"
 * Crypto and codec guards (lib/crypto/, lib/wire/):
 *   C1  public keys are points on P-256                           → crypto_test "off the curve"
 *   C2  sealing binds session, sender, recipient (AAD)            → crypto_test "sealed shares"
 *   C3  duplicate JSON keys                                       → messages_test "duplicate keys"
 *   C4  canonical integers only                                   → messages_test "non-canonical"
 *   C5  canonical base64                                          → messages_test "non-canonical"
 *   C6  no unknown fields                                         → messages_test "missing and extra"
 *   C7  name lists sorted, unique                                 → messages_test "sorted"
 *   C8  chunk elements are field elements                         → messages_test "chunks"
 *   C9  protocol version 2                                        → messages_test "wrong version"
 *   C10 share elements below p                                    → messages_test "at or above p"
 *   C11 terms.participants a whole number 2..MAX_SPARSE_PARTICIPANTS → messages_test "participants"
 *
 * @module
 */

import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { createConsortium, ECDSA_P256 } from "../../lib/pki.ts";
import { sign } from "../../lib/crypto/signing.ts";
import {
  attestFields,
  consistencyFields,
  inputFields,
  inviteFields,
  joinFields,
  linearCheckSeed,
  startHash,
} from "../../lib/protocol/transcript.ts";
import { attestedProducts } from "../../lib/crypto/linear_check.ts";
import { add, inv, mul, P, P2, sub } from "../../lib/field.ts";
import { HospitalRound } from "../../lib/protocol/hospital/round.ts";
import { decodeTotals, type Layout } from "../../lib/query.ts";
import { vectorDigest } from "../../lib/crypto/digest.ts";
import {
  MAX_DIMENSION,
  type Message,
  type MessageOf,
  type MessageType,
  type Terms,
} from "../../lib/wire/messages.ts";
import {
  completeTerms,
  HOSPITAL,
  isMessageFrom,
  type Net,
  type NetEvent,
  peerName,
  plainSum,
  residueInput,
  residueTerms,
  residueTotals,
  runRound,
  sentBy,
  show,
  startHashOn,
  sumInput,
  sumTerms,
  testPki,
  withSet,
} from "./harness.ts";

const pki = await testPki(10);
const keyOf = (name: string) =>
  name === HOSPITAL ? pki.hospital.signingKey : pki.peers.find((p) => p.name === name)!.signingKey;
const certOf = (name: string) => pki.peers.find((p) => p.name === name)!.certPem;
const names5 = [0, 1, 2, 3, 4].map(peerName);
const [p0, p1, p2, p4] = [peerName(0), peerName(1), peerName(2), peerName(4)];

/** A tamper hook that rewrites messages of `type` from `from` (to `to`, if given). */
function edit<T extends MessageType>(
  from: string,
  type: T,
  change: (m: MessageOf<T>, e: NetEvent) => Message | Promise<Message> | undefined,
  to?: string,
): (e: NetEvent) => Promise<NetEvent[]> {
  return async (e) => {
    if (e.from !== from || !("message" in e) || e.message.type !== type) return [e];
    if (to !== undefined && e.to !== to) return [e];
    const changed = await change(structuredClone(e.message) as unknown as MessageOf<T>, e);
    return changed ? [{ ...e, message: changed }] : [];
  };
}

function reason(outcome: unknown): string {
  const o = outcome as { kind?: string; reason?: string } | undefined;
  return o?.kind === "aborted" ? o.reason ?? "" : `not aborted: ${show(o)}`;
}

function assertDoneWithout(result: Awaited<ReturnType<typeof runRound>>, without: string[]): void {
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const expected = result.names.filter((n) => !without.includes(n));
  assert.deepEqual(result.hospital.set, expected);
  assert.deepEqual([...result.hospital.result], [plainSum(expected)]);
}

/**
 * In an n-of-n round every invited peer's input counts: a peer left out of
 * the roster (by its own refusal or the hospital's) makes the round abort,
 * naming exactly who is missing.
 */
function assertAbortedWithout(
  result: Awaited<ReturnType<typeof runRound>>,
  without: string[],
): void {
  assert.match(
    reason(result.hospital),
    new RegExp(`needs every invited peer; ${without.join(", ")} did not join$`),
  );
}

const threshold5 = { peers: 5, terms: sumTerms("threshold", 3, 2), inputs: sumInput };

// ---- peer guards ----

Deno.test("guard P1: an INVITE with a certificate for another name is refused", async () => {
  const result = await runRound({
    peers: 3,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: edit(HOSPITAL, "invite", async (m) => ({
      ...m,
      hospitalCert: certOf(peerName(9)),
      signature: await sign(keyOf(peerName(9)), "invite", inviteFields(m.session, m.terms)),
    })),
  });
  for (const name of result.names) {
    assert.equal(sentBy(result.net.sent, name, "join").length, 0);
    assert.match(reason(result.peers.get(name)), /certificate is refused/);
  }
});

Deno.test("guard P2: an INVITE whose terms were changed after signing is refused", async () => {
  const result = await runRound({
    peers: 3,
    terms: sumTerms("nofn", 0, 3),
    inputs: sumInput,
    tamper: edit(HOSPITAL, "invite", (m) => ({ ...m, terms: { ...m.terms, minContributors: 2 } })),
  });
  for (const name of result.names) {
    assert.equal(sentBy(result.net.sent, name, "join").length, 0);
    assert.match(reason(result.peers.get(name)), /signature does not verify/);
  }
});

/** A tamper hook: the hospital re-signs INVITE with threshold `t`. */
const inviteWithThreshold = (t: number) =>
  edit(HOSPITAL, "invite", async (m) => {
    const terms = { ...m.terms, threshold: t };
    return {
      ...m,
      terms,
      signature: await sign(keyOf(HOSPITAL), "invite", inviteFields(m.session, terms)),
    };
  });

Deno.test("guard P4: a threshold of 1 (one share opens a secret) is refused", async () => {
  // Even by a peer whose own minimum would allow it.
  const result = await runRound({
    ...threshold5,
    minThreshold: () => 1,
    tamper: inviteWithThreshold(1),
  });
  for (const name of result.names) {
    assert.equal(sentBy(result.net.sent, name, "join").length, 0);
    assert.match(reason(result.peers.get(name)), /threshold must be at least 2/);
  }
});

Deno.test("guard P4: a threshold below the peer's own minimum is refused", async () => {
  const result = await runRound({ ...threshold5, minThreshold: (n) => (n === p0 ? 4 : undefined) });
  assert.equal(sentBy(result.net.sent, p0, "join").length, 0);
  assert.match(reason(result.peers.get(p0)), /below this peer's minimum of 4/);
  assertDoneWithout(result, [p0]);
});

Deno.test("guard P5: an input above its bound is refused by its own peer", async () => {
  const result = await runRound({
    peers: 4,
    terms: sumTerms("nofn"),
    inputs: (i) => (i === 1 ? Float64Array.of(1_000_001) : sumInput(i)),
  });
  assert.equal(sentBy(result.net.sent, p1, "join").length, 0);
  assert.match(reason(result.peers.get(p1)), /above its bound/);
  assertAbortedWithout(result, [p1]);
});

Deno.test("guard P5: a residue-layout input that does not fit the layout is refused by its own peer", async () => {
  // Variance over 6 peers: elements Σx (p1, bound M·R), Σx² mod p1, Σx² mod p2, rows (p1, bound M).
  const bad: Record<number, [(x: Float64Array) => Float64Array, RegExp]> = {
    // Σx above M·R = 10^10: N such inputs could wrap p1.
    1: [(x) => x.fill(10_000_000_001, 0, 1), /element 0 is above its bound/],
    // Below p1 (and so a valid chunk element), but not below the p2 segment's modulus.
    2: [(x) => x.fill(P2, 2, 3), /below its segment's modulus|element 2 is above its bound/],
    // Not a whole number, and below every bound: only the segment check sees it.
    3: [(x) => x.fill(0.5, 3, 4), /not a whole number below its segment's modulus/],
    // The length of the same query without residues.
    4: [(x) => x.subarray(0, 3), /it has 3 elements; the round's layout has 4/],
  };
  const result = await runRound({
    peers: 6,
    terms: residueTerms("nofn"),
    inputs: (i, layout) => {
      const x = residueInput(i, layout);
      return bad[i] ? bad[i]![0](x) : x;
    },
  });
  for (const [i, [, pattern]] of Object.entries(bad)) {
    const name = peerName(Number(i));
    assert.equal(sentBy(result.net.sent, name, "join").length, 0, name);
    assert.match(reason(result.peers.get(name)), pattern);
  }
  assertAbortedWithout(result, [1, 2, 3, 4].map(peerName));
});

/** A tamper hook: the hospital's INVITE carries `change(terms)`, re-signed. */
const inviteWith = (change: (terms: Terms) => Terms) =>
  edit(HOSPITAL, "invite", async (m) => {
    const terms = change(m.terms);
    return {
      ...m,
      terms,
      signature: await sign(keyOf(HOSPITAL), "invite", inviteFields(m.session, terms)),
    };
  });

/** A HospitalRound for `terms` inviting the first `invited` test peers. */
function newRound(terms: Terms, invited: number): HospitalRound {
  return new HospitalRound({
    name: HOSPITAL,
    certPem: pki.hospital.certPem,
    signingKey: pki.hospital.signingKey,
    terms,
    invitees: pki.peers.slice(0, invited).map((p) => ({ name: p.name, certPem: p.certPem })),
    outbox: { send() {}, sendChunk() {} },
    verifyParty: pki.verifyParty,
  });
}

/** Terms that no layout can carry: 2^24 elements that each need 2 residues. */
const tooWide = (terms: Terms): Terms => ({
  ...terms,
  query: `vector:${MAX_DIMENSION}`,
  max: BigInt(P - 1),
  dimension: MAX_DIMENSION,
});

Deno.test("guard H3: the hospital refuses terms off their layout, unrepresentable, or for fewer than its invitees", () => {
  const variance5 = completeTerms(residueTerms("nofn"), 5);
  assert.equal(variance5.dimension, 4);
  assert.doesNotThrow(() => newRound(variance5, 5));
  // The dimension of a layout without residues (3) is not this layout's (4).
  assert.throws(() => newRound({ ...variance5, dimension: 3 }, 5), /does not match the layout/);
  // One element mod p1 holds a sum over 4 peers of R = ⌈p1/5⌉, not over 5.
  const wide = { ...completeTerms(sumTerms("nofn"), 5), max: BigInt(Math.ceil(P / 5)) };
  assert.throws(() => newRound({ ...wide, dimension: 1 }, 5), /does not match the layout/);
  assert.doesNotThrow(() => newRound({ ...wide, dimension: 2 }, 5));
  assert.throws(() => newRound(tooWide(variance5), 5), /more than the limit/);
  // N = 4 but 5 invitees: a sum over 5 could wrap what is laid out for 4.
  const sum4 = completeTerms(sumTerms("nofn"), 4);
  assert.doesNotThrow(() => newRound(sum4, 4));
  assert.throws(() => newRound(sum4, 5), /5 invitees, more than the terms' 4 participants/);
  // Terms no roster of N can meet.
  const t5 = completeTerms(sumTerms("threshold", 3, 2), 5);
  assert.doesNotThrow(() => newRound(t5, 5));
  assert.throws(() => newRound({ ...t5, threshold: 6 }, 5), /threshold 6 exceeds the 5/);
  assert.throws(() => newRound({ ...t5, minContributors: 6 }, 5), /minimum of 6 contributors/);
});

Deno.test("guard P22: peers refuse terms whose dimension is not the layout they compute", async () => {
  for (
    const [change, pattern] of [
      [(t: Terms) => ({ ...t, dimension: 3 }), /dimension 3 does not match the layout/],
      [tooWide, /more than the limit/],
      // One spelling per query: two spellings would be two different signed terms.
      [(t: Terms) => ({ ...t, query: "histogram:00:10:5" }), /not in canonical form/],
    ] as const
  ) {
    const result = await runRound({
      peers: 5,
      terms: residueTerms("nofn"),
      inputs: residueInput,
      tamper: inviteWith(change),
    });
    for (const name of result.names) {
      assert.equal(sentBy(result.net.sent, name, "join").length, 0, name);
      assert.match(reason(result.peers.get(name)), pattern);
    }
  }
});

Deno.test("guard P24: n-of-n peers refuse a START roster smaller than the N they were invited for", async () => {
  // The hospital signed terms for 5 and shows a roster of 4: a sum over a
  // subset it chose, which n-of-n never allows.
  const result = await runRound({
    peers: 4,
    terms: { ...sumTerms("nofn"), participants: 5 },
    inputs: sumInput,
  });
  for (const name of result.names) {
    assert.equal(sentBy(result.net.sent, name, "confirm").length, 0, name);
    assert.match(
      reason(result.peers.get(name)),
      /roster has 4 participants; its signed terms say 5/,
    );
  }
});

Deno.test("guard P6: peers refuse a START roster larger than the N the layout is for", async () => {
  // 4 × R < p1 ≤ 5 × R: laid out for 4 peers, one element mod p1 suffices; 5 could wrap it.
  const max = BigInt(Math.ceil(P / 5));
  const result = await runRound({
    peers: 5,
    terms: { ...sumTerms("nofn"), max },
    inputs: sumInput,
    tamper: inviteWith((t) => ({ ...t, participants: 4, dimension: 1 })),
  });
  assert.equal(result.terms.dimension, 2); // the hospital's own, honest layout for 5
  assert.equal(sentBy(result.trace, HOSPITAL, "start").length, 5);
  for (const name of result.names) {
    assert.equal(sentBy(result.net.sent, name, "join").length, 1, name);
    assert.equal(sentBy(result.net.sent, name, "confirm").length, 0, name);
    assert.match(reason(result.peers.get(name)), /5 participants, more than the 4/);
  }
});

Deno.test("guard P7: a peer left out of START (or given other keys) does not confirm", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: edit(HOSPITAL, "start", (m) => ({
      ...m,
      participants: m.participants.filter((p) => p.name !== p2),
    }), p2),
  });
  assert.equal(sentBy(result.net.sent, p2, "confirm").length, 0);
  assert.match(reason(result.peers.get(p2)), /does not list this peer/);
});

Deno.test("guard P8: a participant certificate from another CA is refused", async () => {
  const stranger = await createConsortium([p1]);
  const pair = stranger.parties.get(p1)!;
  const strangerKey = await crypto.subtle.importKey(
    "pkcs8",
    x509.PemConverter.decodeFirst(pair.key),
    ECDSA_P256,
    false,
    ["sign"],
  );
  const result = await runRound({
    peers: 4,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: edit(HOSPITAL, "start", async (m) => ({
      ...m,
      participants: await Promise.all(m.participants.map(async (p) =>
        p.name !== p1 ? p : {
          ...p,
          cert: pair.cert,
          signature: await sign(
            strangerKey,
            "join",
            joinFields(m.session, p1, p.sealKey, p.maskKey),
          ),
        }
      )),
    })),
  });
  assert.equal(sentBy(result.net.sent, p0, "confirm").length, 0);
  assert.match(reason(result.peers.get(p0)), /certificate of p001 is refused/);
});

Deno.test("guard P10: n-of-n goes on only when every participant's confirmation verifies", async () => {
  const result = await runRound({
    peers: 4,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: edit(HOSPITAL, "confirmations", (m) => ({
      ...m,
      confirmations: m.confirmations.map((c) =>
        c.name === peerName(3)
          ? { ...c, signature: Uint8Array.from(c.signature).fill(c.signature[0]! ^ 1, 0, 1) }
          : c
      ),
    }), p0),
  });
  assert.equal(sentBy(result.net.sent, p0, "input").length, 0);
  assert.match(reason(result.peers.get(p0)), /did not confirm/);
});

Deno.test("guard P11: a sealed share that does not open aborts, naming the sender", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: edit(HOSPITAL, "shares", (m) => ({
      ...m,
      shares: m.shares.map((s) => {
        if (s.from !== p1) return s;
        const sealed = Uint8Array.from(s.sealed);
        sealed[3]! ^= 0x40;
        return { ...s, sealed };
      }),
    }), p0),
  });
  assert.equal(sentBy(result.net.sent, p0, "input").length, 0);
  assert.match(reason(result.peers.get(p0)), /share from p001 does not open/);
});

Deno.test("guard P12: a peer given shares from fewer than T holders stops", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: edit(HOSPITAL, "shares", (m) => ({ ...m, shares: m.shares.slice(0, 1) }), p0),
  });
  assert.equal(sentBy(result.net.sent, p0, "input").length, 0);
  assert.match(reason(result.peers.get(p0)), /2 participants shared keys; 3 are needed/);
});

const diesBeforeSharing = [{
  peer: p4,
  when: (e: NetEvent) => "message" in e && e.message.type === "sealed",
  delivered: false,
}];

Deno.test("guard P13: a survivors set naming someone who shared no keys is refused", async () => {
  const result = await runRound({
    ...threshold5,
    dies: diesBeforeSharing,
    tamper: edit(HOSPITAL, "survivors", (m) => ({ ...m, set: names5 }), p0),
  });
  assert.equal(sentBy(result.net.sent, p0, "consistency").length, 0);
  assert.match(reason(result.peers.get(p0)), /lists p004/);
});

Deno.test("guard P14: a survivors set leaving this peer out is refused", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: edit(HOSPITAL, "survivors", (m) => ({ ...m, set: m.set.filter((n) => n !== p0) }), p0),
  });
  assert.equal(sentBy(result.net.sent, p0, "consistency").length, 0);
  assert.match(reason(result.peers.get(p0)), /leaves this peer out/);
});

Deno.test("guard P16: a survivors set below the peer's own floor is refused", async () => {
  const result = await runRound({
    ...threshold5,
    minContributors: (name) => (name === p0 ? 4 : undefined),
    tamper: edit(HOSPITAL, "survivors", (m) => ({ ...m, set: [p0, p1, p2] }), p0),
  });
  assert.equal(sentBy(result.net.sent, p0, "consistency").length, 0);
  assert.match(reason(result.peers.get(p0)), /below this peer's floor of 4/);
});

Deno.test("guard P17: an UNMASK for another set than the one signed is refused", async () => {
  const shrunk = names5.filter((n) => n !== p4);
  const result = await runRound({
    ...threshold5,
    tamper: async (e) => {
      // p000 is told p004 dropped; the others sign the full set and UNMASK carries it to p000 too.
      if (e.from !== HOSPITAL || !("message" in e)) return [e];
      if (e.message.type === "survivors" && e.to === p0) {
        return [{ ...e, message: withSet(e.message, shrunk) }];
      }
      if (e.message.type === "abort" && e.to === p0) return [];
      if (e.message.type === "unmask" && e.to === p1) return [e, { ...e, to: p0 }];
      return await Promise.resolve([e]);
    },
  });
  assert.equal(sentBy(result.net.sent, p0, "reveal").length, 0);
  assert.match(reason(result.peers.get(p0)), /another set/);
});

Deno.test("guard P18: a consistency signature by a non-member of the set is not counted", async () => {
  const survivors = names5.filter((n) => n !== p4);
  const result = await runRound({
    ...threshold5,
    dies: [{ peer: p4, when: (e) => "chunk" in e, delivered: false }],
    tamper: async (e, net) => {
      if (e.from !== HOSPITAL || e.to !== p0 || !("message" in e) || e.message.type !== "unmask") {
        return [e];
      }
      // p004 (a colluder, not in the set) signs it too; two members' signatures are withheld.
      const start = sentBy(net.sent, HOSPITAL, "start")[0] as MessageOf<"start">;
      const { terms } = sentBy(net.sent, HOSPITAL, "invite")[0] as MessageOf<"invite">;
      const hash = await startHash(start.session, terms, start.participants);
      const forged = await sign(
        keyOf(p4),
        "consistency",
        consistencyFields(start.session, hash, survivors),
      );
      const signatures = [
        ...e.message.signatures.filter((s) => s.name === p0 || s.name === p1),
        { name: p4, signature: forged },
      ];
      return [{ ...e, message: { ...e.message, signatures } }];
    },
  });
  assert.equal(sentBy(result.net.sent, p0, "reveal").length, 0);
  assert.match(reason(result.peers.get(p0)), /2 valid signatures/);
});

Deno.test("guard P19: each holder's share is revealed once: self-seed if in the set, else mask key", async () => {
  const result = await runRound({
    ...threshold5,
    dies: [{ peer: p4, when: (e) => "chunk" in e, delivered: false }],
  });
  assertDoneWithout(result, [p4]);
  const reveals = names5.slice(0, 4).flatMap((n) =>
    sentBy(result.net.sent, n, "reveal")
  ) as MessageOf<"reveal">[];
  assert.equal(reveals.length, 4);
  for (const reveal of reveals) {
    assert.deepEqual(reveal.shares.map((s) => s.of), names5);
    for (const share of reveal.shares) assert.equal(share.kind, share.of === p4 ? "mask" : "self");
  }
});

Deno.test("guard P20: a second UNMASK is not answered", async () => {
  // The same UNMASK twice, then one with another set.
  const result = await runRound({
    ...threshold5,
    tamper: (e) => {
      if (e.from === HOSPITAL && e.to === p0 && "message" in e && e.message.type === "unmask") {
        return [e, e, { ...e, message: { ...e.message, set: e.message.set.slice(1) } }];
      }
      return [e];
    },
  });
  assert.equal(sentBy(result.net.sent, p0, "reveal").length, 1);
  assert.equal(result.peers.get(p0)?.kind, "done");
});

Deno.test("guard P21: a DONE whose digest was changed is refused", async () => {
  const result = await runRound({
    peers: 3,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: edit(HOSPITAL, "done", (m) => ({ ...m, resultDigest: "0".repeat(64) })),
  });
  assert.equal(result.hospital.kind, "done");
  for (const name of result.names) assert.match(reason(result.peers.get(name)), /DONE signature/);
});

// ---- hospital guards ----

Deno.test("guard H1: a join with a bad signature is left out of the roster", async () => {
  const result = await runRound({
    peers: 4,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: edit(
      p1,
      "join",
      (m) => ({ ...m, signature: Uint8Array.from(m.signature).fill(m.signature[10]! ^ 1, 10, 11) }),
    ),
  });
  assertAbortedWithout(result, [p1]);
});

Deno.test("guard H2: a join with a key off the curve is left out of the roster", async () => {
  const result = await runRound({
    peers: 4,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: edit(p1, "join", async (m) => {
      const maskKey = Uint8Array.from(m.maskKey);
      maskKey[64]! ^= 1;
      const signature = await sign(
        keyOf(p1),
        "join",
        joinFields(m.session, p1, m.sealKey, maskKey),
      );
      return { ...m, maskKey, signature };
    }),
  });
  assertAbortedWithout(result, [p1]);
});

const flip = (sig: Uint8Array) => Uint8Array.from(sig).fill(sig[5]! ^ 1, 5, 6);

Deno.test("guard H4: a confirm that does not verify drops its sender", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: edit(p1, "confirm", (m) => ({ ...m, signature: flip(m.signature) })),
  });
  assertDoneWithout(result, [p1]);
});

Deno.test("guard H5: sealed shares not addressed to exactly the confirmed set drop their sender", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: edit(p1, "sealed", (m) => ({ ...m, shares: m.shares.slice(1) })),
  });
  assertDoneWithout(result, [p1]);
});

Deno.test("guard H6: an input with a bad signature drops its sender", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: edit(p1, "input", (m) => ({ ...m, signature: flip(m.signature) })),
  });
  assertDoneWithout(result, [p1]);
});

Deno.test("guard H7: a chunk out of order drops its sender", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: (
      e,
    ) => (e.from === p1 && "chunk" in e ? [{ ...e, chunk: { ...e.chunk, index: 1 } }] : [e]),
  });
  assertDoneWithout(result, [p1]);
});

Deno.test("guard H8: a vector that does not match its signed digest drops its sender", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: (e) => {
      if (e.from !== p1 || !("chunk" in e)) return [e];
      const data = Float64Array.from(e.chunk.data, (x) => (x + 1) % P);
      return [{ ...e, chunk: { ...e.chunk, data } }];
    },
  });
  assertDoneWithout(result, [p1]);
});

Deno.test("guard H9: a consistency signature that does not verify drops its sender", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: edit(p1, "consistency", (m) => ({ ...m, signature: flip(m.signature) })),
  });
  // p001's input is in the sum; it is just not asked to reveal.
  assertDoneWithout(result, []);
  const unmask = sentBy(result.trace, HOSPITAL, "unmask")[0] as MessageOf<"unmask">;
  assert.ok(!unmask.signatures.some((s) => s.name === p1));
});

Deno.test("guard H10: a reveal with the wrong kind of share drops its sender", async () => {
  const result = await runRound({
    ...threshold5,
    dies: [{ peer: p4, when: (e) => "chunk" in e, delivered: false }],
    // p001 hands over another share of p002, labelled as a mask-key share.
    tamper: edit(p1, "reveal", (m) => ({
      ...m,
      shares: m.shares.map((s) =>
        s.of === p2
          ? { ...s, kind: "mask" as const, share: Float64Array.from(s.share, (x) => (x + 1) % P) }
          : s
      ),
    })),
  });
  assertDoneWithout(result, [p4]);
});

Deno.test("guard H11: an inconsistent revealed share aborts rather than sums", async () => {
  const result = await runRound({
    ...threshold5,
    tamper: edit(p1, "reveal", (m) => ({
      ...m,
      shares: m.shares.map((s) =>
        s.of === p2
          ? { ...s, share: Float64Array.from(s.share, (x, k) => (k === 0 ? (x + 1) % P : x)) }
          : s
      ),
    })),
  });
  assert.match(reason(result.hospital), /revealed shares of p002 are inconsistent/);
});

Deno.test("guard H12: a rebuilt mask key that is not the advertised one aborts", async () => {
  // Every revealer's share of p004's mask key is shifted alike: the shares stay
  // consistent and rebuild to another scalar, which must not be used.
  const shift = (e: NetEvent): NetEvent[] => {
    if (!("message" in e) || e.message.type !== "reveal") return [e];
    const shares = e.message.shares.map((s) =>
      s.of === p4
        ? { ...s, share: Float64Array.from(s.share, (x, k) => (k === 7 ? (x + 1) % P : x)) }
        : s
    );
    return [{ ...e, message: { ...e.message, shares } }];
  };
  const result = await runRound({
    ...threshold5,
    dies: [{ peer: p4, when: (e) => "chunk" in e, delivered: false }],
    tamper: shift,
  });
  assert.match(reason(result.hospital), /rebuilt mask key of p004/);
});

/**
 * A tamper hook: `victim` sends element `index` of its masked vector as
 * P2 + 5 — below p1, so the chunk codec passes it, but not below the p2
 * segment's modulus — with INPUT re-signed over the changed vector's digest,
 * so only the segment check can catch it.
 */
function aboveSegmentModulus(victim: string, index: number) {
  let held: (NetEvent & { message: MessageOf<"input"> }) | undefined;
  return async (e: NetEvent, net: { sent: NetEvent[] }): Promise<NetEvent[]> => {
    if (e.from !== victim) return [e];
    if ("message" in e && e.message.type === "input") {
      held = e as NetEvent & { message: MessageOf<"input"> };
      return [];
    }
    if (!("chunk" in e) || !held) return [e];
    const data = Float64Array.from(e.chunk.data);
    data[index] = P2 + 5;
    const start = sentBy(net.sent, HOSPITAL, "start")[0] as MessageOf<"start">;
    const { terms } = sentBy(net.sent, HOSPITAL, "invite")[0] as MessageOf<"invite">;
    const hash = await startHash(start.session, terms, start.participants);
    const digest = await vectorDigest(data);
    const signature = await sign(
      keyOf(victim),
      "input",
      inputFields(start.session, hash, { ...held.message, length: data.length, digest }),
    );
    return [
      { ...held, message: { ...held.message, digest, signature } },
      { ...e, chunk: { ...e.chunk, data } },
    ];
  };
}

Deno.test("guard H14: a vector with an element at or above its segment's modulus is a violation", async () => {
  // Threshold: the sender is dropped, and the sum over the others is exact.
  const threshold = await runRound({
    peers: 5,
    terms: residueTerms("threshold", 3, 3),
    inputs: residueInput,
    tamper: aboveSegmentModulus(p1, 2),
  });
  assert.match(reason(threshold.peers.get(p1)), /not below its segment's modulus/);
  assert.equal(threshold.hospital.kind, "done", show(threshold.hospital));
  if (threshold.hospital.kind === "done") {
    const others = names5.filter((n) => n !== p1);
    assert.deepEqual(threshold.hospital.set, others);
    assert.deepEqual(
      decodeTotals(threshold.hospital.layout, threshold.hospital.result),
      residueTotals(others),
    );
  }
  // n-of-n: the round aborts.
  const nofn = await runRound({
    peers: 5,
    terms: residueTerms("nofn"),
    inputs: residueInput,
    tamper: aboveSegmentModulus(p1, 2),
  });
  assert.match(
    reason(nofn.hospital),
    /p001: an element of its vector is not below its segment's modulus/,
  );
});

Deno.test("guard H17: a revealer that alters its self-seed share when exactly T reveal makes the round abort, never a wrong sum", async () => {
  // N = 4, T = 3; p003 dies right after its masked input, so S is all four
  // but only p000, p001, p002 sign and reveal: exactly T shares of each
  // secret, so no extra share can expose the lie. p001 shifts its share of
  // p002's self seed by 1/λ (λ its Lagrange weight at 0 among the points
  // 1, 2, 3): the rebuilt word 0 grows by exactly 1 and stays below 2^32,
  // so the shares look consistent and rebuild a wrong seed.
  const lambda = mul(mul(sub(0, 1), sub(0, 3)), inv(mul(sub(2, 1), sub(2, 3))));
  const delta = inv(lambda);
  const result = await runRound({
    peers: 4,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    dies: [{ peer: peerName(3), when: (e) => "chunk" in e, delivered: true }],
    tamper: edit(p1, "reveal", (m) => ({
      ...m,
      shares: m.shares.map((s) =>
        s.of === p2
          ? { ...s, share: Float64Array.from(s.share, (x, k) => (k === 0 ? add(x, delta) : x)) }
          : s
      ),
    })),
  });
  const reveals = [p0, p1, p2].map((n) => sentBy(result.net.sent, n, "reveal").length);
  assert.deepEqual(reveals, [1, 1, 1]);
  assert.match(reason(result.hospital), /self seed of p002 .*does not match its commitment/);
  for (const [name, outcome] of result.peers) {
    assert.notEqual(outcome?.kind, "done", `${name} was told the round is done`);
  }
});

Deno.test("guard H18: an n-of-n input that commits to a self seed is a violation", async () => {
  // n-of-n rounds have no self seed: seedCommit is all zeros, one spelling.
  // p001 signs its INPUT with another value; the signature verifies.
  const result = await runRound({
    peers: 3,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: async (e, net) => {
      if (e.from !== p1 || !("message" in e) || e.message.type !== "input") return [e];
      const m = e.message;
      const seedCommit = "1".repeat(64);
      const fields = inputFields(m.session, await startHashOn(net), { ...m, seedCommit });
      const signature = await sign(keyOf(p1), "input", fields);
      return [{ ...e, message: { ...m, seedCommit, signature } }];
    },
  });
  assert.match(
    reason(result.hospital),
    /p001: its input commits to a self seed in an n-of-n round/,
  );
});

Deno.test("guard P25: a survivors set must carry every member's signed input statement, verifying", async () => {
  // One statement left out: p000 does not sign.
  const missing = await runRound({
    ...threshold5,
    tamper: edit(HOSPITAL, "survivors", (m) => ({ ...m, inputs: m.inputs.slice(1) }), p0),
  });
  assert.equal(sentBy(missing.net.sent, p0, "consistency").length, 0);
  assert.match(reason(missing.peers.get(p0)), /one signed input statement per member/);
  // p001's statement shown with another digest than it signed.
  const forged = await runRound({
    ...threshold5,
    tamper: edit(HOSPITAL, "survivors", (m) => ({
      ...m,
      inputs: m.inputs.map((s) => (s.name === p1 ? { ...s, digest: m.inputs[0]!.digest } : s)),
    }), p0),
  });
  assert.equal(sentBy(forged.net.sent, p0, "consistency").length, 0);
  assert.match(reason(forged.peers.get(p0)), /input statement of p001 does not verify/);
});

Deno.test("guard H19: an input whose signed partner set is not the holders drops its sender", async () => {
  // p001 signs a partner set without p002 (it masked with everyone all the
  // same): an honest hospital must not unmask with the holders' masks.
  const result = await runRound({
    ...threshold5,
    tamper: async (e, net) => {
      if (e.from !== p1 || !("message" in e) || e.message.type !== "input") return [e];
      const m = e.message;
      const partners = "1b"; // p000, p001, p003, p004: bits 0, 1, 3, 4
      const fields = inputFields(m.session, await startHashOn(net), { ...m, partners });
      const signature = await sign(keyOf(p1), "input", fields);
      return [{ ...e, message: { ...m, partners, signature } }];
    },
  });
  assert.match(reason(result.peers.get(p1)), /partner set is not the set of holders/);
  assertDoneWithout(result, [p1]);
});

// ---- attestations after DONE (lib/protocol/hospital/attest.ts) ----

/** The attestations the hospital kept, by name. */
function attested(result: Awaited<ReturnType<typeof runRound>>): Map<string, number[]> {
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return new Map();
  return new Map(result.hospital.evidence.attestations.map((a) => [a.name, a.values]));
}

/** Whatever the hospital sent after its first DONE: nothing, ever (§11.2). */
function sentAfterDone(result: Awaited<ReturnType<typeof runRound>>): NetEvent[] {
  const first = result.trace.findIndex((e) =>
    e.from === HOSPITAL && "message" in e && e.message.type === "done"
  );
  return result.trace.slice(first).filter((e) =>
    e.from === HOSPITAL && !("message" in e && e.message.type === "done")
  );
}

Deno.test("every survivor attests ⟨r, y⟩ after DONE, and the hospital keeps each", async () => {
  for (const terms of [sumTerms("nofn"), sumTerms("threshold", 3, 2)]) {
    const result = await runRound({ peers: 5, terms, inputs: sumInput });
    const kept = attested(result);
    assert.deepEqual([...kept.keys()], names5);
    if (result.hospital.kind !== "done") continue;
    const { session, set, resultDigest } = result.hospital.evidence;
    const seed = await linearCheckSeed(
      session,
      result.hospital.evidence.startHash,
      set,
      resultDigest,
    );
    for (const name of names5) {
      const y = Float64Array.from(
        result.trace.flatMap((e) => e.from === name && "chunk" in e ? [...e.chunk.data] : []),
      );
      assert.deepEqual(
        kept.get(name),
        await attestedProducts(seed, y, [{ start: 0, length: 1, modulus: P }]),
      );
    }
    assert.deepEqual(sentAfterDone(result), []);
  }
});

Deno.test("guard H20: an attestation whose signature does not verify is not kept, and nothing is sent after DONE", async () => {
  const result = await runRound({
    peers: 3,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: edit(p1, "attest", (m) => ({ ...m, values: [(m.values[0]! + 1) % P] })),
  });
  assert.deepEqual([...attested(result).keys()], [p0, p2]);
  assert.ok(result.logs.get(HOSPITAL)!.some((l) => l.includes(`no attestation from ${p1}`)));
  assert.deepEqual(sentAfterDone(result), [], "no abort after DONE");
});

/** `name`'s signed ATTEST of `values` for the round on `net` (after the hospital's DONE). */
async function attestOf(net: Net, name: string, values: number[]): Promise<Message> {
  const find = <T extends MessageType>(type: T) =>
    net.trace.find((e) => e.from === HOSPITAL && "message" in e && e.message.type === type) as
      | { message: MessageOf<T> }
      | undefined;
  const invite = find("invite")!.message;
  const start = find("start")!.message;
  const done = find("done")!.message;
  const hash = await startHash(invite.session, invite.terms, start.participants);
  return {
    type: "attest",
    session: invite.session,
    values,
    signature: await sign(
      keyOf(name),
      "attest",
      attestFields(invite.session, hash, done.resultDigest, values),
    ),
  };
}

Deno.test("guard H21: an attestation with the wrong number of values is not kept, even signed", async () => {
  const result = await runRound({
    peers: 3,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: async (e, net) => {
      if (e.from !== p1 || !("message" in e) || e.message.type !== "attest") return [e];
      return [{ ...e, message: await attestOf(net, p1, [...e.message.values, 0]) }];
    },
  });
  assert.deepEqual([...attested(result).keys()], [p0, p2]);
});

Deno.test("guard H22: the hospital ignores an attestation from a non-survivor, and a second one", async () => {
  // p004 never sends its masked input: it is a holder outside S. Once p000
  // attests, a validly signed attestation "from" p004 and a second, validly
  // signed one from p000 with other values follow.
  const result = await runRound({
    ...threshold5,
    dies: [{
      peer: p4,
      when: (e) => "message" in e && e.message.type === "input",
      delivered: false,
    }],
    tamper: async (e, net) => {
      if (e.from !== p0 || !("message" in e) || e.message.type !== "attest") return [e];
      const values = [(e.message.values[0]! + 1) % P];
      return [
        e,
        { from: p4, to: HOSPITAL, message: await attestOf(net, p4, values) },
        { from: p0, to: HOSPITAL, message: await attestOf(net, p0, values) },
      ];
    },
  });
  const kept = attested(result);
  assert.deepEqual([...kept.keys()], names5.slice(0, 4));
  const original = result.trace.find((e) =>
    e.from === p0 && "message" in e && e.message.type === "attest"
  ) as { message: MessageOf<"attest"> };
  assert.deepEqual(kept.get(p0), original.message.values, "the first attestation counts");
  assert.ok(result.logs.get(HOSPITAL)!.some((l) => l.includes(`second attest from ${p0}`)));
});

/**
 * A round in which p001 shifts its masked input by `shift` (element by
 * element, modulo each segment's modulus) and signs the new digest, as a
 * peer that skips its own input check would: every element is still a
 * field element, so nothing before the sum can tell.
 */
async function shiftedRound(
  terms: ReturnType<typeof sumTerms>,
  inputs: (i: number, layout: Layout) => Float64Array,
  shift: (k: number) => bigint,
) {
  let held: (NetEvent & { message: MessageOf<"input"> }) | undefined;
  let layout: Layout | undefined;
  return await runRound({
    peers: 3,
    terms,
    inputs: (i, l) => {
      layout = l;
      return inputs(i, l);
    },
    tamper: async (e, net) => {
      if (isMessageFrom(e, p1, "input")) {
        held = e as NetEvent & { message: MessageOf<"input"> };
        return [];
      }
      if (e.from !== p1 || !("chunk" in e) || !held) return [e];
      const data = Float64Array.from(e.chunk.data);
      for (const { start, length, modulus } of layout!.segments) {
        for (let k = start; k < start + length; k++) {
          data[k] = Number((BigInt(data[k]!) + shift(k)) % BigInt(modulus));
        }
      }
      const m = { ...held.message, digest: await vectorDigest(data) };
      const fields = inputFields(m.session, await startHashOn(net), m);
      const input = { ...m, signature: await sign(keyOf(p1), "input", fields) };
      return [{ ...held, message: input }, { ...e, chunk: { index: 0, data } }];
    },
  });
}

Deno.test("guard H39: a total past |set| × its bound is not published: the round aborts, in both modes", async () => {
  // p001 adds 10^12 where the terms allow at most R = 10^6 per row: three
  // inputs sum to at most 3 · 10^6. (The spec-only implementation's
  // hospital saw such a sum published, and `verify` then refused its receipt.)
  for (const mode of ["nofn", "threshold"] as const) {
    const terms = sumTerms(mode, mode === "nofn" ? 0 : 2);
    const result = await shiftedRound(terms, sumInput, () => 10n ** 12n);
    assert.equal(result.hospital.kind, "aborted", `${mode}: ${show(result.hospital)}`);
    assert.match(show(result.hospital), /larger than the set's inputs allow/);
    assert.deepEqual(sentBy(result.trace, HOSPITAL, "done"), [], `${mode}: no DONE went out`);
  }
  // At the bound itself the round goes on (review 16: `>=` for `>` passed):
  // every input at R, so the total is exactly |set| × B.
  const full = await runRound({
    peers: 3,
    terms: sumTerms("nofn"),
    inputs: () => Float64Array.of(1_000_000),
  });
  assert.equal(full.hospital.kind, "done", show(full.hospital));
  if (full.hospital.kind === "done") assert.deepEqual([...full.hospital.result], [3_000_000]);
  // A total carried in residues is checked too: Σx² (bound M·R² = 10^16 a
  // peer, past p1 for 3 peers) shifted by 4 · 10^16 in every residue.
  const residues = await shiftedRound(residueTerms("nofn"), residueInput, (k) => {
    const squares = 1; // the component Σx², after Σx: its residues are elements 1 and 2
    return k === squares || k === squares + 1 ? 4n * 10n ** 16n : 0n;
  });
  assert.equal(residues.hospital.kind, "aborted", show(residues.hospital));
  assert.match(show(residues.hospital), /larger than the set's inputs allow/);
});
