/**
 * Tests from a mutation audit of the peer side (lib/protocol/peer/,
 * lib/crypto/, lib/prg.ts): each checks one guard that could be deleted
 * with the rest of the suite still green. The guard each test catches is
 * named in its title; the mutation that turns it red is in the comment above.
 *
 * @module
 */

import assert from "node:assert/strict";
import { generateSessionKeys, isPublicKey } from "../../lib/crypto/agreement.ts";
import { isAttestedShape } from "../../lib/crypto/linear_check.ts";
import { applyMask } from "../../lib/crypto/masks.ts";
import { splitSecret } from "../../lib/crypto/secret_sharing.ts";
import { sign } from "../../lib/crypto/signing.ts";
import { toHex } from "../../lib/encoding.ts";
import { P } from "../../lib/field.ts";
import { window } from "../../lib/protocol/graph.ts";
import { doneFields, inviteFields } from "../../lib/protocol/transcript.ts";
import { FieldStream } from "../../lib/prg.ts";
import type { Message, MessageOf } from "../../lib/wire/messages.ts";
import {
  HOSPITAL,
  isMessageFrom,
  type NetEvent,
  peerName,
  type RoundResult,
  runRound,
  sentBy,
  show,
  sparseTerms,
  startHashOn,
  sumInput,
  sumTerms,
  testPki,
  withSet,
} from "./harness.ts";

const pki = await testPki(10);
const [p0, p1, p2, p3, p4] = [0, 1, 2, 3, 4].map(peerName) as [
  string,
  string,
  string,
  string,
  string,
];

function reason(outcome: unknown): string {
  const o = outcome as { kind?: string; reason?: string } | undefined;
  return o?.kind === "aborted" ? o.reason ?? "" : `not aborted: ${show(o)}`;
}

/** Whether `name` sent a message of `type` at all (its core emitted it). */
function sent(result: RoundResult, name: string, type: string): boolean {
  return sentBy(result.net.sent, name, type).length > 0;
}

// ---- START (lib/protocol/peer/advertise_keys.ts) ----

// Mutation: advertise_keys.ts `if (roster.length < ctx.floor)` deleted. In an
// n-of-n round nothing later checks the peer's own floor (CONFIRMATIONS only
// asks that all confirm), so the peer would send its masked input into a sum
// of fewer contributors than it accepts.
Deno.test("audit: an n-of-n peer whose own floor is above the roster's size never sends its input", async () => {
  const result = await runRound({
    peers: 3,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    minContributors: (name) => (name === p0 ? 4 : undefined),
  });
  assert.match(reason(result.peers.get(p0)), /3 participants, below this peer's floor of 4/);
  assert.ok(!sent(result, p0, "confirm"), "p000 confirmed");
  assert.ok(!sent(result, p0, "input"), "p000 sent its masked input");
});

// Mutation: advertise_keys.ts #sparse `if (size < ctx.floor)` deleted. A
// sparse peer's later phases ask only for T per window (phaseFloor), so this
// is the one place its own floor on contributors is enforced.
Deno.test("audit: a sparse peer whose own floor is above the roster's size does not confirm", async () => {
  const victim = peerName(6);
  const result = await runRound({
    peers: 30,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    minContributors: (name) => (name === victim ? 31 : undefined),
  });
  assert.match(reason(result.peers.get(victim)), /30 participants, below this peer's floor of 31/);
  assert.ok(!sent(result, victim, "confirm"), `${victim} confirmed`);
  assert.ok(!sent(result, victim, "input"), `${victim} sent its masked input`);
});

// Mutation: advertise_keys.ts #sparse `if (problem) return` after
// rosterProblem(ctx.agreed, size) neutered. A START whose size is more than
// the N the layout was computed for could wrap the totals.
Deno.test("audit: a sparse START whose size is above the terms' participants is refused", async () => {
  let victim: string | undefined;
  const result = await runRound({
    peers: 30,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    tamper: (e) => {
      if (!isMessageFrom(e, HOSPITAL, "start")) return [e];
      const m = e.message;
      const own = m.participants.find((p) => p.name === e.to)!;
      // A window away from the wrap is the same for n = 30 and n = 31, so
      // only the size check can tell.
      if (victim !== undefined || own.position! < 4 || own.position! > 25) return [e];
      victim = e.to;
      return [{ ...e, message: { ...m, size: 31 } }];
    },
  });
  assert.ok(victim !== undefined);
  assert.match(reason(result.peers.get(victim)), /31 participants, more than the 30/);
  assert.ok(!sent(result, victim, "confirm"), `${victim} confirmed`);
});

// Mutation: advertise_keys.ts #sparse `entries.length !== positions.length ||`
// deleted. The other window checks (distinct positions and names, every
// window position present) all pass when the hospital adds one more genuine
// participant at its own position outside the window (the codec takes
// such a START: it cannot know K).
Deno.test("audit: a sparse START holding one entry more than the window is refused", async () => {
  let victim: string | undefined;
  let extra: string | undefined;
  const result = await runRound({
    peers: 30,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    tamper: (e, net) => {
      if (!isMessageFrom(e, HOSPITAL, "start")) return [e];
      if (victim !== undefined) return [e];
      const m = e.message;
      const shown = new Set(m.participants.map((p) => p.name));
      const earlier = net.sent.flatMap((s) =>
        isMessageFrom(s, HOSPITAL, "start") ? s.message.participants : []
      );
      const outsider = earlier.find((p) => !shown.has(p.name));
      if (!outsider) return [e];
      victim = e.to;
      extra = outsider.name;
      const participants = [...m.participants, outsider].sort((a, b) => a.name < b.name ? -1 : 1);
      return [{ ...e, message: { ...m, participants } }];
    },
  });
  assert.ok(victim !== undefined && extra !== undefined);
  assert.match(reason(result.peers.get(victim)), /not the window around this peer/);
  assert.ok(!sent(result, victim, "confirm"), `${victim} confirmed with ${extra} added`);
});

// Mutation: terms.ts rosterProblem `if (2 * terms.threshold <= n)` deleted.
// T > n/2 is what keeps two disjoint halves of the roster from each
// gathering T consistency signatures on different sets.
Deno.test("audit: peers refuse a START roster of which T is not more than half", async () => {
  // The hospital runs T = 4 of 6 but signs terms with T = 3 for the peers:
  // n = 6 and 2T = 6, so each peer must refuse at START, before confirming.
  const result = await runRound({
    peers: 6,
    terms: sumTerms("threshold", 4, 2),
    inputs: sumInput,
    tamper: async (e) => {
      if (e.from !== HOSPITAL || !("message" in e) || e.message.type !== "invite") return [e];
      const terms = { ...e.message.terms, threshold: 3 };
      const signature = await sign(
        pki.hospital.signingKey,
        "invite",
        inviteFields(e.message.session, terms),
      );
      return [{ ...e, message: { ...e.message, terms, signature } }];
    },
  });
  for (const name of result.names) {
    assert.match(reason(result.peers.get(name)), /threshold 3 is not above half of 6/, name);
    assert.ok(!sent(result, name, "confirm"), `${name} confirmed`);
  }
});

// ---- SHARES (lib/protocol/peer/share_keys.ts) ----

// Mutation: share_keys.ts `if (from === ctx.name || !ctx.confirmed.includes(from))`
// reduced to `if (from === ctx.name)` (or deleted). A share from a party whose
// confirmation of this START did not verify for this peer (it may hold
// another roster) must stop the round, not make that party a holder.
Deno.test("audit: SHARES holding a share from a participant this peer left out aborts it", async () => {
  const [victim, other] = [p1, p3];
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    tamper: (e) => {
      if (!("message" in e)) return [e];
      const m = e.message;
      if (e.from === HOSPITAL && e.to === victim && m.type === "confirmations") {
        // other's confirmation does not verify for the victim: left out.
        const confirmations = m.confirmations.map((c) => {
          if (c.name !== other) return c;
          const signature = c.signature.slice();
          signature[0]! ^= 1;
          return { ...c, signature };
        });
        return [{ ...e, message: { ...m, confirmations } }];
      }
      if (e.from === victim && m.type === "sealed") {
        // The victim sealed nothing to `other`; a filler keeps the hospital's
        // addressing check (H5) quiet, so SHARES to the victim still comes.
        const filler = crypto.getRandomValues(new Uint8Array(m.shares[0]!.sealed.length));
        const shares = [...m.shares, { to: other, sealed: filler }].sort((a, b) =>
          a.to < b.to ? -1 : 1
        );
        return [{ ...e, message: { ...m, shares } }];
      }
      return [e];
    },
  });
  const shares = sentBy(result.trace, HOSPITAL, "shares").filter((m) =>
    (m as MessageOf<"shares">).shares.some((s) => s.from === other)
  );
  assert.ok(shares.length > 0);
  assert.match(
    reason(result.peers.get(victim)),
    new RegExp(`SHARES holds a share from ${other}, not a confirmed participant`),
  );
  assert.ok(!sent(result, victim, "input"), `${victim} masked with ${other}`);
});

// ---- masked input (lib/protocol/peer/masked_input.ts) ----

// Mutation: masked_input.ts `if (terms.mode !== "nofn") return abortSession(ctx,
// "DONE before SURVIVORS")` deleted. A threshold peer would then end "done"
// over its confirmed set, a set no SURVIVORS or consistency signature ever
// fixed (and agents record outcome.set as the contributors).
Deno.test("audit: a threshold peer refuses a signed DONE that comes before SURVIVORS", async () => {
  const victim = p2;
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    tamper: async (e, net) => {
      if (!(e.from === HOSPITAL && e.to === victim && "message" in e)) return [e];
      if (e.message.type !== "survivors") return [e];
      const hash = await startHashOn(net);
      const resultDigest = toHex(crypto.getRandomValues(new Uint8Array(32)));
      const set = [p0, p1, p2, p3, p4];
      const signature = await sign(
        pki.hospital.signingKey,
        "done",
        doneFields(e.message.session, hash, set, resultDigest),
      );
      const done: Message = { type: "done", session: e.message.session, resultDigest, signature };
      return [{ ...e, message: done }];
    },
  });
  assert.match(reason(result.peers.get(victim)), /DONE before SURVIVORS/);
  assert.ok(!sent(result, victim, "attest"), `${victim} attested`);
});

// ---- UNMASK (lib/protocol/peer/consistency.ts) ----

// Mutation: consistency.ts candidates filter `&& (view !== undefined) === sparse`
// deleted. In a complete-graph round an entry carrying a `view` is verified
// over viewFields(view), and a view spelling the bytes of another set S2 turns
// a member's genuine signature on S2 into one that counts for S1: the
// hospital gathers T "signatures" on a set fewer than T members signed. The
// codec takes the view (it cannot know the round is not sparse).
Deno.test("audit: a complete-graph peer does not count a signature on another set dressed as a view", async () => {
  const victim = p0;
  const groupB = [p1, p2, p3];
  const s1 = [p0, p1, p2, p3, p4];
  const s2 = [p0, p1, p2, p3];
  let injected = false;
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    tamper: (e: NetEvent, net) => {
      if (e.from !== HOSPITAL || !("message" in e)) return [e];
      const m = e.message;
      // Group B is told p004 dropped; the victim and p004 see everyone.
      if (m.type === "survivors" && groupB.includes(e.to)) {
        return [{ ...e, message: withSet(m, s2) }];
      }
      // The hospital drops group B for signing another set: instead, the
      // victim gets UNMASK for S1 with p000's and p004's signatures on S1 and
      // p001's on S2, presented as a "view" of S2's bytes.
      if (m.type === "abort" && groupB.includes(e.to)) {
        if (injected) return [];
        injected = true;
        const signatureOf = (name: string) =>
          (sentBy(net.sent, name, "consistency")[0] as MessageOf<"consistency">).signature;
        const view = toHex(new TextEncoder().encode(s2.join(",")));
        const unmask: Message = {
          type: "unmask",
          session: m.session,
          set: s1,
          signatures: [
            { name: p0, signature: signatureOf(p0) },
            { name: p1, signature: signatureOf(p1), view },
            { name: p4, signature: signatureOf(p4) },
          ],
        };
        return [{ from: HOSPITAL, to: victim, message: unmask }];
      }
      return [e];
    },
  });
  assert.ok(injected);
  assert.ok(!sent(result, victim, "reveal"), `${victim} revealed`);
  assert.match(reason(result.peers.get(victim)), /2 valid signatures on the set; 3 are needed/);
});

// ---- crypto primitives ----

// Mutations: agreement.ts isPublicKey `raw[0] !== 0x04` dropped; `if (x >= CURVE_P
// || y >= CURVE_P) return false` deleted. A key is one spelling of one point.
Deno.test("audit: isPublicKey refuses another prefix and a coordinate at or above p", async () => {
  const p = 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn;
  const b = 0x5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604bn;
  const pow = (x: bigint, e: bigint) => {
    let r = 1n;
    for (x %= p; e > 0n; e >>= 1n, x = (x * x) % p) if (e & 1n) r = (r * x) % p;
    return r;
  };
  const bytes32 = (n: bigint) =>
    Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * (31 - i))) & 0xffn));
  // A point with a small x (p ≡ 3 mod 4: a square root is the (p+1)/4 power).
  let x = 1n;
  let y = 0n;
  for (;; x++) {
    const rhs = ((pow(x, 3n) - 3n * x + b) % p + p) % p;
    y = pow(rhs, (p + 1n) / 4n);
    if ((y * y) % p === rhs) break;
  }
  const point = (px: bigint, prefix = 4) =>
    Uint8Array.from([prefix, ...bytes32(px), ...bytes32(y)]);
  assert.ok(isPublicKey(point(x)), "the canonical point");
  assert.ok(!isPublicKey(point(x + p)), "x + p is not a second spelling of x");
  assert.ok(!isPublicKey(point(x, 5)), "only the uncompressed prefix 0x04");
  const { seal } = await generateSessionKeys();
  assert.ok(isPublicKey(seal.publicKey));
  const other = seal.publicKey.slice();
  other[0] = 0x05;
  assert.ok(!isPublicKey(other));
});

// Mutations: secret_sharing.ts splitSecret's threshold bound, and its check of
// distinct evaluation points from 1, deleted. A threshold of 0 or a point at 0
// hands out the secret itself.
Deno.test("audit: splitSecret refuses threshold 0, a point at 0 and a repeated point", () => {
  const secret = crypto.getRandomValues(new Uint8Array(32));
  assert.throws(() => splitSecret(secret, [1, 2, 3], 0), RangeError);
  assert.throws(() => splitSecret(secret, [1, 2, 3], 4), RangeError);
  assert.throws(() => splitSecret(secret, [0, 1, 2], 2), RangeError);
  assert.throws(() => splitSecret(secret, [1, 1, 2], 2), RangeError);
  assert.equal(splitSecret(secret, [1, 2, 3], 2).length, 3);
});

// Mutation: linear_check.ts isAttestedShape `values.every((v, i) => v <
// attestedModulus(segments, i))` dropped (guard H21's second half).
Deno.test("audit: an attestation value at its segment's modulus is not of attested shape", () => {
  const segments = [{ start: 0, length: 1, modulus: P }];
  assert.ok(isAttestedShape([P - 1, 0], segments));
  assert.ok(!isAttestedShape([P, 0], segments));
  assert.ok(!isAttestedShape([0, P], segments));
});

// Mutation: masks.ts applyMask `assertSegmentsCover(segments, acc.length)`
// deleted: elements past the segments would go out unmasked.
Deno.test("audit: applyMask refuses segments that do not cover the whole vector", async () => {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const acc = new Float64Array(3);
  await assert.rejects(
    applyMask(acc, seed, 1, [{ start: 0, length: 2, modulus: P }]),
    RangeError,
  );
});

// Mutation: prg.ts FieldStream.fromSeed `if (seed.length !== SEED_BYTES)`
// deleted: a 16-byte seed would silently key AES-128.
Deno.test("audit: FieldStream.fromSeed refuses a seed that is not 32 bytes", async () => {
  await assert.rejects(FieldStream.fromSeed(new Uint8Array(16)), RangeError);
  await assert.rejects(FieldStream.fromSeed(new Uint8Array(33)), RangeError);
  const stream = await FieldStream.fromSeed(new Uint8Array(32));
  assert.equal((await stream.take(2)).length, 2);
});

// The window helper the sparse tests above rely on: positions from q − K/2.
Deno.test("audit: window(q, n, K) is the K + 1 positions around q, mod n", () => {
  assert.deepEqual(window(1, 30, 8), [27, 28, 29, 0, 1, 2, 3, 4, 5]);
});
