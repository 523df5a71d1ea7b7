/**
 * The attacks of issue 8 against the new core, each shown to fail:
 * (a) a hospital (or a Dolev–Yao network) that drops others' messages to fix
 * the contributor set {victim, colluder} — the victim's own floors stop it;
 * (b) a hospital that shows different peers different survivor sets to learn
 * a value by difference — the consistency signatures stop it; a hospital
 * that gives every peer its own set; one that shows different peers
 * different rosters; one that replays keys from another session; and a
 * replayed session id.
 *
 * @module
 */

import assert from "node:assert/strict";
import { importPublicKey, pairwiseSeed } from "../../lib/crypto/agreement.ts";
import { fromHex } from "../../lib/crypto/bytes.ts";
import { rebuildMaskKey } from "../../lib/crypto/mask_key.ts";
import { applyMask, pairSign } from "../../lib/crypto/masks.ts";
import { combineSecret, type SecretShare } from "../../lib/crypto/secret_sharing.ts";
import { toHex } from "../../lib/encoding.ts";
import { parseQuery, vectorLayout } from "../../lib/query.ts";
import type { Message, MessageOf } from "../../lib/wire/messages.ts";
import {
  HOSPITAL,
  type NetEvent,
  peerName,
  runRound,
  sentBy,
  sumInput,
  sumTerms,
  survivorsMessage,
  withSet,
} from "./harness.ts";

const isTo = (e: NetEvent, to: string, type: string): e is NetEvent & { message: Message } =>
  e.to === to && "message" in e && e.message.type === type;

Deno.test("attack (a): fixing the contributor set {victim, colluder} fails on the victim's floors", async () => {
  const [victim, colluder, a, b] = [peerName(0), peerName(1), peerName(2), peerName(3)];
  const result = await runRound({
    peers: 4,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    tamper: (e, net) => {
      // The network drops the other two peers' masked inputs ...
      if ((e.from === a || e.from === b) && "chunk" in e) return [];
      // ... and the hospital announces {victim, colluder} instead of aborting.
      if (e.from === HOSPITAL && (isTo(e, victim, "abort") || isTo(e, colluder, "abort"))) {
        return [{
          from: HOSPITAL,
          to: e.to,
          message: survivorsMessage(net, [victim, colluder]),
        }];
      }
      return [e];
    },
  });
  assert.equal(result.peers.get(victim)?.kind, "aborted");
  const outcome = result.peers.get(victim);
  assert.match(outcome?.kind === "aborted" ? outcome.reason : "", /below T = 3/);
  assert.equal(sentBy(result.net.sent, victim, "consistency").length, 0);
  assert.equal(sentBy(result.net.sent, victim, "reveal").length, 0);
});

Deno.test("attack (b): different survivor sets for different peers reveal nothing extra", async () => {
  const names = [0, 1, 2, 3, 4].map(peerName);
  const victim = names[4]!;
  const groupB = [names[2]!, names[3]!];
  const s2 = names.filter((n) => n !== victim);
  let injected = false;
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    tamper: (e, net) => {
      if (e.from !== HOSPITAL || !("message" in e)) return [e];
      const m = e.message;
      // Group B is told the victim dropped; everyone else sees the full set.
      if (m.type === "survivors" && groupB.includes(e.to)) {
        return [{ ...e, message: withSet(m, s2) }];
      }
      // The honest core drops B for signing another set: keep B in the game.
      if (m.type === "abort" && groupB.includes(e.to)) return [];
      // With the unmask for the others, send B one for S2 with every signature it has.
      if (m.type === "unmask" && !injected) {
        injected = true;
        const signatures = names.flatMap((name) =>
          sentBy(net.sent, name, "consistency").map((c) => ({
            name,
            signature: (c as Message & { type: "consistency" }).signature,
          }))
        );
        return [
          e,
          ...groupB.map((to) => ({
            from: HOSPITAL,
            to,
            message: { type: "unmask", session: m.session, set: s2, signatures } as Message,
          })),
        ];
      }
      return [e];
    },
  });
  assert.ok(injected);
  for (const name of groupB) {
    assert.equal(sentBy(result.net.sent, name, "reveal").length, 0, `${name} revealed`);
    assert.equal(result.peers.get(name)?.kind, "aborted");
  }
  // Nobody ever handed out the victim's mask-key share next to its self-seed share.
  const victimMask = result.net.sent.some((e) =>
    "message" in e && e.message.type === "reveal" &&
    e.message.shares.some((s) => s.of === victim && s.kind === "mask")
  );
  assert.ok(!victimMask);
});

Deno.test("attack: a different survivors set for every peer: nobody reveals", async () => {
  const names = [0, 1, 2, 3, 4].map(peerName);
  const setFor = (to: string) => names.filter((n) => n !== names[(names.indexOf(to) + 1) % 5]);
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    tamper: (e, net) => {
      if (e.from === HOSPITAL && "message" in e) {
        const m = e.message;
        if (m.type === "survivors") return [{ ...e, message: withSet(m, setFor(e.to)) }];
        if (m.type === "abort") return [];
        return [e];
      }
      if ("message" in e && e.message.type === "consistency") {
        const all = net.sent.filter((s) => "message" in s && s.message.type === "consistency");
        if (all.length < names.length) return [e];
        const signatures = all.map((s) => ({
          name: s.from,
          signature: (s as NetEvent & { message: Message & { type: "consistency" } }).message
            .signature,
        })).sort((x, y) => (x.name < y.name ? -1 : 1));
        return [
          e,
          ...names.map((to) => ({
            from: HOSPITAL,
            to,
            message: {
              type: "unmask",
              session: e.message.session,
              set: setFor(to),
              signatures,
            } as Message,
          })),
        ];
      }
      return [e];
    },
  });
  for (const name of names) {
    assert.equal(sentBy(result.net.sent, name, "consistency").length, 1);
    assert.equal(sentBy(result.net.sent, name, "reveal").length, 0, `${name} revealed`);
    assert.equal(result.peers.get(name)?.kind, "aborted");
  }
});

Deno.test("attack: different rosters for different peers: each goes on only with its own roster", async () => {
  const names = [0, 1, 2, 3, 4].map(peerName);
  const shown = [names[0]!, names[1]!];
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    tamper: (e, net) => {
      if (e.from !== HOSPITAL || !("message" in e)) return [e];
      const m = e.message;
      if (m.type === "start" && shown.includes(e.to)) {
        return [{
          ...e,
          message: { ...m, participants: m.participants.filter((p) => p.name !== names[4]) },
        }];
      }
      // Instead of dropping them, relay every confirmation to the two.
      if (m.type === "abort" && shown.includes(e.to)) {
        const confirmations = names.flatMap((name) =>
          sentBy(net.sent, name, "confirm").map((c) => ({
            name,
            signature: (c as Message & { type: "confirm" }).signature,
          }))
        );
        return [{ ...e, message: { type: "confirmations", session: m.session, confirmations } }];
      }
      return [e];
    },
  });
  for (const name of shown) {
    assert.equal(sentBy(result.net.sent, name, "sealed").length, 0, `${name} shared keys`);
    const outcome = result.peers.get(name);
    assert.match(outcome?.kind === "aborted" ? outcome.reason : "", /2 participants confirmed/);
  }
  // The others share only among themselves, and finish.
  for (const name of names.slice(2)) {
    const [sealed] = sentBy(result.net.sent, name, "sealed") as (Message & { type: "sealed" })[];
    assert.ok(sealed);
    assert.ok(sealed.shares.every((s) => !shown.includes(s.to)));
  }
  assert.equal(result.hospital.kind, "done");
});

Deno.test("attack: keys replayed from another session are refused by every peer", async () => {
  const first = await runRound({ peers: 4, terms: sumTerms("nofn"), inputs: sumInput });
  const [oldStart] = sentBy(first.trace, HOSPITAL, "start") as (Message & { type: "start" })[];
  const replayed = oldStart!.participants.find((p) => p.name === peerName(1))!;
  const second = await runRound({
    peers: 4,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    tamper: (e) => {
      if (e.from === HOSPITAL && "message" in e && e.message.type === "start") {
        const participants = e.message.participants.map((
          p,
        ) => (p.name === replayed.name ? replayed : p));
        return [{ ...e, message: { ...e.message, participants } }];
      }
      return [e];
    },
  });
  for (const name of second.names) {
    assert.equal(sentBy(second.net.sent, name, "confirm").length, 0, `${name} confirmed`);
    const outcome = second.peers.get(name);
    assert.equal(outcome?.kind, "aborted");
    if (name !== replayed.name) {
      assert.match(outcome?.kind === "aborted" ? outcome.reason : "", /join signature of p001/);
    }
  }
});

Deno.test("attack: a replayed session id is refused", async () => {
  const seen = new Map<string, Set<string>>();
  const session = "00112233445566778899aabbccddeeff";
  const first = await runRound({
    peers: 3,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    session,
    seen,
  });
  assert.equal(first.hospital.kind, "done");
  const second = await runRound({
    peers: 3,
    terms: sumTerms("nofn"),
    inputs: sumInput,
    session,
    seen,
  });
  assert.equal(second.hospital.kind, "aborted");
  for (const name of second.names) {
    assert.equal(sentBy(second.net.sent, name, "join").length, 0);
    const [refuse] = sentBy(second.net.sent, name, "refuse") as (Message & { type: "refuse" })[];
    assert.match(refuse?.reason ?? "", /seen before/);
  }
});

/**
 * Records the ECDH key pairs the peers generate, by raw public key, so a
 * test can play a colluding peer that hands its session keys to the
 * hospital. Restored by the returned function.
 */
function recordSessionKeys(): { keys: Map<string, CryptoKey>; restore: () => void } {
  const keys = new Map<string, CryptoKey>();
  const subtle = crypto.subtle;
  const original = subtle.generateKey.bind(subtle);
  const wrapped = async (...args: Parameters<typeof original>) => {
    const made = await original(...args);
    if ("privateKey" in made && (made.privateKey.algorithm as { name: string }).name === "ECDH") {
      const raw = new Uint8Array(await subtle.exportKey("raw", made.publicKey));
      keys.set(toHex(raw), made.privateKey);
    }
    return made;
  };
  Object.defineProperty(subtle, "generateKey", { value: wrapped, configurable: true });
  return {
    keys,
    restore: () =>
      Object.defineProperty(subtle, "generateKey", { value: original, configurable: true }),
  };
}

Deno.test("attack (c): selective relay plus a chosen set cannot unmask one survivor alone", async () => {
  // N = 5, T = 3, c = 1 (an outside review's case). a is the colluder. The
  // hospital withholds v's and c's shares from the victim d, so d masks only
  // with a and b; it then calls b dropped and makes S = {a, c, d, v}. a, c
  // and v hold d's shares, so S ⊆ their holders and T of them could sign:
  // they would reveal d's self seed (d ∈ S) and b's mask secret (b ∉ S),
  // and with a's own pairwise seed with d, d's masked input opens alone.
  const [a, b, v, c, d] = [0, 1, 2, 3, 4].map(peerName) as [string, string, string, string, string];
  const set = [a, c, d, v].sort();
  const signers = [a, c, v].sort();
  const recorder = recordSessionKeys();
  let result: Awaited<ReturnType<typeof runRound>>;
  let injected = false;
  try {
    result = await runRound({
      peers: 5,
      terms: sumTerms("threshold", 3, 2),
      inputs: sumInput,
      tamper: (e, net) => {
        if (e.from === HOSPITAL && "message" in e) {
          const m = e.message;
          if (m.type === "shares" && e.to === d) {
            return [{
              ...e,
              message: { ...m, shares: m.shares.filter((s) => s.from !== v && s.from !== c) },
            }];
          }
          // Everyone stays in the game, whatever the honest core decides.
          if (m.type === "abort") return [];
          if (m.type === "survivors") {
            if (injected) return [];
            injected = true;
            return [a, c, d, v].map((to) => ({
              from: HOSPITAL,
              to,
              message: survivorsMessage(net, set),
            }));
          }
          return [e];
        }
        if ("message" in e && e.message.type === "consistency" && signers.includes(e.from)) {
          // Once every signer has signed S, UNMASK carries their signatures.
          const all = signers.map((name) => sentBy(net.sent, name, "consistency")[0]);
          if (all.some((m) => m === undefined)) return [e];
          const signatures = signers.map((name, k) => ({
            name,
            signature: (all[k] as MessageOf<"consistency">).signature,
          }));
          return [
            e,
            ...signers.map((to) => ({
              from: HOSPITAL,
              to,
              message: { type: "unmask", session: e.message.session, set, signatures } as Message,
            })),
          ];
        }
        return [e];
      },
    });
  } finally {
    recorder.restore();
  }
  assert.ok(injected, "the round never reached the survivors set");
  const exposed = await exposeAlone(result, {
    victim: d,
    dropped: b,
    colluder: a,
    keys: recorder.keys,
  });
  assert.notEqual(exposed, sumInput(4)[0], "the victim's input was exposed alone");
  for (const name of [c, v]) {
    assert.equal(sentBy(result.net.sent, name, "reveal").length, 0, `${name} revealed`);
    assert.equal(sentBy(result.net.sent, name, "consistency").length, 0, `${name} signed`);
    const outcome = result.peers.get(name);
    assert.match(
      outcome?.kind === "aborted" ? outcome.reason : "",
      /p004 did not mask with p002, a member of the survivors set/,
    );
  }
});

/**
 * What a hospital and a colluder could compute of `victim`'s input from
 * what the peers revealed: its masked vector minus its self mask (from the
 * revealed self-seed shares), minus its pairwise mask with `dropped` (from
 * the revealed mask-secret shares) and with `colluder` (whose session keys
 * the colluder hands over). Undefined if fewer than T shares of either
 * secret were revealed.
 */
async function exposeAlone(
  result: Awaited<ReturnType<typeof runRound>>,
  options: { victim: string; dropped: string; colluder: string; keys: Map<string, CryptoKey> },
): Promise<number | undefined> {
  const { victim, dropped, colluder, keys } = options;
  const start = sentBy(result.net.sent, HOSPITAL, "start")[0] as Message & { type: "start" };
  const entry = (name: string) => start.participants.find((p) => p.name === name)!;
  const point = (name: string) => start.participants.findIndex((p) => p.name === name) + 1;
  const selfShares: SecretShare[] = [];
  const maskShares: SecretShare[] = [];
  for (const name of result.names) {
    for (const reveal of sentBy(result.net.sent, name, "reveal") as MessageOf<"reveal">[]) {
      for (const s of reveal.shares) {
        if (s.of === victim && s.kind === "self") {
          selfShares.push({ x: point(name), words: s.share });
        }
        if (s.of === dropped && s.kind === "mask") {
          maskShares.push({ x: point(name), words: s.share });
        }
      }
    }
  }
  const t = result.terms.threshold;
  if (selfShares.length < t || maskShares.length < t) return undefined;
  const selfSeed = combineSecret(selfShares, t);
  const droppedKey = await rebuildMaskKey(combineSecret(maskShares, t), entry(dropped).maskKey);
  const victimPublic = await importPublicKey(entry(victim).maskKey);
  const colluderKey = keys.get(toHex(entry(colluder).maskKey))!;
  const session = fromHex(start.session);
  const chunk = result.net.sent.find((e) => e.from === victim && "chunk" in e) as
    | (NetEvent & { chunk: { data: Float64Array } })
    | undefined;
  if (!chunk) return undefined;
  const y = Float64Array.from(chunk.chunk.data);
  const { segments } = vectorLayout(parseQuery(result.terms.query, result.terms.scale), {
    max: result.terms.max,
    maxRows: result.terms.maxRows,
    participants: result.terms.participants,
  });
  await applyMask(y, selfSeed, -1, segments);
  for (const [other, key] of [[dropped, droppedKey], [colluder, colluderKey]] as const) {
    const seed = await pairwiseSeed(key, victimPublic, session, other, victim);
    await applyMask(y, seed, pairSign(victim, other) === 1 ? -1 : 1, segments);
  }
  return y[0];
}
