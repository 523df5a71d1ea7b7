/**
 * Sparse rounds of the sans-I/O core in memory (docs/protocol.md §18):
 * H(n, K) over the permuted roster, per-neighbourhood shares, checks and
 * unmasking. Each round's result must be exactly the plain sum over the
 * survivors set, with dropouts at every phase; what the hospital sends a peer
 * must be its window, never the roster; a victim whose window has fewer than
 * T survivors is never unmasked; and each sparse guard has a test here that
 * fails when the guard is deleted (listed in guards_test.ts, P27–P31, H23–H26).
 *
 * @module
 */

import assert from "node:assert/strict";
import { setDigest, window } from "../../lib/protocol/graph.ts";
import { termsProblem } from "../../lib/protocol/terms.ts";
import { doneFields, startHash } from "../../lib/protocol/transcript.ts";
import { sign } from "../../lib/crypto/signing.ts";
import { createStarReceipt } from "../../lib/receipt.ts";
import { toHex } from "../../lib/encoding.ts";
import type { Message, MessageOf } from "../../lib/wire/messages.ts";
import {
  HOSPITAL,
  isMessageFrom,
  type NetEvent,
  peerName,
  plainSum,
  type RoundResult,
  runRound,
  show,
  sparseTerms,
  sumInput,
  sumTerms,
  testPki,
} from "./harness.ts";

const kind = (e: NetEvent) => ("chunk" in e ? "chunk" : e.message.type);

/** The START each peer was sent, by name. */
function starts(result: { trace: NetEvent[] }): Map<string, MessageOf<"start">> {
  const out = new Map<string, MessageOf<"start">>();
  for (const e of result.trace) {
    if (e.from === HOSPITAL && "message" in e && e.message.type === "start") {
      out.set(e.to, e.message);
    }
  }
  return out;
}

/** Checks that the round is done and exact over its set, and every live survivor agrees. */
function assertExact(
  result: RoundResult,
  expected?: readonly string[],
  except: readonly string[] = [],
): string[] {
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return [];
  const set = result.hospital.set;
  if (expected) assert.deepEqual(set, [...expected].sort());
  assert.deepEqual([...result.hospital.result], [plainSum(set)]);
  for (const name of set) {
    const outcome = result.peers.get(name);
    if (result.net.dead.has(name) || except.includes(name)) continue;
    assert.equal(outcome?.kind, "done", `${name}: ${show(outcome)}`);
    if (outcome?.kind === "done") assert.equal(outcome.resultDigest, result.hospital.resultDigest);
  }
  return set;
}

/** Records the window of one peer from the START the hospital sends it. */
function windowRecorder(victim: string) {
  const seen = { names: [] as string[] };
  const tamper = (e: NetEvent): NetEvent[] => {
    if (e.from === HOSPITAL && e.to === victim && "message" in e && e.message.type === "start") {
      const m = e.message;
      const own = m.participants.find((p) => p.name === victim)!;
      const positions = window(own.position!, m.size!, m.participants.length - 1);
      const at = new Map(m.participants.map((p) => [p.position!, p.name]));
      seen.names = positions.map((q) => at.get(q)!);
    }
    return [e];
  };
  return { seen, tamper };
}

Deno.test("sparse: 200 peers, K = 16, T = 11: exact, and START carries only the window", async () => {
  const result = await runRound({ peers: 200, terms: sparseTerms(16, 11), inputs: sumInput });
  assertExact(result, result.names);
  const sent = starts(result);
  assert.equal(sent.size, 200);
  const windows = new Map<string, Set<string>>();
  for (const [to, start] of sent) {
    // O(K): its own entry and its 16 neighbours', never the roster.
    assert.equal(start.participants.length, 17, to);
    assert.equal(start.size, 200);
    windows.set(to, new Set(start.participants.map((p) => p.name)));
  }
  // The graph is symmetric: j is in i's window iff i is in j's.
  for (const [i, names] of windows) {
    for (const j of names) assert.ok(windows.get(j)!.has(i), `${i} ~ ${j}`);
  }
  // Every other per-peer message is O(K) too.
  for (const e of result.trace) {
    if (e.from !== HOSPITAL || !("message" in e)) continue;
    const m = e.message;
    const size = m.type === "confirmations"
      ? m.confirmations.length
      : m.type === "shares"
      ? m.shares.length
      : m.type === "survivors"
      ? m.inputs.length
      : m.type === "unmask"
      ? m.signatures.length
      : 0;
    assert.ok(size <= 17, `${m.type} to ${e.to} lists ${size}`);
  }
});

Deno.test("sparse: 300 peers, dropouts at every phase: exact over the survivors", async () => {
  // [peer, message type it is about to send, whether it still goes out, in S?]
  const plan: [number, string, boolean, boolean][] = [
    [3, "join", false, false],
    [40, "confirm", false, false],
    [77, "confirm", true, false],
    [101, "sealed", false, false],
    [150, "sealed", true, false],
    [151, "chunk", false, false],
    [152, "chunk", false, false],
    [199, "chunk", true, true],
    [230, "consistency", false, true],
    [260, "reveal", false, true],
    [299, "reveal", true, true],
  ];
  const result = await runRound({
    peers: 300,
    terms: sparseTerms(16, 11),
    inputs: sumInput,
    dies: plan.map(([i, type, delivered]) => ({
      peer: peerName(i),
      when: (e: NetEvent) => kind(e) === type,
      delivered,
    })),
  });
  const out = new Set(plan.filter(([, , , survives]) => !survives).map(([i]) => peerName(i)));
  assertExact(result, result.names.filter((n) => !out.has(n)));
});

// (Dropouts before START, whose windows do not exist yet, are in the 300-peer round above.)
const DROPOUTS: [string, string, boolean, boolean][] = [
  ["after confirm", "confirm", true, false],
  ["before sharing", "sealed", false, false],
  ["after sharing", "sealed", true, false],
  ["during masked input", "chunk", false, false],
  ["after masked input", "chunk", true, true],
  ["after consistency", "consistency", true, true],
  ["during unmasking", "reveal", false, true],
];

for (const [label, type, delivered, survives] of DROPOUTS) {
  Deno.test(`sparse: three neighbours drop ${label}: exact over the survivors`, async () => {
    // Three peers of one window (p010's) drop at the same phase.
    const victim = peerName(10);
    const { seen, tamper } = windowRecorder(victim);
    const doomed = () => seen.names.slice(3, 6).filter((n) => n !== victim);
    const result = await runRound({
      peers: 60,
      terms: sparseTerms(8, 5),
      inputs: sumInput,
      tamper,
      dies: Array.from({ length: 60 }, (_, i) => ({
        peer: peerName(i),
        when: (e: NetEvent) => kind(e) === type && doomed().includes(peerName(i)),
        delivered,
      })),
    });
    const gone = new Set(survives ? [] : doomed());
    assert.ok(doomed().length >= 2);
    assertExact(result, result.names.filter((n) => !gone.has(n)));
  });
}

Deno.test("sparse guard H26: a victim whose window keeps fewer than T survivors is never unmasked", async () => {
  // K = 8, T = 5: five of p010's eight neighbours vanish before their masked
  // input, after p010 masked with them. p010's window keeps 4 survivors (itself
  // included) < T: it refuses to sign, and its self seed cannot be rebuilt.
  const victim = peerName(10);
  const { seen, tamper } = windowRecorder(victim);
  const doomed = () => seen.names.filter((n) => n !== victim).slice(0, 5);
  const result = await runRound({
    peers: 60,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    tamper,
    dies: Array.from({ length: 60 }, (_, i) => ({
      peer: peerName(i),
      when: (e: NetEvent) => kind(e) === "chunk" && doomed().includes(peerName(i)),
      delivered: false,
    })),
  });
  assert.equal(result.hospital.kind, "aborted");
  if (result.hospital.kind === "aborted") {
    // The first owner (in name order) short of T revealers stops the round:
    // a dropped neighbour whose masks cannot be removed, or the victim itself.
    assert.match(result.hospital.reason, /neighbours of p\d+ revealed shares; 5 are needed/);
  }
  const own = result.peers.get(victim);
  assert.equal(own?.kind, "aborted");
  if (own?.kind === "aborted") assert.match(own.reason, /below T = 5/);
  // Never exposed: fewer than T self-seed shares of the victim ever left anyone.
  const selfShares = result.trace.filter((e) =>
    "message" in e && e.message.type === "reveal" &&
    e.message.shares.some((s) => s.of === victim && s.kind === "self")
  );
  assert.ok(selfShares.length < 5, `${selfShares.length} self shares of ${victim}`);
  assert.ok(!result.trace.some((e) => "message" in e && e.message.type === "done"));
});

// ---- Guards (guards_test.ts P27–P31, H23–H26) ----

/** Runs a 30-peer sparse round with `tamper` applied to what the hospital sends `victim`. */
function tamperedRound(
  victim: string,
  edit: (m: Message) => Message | undefined,
  extra: Partial<Parameters<typeof runRound>[0]> = {},
) {
  return runRound({
    peers: 30,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    tamper: (e) => {
      if (e.from === HOSPITAL && e.to === victim && "message" in e) {
        const m = edit(e.message);
        if (m) return [{ ...e, message: m }];
      }
      return [e];
    },
    ...extra,
  });
}

function abortedWith(result: RoundResult, name: string, pattern: RegExp): void {
  const outcome = result.peers.get(name);
  assert.equal(outcome?.kind, "aborted", show(outcome));
  if (outcome?.kind === "aborted") assert.match(outcome.reason, pattern);
}

Deno.test("sparse guard P27: a sparse START without its roster hash or size is refused", async () => {
  const victim = peerName(4);
  const result = await tamperedRound(victim, (m) => {
    if (m.type !== "start") return undefined;
    const { rosterHash: _drop, ...rest } = m;
    return rest as Message;
  });
  abortedWith(result, victim, /lacks its roster hash or size/);
});

Deno.test("sparse guard P27: a complete-graph START with sparse fields is refused", async () => {
  const victim = peerName(2);
  const result = await runRound({
    peers: 6,
    terms: sumTerms("threshold", 4, 2),
    inputs: sumInput,
    tamper: (e) => {
      if (e.from === HOSPITAL && e.to === victim && "message" in e && e.message.type === "start") {
        return [{ ...e, message: { ...e.message, size: 6 } }];
      }
      return [e];
    },
  });
  abortedWith(result, victim, /complete-graph START carries sparse fields/);
});

Deno.test("sparse guard P28: START's neighbourhood must be the window around the peer", async () => {
  // The hospital moves one neighbour to a position outside the window.
  const victim = peerName(5);
  const result = await tamperedRound(victim, (m) => {
    if (m.type !== "start") return undefined;
    const own = m.participants.find((p) => p.name === victim)!;
    const far = (own.position! + 15) % m.size!;
    const other = m.participants.find((p) => p.name !== victim)!;
    return {
      ...m,
      participants: m.participants.map((p) => p === other ? { ...p, position: far } : p),
    };
  });
  abortedWith(result, victim, /not the window around this peer/);
});

Deno.test("sparse guard P29: positions must follow the order the START hash fixes", async () => {
  // The hospital swaps two neighbours' positions: same window, another order.
  const victim = peerName(6);
  const result = await tamperedRound(victim, (m) => {
    if (m.type !== "start") return undefined;
    const others = m.participants.filter((p) => p.name !== victim);
    const [a, b] = [others[0]!, others[1]!];
    return {
      ...m,
      participants: m.participants.map((p) =>
        p === a ? { ...p, position: b.position! } : p === b ? { ...p, position: a.position! } : p
      ),
    };
  });
  abortedWith(result, victim, /out of the order its START hash fixes/);
});

Deno.test("sparse guard P29: swapping the two ends of a window that crosses n − 1 → 0 is refused", async () => {
  // Every neighbouring pair stays in order when the hospital swaps the first
  // and last of a window that starts at n − 1 or ends at 0, so only the
  // last-below-first rule catches it (it failed about once in a thousand
  // runs of the test above, where the swap is random).
  const victims = new Set<string>();
  const result = await runRound({
    peers: 30,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    tamper: (e) => {
      if (!isMessageFrom(e, HOSPITAL, "start")) return [e];
      const m = e.message;
      const own = m.participants.find((p) => p.name === e.to)!;
      const slots = window(own.position!, m.size!, 8);
      if (slots[0] !== m.size! - 1 && slots.at(-1) !== 0) return [e];
      victims.add(e.to);
      const [first, last] = [slots[0]!, slots.at(-1)!];
      const participants = m.participants.map((p) =>
        p.position === first
          ? { ...p, position: last }
          : p.position === last
          ? { ...p, position: first }
          : p
      );
      return [{ ...e, message: { ...m, participants } }];
    },
  });
  assert.equal(victims.size, 2, "one window starts at n − 1, one ends at 0");
  for (const victim of victims) {
    abortedWith(result, victim, /out of the order its START hash fixes/);
  }
});

Deno.test("sparse guard P28: one peer listed at every position of a window is refused", async () => {
  // A hospital shows the victim one neighbour x in every other slot of its
  // window (its genuine entry, each time with another position). The codec
  // refuses repeated names, so the START goes to the core as it is (`raw`):
  // the core's own check must refuse it (review 9, F4).
  const victim = peerName(6);
  let shown = false;
  const result = await runRound({
    peers: 30,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    tamper: (e) => {
      if (e.from !== HOSPITAL || e.to !== victim || !("message" in e)) return [e];
      const m = e.message;
      if (m.type !== "start") return [e];
      const x = m.participants.find((p) => p.name !== victim)!;
      const participants = m.participants.map((p) =>
        p.name === victim ? p : { ...x, position: p.position! }
      );
      shown = true;
      return [{ ...e, message: { ...m, participants }, raw: true }];
    },
  });
  assert.ok(shown);
  abortedWith(result, victim, /START's neighbourhood is not the window around this peer/);
});

Deno.test("sparse guard P30: a survivor's partner set must hold S in its window", async () => {
  // The hospital withholds x's share from m (both in the victim's window, and
  // in each other's), so m masks without x and signs a partner set without
  // x. An honest hospital drops m for it (H24); this one keeps m alive and
  // shows the victim a SURVIVORS set holding both m and x, with m's genuine
  // statement. The victim must refuse to sign it.
  const victim = peerName(7);
  const { seen, tamper: record } = windowRecorder(victim);
  const pick = () => ({ m: seen.names[3]!, x: seen.names[5]! });
  const result = await runRound({
    peers: 30,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    tamper: (e, net) => {
      record(e);
      if (!(e.from === HOSPITAL && "message" in e)) return [e];
      const msg = e.message;
      const { m, x } = pick();
      if (msg.type === "shares" && e.to === m) {
        return [{ ...e, message: { ...msg, shares: msg.shares.filter((s) => s.from !== x) } }];
      }
      if (msg.type === "abort" && e.to === m) return [];
      if (msg.type === "survivors" && e.to === victim) {
        const sent = net.sent.find((s) =>
          s.from === m && "message" in s && s.message.type === "input"
        );
        if (!sent || !("message" in sent) || sent.message.type !== "input") return [e];
        const { digest, seedCommit, partners, signature } = sent.message;
        const inputs = [...msg.inputs, { name: m, digest, seedCommit, partners, signature }]
          .sort((a, b) => (a.name < b.name ? -1 : 1));
        return [{
          ...e,
          message: { ...msg, set: inputs.map((s) => s.name), inputs },
        }];
      }
      return [e];
    },
  });
  abortedWith(result, victim, new RegExp(`${pick().m} did not mask with ${pick().x}`));
  assert.ok(
    !result.trace.some((e) =>
      e.from === victim && "message" in e && e.message.type === "consistency"
    ),
  );
});

Deno.test("sparse guard P31: a neighbour's signed view that contradicts S stops the reveal", async () => {
  // The hospital tells the victim's neighbour m that x dropped (x in both
  // windows) and everyone else that x survived; m signs its view without x.
  // UNMASK to the victim carries m's genuine signature on that view.
  const victim = peerName(8);
  const { seen, tamper: record } = windowRecorder(victim);
  const pick = () => ({ m: seen.names[5]!, x: seen.names[6]! });
  let setOfM: string[] = [];
  const result = await runRound({
    peers: 30,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    tamper: (e, net) => {
      record(e);
      if (!(e.from === HOSPITAL && "message" in e)) return [e];
      const msg = e.message;
      const { m, x } = pick();
      if (msg.type === "abort" && e.to === m) return [];
      if (msg.type === "survivors" && e.to === m) {
        setOfM = msg.set.filter((n) => n !== x);
        return [{
          ...e,
          message: { ...msg, set: setOfM, inputs: msg.inputs.filter((s) => s.name !== x) },
        }];
      }
      if (msg.type === "unmask" && e.to === victim) {
        const sent = net.sent.find((s) =>
          s.from === m && "message" in s && s.message.type === "consistency"
        );
        if (!sent || !("message" in sent) || sent.message.type !== "consistency") return [e];
        const startOfM = starts({ trace: net.trace }).get(m)!;
        const own = startOfM.participants.find((p) => p.name === m)!;
        const positions = window(own.position!, startOfM.size!, 8);
        const at = new Map(startOfM.participants.map((p) => [p.name, p.position!]));
        const view = bitmapOf(positions, new Set(setOfM.map((n) => at.get(n)!)));
        const entry = { name: m, signature: sent.message.signature, view };
        const signatures = [...msg.signatures.filter((s) => s.name !== m), entry]
          .sort((a, b) => (a.name < b.name ? -1 : 1));
        return [{ ...e, message: { ...msg, signatures } }];
      }
      return [e];
    },
  });
  abortedWith(result, victim, new RegExp(`${pick().m} signed another survivors set`));
  assert.ok(
    !result.trace.some((e) => e.from === victim && "message" in e && e.message.type === "reveal"),
  );
});

function bitmapOf(positions: readonly number[], members: ReadonlySet<number>): string {
  const bytes = new Uint8Array(Math.ceil(positions.length / 8));
  positions.forEach((q, i) => {
    if (members.has(q)) bytes[i >> 3]! |= 1 << (i & 7);
  });
  return toHex(bytes);
}

Deno.test("sparse guard H23: sealed shares addressed to other than the window are a violation", async () => {
  const sender = peerName(9);
  const result = await runRound({
    peers: 30,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    tamper: (e) => {
      if (e.from === sender && "message" in e && e.message.type === "sealed") {
        return [{ ...e, message: { ...e.message, shares: e.message.shares.slice(1) } }];
      }
      return [e];
    },
  });
  const log = result.logs.get(HOSPITAL)!.join("\n");
  assert.match(log, new RegExp(`dropped ${sender}: its shares are not addressed`));
  assertExact(result, result.names.filter((n) => n !== sender));
});

Deno.test("sparse guard H24: an input whose partner set is not H in its window is a violation", async () => {
  // The hospital withholds one neighbour's share from `sender`, which then
  // masks without it: its partner set lacks a holder of its window.
  const sender = peerName(11);
  const result = await runRound({
    peers: 30,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    tamper: (e) => {
      if (e.from === HOSPITAL && e.to === sender && "message" in e && e.message.type === "shares") {
        return [{ ...e, message: { ...e.message, shares: e.message.shares.slice(1) } }];
      }
      return [e];
    },
  });
  const log = result.logs.get(HOSPITAL)!.join("\n");
  assert.match(log, new RegExp(`dropped ${sender}: its input's partner set is not`));
  assertExact(result, result.names.filter((n) => n !== sender));
});

Deno.test("sparse guard H25: a reveal for other than the holders of its window is a violation", async () => {
  const sender = peerName(12);
  const result = await runRound({
    peers: 30,
    terms: sparseTerms(8, 5),
    inputs: sumInput,
    tamper: (e) => {
      if (e.from === sender && "message" in e && e.message.type === "reveal") {
        return [{ ...e, message: { ...e.message, shares: e.message.shares.slice(1) } }];
      }
      return [e];
    },
  });
  const log = result.logs.get(HOSPITAL)!.join("\n");
  assert.match(log, new RegExp(`dropped ${sender}: its reveal does not match`));
  assertExact(result, result.names, [sender]);
});

Deno.test("sparse guard P32: DONE carries the set digest, signed", async () => {
  const result = await runRound({ peers: 30, terms: sparseTerms(8, 5), inputs: sumInput });
  const set = assertExact(result, result.names);
  const done = result.trace.find((e) => "message" in e && e.message.type === "done");
  assert.ok(done && "message" in done && done.message.type === "done");
  assert.equal(done.message.setDigest, toHex(await setDigest(set)));
  // A DONE without it is refused by a sparse peer.
  const victim = peerName(3);
  const stripped = await tamperedRound(victim, (m) => {
    if (m.type !== "done") return undefined;
    const { setDigest: _drop, ...rest } = m;
    return rest as Message;
  });
  abortedWith(stripped, victim, /set digest does not fit|DONE signature does not verify/);
});

Deno.test("sparse guard P32: a complete-graph peer refuses DONE signed over a set digest", async () => {
  // A hospital that signs DONE over a digest, not the set the peer knows:
  // the peer must not let a value it cannot check stand for its set.
  const pki = await testPki(5);
  const victim = peerName(1);
  const result = await runRound({
    peers: 5,
    terms: sumTerms("threshold", 3, 2),
    inputs: sumInput,
    tamper: async (e, net) => {
      if (!(e.from === HOSPITAL && e.to === victim && "message" in e)) return [e];
      const m = e.message;
      if (m.type !== "done") return [e];
      const start = starts({ trace: net.trace }).get(victim)!;
      const invite = net.trace.find((x) => "message" in x && x.message.type === "invite");
      assert.ok(invite && "message" in invite && invite.message.type === "invite");
      const hash = await startHash(m.session, invite.message.terms, start.participants);
      const digest = await setDigest(["p000", "p001"]);
      const signature = await sign(
        pki.hospital.signingKey,
        "done",
        doneFields(m.session, hash, digest, m.resultDigest),
      );
      return [{ ...e, message: { ...m, signature, setDigest: toHex(digest) } }];
    },
  });
  abortedWith(result, victim, /set digest does not fit/);
});

Deno.test("sparse: no receipt is written for a sparse round (format /6 cannot check it)", async () => {
  const result = await runRound({ peers: 20, terms: sparseTerms(8, 5), inputs: sumInput });
  assert.equal(result.hospital.kind, "done", show(result.hospital));
  if (result.hospital.kind !== "done") return;
  const pki = await testPki(20);
  await assert.rejects(
    createStarReceipt(result.hospital.evidence, result.hospital.result, pki.hospital.signingKey),
    /receipts of sparse rounds/,
  );
});

Deno.test("sparse: terms refuse an odd K, T not above half a window, and n-of-n", async () => {
  const odd = await runRound({ peers: 20, terms: sparseTerms(7, 5), inputs: sumInput }).catch(
    (error) => error as Error,
  );
  assert.ok(odd instanceof Error && /odd/.test(odd.message), String(odd));
  const low = await runRound({ peers: 20, terms: sparseTerms(8, 4), inputs: sumInput }).catch(
    (error) => error as Error,
  );
  assert.ok(low instanceof Error && /not above half of a neighbourhood/.test(low.message));
  const nofn = await runRound({
    peers: 20,
    terms: { ...sumTerms("nofn"), neighbors: 8 },
    inputs: sumInput,
  }).catch((error) => error as Error);
  assert.ok(nofn instanceof Error && /needs a threshold round/.test(nofn.message));
  // The complete graph keeps its cap: 501 participants need sparse pairing.
  const big = { ...sumTerms("threshold", 300, 2), participants: 501, dimension: 1 };
  assert.match(termsProblem(big) ?? "", /complete graph allows at most 500/);
  assert.equal(termsProblem({ ...big, neighbors: 16, threshold: 11 }), undefined);
});
