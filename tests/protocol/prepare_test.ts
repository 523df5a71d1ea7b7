/**
 * Work a peer starts ahead while it waits (lib/crypto/agreement.ts
 * `preparePairwiseSeeds`, the core's `PeerSession.prepare`): a pairwise seed
 * found prepared is exactly the one derived afresh — for its own session and
 * pair of names only, and never shared between callers — and whole rounds in
 * which every peer is told to prepare before every event still sum exactly.
 *
 * @module
 */

import assert from "node:assert/strict";
import { hkdfSync } from "node:crypto";
import { lp } from "../../lib/crypto/bytes.ts";
import {
  generateSessionKeys,
  importPublicKey,
  pairwiseSeed,
  preparePairwiseSeeds,
  type SessionKeys,
} from "../../lib/crypto/agreement.ts";
import { PeerSession } from "../../lib/protocol/peer/session.ts";
import type { Message } from "../../lib/wire/messages.ts";
import { plainSum, runRound, show, sumInput, sumTerms } from "./harness.ts";

/** The seed by the spec's definition, computed without lib/crypto/agreement.ts. */
async function expectedSeed(
  own: CryptoKey,
  other: CryptoKey,
  session: Uint8Array,
  a: string,
  b: string,
): Promise<Uint8Array> {
  const ikm = new Uint8Array(
    await crypto.subtle.deriveBits({ name: "ECDH", public: other }, own, 256),
  );
  const [low, high] = a < b ? [a, b] : [b, a];
  return new Uint8Array(hkdfSync("sha256", ikm, session, lp("sumshare/2 mask", low, high), 32));
}

async function pair(): Promise<{ keys: SessionKeys; mask: CryptoKey }> {
  const keys = await generateSessionKeys();
  return { keys, mask: await importPublicKey(keys.mask.publicKey) };
}

Deno.test("prepare: a prepared seed is the spec's seed for its own session and names only", async () => {
  const alice = await pair();
  const bob = await pair();
  const carol = await pair();
  const s1 = new Uint8Array(32).fill(1);
  const s2 = new Uint8Array(32).fill(2);
  const others = new Map([["bob", bob.mask], ["carol", carol.mask], ["alice", alice.mask]]);
  preparePairwiseSeeds(alice.keys.mask.privateKey, others, s1, "alice");
  const own = alice.keys.mask.privateKey;
  // The same key objects under another session or other names: each its own seed.
  const cases: [CryptoKey, Uint8Array, string][] = [
    [bob.mask, s1, "bob"],
    [carol.mask, s1, "carol"],
    [bob.mask, s2, "bob"],
    [bob.mask, s1, "bob2"],
    // Another key under a name already derived for.
    [carol.mask, s1, "bob"],
  ];
  const seen = new Set<string>();
  for (const [other, session, name] of cases) {
    const got = await pairwiseSeed(own, other, session, "alice", name);
    assert.deepEqual(got, await expectedSeed(own, other, session, "alice", name), name);
    seen.add(got.join(","));
  }
  assert.equal(seen.size, cases.length, "every (key, session, names) has its own seed");
  // Both ends agree, whichever derived first and in whichever name order.
  assert.deepEqual(
    await pairwiseSeed(bob.keys.mask.privateKey, alice.mask, s1, "bob", "alice"),
    await pairwiseSeed(own, bob.mask, s1, "alice", "bob"),
  );
});

Deno.test("prepare: each caller gets its own copy of a seed", async () => {
  const alice = await pair();
  const bob = await pair();
  const session = new Uint8Array(32);
  const first = await pairwiseSeed(alice.keys.mask.privateKey, bob.mask, session, "a", "b");
  const expected = Uint8Array.from(first);
  first.fill(0);
  const second = await pairwiseSeed(alice.keys.mask.privateKey, bob.mask, session, "a", "b");
  assert.deepEqual(second, expected);
});

/** Runs `body` with every PeerSession told to prepare before each event it gets. */
async function preparingEverywhere<T>(
  body: () => Promise<T>,
): Promise<{ value: T; calls: number }> {
  const original = PeerSession.prototype.message;
  let calls = 0;
  PeerSession.prototype.message = function (this: PeerSession, message: Message) {
    calls++;
    this.prepare();
    return original.call(this, message);
  };
  try {
    return { value: await body(), calls };
  } finally {
    PeerSession.prototype.message = original;
  }
}

for (const mode of ["nofn", "threshold"] as const) {
  Deno.test(`prepare: ${mode} rounds whose peers prepare before every event sum exactly`, async () => {
    const { value: result, calls } = await preparingEverywhere(() =>
      runRound({ peers: 6, terms: sumTerms(mode, mode === "threshold" ? 4 : 0), inputs: sumInput })
    );
    assert.ok(calls >= 6 * 4, `peers were told to prepare (${calls} times)`);
    assert.equal(result.hospital.kind, "done", show(result.hospital));
    if (result.hospital.kind !== "done") return;
    assert.deepEqual([...result.hospital.result], [plainSum(result.hospital.set)]);
    for (const [name, outcome] of result.peers) {
      assert.equal(outcome?.kind, "done", `${name}: ${show(outcome)}`);
    }
  });
}
